/* SPDX-License-Identifier: Apache-2.0 */
#include "challenge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_db.h"
#include "otp_log.h"
#include "otp_outbox.h"
#include "otp_time.h"
#include "otp_webhook.h"

/* Claims due rows, as many as there are free slots and request tokens, and
 * pays for them from the shared VoIPBin budget, in one statement. Setting
 * next_attempt_at to the lease's end means a worker that dies holding the row
 * simply lets it come due again. A row still waiting on a call's final status
 * keeps that status (its webhooks still apply while it is looked up); its
 * token pays for the look-up. The budget row is written only when a row was
 * claimed; tokens accrue from its last write. The claimed rows are found
 * again by their keys (= ANY): joined on request_id alone, the planner took
 * d's LIMIT for a tenth of the due rows and hashed the whole table, so every
 * claim read every row (a seq scan of challenges per claim, growing with the
 * table). $1 worker id, $2 limit, $3 lease (s), $4 rate, $5 burst. */
static const char claim_sql[] =
    "WITH b AS ("
    "  SELECT least($5::float8, tokens + $4::float8 *"
    "         extract(epoch FROM clock_timestamp() - updated_at)) AS avail"
    "    FROM rate_budget WHERE name = 'voipbin' FOR UPDATE"
    "), d AS ("
    "  SELECT request_id, status AS prev_status FROM challenges"
    "   WHERE next_attempt_at <= now() ORDER BY next_attempt_at"
    "   LIMIT (SELECT least($2::int, greatest(floor(avail), 0)::int) FROM b)"
    "   FOR UPDATE SKIP LOCKED"
    "), c AS ("
    "  UPDATE challenges c SET lease_owner = $1, updated_at = now(),"
    "         status = CASE WHEN d.prev_status IN ('call_requested', 'ringing', 'answered')"
    "                       THEN c.status ELSE 'calling' END,"
    "         next_attempt_at = now() + make_interval(secs => $3::int)"
    "    FROM d WHERE c.request_id = d.request_id"
    "     AND c.request_id = ANY (ARRAY(SELECT request_id FROM d))"
    "  RETURNING c.request_id, c.phone, c.phone_masked, c.locale, c.code_length,"
    "    (extract(epoch FROM c.expires_at) * 1000)::bigint AS expires_ms, c.call_attempts,"
    "    c.max_call_attempts, d.prev_status,"
    "    coalesce((extract(epoch FROM c.attempt_started_at) * 1000)::bigint, 0) AS started_ms,"
    "    coalesce((c.options->>'gate')::boolean, false) AS gate,"
    "    coalesce((c.options->>'amd')::boolean, false) AS amd,"
    "    coalesce((c.options->>'sms_fallback')::boolean, false) AS sms_fallback,"
    "    coalesce(c.options->>'channel' = 'sms', false) AS sms_channel,"
    "    coalesce((c.options->>'keypad')::boolean, false) AS keypad,"
    "    c.tries, c.country, coalesce(c.call_id::text, '') AS call_id, c.service"
    "), t AS ("
    "  UPDATE rate_budget r SET tokens = b.avail - (SELECT count(*) FROM c),"
    "         updated_at = clock_timestamp()"
    "    FROM b WHERE r.name = 'voipbin' AND EXISTS (SELECT 1 FROM c)"
    ")"
    "SELECT * FROM c";

/* Records a placed (or adopted) call, in one statement: the call row (the
 * call exists whatever happened to the challenge meanwhile) with how it counts
 * as heard, the challenge status (due again OTP_CALL_STATUS_TIMEOUT_SECONDS
 * later, or at expiry if sooner: then, with no final call status yet, the
 * call is looked up; the fallback offer OTP_FALLBACK_AFTER_SECONDS after the
 * first call) and the event. A call placed for a request superseded or
 * cancelled while the request was in flight is queued to be hung up. $1 call
 * id, $2 request id, $3 attempt, $4 when to look (ms), $5 worker id, $6 the
 * event's attributes, $7 heard rule, $8/$9 the first reading's start/end
 * (ms after the answer), $10 OTP_FALLBACK_AFTER_SECONDS. */
