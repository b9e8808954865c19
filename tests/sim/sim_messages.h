/* SPDX-License-Identifier: Apache-2.0 */
/* sim_messages: POST/GET/DELETE /v1.0/messages (SMS). Targets go queued → sent → delivered (or
 * the scripted `sms` status), each change a message_updated webhook. Lock held throughout. */
#ifndef SIM_MESSAGES_H
#define SIM_MESSAGES_H

#include <jansson.h>

#include "sim.h"
#include "sim_calls.h"
#include "sim_http.h"

typedef struct sim_msg_target {
    json_t *destination;
    char status[16];
    char final[16]; /* scripted end state */
    int parts;
    int64_t tm_update;
} sim_msg_target;

typedef struct sim_msg {
    sim_entry e;
    sim_t *sim;
    int refs, removed;
    struct sim_msg *ended_next;
    sim_tlist timers;
    json_t *source;
    sim_msg_target *targets;
    size_t n_targets;
    char *text;
    int64_t tm_update, tm_delete;
    char *request_body;
    char request_id[72];
    sim_event_rec *events;
    size_t n_events, cap_events;
} sim_msg;

void sim_messages_create(sim_t *s, const sim_req *q, sim_resp *r);
/* A message as GET /v1.0/messages lists it (new reference), NULL once deleted. */
json_t *sim_msg_listed(const sim_entry *e);
void sim_messages_get(sim_t *s, const sim_req *q, sim_resp *r, const char *id, int del);
json_t *sim_msg_record_json(const sim_msg *m);
void sim_messages_clear(sim_t *s);

#endif
