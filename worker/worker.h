/* otp-worker: three threads that share nothing but PostgreSQL and the atomic
 * counters in worker_metrics_t.
 *   main      ingest (Kafka → challenges, w->db, worker/ingest.c) and, on the
 *             worker that holds the relay lock, relay (outbox → otp.call_status,
 *             worker/relay.c);
 *   dispatch  due challenges → VoIPBin calls and their outcomes (w->ddb, w->vb,
 *             worker/dispatch.c), asleep until a row is due or otp_due says so;
 *   http      /healthz, /readyz and /metrics (worker/http.c).
 * Fields of worker_t are the main thread's unless their comment says
 * otherwise; settings and keys are read-only once the threads start. */
#ifndef OTP_WORKER_H
#define OTP_WORKER_H

#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "otp_crypto.h"
#include "otp_voice.h"
#include "limits.h"
#include "voipbin_client.h"

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
    const char *caller_id, *brand, *default_locale, *callback_url;
    int gate_default, amd_default, sms_fallback_default;
    int keypad_enabled;
    unsigned char keypad_pk[32], keypad_sk[32];
    char worker_id[128];
    int code_length, ttl_s, max_attempts, max_call_attempts;
    int64_t min_remaining_ms, retry_base_ms, retry_cap_ms;
    int lease_s, max_in_flight;
    int call_status_timeout_s; /* OTP_CALL_STATUS_TIMEOUT_SECONDS */
    long call_timeout_ms;      /* OTP_CALL_TIMEOUT_MS */
    char rate_per_s[32], burst[16];
    int n_caller_ids;
    struct {
        char country[3];
        char number[18];
    } caller_ids[32]; /* OTP_CALLER_ID_BY_COUNTRY */
} worker_settings_t;

typedef struct worker_metrics {
    atomic_llong consumed, accepted, duplicates, dlq, expired_on_arrival;
    atomic_llong calls_placed, calls_failed, calls_retried, calls_adopted;
    atomic_llong relayed, relay_errors, db_errors;
    atomic_llong in_flight, blocked, rate_limited;
    atomic_int db_ok, kafka_ok, circuit_open;
} worker_metrics_t;

typedef struct worker {
    worker_settings_t cfg;
    otp_keyring_t keys;
    otp_voice_catalog_t *voice;
    PGconn *db;  /* ingest and relay (main thread) */
    PGconn *ddb; /* dispatch thread */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    vb_client_t *vb;
    worker_metrics_t m;
    limits_cfg_t limits;
    limits_ledger_t *ledger; /* ingest: the budgets of the batch being written */
    /* Dispatch: placed or adopted calls to record (flush_records), then,
     * after the commit, the recorded ones whose kept webhooks to apply. */
    struct record *records;
    int n_records, cap_records, n_committed;
    int events_in_tx;  /* dispatch: the open batch wrote events */
    int relay_session; /* main thread: backend pid of w->db holding the relay lock, 0 = none */
    volatile sig_atomic_t *running;
    int64_t relay_last_ms;
    atomic_llong alive_ms; /* otp_monotonic_ms() of the main loop's last turn (/healthz) */
} worker_t;

/* Polls up to one batch of otp.requested (waiting at most timeout_ms), makes
 * its effect durable in PostgreSQL, then stores the offsets. Returns the
 * number of messages handled, -1 on a database or broker error (the batch is
 * handed back by seeking, nothing is stored). */
int ingest_poll(worker_t *w, int timeout_ms);

/* Claims due challenges (up to the free in-flight slots and the request
 * tokens) and starts calls, retries, expiries. Returns the number of rows
 * claimed, -1 on error; *asked is how many it could have taken (fewer
 * claimed = nothing more is due now). Dispatch thread only (it owns w->ddb
 * and w->vb). */
int dispatch_run(worker_t *w, int *asked);

/* The dispatch thread: claims, calls and records until *running is 0, then
 * finishes the calls in flight (bounded). arg is the worker_t. */
void *dispatch_thread(void *arg);

/* The retention thread: every OTP_PURGE_INTERVAL_SECONDS, on its own
 * connection, runs the purge (otp_retention.h) unless another process is
 * running it; stops when *running is 0. arg is the worker_t. */
void *purge_thread(void *arg);

/* Takes up to `want` tokens from the shared VoIPBin request budget in
 * PostgreSQL; returns how many were granted (0 when empty), -1 on error. */
int budget_take(worker_t *w, int want);

/* The most events one relay_run sends. */
#define RELAY_BATCH 1000

/* Takes the relay's session lock if nobody holds it (kept until w->db's
 * session ends). 1 this worker relays, 0 another does, -1 error. */
int relay_lead(worker_t *w);

/* Sends pending outbox rows to otp.call_status and deletes the acknowledged
 * ones. Only the worker holding the relay lock relays, so events stay in
 * order per request; on the others it returns 0 at once. Returns rows
 * relayed, -1 on error. Main thread (w->db). */
int relay_run(worker_t *w) __attribute__((warn_unused_result));

/* Serves /healthz (alive: the main loop turns), /readyz (database and broker
 * reachable, partitions assigned) and /metrics on listen ("host:port").
 * NULL with errstr when it cannot listen. */
void *worker_http_start(worker_t *w, const char *listen, char *errstr, size_t errstr_size);
void worker_http_stop(void *h);

#endif
