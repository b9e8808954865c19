/* SPDX-License-Identifier: Apache-2.0 */
/* otp-produce: publishes otp.requested events, one from flags or many from
 * NDJSON (a file or stdin: the batch re-send after an outage). */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otp_config.h"
#include "otp_services.h"
#include "otp_crypto.h"
#include "otp_event.h"
#include "otp_kafka.h"
#include "otp_log.h"
#include "otp_time.h"
#include "otp_version.h"

static volatile sig_atomic_t running = 1;
static long delivered, failed;
/* Where a batch's per-line results go (stdout, or the --report file). */
static FILE *results;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

/* One published message of a batch, until its delivery report. */
typedef struct pending_line {
    long lineno;
    char request_id[37];
    char digest[33];
} pending_line_t;

static void result_line(long lineno, const char *request_id, const char *status, const char *reason,
                        const char *digest)
{
    if (!results)
        return;
    fprintf(results, "%ld\t%s\t%s\t%s\t%s\n", lineno, request_id[0] ? request_id : "-", status,
            reason && reason[0] ? reason : "-", digest);
    fflush(results);
}

/* Delivered = acknowledged by the broker (librdkafka's delivery report), not queued. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    pending_line_t *pl = m->_private;

    (void)rk;
    (void)opaque;
    if (m->err)
        failed++;
    else
        delivered++;
    if (pl) {
        result_line(pl->lineno, pl->request_id, m->err ? "failed" : "delivered",
                    m->err ? rd_kafka_err2str(m->err) : NULL, pl->digest);
        free(pl);
    } else if (m->err) {
        fprintf(stderr, "otp-produce: not delivered: %s\n", rd_kafka_err2str(m->err));
    }
}

static const char usage[] =
    "usage: otp-produce --phone E164 --user ID [--purpose P] [--locale TAG] [--request-id UUID]\n"
    "                   [--ttl SECONDS] [--code-length N] [--gate] [--amd] [--sms-fallback]\n"
    "                   [--channel voice|sms] [--keypad-code DIGITS] [--metadata JSON]\n"
    "       otp-produce --resend REQUEST_ID [--channel voice|sms]   (a new code, same number)\n"
    "       otp-produce --file FILE|-  [--report REPORT] [--rate N/s] [--timeout SECONDS] [--raw]\n"
    "       otp-produce ... --dry-run   (print each message on stdout instead; no broker)\n"
    "       otp-produce ... --service NAME  (publish on OTP_TOPIC_REQUESTS.NAME: the service's\n"
    "                                        own topic, which its Kafka ACL lets it write)\n"
    "       otp-produce --version | --help\n"
    "Publishes otp.requested events (key = phone) with librdkafka's idempotent producer; a\n"
    "message counts as delivered when the broker acknowledged it (the delivery report), within\n"
    "--timeout seconds (else KAFKA_MESSAGE_TIMEOUT_MS, else 60 s). From flags: prints the\n"
    "request_id once delivered.\n"
    "Batches (--file, NDJSON, one request per line; requested_at filled in when missing; --raw\n"
    "sends lines as they are, to test the dead-letter path): one result per line, tab-separated,\n"
    "  LINE  REQUEST_ID  delivered|failed  REASON  LINE_DIGEST\n"
    "on stdout, or appended to REPORT with --report. Exit status 1 when any line failed.\n"
    "--rate N/s publishes at most N lines a second, evenly, and holds back while the broker has\n"
    "not acknowledged a tenth of a second of them (no burst after a slow start or a stall).\n"
    "Request ids are RECORDED IN THE REPORT, not derived: a line without request_id gets a\n"
    "random one, and a re-run with the same --report (a saved stdout works too) gives each line\n"
    "the id the report holds for the same content (LINE_DIGEST, so edits and moves are safe)\n"
    "and skips the lines it shows delivered (reported as delivered, reason earlier_run); a\n"
    "failed line is sent again under the same id, which the workers' idempotency on request_id\n"
    "turns into one call at most. Without --report a re-run makes new requests.";

/* With no producer (--dry-run) the message goes to stdout instead. The
 * opaque pl (NULL for a single request) comes back in the delivery report;
 * on -1 it was not queued and the caller still owns it. */