static const char record_sql[] =
    "WITH ins AS ("
    "  INSERT INTO calls (call_id, request_id, attempt, heard_rule, code_start_ms, code_end_ms)"
    "  VALUES ($1, $2, $3, $7, $8::int, $9::int)"
    "  ON CONFLICT (call_id) DO NOTHING"
    "), upd AS ("
    "  UPDATE challenges SET status = 'call_requested', call_id = $1::uuid, lease_owner = NULL,"
    "         attempt_started_at = NULL, next_attempt_at = to_timestamp($4::bigint / 1000.0),"
    "         fallback_at = CASE WHEN fallback_offered_at IS NULL"
    "           THEN coalesce(fallback_at, now() + make_interval(secs => $10::int)) END,"
    "         updated_at = now()"
    "   WHERE request_id = $2 AND status = 'calling' AND lease_owner = $5"
    "  RETURNING request_id"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'call_requested', $6::jsonb FROM upd"
    "), hup AS ("
    "  INSERT INTO call_hangups (call_id, request_id, reason)"
    "  SELECT $1::uuid, request_id, status FROM challenges"
    "   WHERE request_id = $2 AND status IN ('superseded', 'cancelled')"
    "     AND NOT EXISTS (SELECT 1 FROM upd)"
    "  ON CONFLICT (call_id) DO NOTHING"
    ")"
    "SELECT count(*) FROM upd";

/* The code's hash for the call about to be placed. $1 request id, $2 worker
 * id, $3 hash (hex), $4 key id, $5 attempt. */
static const char store_code_sql[] =
    "UPDATE challenges SET code_hash = decode($3, 'hex'), key_id = $4::smallint,"
    "       call_attempts = $5::int, tries = tries + 1, attempt_started_at = now(),"
    "       updated_at = now()"
    " WHERE request_id = $1 AND status = 'calling' AND lease_owner = $2";

/* After a look-up: a row still waiting on its call is asked about again
 * later ($4 s, never past expiry), or ends 'expired' once the code's life is
 * over. Rows a webhook or the look-up has moved on are left alone. $1 request
 * id, $2 call id, $3 worker id, $4 seconds. */
