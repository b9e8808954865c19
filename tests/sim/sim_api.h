/* SPDX-License-Identifier: Apache-2.0 */
/* sim_api: the /v1.0 routes once a request is authenticated and within the rate limit:
 * calls, messages, customer, outbound_config, numbers, flows. Lock held. */
#ifndef SIM_API_H
#define SIM_API_H

#include "sim.h"
#include "sim_http.h"

/* path is the part after "/v1.0". */
void sim_api_handle(sim_t *s, const sim_req *q, const char *path, sim_resp *r);

#endif
