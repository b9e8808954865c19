/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin resend: after an outage, new requests for the failed ones whose
 * user is still waiting. Each new request names the failed one (resend_of),
 * so ingest takes the number, user and purpose from it, supersedes it and
 * applies the per-number, per-user, per-country and global budgets as to any
 * request; its request_id is derived from the failed one, so a second run
 * publishes the same ids and ingest's idempotency drops them. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_db.h"
#include "otp_event.h"
#include "otp_kafka.h"
#include "otp_phone.h"
#include "otp_time.h"

/* The namespace of the derived ids: changing it would let a second run call again. */
#define RESEND_NS "otp-admin resend"
#define NEWER_SHOWN 5

/* Failed requests in the window, with what a resend copies and the newer
 * requests of the same user and purpose, or of the same number (a few). */
static const char failed_sql[] =
    "SELECT c.request_id::text, c.status, c.phone, c.phone_masked, coalesce(c.reason, 'unknown'),"
    "  to_char(c.failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    "  c.verified_at IS NOT NULL, coalesce(c.options->>'channel', 'voice'),"
    "  coalesce((c.options->>'keypad')::boolean, false), c.options->>'gate', c.options->>'amd',"
    "  c.options->>'sms_fallback', c.code_length,"
    "  least(greatest(extract(epoch FROM c.expires_at - c.created_at)::int, 60), 600),"
    "  coalesce(c.metadata::text, ''),"
    "  (SELECT string_agg(n.request_id::text, ',') FROM ("
    "     SELECT n.request_id FROM challenges n"
    "      WHERE n.request_id <> c.request_id AND n.created_at > c.created_at"
    "        AND ((n.user_id = c.user_id AND n.purpose = c.purpose)"
    "             OR (c.phone IS NOT NULL AND n.phone = c.phone))"
    "      ORDER BY n.created_at LIMIT 5) n)"
    "  FROM challenges c"
    " WHERE c.failed_at >= $1::timestamptz AND c.failed_at < $2::timestamptz"
    "   AND ($3::text IS NULL OR c.reason = $3 OR c.reason LIKE $3 || '\\_%')"
    " ORDER BY c.failed_at, c.request_id";

enum {
    F_ID,
    F_STATUS,
    F_PHONE,
    F_MASKED,
    F_CAUSE,
    F_FAILED_AT,
    F_VERIFIED,
    F_CHANNEL,
    F_KEYPAD,
    F_GATE,
    F_AMD,
    F_SMS_FALLBACK,
    F_CODE_LENGTH,
    F_TTL,
    F_METADATA,
    F_NEWER
};

static int flag(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return -1;
    return strcmp(PQgetvalue(r, row, col), "true") == 0;
}

/* The new request for failed row `row`, as otp.requested JSON (checked by the
 * common parser, as ingest will). Caller frees; NULL with errstr. */
static char *resend_message(PGresult *r, int row, const char *new_id, char *errstr, size_t esz)
{
    otp_request_t req, check;
    char reason[48];
    char *js;

    memset(&req, 0, sizeof(req));
    snprintf(req.request_id, sizeof(req.request_id), "%s", new_id);
    snprintf(req.resend_of, sizeof(req.resend_of), "%s", PQgetvalue(r, row, F_ID));
    req.requested_at_ms = otp_now_ms();
    req.ttl_seconds = (int)strtol(PQgetvalue(r, row, F_TTL), NULL, 10);
    req.code_length = (int)strtol(PQgetvalue(r, row, F_CODE_LENGTH), NULL, 10);
    req.delivery.gate = flag(r, row, F_GATE);
    req.delivery.amd = flag(r, row, F_AMD);
    req.delivery.sms_fallback = flag(r, row, F_SMS_FALLBACK);
    req.delivery.sms = strcmp(PQgetvalue(r, row, F_CHANNEL), "sms") == 0;
    snprintf(req.metadata, sizeof(req.metadata), "%s", PQgetvalue(r, row, F_METADATA));
    js = otp_request_to_json(&req);
    if (!js) {
        snprintf(errstr, esz, "out of memory");
        return NULL;
    }
    if (otp_request_parse(js, strlen(js), &check, reason, sizeof(reason), errstr, esz) != 0) {
        free(js);
        return NULL;
    }
    return js;
}

/* 1 if id is in the comma-separated list. */
static int listed(const char *list, const char *id)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == strlen(id) && strncmp(p, id, n) == 0)
            return 1;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* The first id of the list that is not `skip`, into out; 0 when there is none. */
