/* SPDX-License-Identifier: Apache-2.0 */
#include "kbroker.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Highest Kafka API key `clear` resets; librdkafka 2.0.2 knows keys up to about 70. */
#define KBROKER_API_KEY_MAX 127
/* Bound on one `error` command, so a typo cannot allocate without limit. */
#define KBROKER_ERROR_CNT_MAX 100000
#define KBROKER_ARGS_MAX 8

struct kbroker {
    rd_kafka_t *rk; /* dummy producer the mock cluster hangs off; never connects anywhere */
    rd_kafka_mock_cluster_t *mcluster;
    int broker_cnt;
};

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;

    if (!errstr || errstr_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

/* Parses a whole string as a base-10 long in [min, max]. Returns 0 on success. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    long v;

    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int kbroker_parse_topics(const char *spec, kbroker_topic_t *out, size_t max, char *errstr,
                         size_t errstr_size)
{
    const char *p = spec;
    size_t n = 0;

    if (!spec || !*spec) {
        set_err(errstr, errstr_size, "empty topic list");
        return -1;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        size_t name_len = colon ? (size_t)(colon - p) : len;
        long parts = 1;

        if (name_len == 0 || name_len > KBROKER_TOPIC_NAME_MAX) {
            set_err(errstr, errstr_size, "bad topic name in \"%.*s\"", (int)len, p);
            return -1;
        }
        for (size_t i = 0; i < name_len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (!isalnum(c) && c != '.' && c != '_' && c != '-') {
                set_err(errstr, errstr_size, "bad character in topic \"%.*s\"", (int)name_len, p);
                return -1;
            }
        }
        if (colon) {
            char num[16];
            size_t num_len = len - name_len - 1;

            if (num_len == 0 || num_len >= sizeof(num)) {
                set_err(errstr, errstr_size, "bad partition count in \"%.*s\"", (int)len, p);
                return -1;
            }
            memcpy(num, colon + 1, num_len);
            num[num_len] = '\0';
            if (parse_long(num, 1, 10000, &parts) != 0) {
                set_err(errstr, errstr_size, "bad partition count in \"%.*s\"", (int)len, p);
                return -1;
            }
        }
        if (n == max) {
            set_err(errstr, errstr_size, "too many topics (at most %zu)", max);
            return -1;
        }
        memcpy(out[n].name, p, name_len);
        out[n].name[name_len] = '\0';
        out[n].partitions = (int)parts;
        n++;
        if (!end)
            break;
        p = end + 1;
        if (!*p) {
            set_err(errstr, errstr_size, "trailing comma in topic list");
            return -1;
        }
    }
    return (int)n;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    fprintf(stderr, "otp-kafka-broker: librdkafka %d %s: %s\n", level, fac, buf);
}

kbroker_t *kbroker_new(int broker_cnt, const kbroker_topic_t *topics, size_t topic_cnt,
                       const char *const *props, char *errstr, size_t errstr_size)
{
    kbroker_t *kb = NULL;
    rd_kafka_conf_t *conf = NULL;

    if (broker_cnt < 1 || broker_cnt > KBROKER_BROKERS_MAX) {
        set_err(errstr, errstr_size, "broker count must be 1..%d", KBROKER_BROKERS_MAX);
        goto failed;
    }
    kb = calloc(1, sizeof(*kb));
    if (!kb) {
        set_err(errstr, errstr_size, "out of memory");
        goto failed;
    }
    kb->broker_cnt = broker_cnt;

    conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    /* The dummy handle has no bootstrap servers on purpose; it only owns the mock cluster. */
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, errstr_size) != RD_KAFKA_CONF_OK)
        goto failed;
    for (size_t i = 0; props && props[i]; i++) {
        char key[256];
        const char *eq = strchr(props[i], '=');
        size_t key_len = eq ? (size_t)(eq - props[i]) : 0;

        if (!eq || key_len == 0 || key_len >= sizeof(key)) {
            set_err(errstr, errstr_size, "property \"%s\" is not key=value", props[i]);
            goto failed;
        }
        memcpy(key, props[i], key_len);
        key[key_len] = '\0';
        if (rd_kafka_conf_set(conf, key, eq + 1, errstr, errstr_size) != RD_KAFKA_CONF_OK)
            goto failed;
    }
    kb->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!kb->rk)
        goto failed;
    conf = NULL; /* owned by kb->rk now */

    kb->mcluster = rd_kafka_mock_cluster_new(kb->rk, broker_cnt);
    if (!kb->mcluster) {
        set_err(errstr, errstr_size, "rd_kafka_mock_cluster_new failed");
        goto failed;
    }
    for (size_t i = 0; i < topic_cnt; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(
            kb->mcluster, topics[i].name, topics[i].partitions, broker_cnt < 3 ? broker_cnt : 3);
        if (err) {
            set_err(errstr, errstr_size, "create topic %s: %s", topics[i].name,
                    rd_kafka_err2str(err));
            goto failed;
        }
    }
    return kb;

