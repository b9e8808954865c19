/* SPDX-License-Identifier: Apache-2.0 */
/* sim_flow: the runner that plays a call's flow (inline actions, or a stored flow of
 * sim_extras) on an answered call: talk, sleep, digits_receive, condition_variable, branch, goto,
 * amd, webhook_send, variable_set, hangup, and short stand-ins for the other media actions. Runs
 * with the lock held, driven by scheduler timers. */
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

#endif