static const char look_again_sql[] =
    "WITH exp AS ("
    "  UPDATE challenges SET status = 'expired', next_attempt_at = NULL, lease_owner = NULL,"
    "         updated_at = now()"
    "   WHERE request_id = $1 AND call_id = $2::uuid AND lease_owner = $3"
    "     AND status IN ('call_requested', 'ringing', 'answered') AND expires_at <= now()"
    "  RETURNING request_id"
    "), again AS ("
    "  UPDATE challenges SET lease_owner = NULL, updated_at = now(),"
    "         next_attempt_at = least(now() + make_interval(secs => $4::int), expires_at)"
    "   WHERE request_id = $1 AND call_id = $2::uuid AND lease_owner = $3"
    "     AND status IN ('call_requested', 'ringing', 'answered') AND expires_at > now()"
    "  RETURNING request_id"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'expired', jsonb_build_object('reason', 'no_final_call_status',"
    "         'call_id', $2::text) FROM exp"
    ")"
    "SELECT (SELECT count(*) FROM exp), (SELECT count(*) FROM again)";

static void db_error(challenge_tx_t *tx)
{
    atomic_fetch_add(&tx->m->db_errors, 1);
}

/* The open batch, or a new one. */
static int tx_begin(challenge_tx_t *tx)
{
    if (PQtransactionStatus(tx->db) == PQTRANS_IDLE)
        return otp_db_begin(tx->db);
    return PQtransactionStatus(tx->db) == PQTRANS_INTRANS ? 0 : -1;
}

/* Reads a claimed row's columns by name. */
static void read_claimed(const PGresult *r, int i, claimed_t *row)
{
#define COL(name) PQgetvalue(r, i, PQfnumber(r, name))
#define FLAG(name) (COL(name)[0] == 't')
    memset(row, 0, sizeof(*row));
    snprintf(row->request_id, sizeof(row->request_id), "%s", COL("request_id"));
    snprintf(row->phone, sizeof(row->phone), "%s", COL("phone"));
    snprintf(row->phone_masked, sizeof(row->phone_masked), "%s", COL("phone_masked"));
    snprintf(row->locale, sizeof(row->locale), "%s", COL("locale"));
    snprintf(row->prev_status, sizeof(row->prev_status), "%s", COL("prev_status"));
    snprintf(row->country, sizeof(row->country), "%s", COL("country"));
    snprintf(row->service, sizeof(row->service), "%s", COL("service"));
    snprintf(row->call_id, sizeof(row->call_id), "%s", COL("call_id"));
    row->code_length = (int)strtol(COL("code_length"), NULL, 10);
    row->expires_ms = strtoll(COL("expires_ms"), NULL, 10);
    row->call_attempts = (int)strtol(COL("call_attempts"), NULL, 10);
    row->max_call_attempts = (int)strtol(COL("max_call_attempts"), NULL, 10);
    row->attempt_started_ms = strtoll(COL("started_ms"), NULL, 10);
    row->tries = (int)strtol(COL("tries"), NULL, 10);
    row->gate = FLAG("gate");
    row->amd = FLAG("amd");
    row->sms_fallback = FLAG("sms_fallback");
    row->sms_channel = FLAG("sms_channel");
    row->keypad = FLAG("keypad");
#undef FLAG
#undef COL
}

int challenge_claim(challenge_tx_t *tx, int limit, int lease_s, const char *rate, const char *burst,
                    claimed_t **out)
{
    char limit_s[12], lease[12];
    const char *p[5] = {tx->worker_id, limit_s, lease, rate, burst};
    PGresult *r;
    int n;

    *out = NULL;
    snprintf(limit_s, sizeof(limit_s), "%d", limit);
    snprintf(lease, sizeof(lease), "%d", lease_s);
    if (tx_begin(tx) != 0)
        return -1;
    r = otp_db_query_prepared(tx->db, "claim", claim_sql, 5, p);
    if (!r) {
        db_error(tx);
        otp_db_rollback(tx->db);
        return -1;
    }
    n = PQntuples(r);
    if (n == 0) {
        /* Nothing claimed, nothing written: no batch stays open (an open
         * transaction would also hold back the otp_due notifications). */
        PQclear(r);
        return challenge_commit(tx) == 0 ? 0 : -1;
    }
    if (!(*out = calloc((size_t)n, sizeof(**out)))) {
        PQclear(r);
        otp_db_rollback(tx->db); /* the rows stay due */
        return -1;
    }
    for (int i = 0; i < n; i++)
        read_claimed(r, i, &(*out)[i]);
    PQclear(r);
    return n;
}

/* A state change of a row this worker holds, with its event (if `event`), in
 * the open batch. `set` is the SET list; $1 = request_id, $2 = worker id, then
 * the extra params. */
static held_t change_held(challenge_tx_t *tx, const char *request_id, const char *set, int nextra,
                          const char *const *extra, const char *event, json_t *attrs)
{
    char sql[1024];
    const char *p[8] = {request_id, tx->worker_id};
    PGresult *r;
    int changed;

    for (int i = 0; i < nextra && i < 6; i++)
        p[2 + i] = extra[i];
    snprintf(sql, sizeof(sql),
             "UPDATE challenges SET %s, updated_at = now() WHERE request_id = $1"
             " AND status = 'calling' AND lease_owner = $2",
             set);
    r = tx_begin(tx) == 0 ? otp_db_query(tx->db, event ? event : "change_held", sql, 2 + nextra, p)
                          : NULL;
    if (!r) {
        json_decref(attrs);
        db_error(tx);
        return HELD_ERROR;
    }
    changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!changed || !event) {
        json_decref(attrs);
        return changed ? HELD_CHANGED : HELD_LOST;
    }
    tx->events = 1;
    if (otp_outbox_add(tx->db, request_id, event, attrs) != 0) {
        db_error(tx);
        return HELD_ERROR;
    }
    return HELD_CHANGED;
}

