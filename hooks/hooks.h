/* SPDX-License-Identifier: Apache-2.0 */
/* otp-hooks: signed status webhooks to the applications (issue 23). Three
 * threads, each with its own PostgreSQL connection, sharing only the
 * read-only hooks_t and its atomic counters:
 *   main    consumes the status topic(s) in its own group and writes each
 *           event of a service with a webhook_url to hook_deliveries, then
 *           stores the offsets (hooks/consume.c): a slow application never
 *           slows the relay, and nothing read is lost;
 *   sender  claims due deliveries (the lowest undelivered seq of each request,
 *           at most OTP_HOOKS_MAX_IN_FLIGHT_PER_SERVICE per service), POSTs
 *           them signed with libcurl multi and records each outcome with its
 *           backoff (hooks/sender.c);
 *   http    /healthz, /readyz and /metrics (hooks/http.c).
 * Stateless: any number of processes share the work through the table. */
#ifndef HOOKS_HOOKS_H
#define HOOKS_HOOKS_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "otp_policy.h"

typedef struct hooks_settings {
    const char *db_url, *topic_status, *group;
    int per_service_topics;
    int max_in_flight, max_per_service;
    long timeout_ms, retry_base_ms, retry_cap_ms;
    long give_up_s, keep_days;
} hooks_settings_t;

typedef struct hooks_metrics {
    atomic_llong queued, skipped, too_old, invalid;
    atomic_llong delivered, retried, gave_up;
    atomic_llong f_4xx, f_429, f_5xx, f_3xx, f_timeout, f_transport;
    atomic_llong in_flight, db_errors;
} hooks_metrics_t;

typedef struct hooks {
    hooks_settings_t cfg;
    rd_kafka_t *consumer; /* main thread; thread-safe reads by http */
    hooks_metrics_t m;
    volatile sig_atomic_t *running;
    atomic_llong alive_ms;        /* otp_monotonic_ms() of the main loop's last turn */
    atomic_llong sender_alive_ms; /* the same of the sender's loop */
} hooks_t;

/* Reads the OTP_HOOKS_* settings (after otp_config_load). -1 with errstr
 * naming the setting. main.c. */
int hooks_settings_load(hooks_t *h, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The service an event belongs to: the topic's (OTP_TOPIC_STATUS.<service>),
 * else the event's "service" field, else the default service. out is
 * OTP_SERVICE_MAX + 1 bytes. consume.c; pure. */
void hooks_event_service(const char *base_topic, const char *topic, const char *event_service,
                         char *out);

/* Polls up to one batch (waiting at most timeout_ms), writes it to
 * hook_deliveries in one statement and, once that committed, stores the
 * offsets. *db is the main thread's connection (opened or reset here).
 * Returns the messages handled, -1 when the batch could not be written (it
 * is handed back by seeking). consume.c. */
int hooks_consume_poll(hooks_t *h, PGconn **db, int timeout_ms);

/* The sender thread (arg: hooks_t); returns when *running is 0, after the
 * POSTs in flight finished and were recorded. sender.c. */
void *hooks_sender_thread(void *arg);

/* The admin listener on listen ("host:port"). NULL with errstr. http.c. */
void *hooks_http_start(hooks_t *h, const char *listen, char *errstr, size_t errstr_size);
void hooks_http_stop(void *daemon);

#endif
