/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_config.h"
#include "otp_log.h"
#include "otp_version.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define W OTP_PROG_WORKER
#define V OTP_PROG_VERIFIER
#define P OTP_PROG_PRODUCER
#define M OTP_PROG_MIGRATE
#define A OTP_PROG_ADMIN
#define AP OTP_PROG_ADMIN_PURGE
#define H OTP_PROG_HOOKS

static const otp_setting_t settings[] = {
    {"OTP_DATABASE_URL", OTP_CFG_SECRET, "postgresql:///otp", 0, 0, W | V | M | A | H,
     "PostgreSQL connection string (libpq URL or key=value); it may hold a password, so also "
     "OTP_DATABASE_URL_FILE."},
    {"KAFKA_BOOTSTRAP_SERVERS", OTP_CFG_STR, "localhost:9092", 0, 0, W | V | P | A | H,
     "Kafka brokers. Any KAFKA_X_Y passes through to librdkafka as x.y."},
    {"OTP_TOPIC_REQUESTS", OTP_CFG_STR, "otp.requested", 0, 0, W | V | P | A,
     "Topic of OTP requests (the verifier's POST /v1/requests publishes to it)."},
    {"OTP_TOPIC_STATUS", OTP_CFG_STR, "otp.call_status", 0, 0, W | A | H,
     "Topic of status events."},
    {"OTP_STATUS_TOPIC_PER_SERVICE", OTP_CFG_BOOL, "0", 0, 1, W | H,
     "1 = a service's status events go to OTP_TOPIC_STATUS.<service> (the default service's stay "
     "on OTP_TOPIC_STATUS), so Kafka ACLs can let an application read its own events only; "
     "otp-hooks then reads every one of them."},
    {"OTP_TOPIC_DLQ", OTP_CFG_STR, "otp.requested.dlq", 0, 0, W,
     "Dead-letter topic for bad requests."},
    {"OTP_CONSUMER_GROUP", OTP_CFG_STR, "otp-worker", 0, 0, W,
     "Kafka consumer group of the workers."},
    {"OTP_WORKER_ID", OTP_CFG_STR, "", 0, 0, W,
     "Lease owner name, and the Kafka group.instance.id (static membership: a restarted worker "
     "keeps its partitions); empty = host name and pid, not static."},
    {"OTP_VOIPBIN_BASE_URL", OTP_CFG_STR, "https://api.voipbin.net/v1.0", 0, 0, W,
     "VoIPBin REST base URL."},
    {"OTP_VOIPBIN_ACCESS_KEY", OTP_CFG_SECRET, NULL, 0, 0, W,
     "VoIPBin access key (sent as ?accesskey=). Or OTP_VOIPBIN_ACCESS_KEY_FILE."},
    {"OTP_CALLER_ID", OTP_CFG_STR, NULL, 0, 0, W,
     "E.164 caller ID: a number the VoIPBin account owns."},
    {"OTP_CALLER_ID_BY_COUNTRY", OTP_CFG_STR, "", 0, 0, W,
     "Caller IDs per destination country, e.g. gb:+442071234567,de:+493012345678 (else "
     "OTP_CALLER_ID)."},
    {"OTP_HASH_KEY", OTP_CFG_SECRET, NULL, 0, 0, W | V | AP,
     "Server secret for the keyed code hash: 64 hex chars (32 bytes). Or OTP_HASH_KEY_FILE."},
    {"OTP_HASH_KEY_ID", OTP_CFG_INT, "1", 1, 32767, W | V,
     "Id of OTP_HASH_KEY, stored with each hash."},
    {"OTP_HASH_KEYS_PREVIOUS", OTP_CFG_SECRET, "", 0, 0, W | V,
     "Retired keys that still verify old rows: id:hex,id:hex. Or OTP_HASH_KEYS_PREVIOUS_FILE."},
    {"OTP_KEYPAD_SECRET_KEY", OTP_CFG_SECRET, "", 0, 0, W,
     "Keypad mode: the workers' X25519 secret key, 64 hex chars (otp-worker --keygen); empty = "
     "keypad off."},
    {"OTP_SMS_FALLBACK_DEFAULT", OTP_CFG_BOOL, "0", 0, 1, W,
     "1 = after the last failed call, send a fresh code by SMS (a request's delivery.sms_fallback "
     "wins)."},
    {"OTP_KEYPAD_PUBLIC_KEY", OTP_CFG_STR, "", 0, 0, P,
     "Keypad mode: the workers' public key (64 hex chars); otp-produce seals --keypad-code to it."},
    {"OTP_WEBHOOK_SECRET", OTP_CFG_SECRET, NULL, 0, 0, V,
     "VoIPBin webhook_secret (GET /v1.0/customer); checks X-VoIPBIN-Signature."},
    {"OTP_API_KEY_HASHES", OTP_CFG_STR, "", 0, 0, V,
     "SHA-256 hex of API keys of the default service with every scope, comma-separated (a "
     "one-app deployment's keys; otp-admin key create makes keys bound to a service and "
     "scopes)."},
    {"OTP_MAX_FAILED_VERIFY_PER_HOUR", OTP_CFG_INT, "100", 1, 100000, V,
     "Wrong codes per user per hour, across challenges; then every check is rejected."},
    {"OTP_MAX_BODY_BYTES", OTP_CFG_INT, "8192", 256, 65536, V,
     "Largest body of POST /v1/verify and POST /v1/requests."},
    {"OTP_CORS_ORIGINS", OTP_CFG_STR, "", 0, 0, V,
     "Origins (scheme://host[:port], comma-separated, exact) whose web pages may call /v1 from a "
     "browser (CORS); empty: none. The browser still needs an API key: keep keys server-side."},
    {"OTP_FRONT_DOOR_TIMEOUT_MS", OTP_CFG_INT, "5000", 100, 60000, V,
     "POST /v1/requests: how long to wait for Kafka to acknowledge the request before answering "
     "503 (send it again with the same request_id)."},
    {"OTP_CODE_LENGTH", OTP_CFG_INT, "6", 4, 10, W,
     "Digits in a code (a request may ask for 4-10)."},
    {"OTP_TTL_SECONDS", OTP_CFG_INT, "300", 60, 600, W,
     "Life of a code from the request (max 10 min)."},
    {"OTP_MAX_ATTEMPTS", OTP_CFG_INT, "5", 1, 10, W, "Wrong entries before a challenge locks."},
    {"OTP_MIN_REMAINING_SECONDS", OTP_CFG_INT, "60", 10, 590, W,
     "A call is placed only if the code has at least this much life left."},
    {"OTP_MAX_CALL_ATTEMPTS", OTP_CFG_INT, "3", 1, 10, W, "Calls placed at most per request."},
    {"OTP_RETRY_BASE_MS", OTP_CFG_INT, "2000", 10, 600000, W, "Backoff base (full jitter)."},
    {"OTP_RETRY_CAP_MS", OTP_CFG_INT, "60000", 10, 3600000, W, "Backoff cap."},
    {"OTP_VOIPBIN_RATE", OTP_CFG_INT, "16500", 100, 10000000, W,
     "Requests per 1000 s to VoIPBin, shared by all workers (16500 = 16.5/s, 99% of the 16.7/s "
     "account limit)."},
    {"OTP_VOIPBIN_BURST", OTP_CFG_INT, "16", 1, 100000, W,
     "Largest burst of VoIPBin requests, all workers together."},
    {"OTP_MAX_IN_FLIGHT", OTP_CFG_INT, "64", 1, 4096, W, "Call requests in flight per worker."},
    {"OTP_CALL_TIMEOUT_MS", OTP_CFG_INT, "10000", 100, 120000, W,
     "Timeout of one VoIPBin request."},
    {"OTP_CALL_STATUS_TIMEOUT_SECONDS", OTP_CFG_INT, "45", 1, 3600, W,
     "No final call event this long after call_requested: the worker asks VoIPBin (GET "
     "/v1.0/calls/{id}, one request token); still ringing or talking: asked again a third of it "
     "later."},
    {"OTP_FALLBACK_AFTER_SECONDS", OTP_CFG_INT, "20", 1, 3600, W,
     "No call heard this long after a request's first call_requested: fallback_available (once; "
     "GET /v1/requests/{id} shows it), so an app can offer \"Didn't get the call?\"."},
    {"OTP_LEASE_SECONDS", OTP_CFG_INT, "30", 2, 3600, W,
     "A claimed challenge returns to the pool if its worker has not finished by then."},
    {"OTP_CALLBACK_URL", OTP_CFG_STR, "", 0, 0, W,
     "Public URL of the verifier's /v1/webhooks/voipbin, for the call's own webhook_send: the "
     "\"heard\" marker after the first reading of the code (delivered only after it), the gate's "
     "no key pressed. Unset: delivered by the call's length (the timing rule)."},
    {"OTP_GATE_DEFAULT", OTP_CFG_BOOL, "0", 0, 1, W,
     "1 = every call asks for a key before reading the code (a request's delivery.gate wins)."},
    {"OTP_AMD_DEFAULT", OTP_CFG_BOOL, "0", 0, 1, W,
     "1 = answering-machine detection on every call: a machine is hung up on (delivery.amd wins)."},
    {"OTP_LIMIT_PHONE_15MIN", OTP_CFG_INT, "3", 0, 1000, W,
     "Calls and texts per phone number per 15 minutes: an accepted request counts one, each "
     "further call or fallback text one more (0 = no limit)."},
    {"OTP_LIMIT_PHONE_DAY", OTP_CFG_INT, "10", 0, 10000, W,
     "Calls and texts per phone number per day, counted the same way (0 = no limit)."},
    {"OTP_LIMIT_USER_HOUR", OTP_CFG_INT, "10", 0, 10000, W,
     "Calls and texts per user per hour, counted the same way (0 = no limit)."},
    {"OTP_LIMIT_COUNTRY_HOUR", OTP_CFG_INT, "5000", 0, 100000000, W,
     "Calls and texts per destination country per hour, counted the same way (0 = no "
     "limit)."},
    {"OTP_LIMIT_GLOBAL_HOUR", OTP_CFG_INT, "20000", 0, 100000000, W,
     "Calls and texts per hour in all, counted the same way; above it the circuit breaker "
     "opens (0 = no limit)."},
    {"OTP_COUNTRY_ALLOWLIST", OTP_CFG_STR, "", 0, 0, W,
     "Countries that may be called (us,de,...); empty = all. Others are blocked."},
    {"OTP_PREMIUM_PREFIXES", OTP_CFG_STR, "+1900,+1976,+881,+882,+883,+870,+979,+808,+4470,+449", 0,
     0, W, "E.164 prefixes never called (premium rate, satellite, shared cost): toll fraud."},
    {"OTP_BLOCKED_NUMBER_TYPES", OTP_CFG_STR, "premium_rate,shared_cost,uan,personal_number,pager",
     0, 0, W,
     "Number types (libphonenumber) never called: premium_rate, shared_cost, uan, personal_number, "
     "pager, voip, toll_free, ...; empty = none."},
    {"OTP_BRAND", OTP_CFG_STR, "Acme", 0, 0, W,
     "Brand name spoken in the call: 1-32 characters of UTF-8, no control characters."},
    {"OTP_DEFAULT_LOCALE", OTP_CFG_STR, "en-US", 0, 0, W,
     "Locale when neither the request nor the phone's country gives one (fr, en_GB resolve as a "
     "request's)."},
    {"OTP_LOCALE_DIR", OTP_CFG_STR, "", 0, 0, W,
     "Folder of the voice templates; empty = PREFIX/share/otp/locales of the install (else "
     "common/locales of the source tree)."},
    {"OTP_VERIFIER_LISTEN", OTP_CFG_STR, "127.0.0.1:8080", 0, 0, V,
     "host:port of the verifier's API."},
    {"OTP_API_RATE_PER_KEY", OTP_CFG_INT, "200", 0, 1000000, V,
     "API requests per second one API key may send (a burst of as many); more are answered 429 "
     "with Retry-After. 0 = no limit."},
    {"OTP_API_RATE_PER_ADDRESS", OTP_CFG_INT, "100", 0, 1000000, V,
     "API requests per second one client address may send (a burst of as many), counted before "
     "the key is checked; more are answered 429 with Retry-After. Behind a proxy every client "
     "has the proxy's address: limit there and set 0 here. 0 = no limit."},
    {"OTP_WEBHOOK_LISTEN", OTP_CFG_STR, "127.0.0.1:8081", 0, 0, V,
     "host:port of the VoIPBin webhook (POST /v1/webhooks/voipbin and nothing else): the one "
     "listener to expose to VoIPBin, behind TLS; the API listener does not serve it."},
    {"OTP_VERIFIER_TLS_CERT_FILE", OTP_CFG_STR, "", 0, 0, V,
     "PEM certificate chain (leaf first) for HTTPS on OTP_VERIFIER_LISTEN; empty = plain HTTP "
     "(then a TLS-terminating proxy goes in front). Read again on SIGHUP."},
    {"OTP_VERIFIER_TLS_KEY_FILE", OTP_CFG_STR, "", 0, 0, V,
     "PEM private key of OTP_VERIFIER_TLS_CERT_FILE."},
    {"OTP_WEBHOOK_TLS_CERT_FILE", OTP_CFG_STR, "", 0, 0, V,
     "PEM certificate chain for HTTPS on OTP_WEBHOOK_LISTEN (what VoIPBin reaches); empty = "
     "plain HTTP. Read again on SIGHUP."},
    {"OTP_WEBHOOK_TLS_KEY_FILE", OTP_CFG_STR, "", 0, 0, V,
     "PEM private key of OTP_WEBHOOK_TLS_CERT_FILE."},
    {"OTP_WEBHOOK_THREADS", OTP_CFG_INT, "4", 1, 256, V,
     "HTTP threads of the webhook listener (each with a database connection)."},
    {"OTP_WEBHOOK_PENDING_MAX_ROWS", OTP_CFG_INT, "10000", 1, 100000000, V,
     "Webhook events kept for calls not recorded yet (webhook_pending), at most: keeping one "
     "more drops the oldest. Events for calls that cannot be ours are never kept."},
    {"OTP_WEBHOOK_PENDING_MAX_BYTES", OTP_CFG_INT, "67108864", 65536, 1099511627776LL, V,
     "The same cap in bytes of the kept bodies (oldest dropped first)."},
    {"OTP_VERIFIER_ADMIN_LISTEN", OTP_CFG_STR, "127.0.0.1:9091", 0, 0, V,
     "host:port of the verifier's /healthz, /readyz and /metrics (not the API port); empty = off."},
    {"OTP_VERIFIER_THREADS", OTP_CFG_INT, "16", 1, 256, V,
     "HTTP threads (each with a database connection for status reads and webhooks); a code "
     "check does not hold one while it waits for the database."},
    {"OTP_VERIFIER_DB_CONNECTIONS", OTP_CFG_INT, "2", 1, 64, V,
     "Database connections that run code checks; the checks that wait while one commits go "
     "together in its next transaction (one disk flush for all)."},
    {"OTP_RETENTION_DAYS", OTP_CFG_INT, "30", 1, 3650, W | AP,
     "Challenges, calls and dead letters older than this are deleted (worker in the background, "
     "otp-admin purge); a number is replaced by its keyed hash once its challenge can no longer "
     "call or text."},
    {"OTP_PURGE_INTERVAL_SECONDS", OTP_CFG_INT, "300", 1, 86400, W,
     "How often a worker runs the retention purge (one worker at a time, small batches)."},
    {"OTP_WORKER_LISTEN", OTP_CFG_STR, "127.0.0.1:9090", 0, 0, W,
     "host:port of the worker's /healthz, /readyz and /metrics; empty = off."},
    {"OTP_HOOKS_LISTEN", OTP_CFG_STR, "127.0.0.1:9095", 0, 0, H,
     "host:port of otp-hooks' /healthz, /readyz and /metrics; empty = off."},
    {"OTP_HOOKS_CONSUMER_GROUP", OTP_CFG_STR, "otp-hooks", 0, 0, H,
     "Kafka consumer group of otp-hooks (apart from the workers': a slow application never "
     "holds up the relay)."},
    {"OTP_HOOKS_MAX_IN_FLIGHT", OTP_CFG_INT, "64", 1, 4096, H,
     "Webhook POSTs in flight per otp-hooks process."},
    {"OTP_HOOKS_MAX_IN_FLIGHT_PER_SERVICE", OTP_CFG_INT, "16", 1, 4096, H,
     "Webhook POSTs in flight to one service at most, so a slow receiver leaves the other "
     "services their share."},
    {"OTP_HOOKS_TIMEOUT_MS", OTP_CFG_INT, "10000", 100, 120000, H,
     "Timeout of one webhook POST (connect included); then it counts as failed and is retried."},
    {"OTP_HOOKS_RETRY_BASE_MS", OTP_CFG_INT, "1000", 10, 3600000, H,
     "Backoff base of webhook retries (exponential, full jitter; Retry-After honoured)."},
    {"OTP_HOOKS_RETRY_CAP_MS", OTP_CFG_INT, "3600000", 10, 86400000, H,
     "Longest pause between two attempts of one webhook."},
    {"OTP_HOOKS_GIVE_UP_SECONDS", OTP_CFG_INT, "86400", 10, 2592000, H,
     "An event not delivered this long after it was read is given up (recorded; otp-admin "
     "webhooks replay sends it again). Older events found on the topic are not sent."},
    {"OTP_HOOKS_KEEP_DAYS", OTP_CFG_INT, "7", 1, 3650, H,
     "Delivered and given-up webhook records older than this are deleted."},
    {"OTP_STARTUP_TIMEOUT_SECONDS", OTP_CFG_INT, "300", 0, 86400, W | M | H,
     "At start, wait this long for PostgreSQL and Kafka (retrying with a logged backoff up to 10 "
     "s) "
     "before giving up; 0 = try once."},
    {"OTP_LOG_LEVEL", OTP_CFG_STR, "info", 0, 0, W | V | P | M | A | H,
     "debug, info, warn or error."},
    {"OTP_LOG_FORMAT", OTP_CFG_STR, "logfmt", 0, 0, W | V | P | M | A | H,
     "Log lines as logfmt (key=value) or json (one object per line); librdkafka's own logs "
     "included."},
    {"OTP_DEMO_MODE", OTP_CFG_BOOL, "0", 0, 1, W | V | P | M | A | AP | H,
     "1 = local demo: sample secrets are accepted."},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static const char *values[NSETTINGS];
static char *owned[NSETTINGS];

/* Sample values from the docs and the demo; a production start refuses them. */
static const char *const sample_secrets[] = {
    "changeme",
    "secret",
    "demo",
    "test",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "vb_demo_access_key_not_secret",
    "demo-webhook-secret",
    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
};

static int find(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return (int)i;
    return -1;
}

static char *read_secret_file(const char *path, char *errstr, size_t errstr_size, const char *name)
{
    FILE *f = fopen(path, "r");
    char buf[4096];
    size_t n;

    if (!f) {
        snprintf(errstr, errstr_size, "%s_FILE: cannot open %s: %s", name, path, strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return strdup(buf);
}

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int otp_config_load(unsigned program, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const otp_setting_t *s = &settings[i];
        const char *v = getenv(s->name);

        values[i] = s->def;
        if (s->type == OTP_CFG_SECRET) {
            char fname[128];
            const char *path;
            snprintf(fname, sizeof(fname), "%s_FILE", s->name);
            path = getenv(fname);
            if (path && *path && (!v || !*v)) {
                free(owned[i]);
                owned[i] = read_secret_file(path, errstr, errstr_size, s->name);
                if (!owned[i])
                    return -1;
                v = owned[i];
            }
        }
        if (v)
            values[i] = v;
        if (!(s->programs & program))
            continue;
        if (!values[i] || (!*values[i] && !s->def)) {
            snprintf(errstr, errstr_size, "%s is required: %s", s->name, s->help);
            return -1;
        }
        if (s->type == OTP_CFG_INT || s->type == OTP_CFG_BOOL) {
            long n;
            if (parse_long(values[i], &n) || n < s->min || n > s->max) {
                snprintf(errstr, errstr_size, "%s=%s: expected a whole number from %ld to %ld",
                         s->name, values[i], s->min, s->max);
                return -1;
            }
        }
    }
    if (otp_log_level_parse(values[find("OTP_LOG_LEVEL")]) < 0) {
        snprintf(errstr, errstr_size, "OTP_LOG_LEVEL=%s: expected debug, info, warn or error",
                 values[find("OTP_LOG_LEVEL")]);
        return -1;
    }
    if (otp_log_format_parse(values[find("OTP_LOG_FORMAT")]) < 0) {
        snprintf(errstr, errstr_size, "OTP_LOG_FORMAT=%s: expected logfmt or json",
                 values[find("OTP_LOG_FORMAT")]);
        return -1;
    }
    if (!otp_config_demo_mode()) {
        for (size_t i = 0; i < NSETTINGS; i++) {
            if (settings[i].type != OTP_CFG_SECRET || !(settings[i].programs & program) ||
                !values[i])
                continue;
            for (size_t k = 0; k < sizeof(sample_secrets) / sizeof(*sample_secrets); k++) {
                /* Case does not matter (hex); a long sample also counts inside a
                 * list such as OTP_HASH_KEYS_PREVIOUS ("1:<sample>"). */
                size_t len = strlen(sample_secrets[k]);
                if (strcasecmp(values[i], sample_secrets[k]) == 0 ||
                    (len >= 32 && strcasestr(values[i], sample_secrets[k]))) {
                    snprintf(
                        errstr, errstr_size,
                        "%s holds a sample value; set a real secret (or OTP_DEMO_MODE=1 locally)",
                        settings[i].name);
                    return -1;
                }
            }
        }
    }
    return 0;
}

const char *otp_config_str(const char *name)
{
    int i = find(name);
    return i < 0 ? NULL : (values[i] ? values[i] : "");
}

const char *otp_config_default(const char *name)
{
    int i = find(name);
    return i < 0 ? NULL : settings[i].def;
}

long otp_config_int(const char *name)
{
    long v = 0;
    const char *s = otp_config_str(name);
    if (s)
        parse_long(s, &v);
    return v;
}

int otp_config_bool(const char *name)
{
    return otp_config_int(name) != 0;
}

int otp_config_demo_mode(void)
{
    const char *v = getenv("OTP_DEMO_MODE");
    return v && strcmp(v, "1") == 0;
}

int otp_config_common_flags(int argc, char **argv, unsigned program, const char *name,
                            const char *usage)
{
    if (argc != 2)
        return 0;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        otp_config_print_help(program, usage);
        return 1;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", name, OTP_VERSION);
        return 1;
    }
    return 0;
}

void otp_config_print_help(unsigned program, const char *usage)
{
    printf("%s\n\nSettings (environment; secrets also from NAME_FILE):\n", usage);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const otp_setting_t *s = &settings[i];
        if (!(s->programs & program))
            continue;
        printf("  %-26s %s%s%s%s\n", s->name, s->help, s->def ? " [default: " : " [required]",
               s->def ? (s->type == OTP_CFG_SECRET ? "none" : (*s->def ? s->def : "empty")) : "",
               s->def ? "]" : "");
    }
}

void otp_config_print_markdown(void)
{
    static const char *const progs[] = {"worker", "verifier",    "produce", "migrate",
                                        "admin",  "admin purge", "hooks"};
    printf("| setting | default | used by | meaning |\n|---|---|---|---|\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const otp_setting_t *s = &settings[i];
        char used[96] = "";
        size_t n = 0;
        for (int b = 0; b < 7; b++)
            if (s->programs & (1u << b))
                n += (size_t)snprintf(used + n, sizeof(used) - n, "%s%s", n ? ", " : "", progs[b]);
        printf("| `%s` | %s | %s | %s |\n", s->name,
               !s->def ? "**required**" : (*s->def ? s->def : "(empty)"), used, s->help);
    }
}
