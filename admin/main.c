/* otp-admin: tools for the people who run and audit the pipeline. Reads the
 * same OTP_* settings as the other programs. */
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "otp_config.h"
#include "otp_kafka.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_retention.h"
#include "otp_time.h"
#include "otp_version.h"

static const char usage[] =
    "usage: otp-admin audit --from TIME [--settle SECONDS]\n"
    "         read otp.call_status from TIME (RFC 3339 or epoch ms) to its end; report every\n"
    "         request with a missing seq, no final event (once quiet SECONDS, default 900)\n"
    "         or events out of order; exit 1 if any\n"
    "       otp-admin purge\n"
    "         run the retention purge now (OTP_RETENTION_DAYS; waits while a worker runs it)\n"
    "       otp-admin --version | --help";

/* Reads every partition of the status topic up to its end as of the start,
 * feeding the events stamped at or after from_ms to the audit. 0 ok, -1 with
 * errstr. */
static int read_topic(audit_t *a, const char *topic, int64_t from_ms, char *errstr,
                      size_t errstr_size)
{
    rd_kafka_conf_t *conf = otp_kafka_conf_new(errstr, errstr_size);
    rd_kafka_t *rk = NULL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *high = NULL;
    int left = 0, rc = -1, np = 0;
    int64_t idle_since = otp_monotonic_ms();

    if (!conf || otp_kafka_set(conf, "group.id", "otp-admin-audit", errstr, errstr_size) ||
        otp_kafka_set(conf, "enable.auto.commit", "false", errstr, errstr_size))
        goto out;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        goto out;
    conf = NULL; /* owned by rk */
    {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, 10000);

        rd_kafka_topic_destroy(t);
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
            snprintf(errstr, errstr_size, "metadata of %s: %s", topic,
                     rd_kafka_err2str(err ? err : md->topics[0].err));
            goto out;
        }
    }
    np = md->topics[0].partition_cnt;
    high = calloc((size_t)np, sizeof(*high));
    parts = rd_kafka_topic_partition_list_new(np);
    if (!high || !parts)
        goto out;
    for (int i = 0; i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);

        if (err) {
            snprintf(errstr, errstr_size, "offsets of %s [%d]: %s", topic, (int)p,
                     rd_kafka_err2str(err));
            goto out;
        }
        high[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
            left++;
        }
    }
    if (rd_kafka_assign(rk, parts)) {
        snprintf(errstr, errstr_size, "cannot assign %s", topic);
        goto out;
    }
    /* The start is the beginning, filtered by timestamp: right on any broker. */
    while (left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        int idx = -1;

        if (!m) {
            if (otp_monotonic_ms() - idle_since > 30000) {
                snprintf(errstr, errstr_size, "no progress reading %s for 30 s", topic);
                goto out;
            }
            continue;
        }
        idle_since = otp_monotonic_ms();
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "otp-admin: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        for (int i = 0; i < np; i++)
            if (md->topics[0].partitions[i].id == m->partition)
                idx = i;
        if (idx >= 0 && m->offset < high[idx]) {
            int64_t ts = rd_kafka_message_timestamp(m, NULL);

            if (ts >= from_ms && audit_add(a, m->payload, m->len, ts) < 0) {
                rd_kafka_message_destroy(m);
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
            }
            if (m->offset + 1 >= high[idx])
                left--;
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(high);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

static int cmd_audit(int argc, char **argv)
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
                fprintf(stderr, "otp-admin: --settle takes seconds\n%s\n", usage);
                return 2;
            }
        } else {
            fprintf(stderr, "%s\n", usage);
            return 2;
        }
    }
    if (!from || optind < argc) {
        fprintf(stderr, "otp-admin: audit needs --from TIME and nothing else\n%s\n", usage);
        return 2;
    }
    if (otp_time_parse(from, &from_ms) != 0) {
        char *end;
        long long ms = strtoll(from, &end, 10);

        if (*end || end == from || ms < 0) {
            fprintf(stderr, "otp-admin: --from: not a time: \"%s\"\n", from);
            return 2;
        }
        from_ms = ms;
    }
    a = audit_new();
    if (!a)
        return 2;
    if (read_topic(a, otp_config_str("OTP_TOPIC_STATUS"), from_ms, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: audit: %s\n", err);
        goto out;
    }
    bad = audit_report(a, otp_now_ms() - settle * 1000, stdout);
    rc = bad == 0 ? 0 : bad > 0 ? 1 : 2;
out:
    audit_destroy(a);
    return rc;
}

static int cmd_purge(int argc, char **argv)
{
    otp_retention_stats_t st;
    char err[256];
    PGconn *db;
    int days = (int)otp_config_int("OTP_RETENTION_DAYS"), rc = 2;

    if (argc != 1) {
        fprintf(stderr, "otp-admin: purge takes no arguments\n%s\n", usage);
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

int main(int argc, char **argv)
{
    char err[512];
    const char *cmd;

    if (argc < 2) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    cmd = argv[1];
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        otp_config_print_help(OTP_PROG_ADMIN, usage);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("otp-admin %s\n", OTP_VERSION);
        return 0;
    }
    if (strcmp(cmd, "audit") != 0 && strcmp(cmd, "purge") != 0) {
        fprintf(stderr, "otp-admin: unknown command \"%s\"\n%s\n", cmd, usage);
        return 2;
    }
    if (otp_config_load(OTP_PROG_ADMIN, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: %s\n", err);
        return 2;
    }
    otp_log_init("otp-admin", otp_log_level_parse(otp_config_str("OTP_LOG_LEVEL")),
                 otp_log_format_parse(otp_config_str("OTP_LOG_FORMAT")));
    /* The subcommand's own options start after its name. */
    if (strcmp(cmd, "purge") == 0)
        return cmd_purge(argc - 1, argv + 1);
    return cmd_audit(argc - 1, argv + 1);
}