held_t challenge_fail(challenge_tx_t *tx, const claimed_t *row, const char *cause, json_t *attrs)
{
    held_t h;

    if (!attrs)
        attrs = json_object();
    json_object_set_new(attrs, "cause", json_string(cause));
    json_object_set_new(attrs, "call_attempts", json_integer(row->call_attempts));
    h = change_held(tx, row->request_id,
                    "status = 'failed', next_attempt_at = NULL, lease_owner = NULL,"
                    " failed_at = now(), reason = $3",
                    1, &cause, "failed", attrs);
    if (h != HELD_CHANGED)
        return h;
    otp_info("request_failed", "request_id=%s phone=%s cause=%s", row->request_id,
             row->phone_masked, cause);
    /* Lets an app offer "Didn't get the call?" (a resend by SMS), unless the
     * time-based offer (challenge_offer_fallbacks) has already made it. */
    if (!row->sms_channel) {
        const char *p[1] = {row->request_id};
        if (otp_db_exec(tx->db, "fallback_on_fail",
                        "WITH o AS ("
                        "  UPDATE challenges SET fallback_offered_at = now(), fallback_at = NULL"
                        "   WHERE request_id = $1 AND fallback_offered_at IS NULL"
                        "  RETURNING request_id"
                        ") INSERT INTO outbox (request_id, type, attrs)"
                        "  SELECT request_id, 'fallback_available',"
                        "         '{\"channel\":\"sms\",\"reason\":\"failed\"}'::jsonb FROM o",
                        1, p) != 0) {
            db_error(tx);
            return HELD_ERROR;
        }
    }
    return HELD_CHANGED;
}

held_t challenge_expire(challenge_tx_t *tx, const claimed_t *row, const char *reason)
{
    held_t h = change_held(tx, row->request_id,
                           "status = 'expired', next_attempt_at = NULL, lease_owner = NULL", 0,
                           NULL, "expired", json_pack("{s:s}", "reason", reason));
    if (h == HELD_CHANGED)
        otp_info("request_expired", "request_id=%s phone=%s reason=%s", row->request_id,
                 row->phone_masked, reason);
    return h;
}

held_t challenge_sms_sent(challenge_tx_t *tx, const claimed_t *row, const char *message_id,
                          int fallback)
{
    held_t h = change_held(tx, row->request_id,
                           "status = 'sms_sent', next_attempt_at = NULL, lease_owner = NULL,"
                           " attempt_started_at = NULL, call_id = NULL",
                           0, NULL, "sms_sent",
                           json_pack("{s:s, s:b}", "message_id", message_id, "fallback", fallback));
    if (h == HELD_CHANGED)
        otp_info("sms_sent", "request_id=%s phone=%s message_id=%s fallback=%d", row->request_id,
                 row->phone_masked, message_id, fallback);
    return h;
}

