/* SPDX-License-Identifier: Apache-2.0 */
/* sim: the simulator's shared state. One instance, one mutex (`lock`) that guards all of it:
 * HTTP threads, the scheduler and the webhook workers each take it briefly. */
#ifndef SIM_H
#define SIM_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>

#include "sim_audio.h"
#include "sim_config.h"
#include "sim_index.h"
#include "sim_sched.h"
#include "sim_webhook.h"

typedef struct sim_number {
    char id[37];
    char number[24];
} sim_number;

/* GET/PUT /v1.0/customer. PUT replaces every field (omitted → ""), like the real gateway. */
typedef struct sim_customer {
    char *name, *detail, *email, *phone_number, *address, *webhook_method, *webhook_uri,
        *webhook_secret;
    int64_t tm_create, tm_update;
} sim_customer;

/* GET/PUT /v1.0/outbound_config (PUT is a partial update). */
typedef struct sim_outbound {
    char id[37];
    char *name, *detail;
    json_t *whitelist; /* array of lowercase alpha-2 strings */
    int allow_all;     /* --whitelist all */
    json_t *codecs;
    char default_source_id[37]; /* "" or a number id */
    int64_t tm_create, tm_update;
} sim_outbound;

/* Account facts that decide whether a call can be placed; changed by POST /_sim/account. */
typedef struct sim_account {
    double balance;
    char status[16];   /* active | frozen | initial */
    char identity[16]; /* identity_verification_status */
} sim_account;

typedef struct sim_ratelimit {
    double rate, burst, tokens;
    int64_t last_ns;
} sim_ratelimit;

enum { SIM_FAULT_FAIL, SIM_FAULT_DROP, SIM_FAULT_LATENCY };

/* One injected fault on the REST API; rules are checked in order for every request. */
typedef struct sim_fault {
    int kind;
    char path[128];  /* prefix the request path must start with */
    char method[12]; /* "" = any */
    long remaining;  /* requests left; -1 = until cleared */
    int status;      /* FAIL: HTTP status */
    char reason[64];
    char message[160];
    int drop_after; /* DROP: process the request, then close without answering */
    long lat_lo_ms, lat_hi_ms;
    struct sim_fault *next;
} sim_fault;

/* A scripted callee: what happens to calls to one destination ("*" = any other). */
typedef struct sim_script {
    char target[40];
    json_t *outcome; /* the keywords as posted */
    long times;      /* calls left to apply to; 0 = until reset */
    struct sim_script *next;
} sim_script;

struct sim_call;
struct sim_msg;

typedef struct sim {
    pthread_mutex_t lock;
    const sim_config *cfg;
    char customer_id[37];
    sim_customer customer;
    sim_outbound outbound;
    sim_account account;
    sim_number *numbers;
    size_t n_numbers;
    sim_ratelimit rl;
    sim_index calls, messages, flows;
    /* Ended calls/messages oldest first: what --max-calls drops. */
    struct sim_call *ended_head, *ended_tail;
    size_t n_ended;
    struct sim_msg *mended_head, *mended_tail;
    size_t n_mended;
    sim_fault *faults;
    long wh_duplicate, wh_reorder, reorder_ms;
    /* Share of call event webhooks never sent (0-100): a customer endpoint
     * that is unreachable, or a network that loses them. */
    double wh_drop_pct;
    sim_script *scripts;
    sim_sched sched;
    sim_wh *wh;
    sim_audio *audio;
    uint32_t epoch; /* bumped by reset: stale deliveries are dropped */
    unsigned char jwt_key[32];
    uint64_t n_requests, n_calls_created, n_calls_dropped;
} sim_t;

/* Simulated milliseconds → nanoseconds of real time, through --time-scale. */
int64_t sim_scaled_ns(const sim_t *s, int64_t ms);

/* Startup values for everything /_sim/reset restores. Lock held (or single-threaded). */
int sim_state_reset(sim_t *s);
int sim_state_init(sim_t *s, const sim_config *cfg, char *err, size_t errlen);
void sim_state_free(sim_t *s);

#endif