static int other_listed(const char *list, const char *skip, char out[37])
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == 36 && strncmp(p, skip, 36) != 0) {
            snprintf(out, 37, "%.36s", p);
            return 1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

static rd_kafka_t *producer_new(char *errstr, size_t esz)
{
    rd_kafka_conf_t *conf = otp_kafka_conf_new(errstr, esz);
    rd_kafka_t *rk;

    if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", errstr, esz) ||
        otp_kafka_set(conf, "message.timeout.ms", "30000", errstr, esz)) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, admin_on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, esz);
    if (!rk)
        rd_kafka_conf_destroy(conf);
    return rk;
}

int admin_resend(int argc, char **argv)
{
    static const struct option opts[] = {{"failed-since", required_argument, NULL, 's'},
                                         {"until", required_argument, NULL, 'u'},
                                         {"cause", required_argument, NULL, 'c'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {0, 0, 0, 0}};
    const char *since = NULL, *until = NULL, *cause = NULL;
    const char *topic = otp_config_str("OTP_TOPIC_REQUESTS");
    int64_t since_ms = 0, until_ms = otp_now_ms() + 1;
    char err[512], since_s[40], until_s[40];
    int dry_run = 0, c, rc = 2, n = 0;
    long resent = 0, skipped = 0, failed = 0;
    PGconn *db = NULL;
    PGresult *r = NULL, *known = NULL;
    rd_kafka_t *rk = NULL;
    char(*new_ids)[37] = NULL;
    char **msgs = NULL;
    admin_dr_t *drs = NULL;
    otp_pgarray_t ids = {0};

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            since = optarg;
        else if (c == 'u')
            until = optarg;
        else if (c == 'c')
            cause = optarg;
        else if (c == 'n')
            dry_run = 1;
        else {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
    }
    if (!since || optind < argc) {
        fprintf(stderr, "otp-admin: resend needs --failed-since TIME\n%s\n", admin_usage);
        return 2;
    }
    if (admin_parse_time(since, &since_ms) != 0 || (until && admin_parse_time(until, &until_ms))) {
        fprintf(stderr, "otp-admin: resend: not a time: \"%s\"\n", until ? until : since);
        return 2;
    }
    if (cause && (!*cause || strlen(cause) > 96)) {
        fprintf(stderr, "otp-admin: resend: --cause takes a failure cause such as http_500\n");
        return 2;
    }
    otp_time_format(since_ms, since_s, sizeof(since_s));
    otp_time_format(until_ms, until_s, sizeof(until_s));
    db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));
    if (!db) {
        fprintf(stderr, "otp-admin: %s\n", err);
        return 2;
    }
    {
        const char *p[3] = {since_s, until_s, cause};
        r = otp_db_query(db, "resend_failed", failed_sql, 3, p);
    }
    if (!r)
        goto out;
    n = PQntuples(r);
    new_ids = calloc((size_t)n + 1, sizeof(*new_ids));
    msgs = calloc((size_t)n + 1, sizeof(*msgs));
    drs = calloc((size_t)n + 1, sizeof(*drs));
    if (!new_ids || !msgs || !drs)
        goto out;
    for (int i = 0; i < n; i++) {
        otp_uuid_derive(RESEND_NS, PQgetvalue(r, i, F_ID), strlen(PQgetvalue(r, i, F_ID)),
                        new_ids[i]);
        otp_pgarray_add(&ids, new_ids[i]);
    }
    if (n > 0) {
        const char *p[1] = {otp_pgarray_str(&ids)};
        known = p[0] ? otp_db_query(db, "resend_known",
                                    "SELECT request_id::text, status FROM challenges"
                                    " WHERE request_id = ANY($1::uuid[])",
                                    1, p)
                     : NULL;
        if (!known)
            goto out;
    }
    if (!dry_run && n > 0 && !(rk = producer_new(err, sizeof(err)))) {
        fprintf(stderr, "otp-admin: %s\n", err);
        goto out;
    }

    for (int i = 0; i < n; i++) {
        const char *id = PQgetvalue(r, i, F_ID), *newer = PQgetvalue(r, i, F_NEWER);
        const char *skip = NULL, *known_status = NULL;
        char other[37], why[160] = "";

        for (int k = 0; k < PQntuples(known); k++)
            if (strcmp(PQgetvalue(known, k, 0), new_ids[i]) == 0)
                known_status = PQgetvalue(known, k, 1);
        if (known_status) {
            skip = "already_resent";
            snprintf(why, sizeof(why), " new_request_id=%s new_status=%s", new_ids[i],
                     known_status);
        } else if (PQgetvalue(r, i, F_VERIFIED)[0] == 't') {
            skip = "verified";
        } else if (other_listed(newer, new_ids[i], other)) {
            skip = "superseded_by_newer";
            snprintf(why, sizeof(why), " newer_request_id=%s", other);
        } else if (listed(newer, new_ids[i])) {
            skip = "already_resent";
            snprintf(why, sizeof(why), " new_request_id=%s", new_ids[i]);
        } else if (strcmp(PQgetvalue(r, i, F_STATUS), "failed") != 0) {
            skip = "not_failed";
            snprintf(why, sizeof(why), " status=%s", PQgetvalue(r, i, F_STATUS));
        } else if (PQgetisnull(r, i, F_PHONE)) {
            /* Past retention's grace the number is only a keyed hash. */
            skip = "number_purged";
        } else if (PQgetvalue(r, i, F_KEYPAD)[0] == 't') {
            /* The app's code was sealed to the workers: only the app can send a new one. */
            skip = "keypad_mode";
        }
        if (!skip) {
            char perr[120];

            msgs[i] = resend_message(r, i, new_ids[i], perr, sizeof(perr));
            if (!msgs[i]) {
                skip = "invalid";
                snprintf(why, sizeof(why), " error=\"%s\"", perr);
            }
        }
        if (skip) {
            printf("skip request_id=%s phone=%s cause=%s failed_at=%s reason=%s%s\n", id,
                   PQgetvalue(r, i, F_MASKED), PQgetvalue(r, i, F_CAUSE),
                   PQgetvalue(r, i, F_FAILED_AT), skip, why);
            skipped++;
            continue;
        }
        if (dry_run) {
            printf("would_resend request_id=%s new_request_id=%s phone=%s cause=%s failed_at=%s\n",
                   id, new_ids[i], PQgetvalue(r, i, F_MASKED), PQgetvalue(r, i, F_CAUSE),
                   PQgetvalue(r, i, F_FAILED_AT));
            resent++;
            continue;
        }
        {
            /* Keyed by the number, like every request for it: one partition, in order. */
            const char *phone = PQgetvalue(r, i, F_PHONE);
            rd_kafka_resp_err_t e =
                rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(phone, strlen(phone)),
                                  RD_KAFKA_V_VALUE(msgs[i], strlen(msgs[i])),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADER("otp.resend_by", "otp-admin", -1),
                                  RD_KAFKA_V_OPAQUE(&drs[i]), RD_KAFKA_V_END);
            if (e) {
                drs[i].done = 1;
                drs[i].err = e;
            }
        }
        rd_kafka_poll(rk, 0);
    }
    if (rk)
        rd_kafka_flush(rk, 35000);
    for (int i = 0; i < n && !dry_run; i++) {
        if (!msgs[i])
            continue;
        if (drs[i].done && !drs[i].err) {
            printf("resent request_id=%s new_request_id=%s phone=%s cause=%s failed_at=%s\n",
                   PQgetvalue(r, i, F_ID), new_ids[i], PQgetvalue(r, i, F_MASKED),
                   PQgetvalue(r, i, F_CAUSE), PQgetvalue(r, i, F_FAILED_AT));
            resent++;
        } else {
            printf("not_resent request_id=%s new_request_id=%s phone=%s reason=\"%s\"\n",
                   PQgetvalue(r, i, F_ID), new_ids[i], PQgetvalue(r, i, F_MASKED),
                   drs[i].done ? rd_kafka_err2str(drs[i].err) : "no delivery report");
            failed++;
        }
    }
    printf("resend: window=%s..%s cause=%s failed_requests=%d %s=%ld skipped=%ld "
           "not_resent=%ld%s\n",
           since_s, until_s, cause ? cause : "any", n, dry_run ? "would_resend" : "resent", resent,
           skipped, failed,
           dry_run ? " (dry run: nothing published)"
                   : " (the workers apply the call budgets: see otp-admin status NEW_ID)");
    rc = failed ? 1 : 0;
out:
    if (rc == 2 && !r)
        fprintf(stderr, "otp-admin: resend: the database query failed\n");
    for (int i = 0; msgs && i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(new_ids);
    free(drs);
    otp_pgarray_free(&ids);
    if (rk)
        rd_kafka_destroy(rk);
    PQclear(r);
    PQclear(known);
    PQfinish(db);
    return rc;
}