held_t challenge_retry(challenge_tx_t *tx, const claimed_t *row, const after_t *a,
                       const char *cause, int ambiguous)
{
    char delay_s[24], attempts_s[12], tries_s[12];
    const char *extra[3] = {delay_s, attempts_s, tries_s};
    held_t h;

    snprintf(delay_s, sizeof(delay_s), "%lld", (long long)a->delay_ms);
    snprintf(attempts_s, sizeof(attempts_s), "%d", a->call_attempts);
    snprintf(tries_s, sizeof(tries_s), "%d", row->tries);
    h = change_held(tx, row->request_id,
                    ambiguous
                        ? "next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0),"
                          " call_attempts = $4::int, tries = greatest(tries, $5::int),"
                          " lease_owner = NULL"
                        : "status = 'pending',"
                          " next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0),"
                          " call_attempts = $4::int, tries = greatest(tries, $5::int),"
                          " lease_owner = NULL, attempt_started_at = NULL",
                    3, extra, "retry_scheduled",
                    json_pack("{s:i, s:I, s:s, s:b}", "attempt", a->call_attempts + 1, "delay_ms",
                              (json_int_t)a->delay_ms, "cause", cause, "ambiguous", ambiguous));
    if (h == HELD_CHANGED)
        otp_info("retry_scheduled", "request_id=%s phone=%s cause=%s delay_ms=%lld attempt=%d",
                 row->request_id, row->phone_masked, cause, (long long)a->delay_ms,
                 a->call_attempts + 1);
    return h;
}

held_t challenge_store_code(challenge_tx_t *tx, const claimed_t *row, const char *hash_hex,
                            int key_id, int attempt)
{
    char key_s[8], attempt_s[12];
    const char *extra[3] = {hash_hex, key_s, attempt_s};

    snprintf(key_s, sizeof(key_s), "%d", key_id);
    snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
    if (attempt == 0) /* an SMS: no call counted, no attempt started */
        return change_held(tx, row->request_id,
                           "code_hash = decode($3, 'hex'), key_id = $4::smallint,"
                           " tries = tries + 1",
                           2, extra, NULL, NULL);
    return change_held(tx, row->request_id,
                       "code_hash = decode($3, 'hex'), key_id = $4::smallint,"
                       " call_attempts = $5::int, tries = tries + 1, attempt_started_at = now()",
                       3, extra, NULL, NULL);
}

held_t challenge_start_keypad(challenge_tx_t *tx, const claimed_t *row, int attempt)
{
    char attempt_s[12];
    const char *extra[1] = {attempt_s};

    snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
    return change_held(tx, row->request_id,
                       "call_attempts = $3::int, tries = tries + 1, attempt_started_at = now()", 1,
                       extra, NULL, NULL);
}

int challenge_store_codes(challenge_tx_t *tx, const claimed_t *rows, int n, char (*hash_hex)[65],
                          int key_id, held_t *held)
{
    PGresult **res = calloc((size_t)n, sizeof(*res));
    char key_s[8];
    int sent = 0, rc = -1;

    snprintf(key_s, sizeof(key_s), "%d", key_id);
    if (!res || tx_begin(tx) != 0 || otp_db_prepare(tx->db, "store_code", store_code_sql, 5) != 0 ||
        otp_db_pipe_open(tx->db) != 0)
        goto out;
    for (; sent < n; sent++) {
        char attempt_s[12];
        const char *p[5] = {rows[sent].request_id, tx->worker_id, hash_hex[sent], key_s, attempt_s};

        snprintf(attempt_s, sizeof(attempt_s), "%d", rows[sent].call_attempts + 1);
        if (otp_db_pipe_send_prepared(tx->db, "store_code", 5, p, NULL, NULL) != 0)
            break;
    }
    if (otp_db_pipe_close(tx->db, "store_code", res, sent) != 0 || sent != n)
        goto out;
    for (int i = 0; i < n; i++)
        held[i] = strcmp(PQcmdTuples(res[i]), "1") == 0 ? HELD_CHANGED : HELD_LOST;
    rc = 0;
out:
    if (rc != 0)
        db_error(tx);
    if (res)
        for (int i = 0; i < n; i++)
            PQclear(res[i]);
    free(res);
    return rc;
}

