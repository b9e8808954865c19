/* SPDX-License-Identifier: Apache-2.0 */
#include "hangup.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "otp_backoff.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_time.h"

/* Backoff of a hang-up that did not go through: short, the call is live. */
#define HANGUP_RETRY_BASE_MS 250
#define HANGUP_RETRY_CAP_MS 4000
/* A claimed hang-up whose worker died comes due again 15 s later (claim_sql). */

/* One due hang-up, leased to this worker. $1 worker id. */
static const char claim_sql[] =
    "UPDATE call_hangups SET lease_owner = $1, tries = tries + 1,"
    "       next_try_at = now() + make_interval(secs => 15)"
    " WHERE call_id = (SELECT call_id FROM call_hangups"
    "                   WHERE done_at IS NULL AND next_try_at <= now()"
    "                   ORDER BY next_try_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
    " RETURNING call_id::text, request_id::text, reason, tries";

/* Done (or given up): the row and its event in one statement. $1 call id,
 * $2 outcome, $3 event type, $4 the call's status at VoIPBin (may be ""). */
static const char done_sql[] =
    "WITH u AS ("
    "  UPDATE call_hangups SET done_at = now(), outcome = $2, lease_owner = NULL"
    "   WHERE call_id = $1::uuid AND done_at IS NULL"
    "  RETURNING request_id, reason, tries"
    ") INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, $3, jsonb_build_object('call_id', $1::text, 'reason', reason,"
    "         'tries', tries, 'outcome', $2)"
    "         || CASE WHEN $4 <> '' THEN jsonb_build_object('call_status', $4) ELSE '{}' END"
    "    FROM u";

/* Another try later: $2 ms; $3 = 1 gives the try back (no token to send it). */
static const char later_sql[] =
    "UPDATE call_hangups SET lease_owner = NULL, tries = tries - $3::int,"
    "       next_try_at = now() + make_interval(secs => $2::bigint / 1000.0)"
    " WHERE call_id = $1::uuid AND done_at IS NULL";

static int later(PGconn *db, const char *call_id, int64_t delay_ms, int give_back)
{
    char delay_s[24];
    const char *p[3] = {call_id, delay_s, give_back ? "1" : "0"};

    snprintf(delay_s, sizeof(delay_s), "%lld", (long long)delay_ms);
    return otp_db_exec(db, "hangup_later", later_sql, 3, p);
}

static int done(PGconn *db, const char *call_id, const char *outcome, const char *type,
                const char *call_status)
{
    const char *p[4] = {call_id, outcome, type, call_status};

    if (otp_db_exec(db, "hangup_done", done_sql, 4, p) != 0)
        return -1;
    return otp_db_exec(db, "notify", "NOTIFY otp_outbox", 0, NULL);
}

/* One claimed hang-up: the request, then its record. 0 ok, -1 db error. */
static int hang_up(dispatch_t *d, const char *call_id, const char *request_id, const char *reason,
                   int tries)
{
    PGconn *db = d->tx.db;
    char status[16] = "";
    int rc = vb_call_hangup(d->vb, call_id, status);

    otp_info("call_hangup", "request_id=%s call_id=%s reason=%s try=%d result=%d status=%s",
             request_id, call_id, reason, tries, rc, status);
    if (rc == 1)
        return done(db, call_id, "hung_up", "call_hung_up", status);
    if (rc == 0)
        return done(db, call_id, "not_found", "call_hangup_failed", "");
    if (rc == -1 && tries < HANGUP_MAX_TRIES)
        return later(db, call_id,
                     otp_backoff_delay_ms(tries, HANGUP_RETRY_BASE_MS, HANGUP_RETRY_CAP_MS, 0,
                                          randombytes_random()),
                     0);
    otp_warn("call_hangup_gave_up", "request_id=%s call_id=%s reason=%s tries=%d", request_id,
             call_id, reason, tries);
    return done(db, call_id, rc == -1 ? "gave_up" : "refused", "call_hangup_failed", "");
}

int hangup_run(dispatch_t *d)
{
    const worker_settings_t *c = &d->w->cfg;
    PGconn *db = d->tx.db;
    int64_t until = otp_monotonic_ms() + DISPATCH_LOOKUP_ROUND_MS;
    int n = 0;

    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        return 0; /* the batch first; the next round sends them */
    while (n == 0 || otp_monotonic_ms() < until) {
        const char *p[1] = {c->worker_id};
        PGresult *r = otp_db_query(db, "hangup_claim", claim_sql, 1, p);
        char call_id[37], request_id[37], reason[16];
        int tries, got;

        if (!r)
            goto db_error;
        if (PQntuples(r) == 0) {
            PQclear(r);
            break;
        }
        snprintf(call_id, sizeof(call_id), "%s", PQgetvalue(r, 0, 0));
        snprintf(request_id, sizeof(request_id), "%s", PQgetvalue(r, 0, 1));
        snprintf(reason, sizeof(reason), "%s", PQgetvalue(r, 0, 2));
        tries = (int)strtol(PQgetvalue(r, 0, 3), NULL, 10);
        PQclear(r);
        /* One token of the budget every worker shares, like any request. */
        got = budget_take(db, c->rate_per_s, c->burst, 1);
        if (got != 1) {
            int64_t wait = got < 0 ? 200 : budget_wait_ms(db, c->rate_per_s, c->burst);
            if (later(db, call_id, wait > 0 ? wait : 50, 1) != 0 || got < 0)
                goto db_error;
            break;
        }
        n++;
        if (hang_up(d, call_id, request_id, reason, tries) != 0)
            goto db_error;
    }
    return n;
db_error:
    atomic_fetch_add(&d->w->m.db_errors, 1);
    return -1;
}
