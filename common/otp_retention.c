/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_retention.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_db.h"
#include "otp_log.h"

#define RETENTION_LOCK "727276" /* pg_advisory_lock key: one purge at a time */

/* A number is kept while its challenge may still call or text. Verified,
 * locked, superseded, cancelled and refused challenges never will (the
 * hang-up of a superseded or cancelled request's call goes by call id); any other (expired,
 * failed, still calling) keeps it until an hour past its expiry, so that a
 * late call look-up and `otp-produce --resend` of an unanswered request
 * still find it. */
#define SCRUBBABLE                                                                                 \
    "phone IS NOT NULL AND (status IN ('verified', 'locked', 'superseded', 'cancelled', "          \
    "'rate_limited', 'blocked') OR expires_at < now() - interval '1 hour')"

static const char scrub_select_sql[] =
    "SELECT request_id::text, phone FROM challenges WHERE " SCRUBBABLE " LIMIT $1";
static const char scrub_update_sql[] =
    "UPDATE challenges c SET phone = NULL, phone_hash = decode(t.h, 'hex')"
    "  FROM unnest($1::uuid[], $2::text[]) AS t(id, h)"
    " WHERE c.request_id = t.id AND c." SCRUBBABLE;

/* Old challenges go with their calls and event counters, in one statement
 * (the foreign key is checked at its end). */
static const char challenges_sql[] =
    "WITH old AS ("
    "  SELECT request_id FROM challenges"
    "   WHERE created_at < now() - make_interval(days => $1::int)"
    "   LIMIT $2 FOR UPDATE SKIP LOCKED"
    "), dc AS ("
    "  DELETE FROM calls c USING old WHERE c.request_id = old.request_id RETURNING 1"
    "), ds AS ("
    "  DELETE FROM outbox_seq s USING old WHERE s.request_id = old.request_id"
    "), dch AS ("
    "  DELETE FROM challenges c USING old WHERE c.request_id = old.request_id RETURNING 1"
    ")"
    "SELECT (SELECT count(*) FROM dch), (SELECT count(*) FROM dc)";

#define BATCH_DELETE(table, cond)                                                                  \
    "DELETE FROM " table " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " table " WHERE " cond          \
    " LIMIT $2))"

static const struct {
    const char *what, *sql;
    size_t field; /* offset in otp_retention_stats_t */
} deletes[] = {
    {"purge_dead_letters",
     BATCH_DELETE("dead_letters", "created_at < now() - make_interval(days => $1::int)"),
     offsetof(otp_retention_stats_t, dead_letters)},
    {"purge_webhook_pending",
     BATCH_DELETE("webhook_pending", "received_at < now() - make_interval(days => $1::int)"),
     offsetof(otp_retention_stats_t, webhook_pending)},
    /* Counters of requests that never had a challenge (rejected messages). */
    {"purge_outbox_seq",
     BATCH_DELETE("outbox_seq", "updated_at < now() - make_interval(days => $1::int)"),
     offsetof(otp_retention_stats_t, outbox_seq)},
    /* A user whose latest wrong code is over an hour old counts none: the
     * verify statement trims the older ones of everyone else. $1 unused. */
    {"purge_verify_failures",
     BATCH_DELETE("verify_user_failures",
                  "$1::int IS NOT NULL AND at[array_upper(at, 1)] < now() - interval '1 hour'"),
     offsetof(otp_retention_stats_t, verify_user_failures)},
};

void otp_retention_phone_hash(const char *hash_key_hex, const char *phone, char out[65])
{
    char secret[160];

    snprintf(secret, sizeof(secret), "phone:%s", hash_key_hex);
    otp_hmac_sha256_hex(secret, phone, strlen(phone), out);
}

static int continuing(volatile sig_atomic_t *running)
{
    return !running || *running;
}

/* One batch of numbers replaced by their hash; the rows found, -1 on error. */
static int scrub_batch(PGconn *db, const char *hash_key_hex, const char *limit, long *done)
{
    otp_pgarray_t ids = {0}, hashes = {0};
    const char *p[2] = {limit, NULL};
    PGresult *r = otp_db_query(db, "purge_scrub_select", scrub_select_sql, 1, p);
    int n = -1;

    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        char h[65];

        otp_retention_phone_hash(hash_key_hex, PQgetvalue(r, i, 1), h);
        otp_pgarray_add(&ids, PQgetvalue(r, i, 0));
        otp_pgarray_add(&hashes, h);
    }
    n = PQntuples(r);
    if (n > 0) {
        PGresult *u;

        p[0] = otp_pgarray_str(&ids);
        p[1] = otp_pgarray_str(&hashes);
        u = p[0] && p[1] ? otp_db_query(db, "purge_scrub", scrub_update_sql, 2, p) : NULL;
        if (!u) {
            n = -1;
            goto out;
        }
        *done += strtol(PQcmdTuples(u), NULL, 10);
        PQclear(u);
    }
out:
    PQclear(r);
    otp_pgarray_free(&ids);
    otp_pgarray_free(&hashes);
    return n;
}

int otp_retention_purge(PGconn *db, const char *hash_key_hex, int days, int batch,
                        volatile sig_atomic_t *running, otp_retention_stats_t *st)
{
    char days_s[16], limit[16];
    const char *p[2] = {days_s, limit};
    PGresult *r;
    int got, rc = -1, n;

    memset(st, 0, sizeof(*st));
    snprintf(days_s, sizeof(days_s), "%d", days);
    snprintf(limit, sizeof(limit), "%d", batch);
    r = otp_db_query(db, "purge_lock", "SELECT pg_try_advisory_lock(" RETENTION_LOCK ")", 0, NULL);
    if (!r)
        return -1;
    got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got)
        return 1;

    do
        n = scrub_batch(db, hash_key_hex, limit, &st->scrubbed);
    while (n == batch && continuing(running));
    if (n < 0)
        goto out;
    do {
        r = otp_db_query(db, "purge_challenges", challenges_sql, 2, p);
        if (!r)
            goto out;
        n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
        st->challenges += n;
        st->calls += strtol(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
    } while (n == batch && continuing(running));
    for (size_t i = 0; i < sizeof(deletes) / sizeof(deletes[0]); i++) {
        long *field = (long *)((char *)st + deletes[i].field);

        do {
            r = otp_db_query(db, deletes[i].what, deletes[i].sql, 2, p);
            if (!r)
                goto out;
            n = (int)strtol(PQcmdTuples(r), NULL, 10);
            *field += n;
            PQclear(r);
        } while (n == batch && continuing(running));
    }
    rc = 0;
out:
    r = otp_db_query(db, "purge_unlock", "SELECT pg_advisory_unlock(" RETENTION_LOCK ")", 0, NULL);
    PQclear(r);
    return rc;
}
