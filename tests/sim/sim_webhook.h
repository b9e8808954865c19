/* SPDX-License-Identifier: Apache-2.0 */
/* sim_webhook: signed HTTP deliveries (customer webhooks and webhook_send actions) from a small
 * pool of threads. A delivery is retried up to 3 attempts, 1 s (× time scale) apart, on a network
 * error or HTTP >= 500, like bin-webhook-manager. One owner's deliveries go to one worker, so
 * they leave in order unless a retry or an injected reorder lets later ones overtake.
 *
 * Locking: sim_wh_send is called with the simulator lock held; workers take it only to record
 * results through the owner's callbacks. */
#ifndef SIM_WEBHOOK_H
#define SIM_WEBHOOK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

enum { SIM_WH_PENDING, SIM_WH_DELIVERED, SIM_WH_FAILED, SIM_WH_SKIPPED };
const char *sim_wh_state_name(int state);

#define SIM_WH_MAX_ATTEMPTS 3

/* What the resource that owns a delivery does with its results; both run with the lock held. */
typedef struct sim_wh_owner_ops {
    void (*record)(void *owner, int rec, size_t idx, int attempts, long http_status,
                   const char *error, int state);
    void (*release)(void *owner); /* drops the reference the delivery held */
} sim_wh_owner_ops;

typedef struct sim_wh_req {
    const char *uri;
    const char *method; /* "" → GET, as Go's http.NewRequest does */
    const char *content_type;
    const char *body;
    size_t body_len;
    const char *secret; /* NULL or "" → unsigned */
    int64_t delay_ms;   /* hold back before the first attempt (reorder fault) */
    unsigned shard;     /* same shard → same worker → in order */
    void *owner;        /* a reference the caller has already taken for this delivery */
    const sim_wh_owner_ops *ops;
    int rec;
    size_t idx;
} sim_wh_req;

typedef struct sim_wh sim_wh;

/* epoch: deliveries queued before *epoch changed (a reset) are dropped unsent. */
sim_wh *sim_wh_new(pthread_mutex_t *lock, int workers, double time_scale, int ssrf_guard,
                   const uint32_t *epoch);
int sim_wh_start(sim_wh *w);
/* Stops the workers (lock NOT held) and frees everything, releasing owners. NULL-safe. */
void sim_wh_destroy(sim_wh *w);
/* Copies what it needs from req. Lock held. Returns 0, or -1 (owner released). */
int sim_wh_send(sim_wh *w, const sim_wh_req *req);
size_t sim_wh_pending(const sim_wh *w);

/* Hex HMAC-SHA256 signature header value "sha256=<hex>" into out (72 bytes). */
void sim_wh_sign(const char *secret, const char *body, size_t len, char out[72]);

#endif
