/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus metrics: one table (OTP_METRICS below) gives each family's name,
 * type, label, buckets, programs and HELP; the exposition text comes from it.
 * Values live in this module (process-wide, lock-free updates). A labelled
 * family keeps up to OTP_METRIC_MAX_SERIES label values, first come; later
 * ones count under "other", so a hostile value cannot grow the page. */
#ifndef OTP_METRICS_H
#define OTP_METRICS_H

#include <stddef.h>

#include "otp_config.h"

#define OTP_METRIC_MAX_SERIES 40

/* X(id, name, type, label, buckets, programs, help). buckets: a name from
 * otp_metrics.c (NOBUCKETS for counters and gauges). */
#define OTP_METRICS(X)                                                                             \
    X(BUILD_INFO, "otp_build_info", GAUGE, NULL, NOBUCKETS,                                        \
      OTP_PROG_WORKER | OTP_PROG_VERIFIER | OTP_PROG_HOOKS,                                        \
      "Always 1; the labels say which program and release this is.")                               \
    X(WORKER_CONSUMED, "otp_worker_messages_consumed_total", COUNTER, NULL, NOBUCKETS,             \
      OTP_PROG_WORKER, "Messages read from the requests topic.")                                   \
    X(WORKER_REQUESTS, "otp_worker_requests_total", COUNTER, "outcome", NOBUCKETS,                 \
      OTP_PROG_WORKER,                                                                             \
      "Requests by what ingest did with them: accepted, duplicate, dlq, expired_on_arrival, "      \
      "blocked, rate_limited; failed = ended without a delivered code.")                           \
    X(WORKER_CALLS, "otp_worker_calls_total", COUNTER, "outcome", NOBUCKETS, OTP_PROG_WORKER,      \
      "VoIPBin calls: placed, adopted (found after an ambiguous failure), retried.")               \
    X(WORKER_STATUS_EVENTS, "otp_worker_status_events_total", COUNTER, "type", NOBUCKETS,          \
      OTP_PROG_WORKER,                                                                             \
      "Status events relayed to the status topic, by type (call outcomes, verify results...).")    \
    X(WORKER_DLQ, "otp_worker_dlq_messages_total", COUNTER, "reason", NOBUCKETS, OTP_PROG_WORKER,  \
      "Messages the broker acknowledged on the dead-letter topic, by reason.")                     \
    X(WORKER_RELAY_ERRORS, "otp_worker_relay_errors_total", COUNTER, NULL, NOBUCKETS,              \
      OTP_PROG_WORKER, "Relay batches the broker did not acknowledge (sent again later).")         \
    X(WORKER_DB_ERRORS, "otp_worker_db_errors_total", COUNTER, NULL, NOBUCKETS, OTP_PROG_WORKER,   \
      "Failed PostgreSQL statements.")                                                             \
    X(WORKER_IN_FLIGHT, "otp_worker_calls_in_flight", GAUGE, NULL, NOBUCKETS, OTP_PROG_WORKER,     \
      "VoIPBin requests in flight on this worker.")                                                \
    X(WORKER_CIRCUIT_OPEN, "otp_worker_circuit_open", GAUGE, NULL, NOBUCKETS, OTP_PROG_WORKER,     \
      "1 while the global hourly cap refuses new requests.")                                       \
    X(WORKER_CONSUMER_LAG, "otp_worker_consumer_lag_messages", GAUGE, NULL, NOBUCKETS,             \
      OTP_PROG_WORKER,                                                                             \
      "Messages not yet consumed on this worker's partitions (high watermark - position).")        \
    X(WORKER_PARTITIONS, "otp_worker_partitions_assigned", GAUGE, NULL, NOBUCKETS,                 \
      OTP_PROG_WORKER, "Partitions of the requests topic assigned to this worker.")                \
    X(WORKER_OUTBOX_BACKLOG, "otp_worker_outbox_backlog", GAUGE, NULL, NOBUCKETS, OTP_PROG_WORKER, \
      "Status events written but not yet acknowledged by the broker (all "                         \
      "workers; -1 when the database did not answer).")                                            \
    X(WORKER_REQUEST_TO_CALL, "otp_worker_request_to_call_seconds", HISTOGRAM, NULL, SLOW,         \
      OTP_PROG_WORKER, "From requested_at to the first call_requested event of a request.")        \
    X(VOIPBIN_REQUEST, "otp_voipbin_request_duration_seconds", HISTOGRAM, "op", MEDIUM,            \
      OTP_PROG_WORKER,                                                                             \
      "VoIPBin REST request time: create_call, create_message, list_calls, hangup_call.")          \
    X(VOIPBIN_RESPONSES, "otp_voipbin_responses_total", COUNTER, "status", NOBUCKETS,              \
      OTP_PROG_WORKER, "VoIPBin answers by HTTP status class: 2xx, 429, 4xx, 5xx, transport.")     \
    X(VOIPBIN_RATE_LIMITED, "otp_voipbin_rate_limited_total", COUNTER, NULL, NOBUCKETS,            \
      OTP_PROG_WORKER, "VoIPBin 429 Too Many Requests answers.")                                   \
    X(VERIFIER_VERIFY, "otp_verifier_verify_total", COUNTER, "result", NOBUCKETS,                  \
      OTP_PROG_VERIFIER,                                                                           \
      "Code checks (API and keypad): verified, incorrect, rejected (cannot be checked), error.")   \
    X(VERIFIER_VERIFY_LATENCY, "otp_verifier_verify_duration_seconds", HISTOGRAM, NULL, FAST,      \
      OTP_PROG_VERIFIER, "Time of one POST /v1/verify check, database included.")                  \
    X(VERIFIER_CHECK_TRANSACTIONS, "otp_verifier_check_transactions_total", COUNTER, "kind",       \
      NOBUCKETS, OTP_PROG_VERIFIER,                                                                \
      "Transactions of code checks: alone (one check), batch (several, one commit), split (a "     \
      "batch that waited on a row lock and ran its checks one by one instead).")                   \
    X(VERIFIER_CHECKS_DEFERRED, "otp_verifier_checks_deferred_total", COUNTER, NULL, NOBUCKETS,    \
      OTP_PROG_VERIFIER,                                                                           \
      "Checks of a batch run by a later statement of its transaction: a user's second and later "  \
      "checks in one batch, each seeing the one before.")                                          \
    X(VERIFIER_BAD_REQUESTS, "otp_verifier_bad_requests_total", COUNTER, NULL, NOBUCKETS,          \
      OTP_PROG_VERIFIER, "Requests refused as malformed (400).")                                   \
    X(VERIFIER_UNAUTHORIZED, "otp_verifier_unauthorized_total", COUNTER, NULL, NOBUCKETS,          \
      OTP_PROG_VERIFIER, "API requests without a known API key (401).")                            \
    X(VERIFIER_FORBIDDEN, "otp_verifier_forbidden_total", COUNTER, NULL, NOBUCKETS,                \
      OTP_PROG_VERIFIER, "API requests with a key that lacks the route's scope (403).")            \
    X(VERIFIER_RATE_LIMITED, "otp_verifier_rate_limited_total", COUNTER, "limit", NOBUCKETS,       \
      OTP_PROG_VERIFIER,                                                                           \
      "API requests answered 429 by OTP_API_RATE_PER_ADDRESS (address) or "                        \
      "OTP_API_RATE_PER_KEY (key).")                                                               \
    X(VERIFIER_WEBHOOKS, "otp_verifier_webhooks_total", COUNTER, "result", NOBUCKETS,              \
      OTP_PROG_VERIFIER,                                                                           \
      "VoIPBin webhooks: accepted, bad_signature, early (kept until the call is recorded), "       \
      "not_ours (a call that is not ours: not kept), dropped (kept, then dropped by "              \
      "OTP_WEBHOOK_PENDING_MAX_ROWS/_BYTES).")                                                     \
    X(VERIFIER_FRONT_DOOR, "otp_verifier_front_door_total", COUNTER, "result", NOBUCKETS,          \
      OTP_PROG_VERIFIER,                                                                           \
      "POST /v1/requests: queued (on the topic), repeated (a known request_id: nothing "           \
      "published), unavailable (503: not on the topic).")                                          \
    X(VERIFIER_DB_ERRORS, "otp_verifier_db_errors_total", COUNTER, NULL, NOBUCKETS,                \
      OTP_PROG_VERIFIER, "Requests answered 503 because the database failed.")                     \
    X(HOOKS_EVENTS, "otp_hooks_events_total", COUNTER, "result", NOBUCKETS, OTP_PROG_HOOKS,        \
      "Status events otp-hooks read: queued (written for delivery), skipped (the service has no "  \
      "webhook_url, or a copy of the event was written before), too_old, invalid.")                \
    X(HOOKS_DELIVERIES, "otp_hooks_deliveries_total", COUNTER, "outcome", NOBUCKETS,               \
      OTP_PROG_HOOKS,                                                                              \
      "Webhook attempts by outcome: delivered (2xx), retry (failed, tried again later), "          \
      "gave_up (failed, past OTP_HOOKS_GIVE_UP_SECONDS).")                                         \
    X(HOOKS_FAILURES, "otp_hooks_failures_total", COUNTER, "cause", NOBUCKETS, OTP_PROG_HOOKS,     \
      "Failed webhook attempts by cause: 4xx, 429, 5xx, 3xx, timeout, transport.")                 \
    X(HOOKS_DURATION, "otp_hooks_request_duration_seconds", HISTOGRAM, NULL, MEDIUM,               \
      OTP_PROG_HOOKS, "Time of one webhook POST, until the answer or the failure.")                \
    X(HOOKS_IN_FLIGHT, "otp_hooks_in_flight", GAUGE, NULL, NOBUCKETS, OTP_PROG_HOOKS,              \
      "Webhook POSTs in flight on this process.")                                                  \
    X(HOOKS_OLDEST, "otp_hooks_oldest_undelivered_seconds", GAUGE, NULL, NOBUCKETS,                \
      OTP_PROG_HOOKS,                                                                              \
      "Age of the oldest event still to deliver (all processes; 0 = none, -1 = the database "      \
      "did not answer).")                                                                          \
    X(HOOKS_DB_ERRORS, "otp_hooks_db_errors_total", COUNTER, NULL, NOBUCKETS, OTP_PROG_HOOKS,      \
      "Failed PostgreSQL statements of otp-hooks.")

