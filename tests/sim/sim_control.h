/* SPDX-License-Identifier: Apache-2.0 */
/* sim_control: the /_sim/ control API for tests (no auth, no faults): scripted callees, injected
 * faults, account switches, and the records of every call and message. Lock held. */
#ifndef SIM_CONTROL_H
#define SIM_CONTROL_H

#include "sim.h"
#include "sim_http.h"

/* What the fault rules decided for one REST request. */
typedef struct sim_fault_hit {
    int fail;
    int status;
    char reason[64];
    char message[160];
    int drop, drop_after;
    long latency_ms;
} sim_fault_hit;

/* Drops every injected fault (REST and webhook) and restores the startup rate limit. */
void sim_faults_clear(sim_t *s);
void sim_faults_match(sim_t *s, const char *method, const char *path, sim_fault_hit *hit);
void sim_control_handle(sim_t *s, const sim_req *q, sim_resp *r);

#endif
