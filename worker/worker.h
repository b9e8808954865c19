/* SPDX-License-Identifier: Apache-2.0 */
/* otp-worker: five threads, each with its own state, sharing only the
 * read-only worker_t (settings, keys, templates), its atomic counters and
 * PostgreSQL.
 *   main      ingest (Kafka → challenges, worker/ingest.c): intake_t;
 *   relay     on the worker that holds the relay lock, outbox →
 *             otp.call_status (worker/relay.c), with a connection of its
 *             own, so that waiting on the broker's acknowledgements never
 *             holds up ingest (the producer is shared: each thread waits on
 *             its own tracker): relay_t;
 *   dispatch  due challenges → VoIPBin calls and their outcomes
 *             (worker/dispatch.c, with policy.c, challenge.c and budget.c),
 *             asleep until a row is due or otp_due says so: dispatch_t;
 *   purge     retention (worker/purge.c), on a connection of its own;
 *   http      /healthz, /readyz and /metrics (worker/http.c), reading only
 *             atomics and the consumer's assignment (librdkafka handles are
 *             thread-safe).
 * Settings are read in settings.c; main.c starts and stops the threads. */
#ifndef OTP_WORKER_H
#define OTP_WORKER_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "delivery.h"
#include "limits.h"
#include "otp_crypto.h"
#include "otp_services.h"
#include "otp_voice.h"
#include "policy.h"

/* What a lease must hold beyond one VoIPBin request (OTP_CALL_TIMEOUT_MS): the
 * synchronous look-ups the dispatcher may run before it reads a finished
 * call (at most DISPATCH_LOOKUP_ROUND_MS a round) and the commit that
 * records the call. A shorter lease can run out under a live worker still
 * waiting on VoIPBin; another worker's look-up then finds nothing yet and
 * places a second call, so such a lease is refused at start. */
#define DISPATCH_LOOKUP_ROUND_MS 1000
#define WORKER_LEASE_MARGIN_MS 2000

typedef struct worker_settings {
    const char *topic_requests, *topic_status, *topic_dlq;
    int status_topic_per_service; /* OTP_STATUS_TOPIC_PER_SERVICE */
    const char *caller_id, *brand, *default_locale, *callback_url;
    int gate_default, amd_default, sms_fallback_default;
    int keypad_enabled;
    unsigned char keypad_pk[32], keypad_sk[32];
    char worker_id[128];
    int code_length, ttl_s, max_attempts, max_call_attempts;
    policy_cfg_t policy; /* OTP_MIN_REMAINING_SECONDS, OTP_RETRY_BASE_MS, OTP_RETRY_CAP_MS */
    int lease_s, max_in_flight;
    int call_status_timeout_s; /* OTP_CALL_STATUS_TIMEOUT_SECONDS */
    int fallback_after_s;      /* OTP_FALLBACK_AFTER_SECONDS */
    long call_timeout_ms;      /* OTP_CALL_TIMEOUT_MS */
    char rate_per_s[32], burst[16];
    int n_caller_ids;
    struct {
        char country[3];
        char number[18];
    } caller_ids[32]; /* OTP_CALLER_ID_BY_COUNTRY */
} worker_settings_t;

/* Counters and flags every thread may touch. */
typedef struct worker_metrics {
    atomic_llong consumed, accepted, duplicates, dlq, expired_on_arrival;
    atomic_llong calls_placed, calls_failed, calls_retried, calls_adopted;
    atomic_llong relayed, relay_errors, db_errors;
    atomic_llong in_flight, blocked, rate_limited;
    atomic_int db_ok, kafka_ok, circuit_open;
    atomic_int dispatch_db_ok; /* the dispatch thread's connection is up */
} worker_metrics_t;

/* Shared by every thread: written before they start, read-only after, except
 * the atomics. */
typedef struct worker {
    worker_settings_t cfg;
    /* The deployment's policy (the default service, and the base of every
     * other), and every service as it is now (otp_services.h). */
    otp_policy_t policy;
    otp_services_t *services;
    otp_keyring_t keys;
    otp_voice_catalog_t *voice;
    limits_cfg_t limits;
    rd_kafka_t *consumer; /* consumed by the main thread */
    rd_kafka_t *producer; /* DLQ copies (main thread) and status events (relay thread) */
    worker_metrics_t m;
    volatile sig_atomic_t *running;
    atomic_llong alive_ms; /* otp_monotonic_ms() of the main loop's last turn (/healthz) */
} worker_t;

/* Reads every setting into w (cfg, limits, keys, voice): -1 with errstr
 * naming the bad setting. settings.c. */
int worker_settings_load(worker_t *w, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The main thread's own state. */
typedef struct intake {
    worker_t *w;
    PGconn *db;
    limits_ledger_t *ledger; /* ingest: the budgets of the batch being written */
    /* Acknowledgements of the DLQ copies. Kept here, not on a stack: a report
     * that arrives after a timed-out wait must not land on a dead frame.
     * Pending counts carry over; failures are per batch. */
    delivery_tracker_t dlq_acks;
} intake_t;

/* The relay thread's own state. */
typedef struct relay {
    worker_t *w;
    PGconn *db;
    rd_kafka_t *producer;    /* the worker's (w->producer) */
    delivery_tracker_t acks; /* as dlq_acks above */
    int session;             /* backend pid of db while it holds the relay lock, 0 = none */
    long deleted;            /* events deleted since the relay last vacuumed the outbox */
    atomic_int stop;         /* set by main once the dispatcher has recorded its last calls */
} relay_t;

/* Polls up to one batch of otp.requested (waiting at most timeout_ms), makes
 * its effect durable in PostgreSQL, then stores the offsets. Returns the
 * number of messages handled, -1 on a database or broker error (the batch is
 * handed back by seeking, nothing is stored). */
int ingest_poll(intake_t *in, int timeout_ms);

/* The most events one relay_run sends. */
#define RELAY_BATCH 1000

/* Takes the relay's session lock if nobody holds it (kept until the session
 * ends). 1 this worker relays, 0 another does, -1 error. */
int relay_lead(relay_t *rl);

/* Sends pending outbox rows to otp.call_status and deletes the acknowledged
 * ones. Only the worker holding the relay lock relays, so events stay in
 * order per request; on the others it returns 0 at once. Returns rows
 * relayed, -1 on error. */
int relay_run(relay_t *rl) __attribute__((warn_unused_result));

/* The relay thread (arg: relay_t): relays when a worker says it wrote events
 * and polls otherwise, until rl->stop; then relays once more. */
void *relay_thread(void *arg);

/* The dispatch thread's state (dispatch.h): its connection and VoIPBin
 * client. NULL with errstr when either cannot be set up. */
struct dispatch;
struct dispatch *dispatch_new(worker_t *w, char *errstr, size_t errstr_size);
void dispatch_free(struct dispatch *d);

/* The dispatch thread: claims, calls and records until *running is 0, then
 * finishes the calls in flight (bounded). arg is the dispatch_new() state. */
void *dispatch_thread(void *arg);

/* The retention thread: every OTP_PURGE_INTERVAL_SECONDS, on its own
 * connection, runs the purge (otp_retention.h) unless another process is
 * running it; stops when *running is 0. arg is the worker_t. */
void *purge_thread(void *arg);

/* Serves /healthz (alive: the main loop turns), /readyz (database and broker
 * reachable, partitions assigned) and /metrics on listen ("host:port").
 * NULL with errstr when it cannot listen. */
void *worker_http_start(worker_t *w, const char *listen, char *errstr, size_t errstr_size);
void worker_http_stop(void *h);

#endif