static int publish(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                   pending_line_t *pl, char *errstr, size_t errsz)
{
    if (!rk) {
        printf("%s\n", value);
        delivered++;
        return 0;
    }
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, strlen(value)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(pl), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        if (err) {
            snprintf(errstr, errsz, "%s", rd_kafka_err2str(err));
            return -1;
        }
        return 0;
    }
}

/* What an earlier run's report says of each line content: the request ids
 * it gave lines with that digest, and whether each was delivered. */
typedef struct report_entry {
    char digest[33];
    char request_id[37];
    int delivered;
    int taken; /* given to a line of this run */
} report_entry_t;

typedef struct report {
    report_entry_t *e;
    size_t n, cap;
} report_t;

static int entry_cmp(const void *a, const void *b)
{
    const report_entry_t *x = a, *y = b;
    int c = strcmp(x->digest, y->digest);

    return c ? c : strcmp(x->request_id, y->request_id);
}

/* Reads REPORT if it exists (a missing file is an empty report). 0, or -1
 * on a read error or when memory ran out. */
static int report_load(report_t *rep, const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, j = 0;

    if (!f)
        return 0;
    while (getline(&line, &cap, f) != -1) {
        char *field[5] = {0}, *p = line, *save = NULL;
        int nf = 0;

        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#')
            continue;
        for (char *t = strtok_r(p, "\t", &save); t && nf < 5; t = strtok_r(NULL, "\t", &save))
            field[nf++] = t;
        if (nf < 5 || !otp_uuid_valid(field[1]) || strlen(field[4]) != 32 ||
            strspn(field[4], "0123456789abcdef") != 32)
            continue;
        if (rep->n == rep->cap) {
            size_t nc = rep->cap ? rep->cap * 2 : 256;
            report_entry_t *ne = realloc(rep->e, nc * sizeof(*ne));
            if (!ne) {
                free(line);
                fclose(f);
                return -1;
            }
            rep->e = ne;
            rep->cap = nc;
        }
        snprintf(rep->e[rep->n].digest, 33, "%s", field[4]);
        snprintf(rep->e[rep->n].request_id, 37, "%s", field[1]);
        rep->e[rep->n].delivered = strcmp(field[2], "delivered") == 0;
        rep->e[rep->n].taken = 0;
        rep->n++;
    }
    free(line);
    fclose(f);
    /* One entry per (digest, request_id): delivered once is delivered. */
    if (rep->n)
        qsort(rep->e, rep->n, sizeof(*rep->e), entry_cmp);
    for (size_t i = 0; i < rep->n; i++) {
        if (j > 0 && entry_cmp(&rep->e[j - 1], &rep->e[i]) == 0) {
            rep->e[j - 1].delivered |= rep->e[i].delivered;
            continue;
        }
        rep->e[j++] = rep->e[i];
    }
    rep->n = j;
    return 0;
}

/* The next entry of the report for a line with this digest not yet given to
 * a line of this run (identical lines get the ids of identical lines), or NULL. */
static report_entry_t *report_take(report_t *rep, const char *digest)
{
    size_t lo = 0, hi = rep->n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(rep->e[mid].digest, digest) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < rep->n && strcmp(rep->e[lo].digest, digest) == 0; lo++) {
        if (!rep->e[lo].taken) {
            rep->e[lo].taken = 1;
            return &rep->e[lo];
        }
    }
    return NULL;
}

static void line_digest(const char *line, size_t len, char out[33])
{
    unsigned char h[16];

    crypto_generichash(h, sizeof(h), (const unsigned char *)line, len, NULL, 0);
    sodium_bin2hex(out, 33, h, sizeof(h));
}

/* A reason fit for one field of a result line: numbers masked, no tabs or
 * line breaks. */
