/* SPDX-License-Identifier: Apache-2.0 */
/* otp-hooks: reads the status topic(s) and sends each event, signed, to the
 * webhook_url of its service (hooks.h). */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"
#include "otp_config.h"
#include "otp_db.h"
#include "otp_http.h"
#include "otp_kafka.h"
#include "otp_log.h"
#include "otp_service.h"
#include "otp_services.h"
#include "otp_time.h"
#include "otp_wait.h"

static volatile sig_atomic_t running = 1;

static void on_signal(int sig)
{
    (void)sig;
    running = 0;
}

int hooks_settings_load(hooks_t *h, char *err, size_t errsz)
{
    hooks_settings_t *c = &h->cfg;

    c->db_url = otp_config_str("OTP_DATABASE_URL");
    c->topic_status = otp_config_str("OTP_TOPIC_STATUS");
    c->group = otp_config_str("OTP_HOOKS_CONSUMER_GROUP");
    c->per_service_topics = otp_config_bool("OTP_STATUS_TOPIC_PER_SERVICE");
    c->max_in_flight = (int)otp_config_int("OTP_HOOKS_MAX_IN_FLIGHT");
    c->max_per_service = (int)otp_config_int("OTP_HOOKS_MAX_IN_FLIGHT_PER_SERVICE");
    c->timeout_ms = otp_config_int("OTP_HOOKS_TIMEOUT_MS");
    c->retry_base_ms = otp_config_int("OTP_HOOKS_RETRY_BASE_MS");
    c->retry_cap_ms = otp_config_int("OTP_HOOKS_RETRY_CAP_MS");
    c->give_up_s = otp_config_int("OTP_HOOKS_GIVE_UP_SECONDS");
    c->keep_days = otp_config_int("OTP_HOOKS_KEEP_DAYS");
    if (!*c->group) {
        snprintf(err, errsz, "OTP_HOOKS_CONSUMER_GROUP: must not be empty");
        return -1;
    }
    if (c->retry_base_ms > c->retry_cap_ms) {
        snprintf(err, errsz, "OTP_HOOKS_RETRY_BASE_MS=%ld: above OTP_HOOKS_RETRY_CAP_MS=%ld",
                 c->retry_base_ms, c->retry_cap_ms);
        return -1;
    }
    if (c->give_up_s > c->keep_days * 86400) {
        snprintf(err, errsz,
                 "OTP_HOOKS_KEEP_DAYS=%ld: records would be deleted before "
                 "OTP_HOOKS_GIVE_UP_SECONDS=%ld gives them up",
                 c->keep_days, c->give_up_s);
        return -1;
    }
    return 0;
}

static int probe_db(void *arg, char *err, size_t errsz)
{
    PGconn **out = arg;
    PGresult *r;

    *out = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-hooks", err, errsz);
    if (!*out)
        return -1;
    /* The migration that makes the table (and the role's rights) is applied. */
    r = PQexec(*out, "SELECT 1 FROM hook_deliveries LIMIT 0");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errsz, "OTP_DATABASE_URL: cannot read hook_deliveries (run otp-migrate): %s",
                 PQerrorMessage(*out));
        PQclear(r);
        PQfinish(*out);
        *out = NULL;
        return -1;
    }
    PQclear(r);
    return 0;
}

static int setup(hooks_t *h, PGconn **db, char *err, size_t errsz)
{
    int startup_s = (int)otp_config_int("OTP_STARTUP_TIMEOUT_SECONDS");
    rd_kafka_conf_t *conf;
    rd_kafka_topic_partition_list_t *topics;
    char pattern[512];

    if (hooks_settings_load(h, err, errsz) != 0)
        return -1;
    if (otp_wait_for("database", probe_db, db, startup_s, h->running, err, errsz) != 0)
        return -1;
    /* Offsets are stored by hand once a batch is in hook_deliveries. A new
     * group starts at the oldest event kept (KAFKA_AUTO_OFFSET_RESET=latest
     * starts it at the newest instead). */
    conf = otp_kafka_conf_new(err, errsz);
    if (!conf || otp_kafka_set(conf, "group.id", h->cfg.group, err, errsz) ||
        otp_kafka_set(conf, "enable.auto.offset.store", "false", err, errsz) ||
        (!getenv("KAFKA_AUTO_OFFSET_RESET") &&
         otp_kafka_set(conf, "auto.offset.reset", "earliest", err, errsz)))
        goto fail;
    if (!getenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY") &&
        otp_kafka_set(conf, "partition.assignment.strategy", "cooperative-sticky", err, errsz))
        goto fail;
    if (h->cfg.per_service_topics && !getenv("KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS") &&
        otp_kafka_set(conf, "topic.metadata.refresh.interval.ms", "30000", err, errsz))
        goto fail;
    h->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errsz);
    if (!h->consumer)
        goto fail;
    conf = NULL; /* owned by the consumer */
    if (otp_wait_for("kafka", otp_kafka_probe, h->consumer, startup_s, h->running, err, errsz) != 0)
        return -1;
    rd_kafka_poll_set_consumer(h->consumer);
    topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, h->cfg.topic_status, RD_KAFKA_PARTITION_UA);
    pattern[0] = '\0';
    /* Each service's own status topic too (a new one is found at the next
     * metadata refresh). */
    if (h->cfg.per_service_topics) {
        if (otp_services_topic_pattern(h->cfg.topic_status, "", pattern, sizeof(pattern)) != 0) {
            rd_kafka_topic_partition_list_destroy(topics);
            snprintf(err, errsz, "OTP_TOPIC_STATUS=%s: too long", h->cfg.topic_status);
            return -1;
        }
        rd_kafka_topic_partition_list_add(topics, pattern, RD_KAFKA_PARTITION_UA);
    }
    if (rd_kafka_subscribe(h->consumer, topics) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(topics);
        snprintf(err, errsz, "OTP_TOPIC_STATUS=%s: cannot subscribe", h->cfg.topic_status);
        return -1;
    }
    rd_kafka_topic_partition_list_destroy(topics);
    otp_info("subscribed", "topic=%s pattern=\"%s\" group=%s", h->cfg.topic_status, pattern,
             h->cfg.group);
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return -1;
}