void challenge_record(challenge_tx_t *tx, const claimed_t *row, const char *call_id, int attempt,
                      int adopted, const char *rule, const otp_voice_heard_t *times)
{
    challenge_record_t *r;

    if (tx->n_records == tx->cap_records) {
        int cap = tx->cap_records ? tx->cap_records * 2 : 64;
        challenge_record_t *nr = realloc(tx->records, sizeof(*nr) * (size_t)cap);
        if (!nr) {
            /* Not recorded: the row stays 'calling' and its lease's end
             * finds the call again (look-up and adopt). */
            db_error(tx);
            return;
        }
        tx->records = nr;
        tx->cap_records = cap;
    }
    r = &tx->records[tx->n_records++];
    r->row = *row;
    snprintf(r->call_id, sizeof(r->call_id), "%s", call_id);
    r->attempt = attempt;
    r->adopted = adopted;
    r->applied = 0;
    snprintf(r->rule, sizeof(r->rule), "%s", rule);
    r->times = *times;
}

/* Writes the queued records into the open batch, one round trip for all. The
 * applied ones stay in tx->records (n_committed) for challenge_apply_recorded. */
static void flush_records(challenge_tx_t *tx)
{
    PGresult **res;
    int sent = 0, n = tx->n_records, rc, kept = 0;

    if (n == 0)
        return;
    res = calloc((size_t)n, sizeof(*res));
    if (!res || tx_begin(tx) != 0 || otp_db_prepare(tx->db, "record_call", record_sql, 10) != 0 ||
        otp_db_pipe_open(tx->db) != 0) {
        free(res);
        tx->n_records = 0;
        db_error(tx);
        return;
    }
    for (; sent < n; sent++) {
        challenge_record_t *r = &tx->records[sent];
        char attempt_s[12], look_s[24], *attrs;
        char start_s[24], end_s[24], fallback_s[12];
        const char *p[10] = {r->call_id, r->row.request_id, attempt_s, look_s, tx->worker_id,
                             NULL,       r->rule,           start_s,   end_s,  fallback_s};
        json_t *o = json_pack("{s:s, s:i, s:s, s:b}", "call_id", r->call_id, "attempt", r->attempt,
                              "locale", r->row.locale, "adopted", r->adopted);
        /* No final call status by then: the call is looked up. */
        int64_t look_ms = otp_now_ms() + (int64_t)tx->call_status_timeout_s * 1000;
        int ok;

        snprintf(attempt_s, sizeof(attempt_s), "%d", r->attempt);
        snprintf(start_s, sizeof(start_s), "%lld", (long long)r->times.code_start_ms);
        snprintf(end_s, sizeof(end_s), "%lld", (long long)r->times.code_end_ms);
        snprintf(fallback_s, sizeof(fallback_s), "%d",
                 r->row.fallback_after_s > 0 ? r->row.fallback_after_s : tx->fallback_after_s);
        snprintf(look_s, sizeof(look_s), "%lld",
                 (long long)(look_ms < r->row.expires_ms ? look_ms : r->row.expires_ms));
        attrs = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        p[5] = attrs;
        ok = attrs && otp_db_pipe_send_prepared(tx->db, "record_call", 10, p, NULL, NULL) == 0;
        free(attrs);
        if (!ok)
            break;
    }
    rc = otp_db_pipe_close(tx->db, "record_call", res, sent);
    for (int i = 0; i < sent; i++) {
        challenge_record_t *r = &tx->records[i];
        if (rc == 0 && res[i] && strcmp(PQgetvalue(res[i], 0, 0), "1") == 0) {
            tx->events = 1;
            atomic_fetch_add(r->adopted ? &tx->m->calls_adopted : &tx->m->calls_placed, 1);
            otp_info("call_requested", "request_id=%s phone=%s call_id=%s attempt=%d adopted=%d",
                     r->row.request_id, r->row.phone_masked, r->call_id, r->attempt, r->adopted);
            r->applied = 1;
            tx->records[kept++] = *r;
        }
        PQclear(res[i]);
    }
    if (rc != 0 || sent != n)
        db_error(tx);
    free(res);
    tx->n_records = 0;
    tx->n_committed = kept;
}