typedef enum {
#define OTP_METRIC_ENUM(id, ...) OTP_M_##id,
    OTP_METRICS(OTP_METRIC_ENUM)
#undef OTP_METRIC_ENUM
        OTP_M__COUNT
} otp_metric_id_t;

/* Sets the labels of otp_build_info. Call once from main. */
void otp_metrics_init(const char *program, const char *version);

/* Updates a family; label is the label value (NULL for an unlabelled family).
 * Thread-safe, lock-free once the label value has a series. */
void otp_metric_add(otp_metric_id_t id, const char *label, long long n);
void otp_metric_set(otp_metric_id_t id, const char *label, long long v);
/* A program's own atomic counters as metric families: a table of where
 * each counter lies in the program's struct (OTP_METRIC_COUNTER(struct,
 * field, id, label)), copied in by otp_metric_set_counters. */
typedef struct otp_metric_counter {
    otp_metric_id_t id;
    const char *label; /* NULL: the family has none */
    size_t offset;     /* of an atomic_llong in the program's struct */
} otp_metric_counter_t;

#define OTP_METRIC_COUNTER(type, field, id, label)                                                 \
    {                                                                                              \
        id, label, offsetof(type, field)                                                           \
    }

void otp_metric_set_counters(const otp_metric_counter_t *t, size_t n, const void *base);

/* Histograms: one observation in seconds. */
void otp_metric_observe(otp_metric_id_t id, const char *label, double seconds);

/* The exposition (text format 0.0.4) of every family of `programs`: HELP,
 * TYPE, then the samples. Returns a malloc'd string the caller frees, NULL on
 * allocation failure. Thread-safe. */
char *otp_metrics_render(unsigned programs);

/* Forgets every value (unit tests). Not thread-safe. */
void otp_metrics_reset(void);

#endif