static const char usage[] =
    "usage: otp-hooks                        run (settings from the environment)\n"
    "       otp-hooks --healthcheck          exit 0 if this host's otp-hooks answers /readyz\n"
    "                                        on OTP_HOOKS_LISTEN (for container healthchecks)\n"
    "       otp-hooks --settings-markdown    print the settings table as Markdown\n"
    "       otp-hooks --version | --help\n"
    "Reads otp.call_status and POSTs each event, signed (OTP-Signature), to its service's\n"
    "webhook_url: in order per request, retried with backoff, given up after\n"
    "OTP_HOOKS_GIVE_UP_SECONDS.";

int main(int argc, char **argv)
{
    static hooks_t h;
    PGconn *db = NULL;
    pthread_t sender;
    void *http = NULL;
    char err[512];

    if (otp_config_common_flags(argc, argv, OTP_PROG_HOOKS, "otp-hooks", usage))
        return 0;
    if (argc == 2 && strcmp(argv[1], "--settings-markdown") == 0) {
        otp_config_print_markdown();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--healthcheck") == 0)
        return otp_http_healthcheck("otp-hooks", "OTP_HOOKS_LISTEN", "/readyz");
    if (argc != 1) {
        fprintf(stderr, "otp-hooks: unknown arguments\n%s\n", usage);
        return 2;
    }
    if (otp_service_init(OTP_PROG_HOOKS, "otp-hooks") != 0)
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "otp-hooks: cannot initialise libcurl\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    h.running = &running;
    /* otp-hooks' statements are short, and PostgreSQL JIT-compiled its claim
     * at every run (31 ms) once a backlog moved the estimates past
     * jit_above_cost: a receiver got 27 deliveries a second instead of 746.
     * (The worker keeps JIT: its ingest statement takes a whole polled batch,
     * and ran 3,400 -> 4,239 requests/s with JIT on.) */
    otp_db_session_sql("SET jit = off");
    atomic_store(&h.alive_ms, otp_monotonic_ms());
    atomic_store(&h.sender_alive_ms, otp_monotonic_ms());
    if (setup(&h, &db, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-hooks: %s\n", err);
        return 2;
    }
    if (*otp_config_str("OTP_HOOKS_LISTEN")) {
        http = hooks_http_start(&h, otp_config_str("OTP_HOOKS_LISTEN"), err, sizeof(err));
        if (!http) {
            fprintf(stderr, "otp-hooks: %s\n", err);
            return 2;
        }
    }
    if (pthread_create(&sender, NULL, hooks_sender_thread, &h) != 0) {
        fprintf(stderr, "otp-hooks: cannot start the sender thread\n");
        return 2;
    }
    otp_info("hooks_started", "group=%s in_flight=%d per_service=%d", h.cfg.group,
             h.cfg.max_in_flight, h.cfg.max_per_service);
    while (running) {
        if (hooks_consume_poll(&h, &db, 100) < 0)
            usleep(200000);
        atomic_store(&h.alive_ms, otp_monotonic_ms());
    }
    /* Drain: the POSTs in flight finish and are recorded; the stored offsets
     * are committed as the group is left. */
    otp_info("hooks_draining", "in_flight=%lld", (long long)atomic_load(&h.m.in_flight));
    pthread_join(sender, NULL);
    rd_kafka_consumer_close(h.consumer);
    hooks_http_stop(http);
    rd_kafka_destroy(h.consumer);
    PQfinish(db);
    curl_global_cleanup();
    otp_info("hooks_stopped", "queued=%lld delivered=%lld", (long long)atomic_load(&h.m.queued),
             (long long)atomic_load(&h.m.delivered));
    return 0;
}
