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
#include "otp_crypto.h"
#include "otp_event.h"
#include "otp_kafka.h"
#include "otp_log.h"
#include "otp_time.h"
#include "otp_version.h"

static volatile sig_atomic_t running = 1;
static long delivered, failed;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        failed++;
        fprintf(stderr, "otp-produce: not delivered: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static const char usage[] =
    "usage: otp-produce --phone E164 --user ID [--purpose P] [--locale TAG] [--request-id UUID]\n"
    "                   [--ttl SECONDS] [--code-length N] [--gate] [--amd] [--sms-fallback]\n"
    "                   [--channel voice|sms] [--keypad-code DIGITS] [--metadata JSON]\n"
    "       otp-produce --resend REQUEST_ID [--channel voice|sms]   (a new code, same number)\n"
    "       otp-produce --file FILE|-  [--raw]   (NDJSON, one request per line)\n"
    "       otp-produce ... --dry-run   (print each message on stdout instead; no broker)\n"
    "       otp-produce --version | --help\n"
    "Publishes otp.requested events (key = phone) with librdkafka's idempotent producer.\n"
    "In NDJSON, request_id and requested_at are filled in when missing; --raw sends lines as\n"
    "they are (to test the dead-letter path). Prints each request_id on stdout.";

/* With no producer (--dry-run) the message goes to stdout instead. */
static int publish(rd_kafka_t *rk, const char *topic, const char *key, const char *value)
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
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        if (err) {
            fprintf(stderr, "otp-produce: %s\n", rd_kafka_err2str(err));
            return -1;
        }
        return 0;
    }
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

/* Fills request_id and requested_at when a line lacks them, then checks it. */
static int normalise_line(const char *line, char **out_json, otp_request_t *req, char *err,
                          size_t errsz)
{
    json_error_t jerr;
    json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    char reason[48], at[40], id[37];
    char *s;
    int rc = -1;

    if (!json_is_object(o)) {
        snprintf(err, errsz, "not a JSON object%s%s", o ? "" : ": ", o ? "" : jerr.text);
        goto out;
    }
    if (!json_object_get(o, "request_id")) {
        otp_uuid_v4(id);
        json_object_set_new(o, "request_id", json_string(id));
    }
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
                                         {0, 0, 0, 0}};
    otp_request_t req;
    const char *file = NULL, *topic;
    int raw = 0, dry_run = 0, show = 0, opt, rc = 1;
    char err[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk = NULL;
    long sent = 0, invalid = 0, lineno = 0;

    memset(&req, 0, sizeof(req));
    req.delivery.gate = req.delivery.amd = req.delivery.sms_fallback = -1;
    snprintf(req.purpose, sizeof(req.purpose), "login");
    const char *keypad_code = NULL;

    while ((opt = getopt_long(argc, argv, "p:u:P:l:r:t:c:gasm:f:RhS:C:K:nV", opts, NULL)) != -1) {
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
        case 'h':
            show = 'h';
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
    if (!file && !req.resend_of[0] && (!req.phone[0] || !req.user_id[0])) {
        fprintf(stderr, "otp-produce: give --phone and --user, --resend, or --file\n%s\n", usage);
        return 2;
    }
    if (keypad_code && seal_keypad_code(keypad_code, &req, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-produce: %s\n", err);
        return 2;
    }

    if (!dry_run) {
        conf = otp_kafka_conf_new(err, sizeof(err));
        if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
            otp_kafka_set(conf, "linger.ms", "10", err, sizeof(err))) {
            fprintf(stderr, "otp-produce: %s\n", err);
            return 2;
        }
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
        if (publish(rk, topic, req.phone[0] ? req.phone : req.resend_of, js) == 0) {
            sent++;
            if (rk)
                printf("%s\n", req.request_id);
        }
        free(js);
    } else {
        FILE *in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
        int tty = isatty(STDERR_FILENO);
        int64_t started = otp_monotonic_ms(), last_progress = 0;
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;

        if (!in) {
            fprintf(stderr, "otp-produce: cannot open %s\n", file);
            goto out;
        }
        while (running && (len = getline(&line, &cap, in)) != -1) {
            char *js = NULL;
            lineno++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len == 0)
                continue;
            if (raw) {
                json_t *o = json_loads(line, 0, NULL);
                const char *ph = json_string_value(json_object_get(o, "phone"));
                if (publish(rk, topic, ph, line) == 0)
                    sent++;
                json_decref(o);
            } else if (normalise_line(line, &js, &req, err, sizeof(err)) != 0) {
                invalid++;
                fprintf(stderr, "otp-produce: line %ld skipped: %s\n", lineno, err);
            } else {
                if (publish(rk, topic, req.phone, js) == 0) {
                    sent++;
                    if (rk)
                        printf("%s\n", req.request_id);
                }
                free(js);
            }
            if (rk)
                rd_kafka_poll(rk, 0);
            if (tty && otp_monotonic_ms() - last_progress > 200) {
                double secs = (double)(otp_monotonic_ms() - started) / 1000.0;
                last_progress = otp_monotonic_ms();
                fprintf(stderr, "\rsent %ld  delivered %ld  invalid %ld  %.0f/s   ", sent,
                        delivered, invalid, secs > 0 ? (double)sent / secs : 0.0);
            }
        }
        if (tty)
            fprintf(stderr, "\n");
        free(line);
        if (in != stdin)
            fclose(in);
    }
    if (rk)
        rd_kafka_flush(rk, 30000);
    fprintf(stderr, "otp-produce: published %ld, delivered %ld, failed %ld, invalid lines %ld\n",
            sent, delivered, failed + (sent - delivered - failed), invalid);
    rc = (delivered == sent && invalid == 0) ? 0 : 1;
out:
    if (rk)
        rd_kafka_destroy(rk);
    return rc;
}