static void clean_reason(const char *in, char *out, size_t outsz)
{
    size_t n = 0;
    char *red = otp_redact_numbers(in, strlen(in), &n);

    snprintf(out, outsz, "%.*s", red ? (int)n : 0, red ? red : "");
    free(red);
    for (char *p = out; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
}

/* Waits (serving delivery reports) until the next line may go at --rate: one
 * line every 1/rate s, and only while the broker keeps up (at most a tenth of
 * a second of lines not yet acknowledged). A slow start (the idempotent
 * producer's id, the first connection) or a stalled broker then delays the
 * lines instead of turning into a burst when it clears, so the topic sees at
 * most N lines a second. *next is when the next line is due (ms, 0 at first). */
static void pace(rd_kafka_t *rk, double rate, double *next)
{
    int unacked = rate >= 20 ? (int)(rate / 10) : 2;
    double now;

    if (rate <= 0)
        return;
    while (running && rk && rd_kafka_outq_len(rk) >= unacked)
        rd_kafka_poll(rk, 5);
    while (running && (now = (double)otp_monotonic_ms()) < *next) {
        if (rk)
            rd_kafka_poll(rk, (int)(*next - now) + 1);
        else
            usleep((useconds_t)((*next - now) * 1000.0));
    }
    now = (double)otp_monotonic_ms();
    /* Behind schedule (the waits above): start again from now, no catch-up. */
    *next = (*next > now - 1000.0 / rate ? *next : now) + 1000.0 / rate;
}

/* Keypad mode: seals the code the app shows to the workers' public key, so it
 * never travels in plain form on Kafka. */
static int seal_keypad_code(const char *code, otp_request_t *req, char *err, size_t errsz)
{
    const char *pk_hex = otp_config_str("OTP_KEYPAD_PUBLIC_KEY");
    unsigned char pk[crypto_box_PUBLICKEYBYTES], sealed[OTP_CODE_MAX + crypto_box_SEALBYTES];
    size_t n = strlen(code), pk_len = 0;

    if (n < OTP_CODE_MIN || n > OTP_CODE_MAX || strspn(code, "0123456789") != n) {
        snprintf(err, errsz, "--keypad-code must be %d-%d digits", OTP_CODE_MIN, OTP_CODE_MAX);
        return -1;
    }
    if (strlen(pk_hex) != 64 ||
        sodium_hex2bin(pk, sizeof(pk), pk_hex, 64, NULL, &pk_len, NULL) != 0 ||
        pk_len != sizeof(pk)) {
        snprintf(err, errsz,
                 "OTP_KEYPAD_PUBLIC_KEY: expected 64 hex characters (otp-worker --keygen)");
        return -1;
    }
    if (crypto_box_seal(sealed, (const unsigned char *)code, n, pk) != 0)
        return -1;
    sodium_bin2base64(req->keypad_code_sealed, sizeof(req->keypad_code_sealed), sealed,
                      n + crypto_box_SEALBYTES, sodium_base64_VARIANT_ORIGINAL);
    req->delivery.keypad = 1;
    return 0;
}

/* Fills request_id (with id) and requested_at when a line lacks them, then checks it. */
static int normalise_line(const char *line, const char *id, char **out_json, otp_request_t *req,
                          char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    char reason[48], at[40];
    char *s;
    int rc = -1;

    memset(req, 0, sizeof(*req));
    if (!json_is_object(o)) {
        snprintf(err, errsz, "not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
        goto out;
    }
    if (!json_object_get(o, "request_id"))
        json_object_set_new(o, "request_id", json_string(id));
    if (!json_object_get(o, "requested_at")) {
        otp_time_format(otp_now_ms(), at, sizeof(at));
        json_object_set_new(o, "requested_at", json_string(at));
    }
    s = json_dumps(o, JSON_COMPACT);
    if (s && otp_request_parse(s, strlen(s), req, reason, sizeof(reason), err, errsz) == 0) {
        *out_json = s;
        rc = 0;
    } else {
        free(s);
    }
out:
    json_decref(o);
    return rc;
}

/* Publishes every line of file; one result line each (see usage). 0, or 2
 * when the file or the report cannot be used. */
static int run_batch(rd_kafka_t *rk, const char *topic, const char *file, const char *report,
                     int raw, double rate, long timeout_s, long *sent, long *invalid)
{
    FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    int tty = isatty(STDERR_FILENO);
    int64_t started = otp_monotonic_ms(), last_progress = 0;
    double next_line = 0;
    report_t rep = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, earlier = 0;
    int rc = 2;

    if (!in) {
        fprintf(stderr, "otp-produce: cannot open %s\n", file);
        return 2;
    }
    if (report && report_load(&rep, report) != 0) {
        fprintf(stderr, "otp-produce: cannot read the report %s\n", report);
        goto out;
    }
    results = stdout;
    if (!rk) {
        results = NULL; /* --dry-run: the messages are the output */
    } else if (report) {
        results = fopen(report, "a");
        if (!results) {
            fprintf(stderr, "otp-produce: cannot write the report %s\n", report);
            goto out;
        }
    }
    while (running && (len = getline(&line, &cap, in)) != -1) {
        char *js = NULL, err[512], reason[300], digest[33], id[37];
        const char *key = NULL, *value = line;
        report_entry_t *seen;
        otp_request_t req;
        pending_line_t *pl;
        json_t *o = NULL;

        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        line_digest(line, (size_t)len, digest);
        seen = report_take(&rep, digest);
        if (seen)
            snprintf(id, sizeof(id), "%s", seen->request_id);
        else
            otp_uuid_v4(id);
        if (seen && seen->delivered) {
            result_line(lineno, id, "delivered", "earlier_run", digest);
            earlier++;
            continue;
        }
        if (raw) {
            o = json_loads(line, 0, NULL);
            key = json_string_value(json_object_get(o, "phone"));
            if (json_string_value(json_object_get(o, "request_id")))
                snprintf(id, sizeof(id), "%.36s",
                         json_string_value(json_object_get(o, "request_id")));
            else
                snprintf(id, sizeof(id), "-");
        } else if (normalise_line(line, id, &js, &req, err, sizeof(err)) != 0) {
            (*invalid)++;
            clean_reason(err, reason, sizeof(reason));
            result_line(lineno, req.request_id, "failed", reason, digest);
            if (!results)
                fprintf(stderr, "otp-produce: line %ld skipped: %s\n", lineno, reason);
            continue;
        } else {
            value = js;
            key = req.phone[0] ? req.phone : req.resend_of;
            snprintf(id, sizeof(id), "%s", req.request_id);
        }
        pace(rk, rate, &next_line);
        pl = rk ? calloc(1, sizeof(*pl)) : NULL;
        if (pl) {
            pl->lineno = lineno;
            snprintf(pl->request_id, sizeof(pl->request_id), "%s", id);
            snprintf(pl->digest, sizeof(pl->digest), "%s", digest);
        }
        if (rk && !pl) {
            result_line(lineno, id, "failed", "out of memory", digest);
            failed++;
            (*sent)++;
        } else if (publish(rk, topic, key, value, pl, err, sizeof(err)) == 0) {
            (*sent)++;
        } else {
            result_line(lineno, id, "failed", err, digest);
            free(pl);
            failed++;
            (*sent)++;
        }
        json_decref(o);
        free(js);
        if (rk)
            rd_kafka_poll(rk, 0);
        if (tty && otp_monotonic_ms() - last_progress > 200) {
            double secs = (double)(otp_monotonic_ms() - started) / 1000.0;
            last_progress = otp_monotonic_ms();
            fprintf(stderr, "\rsent %ld  delivered %ld  failed %ld  invalid %ld  %.0f/s   ", *sent,
                    delivered, failed, *invalid, secs > 0 ? (double)*sent / secs : 0.0);
        }
    }
    if (tty)
        fprintf(stderr, "\n");
    if (rk) {
        /* Every queued line gets its report: delivered, timed out, or (past the
         * timeout) purged and reported failed. */
        rd_kafka_flush(rk, (int)timeout_s * 1000 + 5000);
        if (rd_kafka_outq_len(rk) > 0) {
            rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(rk, 5000);
        }
    }
    if (earlier) {
        /* Lines skipped as delivered count as sent and delivered. */
        *sent += earlier;
        delivered += earlier;
        fprintf(stderr, "otp-produce: %ld lines delivered by an earlier run (report %s)\n", earlier,
                report);
    }
    rc = 0;
out:
    free(line);
    free(rep.e);
    if (in != stdin)
        fclose(in);
    if (results && results != stdout)
        fclose(results);
    results = NULL;
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"phone", required_argument, 0, 'p'},
                                         {"user", required_argument, 0, 'u'},
                                         {"purpose", required_argument, 0, 'P'},
                                         {"locale", required_argument, 0, 'l'},
                                         {"request-id", required_argument, 0, 'r'},
                                         {"ttl", required_argument, 0, 't'},
                                         {"code-length", required_argument, 0, 'c'},
                                         {"gate", no_argument, 0, 'g'},
                                         {"amd", no_argument, 0, 'a'},
                                         {"sms-fallback", no_argument, 0, 's'},
                                         {"metadata", required_argument, 0, 'm'},
                                         {"file", required_argument, 0, 'f'},
                                         {"raw", no_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {"resend", required_argument, 0, 'S'},
                                         {"channel", required_argument, 0, 'C'},
                                         {"keypad-code", required_argument, 0, 'K'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {"version", no_argument, 0, 'V'},
                                         {"report", required_argument, 0, 'O'},
                                         {"rate", required_argument, 0, 'T'},
                                         {"timeout", required_argument, 0, 'W'},
                                         {"service", required_argument, 0, 'v'},
                                         {0, 0, 0, 0}};
    otp_request_t req;
    const char *file = NULL, *topic, *report = NULL, *service = NULL;
    char service_topic[256];
    double rate = 0;
    long timeout_s = 60;
    int timeout_given = 0;
    char timeout_ms[24];
    int raw = 0, dry_run = 0, show = 0, opt, rc = 1;
    char err[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    long sent = 0, invalid = 0;

    memset(&req, 0, sizeof(req));
    req.delivery.gate = req.delivery.amd = req.delivery.sms_fallback = -1;
    snprintf(req.purpose, sizeof(req.purpose), "login");
    const char *keypad_code = NULL;

    while ((opt = getopt_long(argc, argv, "p:u:P:l:r:t:c:gasm:f:RhS:C:K:nVO:T:W:v:", opts, NULL)) !=
           -1) {
        switch (opt) {
        case 'p':
            snprintf(req.phone, sizeof(req.phone), "%s", optarg);
            break;
        case 'u':
            snprintf(req.user_id, sizeof(req.user_id), "%s", optarg);
            break;
        case 'P':
            snprintf(req.purpose, sizeof(req.purpose), "%s", optarg);
            break;
        case 'l':
            snprintf(req.locale, sizeof(req.locale), "%s", optarg);
            break;
        case 'r':
            snprintf(req.request_id, sizeof(req.request_id), "%s", optarg);
            break;
        case 't':
            req.ttl_seconds = (int)strtol(optarg, NULL, 10);
            break;
        case 'c':
            req.code_length = (int)strtol(optarg, NULL, 10);
            break;
        case 'g':
            req.delivery.gate = 1;
            break;
        case 'a':
            req.delivery.amd = 1;
            break;
        case 's':
            req.delivery.sms_fallback = 1;
            break;
        case 'm':
            snprintf(req.metadata, sizeof(req.metadata), "%s", optarg);
            break;
        case 'f':
            file = optarg;
            break;
        case 'R':
            raw = 1;
            break;
        case 'S':
            snprintf(req.resend_of, sizeof(req.resend_of), "%s", optarg);
            break;
        case 'C':
            if (strcmp(optarg, "sms") != 0 && strcmp(optarg, "voice") != 0) {
                fprintf(stderr, "otp-produce: --channel is voice or sms\n");
                return 2;
            }
            req.delivery.sms = strcmp(optarg, "sms") == 0;
            break;
        case 'K':
            keypad_code = optarg;
            break;
        case 'n':
            dry_run = 1;
            break;
        case 'V':
            show = 'V';
            break;
        case 'O':
            report = optarg;
            break;
        case 'T': {
            char *end;
            rate = strtod(optarg, &end);
            if (end == optarg || (*end && strcmp(end, "/s") != 0) || !(rate > 0)) {
                fprintf(stderr, "otp-produce: --rate takes lines per second, e.g. 50 or 50/s\n");
                return 2;
            }
            break;
        }
        case 'W': {
            char *end;
            timeout_s = strtol(optarg, &end, 10);
            timeout_given = 1;
            if (end == optarg || *end || timeout_s < 1 || timeout_s > 3600) {
                fprintf(stderr, "otp-produce: --timeout takes 1-3600 seconds\n");
                return 2;
            }
            break;
        }
        case 'h':
            show = 'h';
            break;
        case 'v':
            if (!otp_service_name_ok(optarg)) {
                fprintf(stderr, "otp-produce: --service: a service name is 1-32 of a-z, 0-9 and "
                                "- (otp-admin service list)\n");
                return 2;
            }
            service = optarg;
            break;
        default:
            fprintf(stderr, "%s\n", usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "otp-produce: unexpected argument \"%s\"\n%s\n", argv[optind], usage);
        return 2;
    }
    if (show == 'h') {
        otp_config_print_help(OTP_PROG_PRODUCER, usage);
        return 0;
    }
    if (show == 'V') {
        printf("otp-produce %s\n", OTP_VERSION);
        return 0;
    }
    if (otp_config_load(OTP_PROG_PRODUCER, err, sizeof(err)) != 0 || otp_crypto_init() != 0) {
        fprintf(stderr, "otp-produce: %s\n", err);
        return 2;
    }
    otp_log_init("otp-produce", otp_log_level_parse(otp_config_str("OTP_LOG_LEVEL")),
                 otp_log_format_parse(otp_config_str("OTP_LOG_FORMAT")));
    topic = otp_config_str("OTP_TOPIC_REQUESTS");
    if (service) {
        if (otp_services_topic(topic, service, service_topic, sizeof(service_topic)) != 0) {
            fprintf(stderr, "otp-produce: OTP_TOPIC_REQUESTS and --service make too long a name\n");
            return 2;
        }
        topic = service_topic;
    }
    if (!file && !req.resend_of[0] && (!req.phone[0] || !req.user_id[0])) {
        fprintf(stderr, "otp-produce: give --phone and --user, --resend, or --file\n%s\n", usage);
        return 2;
    }
    if (keypad_code && seal_keypad_code(keypad_code, &req, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-produce: %s\n", err);
        return 2;
    }

    if ((report || rate > 0) && !file) {
        fprintf(stderr, "otp-produce: --report and --rate go with --file\n%s\n", usage);
        return 2;
    }

    snprintf(timeout_ms, sizeof(timeout_ms), "%ld", timeout_s * 1000);
    if (!dry_run) {
        size_t tsz = sizeof(timeout_ms);

        conf = otp_kafka_conf_new(err, sizeof(err));
        /* --timeout, else KAFKA_MESSAGE_TIMEOUT_MS, else 60 s. */
        if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
            otp_kafka_set(conf, "linger.ms", "10", err, sizeof(err)) ||
            ((timeout_given || !getenv("KAFKA_MESSAGE_TIMEOUT_MS")) &&
             otp_kafka_set(conf, "message.timeout.ms", timeout_ms, err, sizeof(err)))) {
            fprintf(stderr, "otp-produce: %s\n", err);
            return 2;
        }
        if (rd_kafka_conf_get(conf, "message.timeout.ms", timeout_ms, &tsz) == RD_KAFKA_CONF_OK)
            timeout_s = (strtol(timeout_ms, NULL, 10) + 999) / 1000;

        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
            fprintf(stderr, "otp-produce: %s\n", err);
            return 2;
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    if (!file) {
        char reason[48];
        char *js;
        if (!req.request_id[0])
            otp_uuid_v4(req.request_id);
        req.requested_at_ms = otp_now_ms();
        js = otp_request_to_json(&req);
        if (!js ||
            otp_request_parse(js, strlen(js), &req, reason, sizeof(reason), err, sizeof(err))) {
            fprintf(stderr, "otp-produce: invalid request: %s\n", js ? err : "out of memory");
            free(js);
            goto out;
        }
        /* A resend without a number is keyed by the request it resends, so it
         * stays in order with that one's other resends. */
        if (publish(rk, topic, req.phone[0] ? req.phone : req.resend_of, js, NULL, err,
                    sizeof(err)) == 0)
            sent++;
        else
            fprintf(stderr, "otp-produce: %s\n", err);
        free(js);
        if (rk)
            rd_kafka_flush(rk, (int)timeout_s * 1000 + 5000);
        if (rk && delivered == 1)
            printf("%s\n", req.request_id);
    } else {
        rc = run_batch(rk, topic, file, report, raw, rate, timeout_s, &sent, &invalid);
        if (rc == 2)
            goto out;
    }
    fprintf(stderr, "otp-produce: published %ld, delivered %ld, failed %ld, invalid lines %ld%s\n",
            sent, delivered, sent - delivered, invalid, running ? "" : " (interrupted)");
    rc = (delivered == sent && invalid == 0 && running) ? 0 : 1;
out:
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}
