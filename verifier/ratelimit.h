/* SPDX-License-Identifier: Apache-2.0 */
/* Request rate limits of the API listener: a token bucket per id (an API
 * key's digest, a client address), refilled at `per_second` up to a burst of
 * as many. The buckets live in a fixed table (the memory bound): an id not
 * seen lately gives its slot to a new one, which starts with a full bucket. */
#ifndef OTP_VERIFIER_RATELIMIT_H
#define OTP_VERIFIER_RATELIMIT_H

#include <stdint.h>

typedef struct ratelimit ratelimit_t;

/* A limiter of per_second requests per id (per_second >= 1). NULL when out
 * of memory. */
ratelimit_t *ratelimit_new(int per_second);
/* NULL-safe. */
void ratelimit_destroy(ratelimit_t *rl);

/* Takes one request for id (at most 64 bytes are compared) at now_us (a
 * monotonic clock). 0: allowed; else the whole seconds (>= 1) after which the
 * next one will be, for Retry-After. A NULL rl allows everything.
 * Thread-safe. */
int ratelimit_take(ratelimit_t *rl, const char *id, int64_t now_us);

#endif
