/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin audit and purge. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "admin.h"
#include "audit.h"
#include "otp_config.h"
#include "otp_db.h"
#include "otp_retention.h"
#include "otp_time.h"

static int audit_cb(const rd_kafka_message_t *m, void *ctx)
{
    return audit_add(ctx, m->payload, m->len, rd_kafka_message_timestamp(m, NULL)) < 0 ? -1 : 0;
}

int admin_parse_time(const char *s, int64_t *ms)
{
    char *end;
    long long v;

    if (otp_time_parse(s, ms) == 0)
        return 0;
    v = strtoll(s, &end, 10);
    if (*end || end == s || v < 0)
        return -1;
    *ms = v;
    return 0;
}

int admin_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"settle", required_argument, NULL, 's'},
                                         {0, 0, 0, 0}};
    const char *from = NULL;
    long settle = 900;
    int64_t from_ms = 0;
    char err[512];
    audit_t *a = NULL;
    long bad;
    int c, rc = 2;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;

        if (c == 'f') {
            from = optarg;
        } else if (c == 's') {
            settle = strtol(optarg, &end, 10);
            if (*end || end == optarg || settle < 0) {
                fprintf(stderr, "otp-admin: --settle takes seconds\n%s\n", admin_usage);
                return 2;
            }
        } else {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
    }
    if (!from || optind < argc) {
        fprintf(stderr, "otp-admin: audit needs --from TIME and nothing else\n%s\n", admin_usage);
        return 2;
    }
    if (admin_parse_time(from, &from_ms) != 0) {
        fprintf(stderr, "otp-admin: --from: not a time: \"%s\"\n", from);
        return 2;
    }
    a = audit_new();
    if (!a)
        return 2;
    if (admin_read_topic(otp_config_str("OTP_TOPIC_STATUS"), from_ms, audit_cb, a, err,
                         sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: audit: %s\n", err);
        goto out;
    }
    bad = audit_report(a, otp_now_ms() - settle * 1000, stdout);
    rc = bad == 0 ? 0 : bad > 0 ? 1 : 2;
out:
    audit_destroy(a);
    return rc;
}

int admin_purge(int argc, char **argv)
{
    otp_retention_stats_t st;
    char err[256];
    PGconn *db;
    int days = (int)otp_config_int("OTP_RETENTION_DAYS"), rc = 2;

    if (argc != 1) {
        fprintf(stderr, "otp-admin: purge takes no arguments\n%s\n", admin_usage);
        return 2;
    }
    (void)argv;
    db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));
    if (!db) {
        fprintf(stderr, "otp-admin: %s\n", err);
        return 2;
    }
    for (int tries = 0; tries < 120; tries++) {
        int r = otp_retention_purge(db, otp_config_str("OTP_HASH_KEY"), days, 500, NULL, &st);

        if (r < 0) {
            fprintf(stderr, "otp-admin: purge failed (see the log line above)\n");
            goto out;
        }
        if (r == 0) {
            printf("purged: retention_days=%d numbers_hashed=%ld challenges=%ld calls=%ld "
                   "dead_letters=%ld webhook_pending=%ld outbox_seq=%ld "
                   "verify_user_failures=%ld\n",
                   days, st.scrubbed, st.challenges, st.calls, st.dead_letters, st.webhook_pending,
                   st.outbox_seq, st.verify_user_failures);
            rc = 0;
            goto out;
        }
        if (tries == 0)
            fprintf(stderr, "otp-admin: a worker is running the purge; waiting\n");
        sleep(1);
    }
    fprintf(stderr, "otp-admin: the purge stayed busy for 2 minutes\n");
out:
    PQfinish(db);
    return rc;
}
