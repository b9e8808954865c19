/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin status REQUEST_ID: one request as an operator needs to see it:
 * the challenge (number masked), its calls, its events still in the outbox
 * and those on otp.call_status. Never a code, a hash or a full number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_db.h"

static const char challenge_sql[] =
    "SELECT status, user_id, purpose, phone_masked, country, locale,"
    "  attempts || '/' || max_attempts, call_attempts || '/' || max_call_attempts,"
    "  coalesce((SELECT n FROM outbox_seq q WHERE q.request_id = c.request_id), 0),"
    "  CASE WHEN phone IS NULL THEN 'hashed (purged)' ELSE 'kept (live)' END,"
    "  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    "  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    "  coalesce(to_char(verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '-'),"
    "  (extract(epoch FROM created_at) * 1000)::bigint"
    "  FROM challenges c WHERE request_id = $1::uuid";

static const char *const challenge_fields[] = {
    "status", "user_id", "purpose", "phone",      "country",    "locale",     "verify_tries",
    "calls",  "events",  "number",  "created_at", "expires_at", "verified_at"};

typedef struct status_ctx {
    const char *request_id;
    int n;
} status_ctx_t;

static int event_cb(const rd_kafka_message_t *m, void *ctx)
{
    status_ctx_t *s = ctx;

    if (m->key_len == strlen(s->request_id) && memcmp(m->key, s->request_id, m->key_len) == 0) {
        printf("event: %.*s\n", (int)m->len, (const char *)m->payload);
        s->n++;
    }
    return 0;
}

int admin_status(int argc, char **argv)
{
    char err[512];
    PGconn *db = NULL;
    PGresult *r = NULL, *calls = NULL, *pending = NULL;
    status_ctx_t s = {0};
    int64_t from_ms = 0;
    int rc = 2;

    if (argc != 2 || !otp_uuid_valid(argv[1])) {
        fprintf(stderr, "otp-admin: status needs one REQUEST_ID (a UUID)\n%s\n", admin_usage);
        return 2;
    }
    s.request_id = argv[1];
    db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));
    if (!db) {
        fprintf(stderr, "otp-admin: %s\n", err);
        return 2;
    }
    {
        const char *p[1] = {argv[1]};
        r = otp_db_query(db, "status_challenge", challenge_sql, 1, p);
        calls =
            otp_db_query(db, "status_calls",
                         "SELECT call_id, attempt, status, coalesce(hangup_reason, '-'),"
                         "  answered, to_char(created_at AT TIME ZONE 'UTC',"
                         "  'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
                         "  FROM calls WHERE request_id = $1::uuid ORDER BY attempt, created_at",
                         1, p);
        pending = otp_db_query(
            db, "status_outbox",
            "SELECT coalesce((SELECT n FROM outbox_seq WHERE request_id = $1::uuid), 0)"
            "  + row_number() OVER (ORDER BY id), type"
            "  FROM outbox WHERE request_id = $1::uuid ORDER BY id",
            1, p);
    }
    if (!r || !calls || !pending)
        goto out;
    printf("request_id: %s\n", argv[1]);
    if (PQntuples(r) == 1) {
        for (size_t i = 0; i < sizeof(challenge_fields) / sizeof(challenge_fields[0]); i++)
            printf("%s: %s\n", challenge_fields[i], PQgetvalue(r, 0, (int)i));
        /* Events are read from a minute before the challenge was made. */
        from_ms = strtoll(PQgetvalue(r, 0, 13), NULL, 10) - 60000;
    } else {
        printf("challenge: none (never accepted, or past retention)\n");
    }
    for (int i = 0; i < PQntuples(calls); i++)
        printf("call: %s attempt=%s status=%s hangup_reason=%s answered=%s at=%s\n",
               PQgetvalue(calls, i, 0), PQgetvalue(calls, i, 1), PQgetvalue(calls, i, 2),
               PQgetvalue(calls, i, 3), PQgetvalue(calls, i, 4)[0] == 't' ? "yes" : "no",
               PQgetvalue(calls, i, 5));
    for (int i = 0; i < PQntuples(pending); i++)
        printf("not yet relayed: seq=%s type=%s\n", PQgetvalue(pending, i, 0),
               PQgetvalue(pending, i, 1));
    if (admin_read_topic(otp_config_str("OTP_TOPIC_STATUS"), from_ms, event_cb, &s, err,
                         sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: reading events: %s\n", err);
        goto out;
    }
    printf("events on %s: %d\n", otp_config_str("OTP_TOPIC_STATUS"), s.n);
    rc = PQntuples(r) == 1 || s.n > 0 ? 0 : 1;
out:
    PQclear(r);
    PQclear(calls);
    PQclear(pending);
    PQfinish(db);
    return rc;
}
