/* SPDX-License-Identifier: Apache-2.0 */
/* otp-worker: consumes otp.requested, places VoIPBin calls, relays status. */
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "delivery.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_service.h"
#include "otp_db.h"
#include "otp_kafka.h"
#include "otp_log.h"
#include "otp_paths.h"
#include "otp_metrics.h"
#include "otp_http.h"
#include "otp_phone.h"
#include "otp_time.h"
#include "otp_version.h"
#include "otp_wait.h"
#include "worker.h"

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

static int probe_db(void *arg, char *err, size_t errsz)
{
    PGconn **out = arg;
    *out = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-worker", err, errsz);
    return *out ? 0 : -1;
}

static rd_kafka_t *new_producer(char *err, size_t errsz)
{
    rd_kafka_conf_t *conf = otp_kafka_conf_new(err, errsz);

    if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", err, errsz) ||
        otp_kafka_set(conf, "linger.ms", "5", err, errsz))
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_report);
    return rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errsz);
}

static int setup(worker_t *w, intake_t *in, relay_t *rl, struct dispatch **d, char *err,
                 size_t errsz)
{
    int startup_s = (int)otp_config_int("OTP_STARTUP_TIMEOUT_SECONDS");
    const worker_settings_t *c = &w->cfg;
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *topics;
    char pattern[512];

    if (worker_settings_load(w, err, errsz) != 0)
        return -1;
    in->w = w;
    in->ledger = limits_ledger_new(&w->limits);
    if (!in->ledger) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    if (otp_wait_for("database", probe_db, &in->db, startup_s, w->running, err, errsz) != 0)
        return -1;
    w->services =
        otp_services_start(otp_config_str("OTP_DATABASE_URL"), &w->policy, 0, NULL, 0, err, errsz);
    if (!w->services)
        return -1;
    *d = dispatch_new(w, err, errsz);
    if (!*d)
        return -1;
    atomic_store(&w->m.db_ok, 1);

    /* The producer of the DLQ copies (main thread) and the status events
     * (relay thread): one instance, thread-safe, each thread waiting on its
     * own tracker (delivery.h); a second instance cost about 4 MiB of RSS.
     * Idempotent, so retries keep order. */
    w->producer = new_producer(err, errsz);
    rl->producer = w->producer;
    if (!rl->producer)
        return -1;
    if (otp_wait_for("kafka", otp_kafka_probe, w->producer, startup_s, w->running, err, errsz) != 0)
        return -1;
    rl->w = w;
    rl->db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-worker-relay", err, errsz);
    if (!rl->db)
        return -1;

    /* Consumer: offsets are stored by hand once a batch is durable in PostgreSQL. */
    conf = otp_kafka_conf_new(err, errsz);
    if (!conf ||
        otp_kafka_set(conf, "group.id", otp_config_str("OTP_CONSUMER_GROUP"), err, errsz) ||
        otp_kafka_set(conf, "enable.auto.offset.store", "false", err, errsz) ||
        otp_kafka_set(conf, "auto.offset.reset", "earliest", err, errsz))
        return -1;
    /* A restarted worker keeps its partitions (static membership: no
     * rebalance if it is back within the session timeout), and the others
     * keep consuming theirs while the group rebalances (cooperative-sticky).
     * Static only with an explicit OTP_WORKER_ID: the default (host and pid)
     * changes at every start. KAFKA_* settings still win. */
    if (*otp_config_str("OTP_WORKER_ID") && !getenv("KAFKA_GROUP_INSTANCE_ID") &&
        otp_kafka_set(conf, "group.instance.id", c->worker_id, err, errsz))
        return -1;
    /* A new service's topic is seen at the next metadata refresh (librdkafka's
     * default is 5 minutes). */
    if (!getenv("KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS") &&
        otp_kafka_set(conf, "topic.metadata.refresh.interval.ms", "30000", err, errsz))
        return -1;
    if (!getenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY") &&
        otp_kafka_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errsz))
        return -1;
    /* Prefetch seconds of ingest, not a backlog: librdkafka's defaults (64
     * MiB, 100,000 messages a partition) held most of a 100,000-request
     * backlog in memory (peak RSS 87 MiB against 44 at 5,000). Not less than
     * seconds either: librdkafka before 2.1 (Debian 12 has 2.0.2) stops
     * fetching a partition for a whole second (rd_kafka_max_block_ms; the
     * fetch.queue.backoff.ms of 2.1 is not there) each time its queue is over
     * either bound, so a queue shorter than a second of ingest runs dry: with
     * 2 MiB and 2,000 messages, 20-30% of an ingest run was the main thread
     * waiting on an empty queue, 300-450 ms after every ~2,700 messages. */
    if (!getenv("KAFKA_QUEUED_MAX_MESSAGES_KBYTES") &&
        otp_kafka_set(conf, "queued.max.messages.kbytes", "8192", err, errsz))
        return -1;
    if (!getenv("KAFKA_QUEUED_MIN_MESSAGES") &&
        otp_kafka_set(conf, "queued.min.messages", "10000", err, errsz))
        return -1;
    w->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errsz);
    if (!w->consumer)
        return -1;
    rd_kafka_poll_set_consumer(w->consumer);
    /* The default service's topic, and every service's own (by pattern: a
     * service made later is found at the next metadata refresh). */
    if (otp_services_topic_pattern(c->topic_requests, c->topic_dlq, pattern, sizeof(pattern)) !=
        0) {
        snprintf(err, errsz, "OTP_TOPIC_REQUESTS=%s: too long", c->topic_requests);
        return -1;
    }
    topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, c->topic_requests, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, pattern, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(w->consumer, topics) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(topics);
        snprintf(err, errsz, "OTP_TOPIC_REQUESTS=%s: cannot subscribe", c->topic_requests);
        return -1;
    }
    otp_info("subscribed", "topic=%s pattern=\"%s\"", c->topic_requests, pattern);
    rd_kafka_topic_partition_list_destroy(topics);
    return 0;
}