int challenge_commit(challenge_tx_t *tx)
{
    PGTransactionStatusType st;

    flush_records(tx);
    st = PQtransactionStatus(tx->db);
    if (st == PQTRANS_IDLE)
        return 0;
    /* Events were written: the relay (of whichever worker leads it) hears of
     * them at this commit. One notification per batch, never per row. */
    if (st == PQTRANS_INTRANS &&
        (!tx->events || otp_db_exec(tx->db, "notify", "NOTIFY otp_outbox", 0, NULL) == 0) &&
        otp_db_commit(tx->db) == 0) {
        tx->events = 0;
        return 0;
    }
    tx->events = 0;
    tx->n_committed = 0;
    otp_db_rollback(tx->db);
    db_error(tx);
    return -1;
}

void challenge_forget(challenge_tx_t *tx)
{
    tx->n_committed = 0;
}

/* A webhook handler that found the call unknown keeps its event under the
 * call's lock (otp_webhook.c): taking every call's lock first makes each such
 * event visible to the look-up. One round trip for the batch; only the calls
 * with kept events are applied one by one. */
void challenge_apply_recorded(challenge_tx_t *tx)
{
    otp_pgarray_t ids = {0};
    PGresult *res[3] = {NULL, NULL, NULL};
    const char *p[1];
    int rc = -1, n = tx->n_committed;

    tx->n_committed = 0;
    if (n == 0)
        return;
    for (int i = 0; i < n; i++)
        otp_pgarray_add(&ids, tx->records[i].call_id);
    p[0] = otp_pgarray_str(&ids);
    if (!p[0] || otp_db_pipe_open(tx->db) != 0)
        goto out;
    if (otp_db_pipe_send(tx->db,
                         "SELECT count(pg_advisory_lock(" OTP_CALL_LOCK ", hashtext(x)))"
                         "  FROM (SELECT unnest($1::text[]) x ORDER BY 1) s",
                         1, p, NULL, NULL) == 0 &&
        otp_db_pipe_send(tx->db,
                         "SELECT DISTINCT call_id::text FROM webhook_pending"
                         " WHERE call_id = ANY($1::uuid[])",
                         1, p, NULL, NULL) == 0 &&
        otp_db_pipe_send(tx->db,
                         "SELECT count(pg_advisory_unlock(" OTP_CALL_LOCK ", hashtext(x)))"
                         "  FROM unnest($1::text[]) x",
                         1, p, NULL, NULL) == 0)
        rc = 0;
    if (otp_db_pipe_close(tx->db, "apply_recorded", res, 3) != 0 || rc != 0) {
        rc = -1;
        goto out;
    }
    for (int i = 0; i < PQntuples(res[1]); i++)
        if (otp_call_apply_pending(tx->db, PQgetvalue(res[1], i, 0)) != 0)
            rc = -1;
out:
    if (rc != 0)
        db_error(tx);
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    otp_pgarray_free(&ids);
}

look_t challenge_look_again(challenge_tx_t *tx, const claimed_t *row, int again_s)
{
    char secs[12];
    const char *p[4] = {row->request_id, row->call_id, tx->worker_id, secs};
    PGresult *r;
    look_t l;

    snprintf(secs, sizeof(secs), "%d", again_s > 1 ? again_s : 1);
    r = otp_db_query(tx->db, "look_again", look_again_sql, 4, p);
    if (!r) {
        db_error(tx);
        return LOOK_ERROR;
    }
    l = strcmp(PQgetvalue(r, 0, 0), "1") == 0   ? LOOK_EXPIRED
        : strcmp(PQgetvalue(r, 0, 1), "1") == 0 ? LOOK_AGAIN
                                                : LOOK_MOVED_ON;
    PQclear(r);
    if (l == LOOK_EXPIRED)
        otp_info("request_expired", "request_id=%s phone=%s reason=no_final_call_status",
                 row->request_id, row->phone_masked);
    return l;
}

