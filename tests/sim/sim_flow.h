/* sim_flow: flows (inline actions or POST /v1.0/flows) and the runner that plays them on an
 * answered call: talk, sleep, digits_receive, condition_variable, branch, goto, amd,
 * webhook_send, variable_set, hangup, and short stand-ins for the other media actions.
 * Runs with the lock held, driven by scheduler timers. */
#ifndef SIM_FLOW_H
#define SIM_FLOW_H

#include <jansson.h>
#include <stddef.h>

#include "sim_calls.h"

/* Checks every action's type and gives each an id. Returns 0; -1 when a type is unknown (its
 * name in bad, for INVALID_ACTION_TYPE); -2 when an action is not an object. */
int sim_flow_prepare(json_t *actions, char *bad, size_t badlen);

/* Static canonical name of a known action type, or NULL. */
const char *sim_flow_type(const char *type);

/* Starts the flow on an answered call. */
void sim_flow_start(sim_t *s, sim_call *c);
/* T_FLOW_DONE / T_FLOW_AMD fired. */
void sim_flow_timer(sim_t *s, sim_call *c, int kind, int64_t arg);
/* One key pressed by the callee. */
void sim_flow_digit(sim_t *s, sim_call *c, char d);
/* The call is ending: close the running talk and drop the runtime state. */
void sim_flow_stop(sim_call *c);

/* ${variable} substitution as the flow-manager does it; caller frees. */
char *sim_flow_subst(const sim_call *c, const char *in);

/* Stored flows (POST/GET/DELETE /v1.0/flows). */
void sim_flows_create(sim_t *s, const sim_req *q, sim_resp *r);
void sim_flows_list(sim_t *s, const sim_req *q, sim_resp *r);
void sim_flows_get(sim_t *s, const sim_req *q, sim_resp *r, const char *id, int del);
/* Actions of a stored flow (borrowed), or NULL. */
json_t *sim_flows_actions(sim_t *s, const char *id);
void sim_flows_clear(sim_t *s);

#endif
