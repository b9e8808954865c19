/* SPDX-License-Identifier: Apache-2.0 */
/* sim_extras: the parts of the VoIPBin API that the product does not use. The product
 * (common/voipbin_client.c) only places calls with inline actions (POST /v1.0/calls), sends SMS
 * (POST /v1.0/messages) and reads a call back (GET /v1.0/calls/{id}), with an access key.
 * What is here keeps the simulator a faithful stand-in for anything else and is pinned by the
 * contract suite (tests/sim/test_contract.py):
 *   - JWTs: POST /auth/login issues them; Bearer, ?token= and the token cookie accept them;
 *   - stored flows: POST/GET/DELETE /v1.0/flows and flow_id on POST /v1.0/calls;
 *   - GET/PUT /v1.0/customer, GET/PUT /v1.0/outbound_config, GET /v1.0/numbers[/{id}];
 *   - POST/GET /_sim/account: balance, status, identity_verification_status, webhook_secret.
 * Every function runs with the simulator's lock held, except sim_extras_jwt_valid (reads only
 * the key fixed at start). */
#ifndef SIM_EXTRAS_H
#define SIM_EXTRAS_H

#include <jansson.h>

#include "sim.h"
#include "sim_http.h"

/* Longest path segment the REST router splits out (sim_api.c). */
#define SIM_SEG_LEN 96

/* POST /auth/login: 200 {username, token} for --username/--password; a bare 400 otherwise. */
void sim_extras_login(sim_t *s, const sim_req *q, sim_resp *r);
/* 1 when tok is an unexpired JWT this simulator signed. A token is only ever parsed as a JWT,
 * so an access key sent as one fails, as at the real gateway. */
int sim_extras_jwt_valid(const sim_t *s, const char *tok);

/* Answers /v1.0/customer, /v1.0/outbound_config, /v1.0/numbers and /v1.0/flows (n segments
 * after /v1.0). Returns 1 when it answered, 0 when the route is none of these. */
int sim_extras_route(sim_t *s, const sim_req *q, char seg[][SIM_SEG_LEN], int n, sim_resp *r);
/* Actions of a stored, undeleted flow (borrowed), or NULL. */
json_t *sim_extras_flow_actions(sim_t *s, const char *id);
/* Forgets every stored flow (reset, exit). */
void sim_extras_flows_clear(sim_t *s);

/* GET /_sim/account shows the account; POST changes the fields it names. */
void sim_extras_account(sim_t *s, const sim_req *q, sim_resp *r);

#endif