int challenge_release(challenge_tx_t *tx, const claimed_t *rows, int n)
{
    otp_pgarray_t ids = {0};
    const char *p[2];
    int rc;

    for (int i = 0; i < n; i++)
        otp_pgarray_add(&ids, rows[i].request_id);
    p[0] = otp_pgarray_str(&ids);
    p[1] = tx->worker_id;
    rc = p[0] ? otp_db_exec(tx->db, "release_lookups",
                            "UPDATE challenges SET next_attempt_at = now(), lease_owner = NULL"
                            " WHERE request_id = ANY($1::uuid[]) AND lease_owner = $2"
                            "   AND status IN ('call_requested', 'ringing', 'answered')",
                            2, p)
              : -1;
    otp_pgarray_free(&ids);
    if (rc != 0)
        db_error(tx);
    return rc;
}

/* The statuses in which no call has been heard yet and one still may be. */
#define UNHEARD_SO_FAR                                                                             \
    "('pending', 'calling', 'call_requested', 'ringing', 'answered', 'unheard', 'no_answer',"      \
    " 'busy', 'voicemail', 'call_failed', 'no_input')"

int challenge_offer_fallbacks(challenge_tx_t *tx, int after_s)
{
    char after[12];
    const char *p[1] = {after};
    PGresult *r;
    int n;

    snprintf(after, sizeof(after), "%d", after_s);
    r = otp_db_query(
        tx->db, "fallback_offer",
        "WITH due AS ("
        "  SELECT request_id, status IN " UNHEARD_SO_FAR " AS offer FROM challenges"
        "   WHERE fallback_at <= now() ORDER BY fallback_at LIMIT 200 FOR UPDATE SKIP LOCKED"
        "), upd AS ("
        "  UPDATE challenges c SET fallback_at = NULL,"
        "         fallback_offered_at = CASE WHEN due.offer THEN now() END"
        "    FROM due WHERE c.request_id = due.request_id"
        "  RETURNING c.request_id, due.offer, c.call_attempts,"
        "    c.next_attempt_at, c.status,"
        "    coalesce((SELECT (s.policy->>'fallback_after_seconds')::int FROM services s"
        "               WHERE s.name = c.service), $1::int) AS after_s"
        "), ob AS ("
        "  INSERT INTO outbox (request_id, type, attrs)"
        "  SELECT request_id, 'fallback_available', jsonb_build_object('channel', 'sms',"
        "         'reason', 'not_heard', 'after_s', after_s, 'call_attempts', call_attempts)"
        "    FROM upd WHERE offer"
        ")"
        "SELECT count(*) FILTER (WHERE offer) FROM upd",
        1, p);
    if (!r) {
        db_error(tx);
        return -1;
    }
    n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (n > 0 && otp_db_exec(tx->db, "notify", "NOTIFY otp_outbox", 0, NULL) != 0)
        db_error(tx);
    return n;
}

int64_t challenge_next_due_ms(challenge_tx_t *tx)
{
    PGresult *r = otp_db_query(
        tx->db, "next_due",
        "SELECT (extract(epoch FROM least("
        "  (SELECT min(next_attempt_at) FROM challenges WHERE next_attempt_at IS NOT NULL),"
        "  (SELECT min(fallback_at) FROM challenges WHERE fallback_at IS NOT NULL),"
        "  (SELECT min(next_try_at) FROM call_hangups WHERE done_at IS NULL)) - now()) * 1000)"
        "::bigint",
        0, NULL);
    int64_t due = INT64_MAX;

    if (!r)
        return -1;
    if (!PQgetisnull(r, 0, 0)) {
        due = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (due < 0)
            due = 0;
    }
    PQclear(r);
    return due;
}

void challenge_tx_free(challenge_tx_t *tx)
{
    free(tx->records);
    tx->records = NULL;
    tx->n_records = tx->cap_records = tx->n_committed = 0;
}