failed:
    if (conf)
        rd_kafka_conf_destroy(conf);
    kbroker_destroy(kb);
    return NULL;
}

const char *kbroker_bootstraps(const kbroker_t *kb)
{
    return rd_kafka_mock_cluster_bootstraps(kb->mcluster);
}

void kbroker_destroy(kbroker_t *kb)
{
    if (!kb)
        return;
    if (kb->mcluster)
        rd_kafka_mock_cluster_destroy(kb->mcluster);
    if (kb->rk)
        rd_kafka_destroy(kb->rk);
    free(kb);
}

/* Accepts an error code as a number ("6") or a librdkafka name ("NOT_LEADER_FOR_PARTITION"). */
static int parse_error_code(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs = NULL;
    size_t cnt = 0;
    long v;

    if (parse_long(s, -1, INT16_MAX, &v) == 0) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        /* Only broker (wire) errors: internal ones start with '_' and are negative. */
        if (descs[i].name && descs[i].code >= -1 && strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    return -1;
}

/* Splits line on whitespace into at most max arguments, copying into buf.
 * Returns the argument count, or -1 when there are more than max. */
static int split_args(const char *line, char *buf, size_t buf_size, char **argv, int max)
{
    int argc = 0;
    size_t len = strlen(line);

    if (len >= buf_size)
        len = buf_size - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    for (char *p = buf; *p;) {
        while (*p && isspace((unsigned char)*p))
            *p++ = '\0';
        if (!*p)
            break;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
    }
    return argc;
}

static int reply_ok(char *reply, size_t reply_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reply_error(char *reply, size_t reply_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int reply_ok(char *reply, size_t reply_size, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(reply, reply_size, "ok ");

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < reply_size)
        vsnprintf(reply + n, reply_size - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static int reply_error(char *reply, size_t reply_size, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(reply, reply_size, "error ");

    va_start(ap, fmt);
    if (n > 0 && (size_t)n < reply_size)
        vsnprintf(reply + n, reply_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_broker_id(const kbroker_t *kb, const char *s, int32_t *out)
{
    long v;

    if (parse_long(s, 1, kb->broker_cnt, &v) != 0)
        return -1;
    *out = (int32_t)v;
    return 0;
}

static const char help_text[] =
    "commands: down <broker_id> | up <broker_id> | rtt <broker_id> <ms> | "
    "error <api_key> <error_code|NAME> <count> | topic <name> <partitions> | clear | "
    "bootstrap | help";

int kbroker_command(kbroker_t *kb, const char *line, char *reply, size_t reply_size)
{
    char buf[1024];
    char *argv[KBROKER_ARGS_MAX];
    int argc = split_args(line, buf, sizeof(buf), argv, KBROKER_ARGS_MAX);
    rd_kafka_resp_err_t err;
    int32_t id;
    long v;

    if (argc < 0)
        return reply_error(reply, reply_size, "too many arguments");
    if (argc == 0)
        return reply_error(reply, reply_size, "empty command; %s", help_text);

    if (strcmp(argv[0], "help") == 0)
        return reply_ok(reply, reply_size, "%s", help_text);

    if (strcmp(argv[0], "bootstrap") == 0)
        return reply_ok(reply, reply_size, "%s", kbroker_bootstraps(kb));

    if (strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) {
        int down = argv[0][0] == 'd';

        if (argc != 2 || parse_broker_id(kb, argv[1], &id) != 0)
            return reply_error(reply, reply_size, "usage: %s <broker_id 1..%d>", argv[0],
                               kb->broker_cnt);
        err = down ? rd_kafka_mock_broker_set_down(kb->mcluster, id)
                   : rd_kafka_mock_broker_set_up(kb->mcluster, id);
        if (err)
            return reply_error(reply, reply_size, "%s %d: %s", argv[0], (int)id,
                               rd_kafka_err2str(err));
        return reply_ok(reply, reply_size, "%s %d", argv[0], (int)id);
    }

    if (strcmp(argv[0], "rtt") == 0) {
        if (argc != 3 || parse_broker_id(kb, argv[1], &id) != 0 ||
            parse_long(argv[2], 0, 600000, &v) != 0)
            return reply_error(reply, reply_size, "usage: rtt <broker_id 1..%d> <ms 0..600000>",
                               kb->broker_cnt);
        err = rd_kafka_mock_broker_set_rtt(kb->mcluster, id, (int)v);
        if (err)
            return reply_error(reply, reply_size, "rtt %d: %s", (int)id, rd_kafka_err2str(err));
        return reply_ok(reply, reply_size, "rtt %d %ld", (int)id, v);
    }

    if (strcmp(argv[0], "error") == 0) {
        rd_kafka_resp_err_t code;
        rd_kafka_resp_err_t *errs;
        long api_key, cnt;

        if (argc != 4 || parse_long(argv[1], 0, KBROKER_API_KEY_MAX, &api_key) != 0 ||
            parse_error_code(argv[2], &code) != 0 ||
            parse_long(argv[3], 1, KBROKER_ERROR_CNT_MAX, &cnt) != 0)
            return reply_error(reply, reply_size,
                               "usage: error <api_key 0..%d> <error_code|NAME> <count 1..%d>",
                               KBROKER_API_KEY_MAX, KBROKER_ERROR_CNT_MAX);
        errs = calloc((size_t)cnt, sizeof(*errs));
        if (!errs)
            return reply_error(reply, reply_size, "out of memory");
        for (long i = 0; i < cnt; i++)
            errs[i] = code;
        rd_kafka_mock_push_request_errors_array(kb->mcluster, (int16_t)api_key, (size_t)cnt, errs);
        free(errs);
        return reply_ok(reply, reply_size, "error %ld %d %s %ld", api_key, (int)code,
                        rd_kafka_err2name(code), cnt);
    }

    if (strcmp(argv[0], "topic") == 0) {
        kbroker_topic_t t;
        char errstr[256];
        char spec[KBROKER_TOPIC_NAME_MAX + 32];

        if (argc != 3 || parse_long(argv[2], 1, 10000, &v) != 0)
            return reply_error(reply, reply_size, "usage: topic <name> <partitions 1..10000>");
        snprintf(spec, sizeof(spec), "%s:%ld", argv[1], v);
        if (kbroker_parse_topics(spec, &t, 1, errstr, sizeof(errstr)) != 1)
            return reply_error(reply, reply_size, "topic: %s", errstr);
        err = rd_kafka_mock_topic_create(kb->mcluster, t.name, t.partitions,
                                         kb->broker_cnt < 3 ? kb->broker_cnt : 3);
        if (err)
            return reply_error(reply, reply_size, "topic %s: %s", t.name, rd_kafka_err2str(err));
        return reply_ok(reply, reply_size, "topic %s %d", t.name, t.partitions);
    }

    if (strcmp(argv[0], "clear") == 0) {
        if (argc != 1)
            return reply_error(reply, reply_size, "usage: clear");
        for (int16_t k = 0; k <= KBROKER_API_KEY_MAX; k++)
            rd_kafka_mock_clear_request_errors(kb->mcluster, k);
        for (int32_t b = 1; b <= kb->broker_cnt; b++) {
            err = rd_kafka_mock_broker_set_rtt(kb->mcluster, b, 0);
            if (!err)
                err = rd_kafka_mock_broker_set_up(kb->mcluster, b);
            if (err)
                return reply_error(reply, reply_size, "clear broker %d: %s", (int)b,
                                   rd_kafka_err2str(err));
        }
        return reply_ok(reply, reply_size, "clear");
    }

    return reply_error(reply, reply_size, "unknown command \"%s\"; %s", argv[0], help_text);
}