/* --preview LOCALE CODE: prints the language and the SSML a call would say,
 * with OTP_BRAND and OTP_LOCALE_DIR as configured; no other setting needed. */
static int preview(const char *locale, const char *code)
{
    char dir[1024], err[512];
    const char *brand = getenv("OTP_BRAND") ? getenv("OTP_BRAND") : "Acme";
    otp_voice_catalog_t *cat;
    const char *picked;
    char *text;

    if (getenv("OTP_LOCALE_DIR") && *getenv("OTP_LOCALE_DIR"))
        snprintf(dir, sizeof(dir), "%s", getenv("OTP_LOCALE_DIR"));
    else
        otp_data_dir("locales", "common/locales", dir, sizeof(dir));
    cat = otp_voice_load(dir, err, sizeof(err));
    if (!cat) {
        fprintf(stderr, "otp-worker: %s\n", err);
        return 2;
    }
    if (otp_voice_brand_check(brand, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-worker: %s\n", err);
        otp_voice_destroy(cat);
        return 2;
    }
    picked = otp_voice_pick(cat, locale, "", "en-US");
    text = otp_voice_render_code(cat, NULL, picked, brand, code);
    if (!text) {
        fprintf(stderr, "otp-worker: cannot render code \"%s\" (4-10 digits)\n", code);
        otp_voice_destroy(cat);
        return 2;
    }
    printf("%s\t%s\t%s\n", picked, otp_voice_language(cat, picked), text);
    free(text);
    otp_voice_destroy(cat);
    return 0;
}

static const char usage[] =
    "usage: otp-worker                        run (settings from the environment)\n"
    "       otp-worker --preview LOCALE CODE  print the call's language and SSML\n"
    "       otp-worker --keygen               print a new keypad key pair (OTP_KEYPAD_*)\n"
    "       otp-worker --healthcheck          exit 0 if this host's worker answers /readyz\n"
    "                                         on OTP_WORKER_LISTEN (for container healthchecks)\n"
    "       otp-worker --settings-markdown    print the settings table as Markdown\n"
    "       otp-worker --version | --help\n"
    "Consumes otp.requested, calls, relays otp.call_status.";

int main(int argc, char **argv)
{
    static worker_t w;
    static intake_t in;
    struct dispatch *d = NULL;
    char err[512];
    void *http = NULL;
    static relay_t rl;
    pthread_t dispatcher, purger, relayer;
    int64_t purge_at = 0;

    otp_json_wipe_freed(); /* before any json_t: codes pass through JSON */
    if (otp_config_common_flags(argc, argv, OTP_PROG_WORKER, "otp-worker", usage))
        return 0;
    if (argc == 2 && strcmp(argv[1], "--keygen") == 0) {
        /* The keypad key pair: the producer seals codes to the public key. */
        unsigned char pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
        char pk_hex[2 * sizeof(pk) + 1], sk_hex[2 * sizeof(sk) + 1];
        if (otp_crypto_init() != 0)
            return 2;
        crypto_box_keypair(pk, sk);
        sodium_bin2hex(pk_hex, sizeof(pk_hex), pk, sizeof(pk));
        sodium_bin2hex(sk_hex, sizeof(sk_hex), sk, sizeof(sk));
        printf("OTP_KEYPAD_PUBLIC_KEY=%s\nOTP_KEYPAD_SECRET_KEY=%s\n", pk_hex, sk_hex);
        sodium_memzero(sk, sizeof(sk));
        sodium_memzero(sk_hex, sizeof(sk_hex));
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--settings-markdown") == 0) {
        otp_config_print_markdown();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--healthcheck") == 0)
        return otp_http_healthcheck("otp-worker", "OTP_WORKER_LISTEN", "/readyz");
    if (argc == 4 && strcmp(argv[1], "--preview") == 0)
        return preview(argv[2], argv[3]);
    if (argc != 1) {
        fprintf(stderr, "otp-worker: unknown arguments\n%s\n", usage);
        return 2;
    }
    if (otp_service_init(OTP_PROG_WORKER, "otp-worker") != 0)
        return 2;
    atomic_store(&w.alive_ms, otp_monotonic_ms());
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    w.running = &running;
    if (setup(&w, &in, &rl, &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-worker: %s\n", err);
        return 2;
    }
    if (*otp_config_str("OTP_WORKER_LISTEN")) {
        http = worker_http_start(&w, otp_config_str("OTP_WORKER_LISTEN"), err, sizeof(err));
        if (!http) {
            fprintf(stderr, "otp-worker: %s\n", err);
            return 2;
        }
    }
    otp_info("worker_started", "worker_id=%s in_flight=%d", w.cfg.worker_id, w.cfg.max_in_flight);

    /* Calls on their own thread and connection: a burst of calls never holds
     * up ingest, and the two use both cores. */
    if (pthread_create(&dispatcher, NULL, dispatch_thread, d) != 0) {
        fprintf(stderr, "otp-worker: cannot start the dispatch thread\n");
        return 2;
    }
    /* The relay on a thread and connection of its own (the producer is shared). */
    if (pthread_create(&relayer, NULL, relay_thread, &rl) != 0) {
        fprintf(stderr, "otp-worker: cannot start the relay thread\n");
        return 2;
    }
    /* Retention on a fourth thread and connection: never in the way of ingest. */
    if (pthread_create(&purger, NULL, purge_thread, &w) != 0) {
        fprintf(stderr, "otp-worker: cannot start the purge thread\n");
        return 2;
    }
    while (running) {
        int64_t now = otp_monotonic_ms();

        ingest_poll(&in, 50);
        rd_kafka_poll(w.producer, 0);
        atomic_store(&w.alive_ms, otp_monotonic_ms());
        atomic_store(&w.m.db_ok,
                     PQstatus(in.db) == CONNECTION_OK && atomic_load(&w.m.dispatch_db_ok));
        if (otp_db_ensure(in.db) != 0) {
            usleep(200000);
            continue;
        }
        if (now >= purge_at) {
            if (limits_ledger_purge(in.db) != 0)
                atomic_fetch_add(&w.m.db_errors, 1);
            purge_at = now + 60000;
        }
    }

    /* Drain: no new messages or claims; the calls in flight finish and are
     * recorded (dispatch thread), then relay, commit offsets, leave the group. */
    otp_info("worker_draining", "in_flight=%d", (int)atomic_load(&w.m.in_flight));
    pthread_join(dispatcher, NULL);
    pthread_join(purger, NULL);
    atomic_store(&rl.stop, 1);
    pthread_join(relayer, NULL);
    rd_kafka_consumer_close(w.consumer);
    rd_kafka_flush(w.producer, 5000);
    worker_http_stop(http);
    rd_kafka_destroy(w.consumer);
    rd_kafka_destroy(w.producer);
    PQfinish(rl.db);
    dispatch_free(d);
    otp_services_stop(w.services);
    otp_voice_destroy(w.voice);
    limits_ledger_destroy(in.ledger);
    PQfinish(in.db);
    otp_keyring_clear(&w.keys);
    otp_info("worker_stopped", "consumed=%lld calls=%lld", (long long)w.m.consumed,
             (long long)w.m.calls_placed);
    return 0;
}
