/* SPDX-License-Identifier: Apache-2.0 */
/* sim_auth: credentials in the gateway's order (cookie token, ?token=, Bearer JWT, cookie
 * accesskey, ?accesskey=; the JWTs themselves are sim_extras'), and the per-customer rate
 * limit. */
#ifndef SIM_AUTH_H
#define SIM_AUTH_H

#include "sim.h"
#include "sim_http.h"

typedef enum { SIM_AUTH_OK, SIM_AUTH_MISSING, SIM_AUTH_INVALID } sim_auth_result;

/* Reads only settings fixed at start: no lock needed. */
sim_auth_result sim_auth_check(sim_t *s, const sim_req *q);

/* Token bucket (lock held). Returns 1 when the request may pass; else *retry_after_s is set. */
int sim_ratelimit_take(sim_t *s, int *retry_after_s);
void sim_ratelimit_set(sim_t *s, double rate, double burst);

#endif
