/* SPDX-License-Identifier: Apache-2.0 */
/* sim_calls: the call resource — creation (POST /v1.0/calls and its "not placed" rules), the
 * state machine driven by scheduler timers, the JSON the API and webhooks show, the event
 * records the control API lists, and retention. Everything here runs with the lock held. */
#ifndef SIM_CALLS_H
#define SIM_CALLS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sim.h"
#include "sim_http.h"
#include "sim_util.h"

typedef enum {
    CALL_DIALING,
    CALL_RINGING,
    CALL_PROGRESSING,
    CALL_TERMINATING,
    CALL_CANCELING,
    CALL_HANGUP
} sim_call_status;

const char *sim_call_status_name(sim_call_status st);

/* The callee's scripted behaviour (POST /_sim/script), times in simulated ms. */
typedef struct sim_outcome {
    char kind[16]; /* answer | busy | noanswer | failed | machine | dialout */
    int64_t ring_ms, answer_ms, end_ms, callee_hangup_ms, amd_ms;
    char *dtmf_keys;     /* flattened key presses ... */
    int64_t *dtmf_at_ms; /* ... and when, after answer */
    size_t n_dtmf;
    char sms[16]; /* final SMS target status */
} sim_outcome;

/* Parses script keywords (see README); -1 with a message on a bad one. */
int sim_outcome_parse(json_t *j, sim_outcome *o, char *err, size_t errlen);
void sim_outcome_free(sim_outcome *o);

typedef struct sim_talk_rec {
    char *text, *language, *provider, *voice_id;
    int64_t started_us, ended_us, planned_ms;
    int failed, interrupted, async;
    char *error;
    char *wav; /* with --audio-dir, once rendered */
    double seconds;
    int audio_pending;
    char *audio_error;
} sim_talk_rec;

typedef struct sim_event_rec {
    char type[24];
    char status[16];
    int64_t at_us;
    int attempts, state, duplicate;
    long http_status;
    char *error;
} sim_event_rec;

typedef struct sim_send_rec {
    char *uri, *method, *data_type, *body;
    int64_t at_us;
    int attempts, state;
    long http_status;
    char *error;
} sim_send_rec;

typedef struct sim_digit_rec {
    char digit;
    int64_t at_us;
    const char *during; /* action type running then (static string) */
} sim_digit_rec;

enum { SIM_MEDIA_NONE, SIM_MEDIA_TALK, SIM_MEDIA_WAIT, SIM_MEDIA_DIGITS, SIM_MEDIA_AMD };

typedef struct sim_call {
    sim_entry e; /* first: id and tm_create */
    sim_t *sim;
    int refs;    /* webhook/audio jobs still pointing here */
    int removed; /* out of the index; freed when refs reaches 0 */
    struct sim_call *ended_next;
    sim_tlist timers;

    sim_call_status status;
    const char *hangup_by, *hangup_reason; /* static strings; NULL until hangup */
    int64_t tm_ringing, tm_progressing, tm_hangup, tm_update, tm_delete;
    json_t *source, *destination;
    char flow_id[37], activeflow_id[37];
    json_t *action; /* the current action as the API shows it */

    /* flow runner state (sim_flow.c); actions/vars are freed at hangup */
    json_t *actions;
    long *loops; /* goto loop counters by action index */
    json_t *vars;
    sim_buf digits; /* voipbin.call.digits */
    size_t pc, next_pc;
    uint32_t gen; /* bumps on every action change: stale timers are ignored */
    int media;
    int talk_next;   /* talk digits_handle "next" */
    long dr_length;  /* digits_receive length */
    char dr_key[32]; /* digits_receive key */
    size_t cur_talk;
    const char *cur_type;       /* static name of the running action */
    const char *pending_reason; /* why terminating: normal | amd | ... */
    int machine;                /* the callee is an answering machine */
    const char *amd_result;     /* MACHINE | HUMAN once an amd action decided */

    sim_outcome oc;
    json_t *script; /* the script applied, for the control API */
    char *request_body;
    char request_id[72];

    sim_talk_rec *talks;
    size_t n_talks, cap_talks;
    sim_event_rec *events;
    size_t n_events, cap_events;
    sim_send_rec *sends;
    size_t n_sends, cap_sends;
    sim_digit_rec *dlog;
    size_t n_dlog, cap_dlog;
    const char **executed;
    size_t n_executed, cap_executed;
} sim_call;

/* Timer kinds on a call. */
enum {
    T_RING,
    T_ANSWER,
    T_REMOTE_END, /* arg: index into the hangup reason table */
    T_CALLEE_HANGUP,
    T_DTMF, /* arg: index into oc.dtmf_* */
    T_FINISH,
    T_CAP,
    T_FLOW_DONE, /* arg: gen */
    T_FLOW_AMD   /* arg: gen, or -1 for an async amd */
};

enum { REC_EVENT, REC_SEND };
extern const sim_wh_owner_ops sim_call_wh_ops;
extern const sim_audio_owner_ops sim_call_audio_ops;

/* POST /v1.0/calls. */
void sim_calls_create(sim_t *s, const sim_req *q, sim_resp *r);
/* A call as GET /v1.0/calls lists it (new reference), NULL once deleted. */
json_t *sim_call_listed(const sim_entry *e);

sim_call *sim_call_find(sim_t *s, const char *id);
json_t *sim_call_json(const sim_call *c);
/* Everything the control API shows about one call. */
json_t *sim_call_record_json(const sim_call *c);

/* POST /calls/{id}/hangup: cancel before answer, terminate after. */
void sim_call_hangup_api(sim_t *s, sim_call *c);
/* DELETE /calls/{id}: hang up if live, then soft delete. */
void sim_call_delete_api(sim_t *s, sim_call *c);
/* The callee or the network ends the call now (remote); no-op once it is going away. */
void sim_call_remote_end(sim_t *s, sim_call *c, const char *reason);
/* Local hang-up with a reason (flow end, hangup action, amd). */
void sim_call_hanging_up(sim_t *s, sim_call *c, const char *reason);
/* Sends the webhook event for the call's current state. */
void sim_call_emit(sim_t *s, sim_call *c, const char *type);
/* Makes `action` (stolen) current and emits call_updated. */
void sim_call_set_action(sim_t *s, sim_call *c, json_t *action);
/* Key presses arriving now (control API or script). */
void sim_call_keys(sim_t *s, sim_call *c, const char *keys);
/* Schedules a timer on the call in simulated ms. */
void sim_call_timer(sim_t *s, sim_call *c, int64_t ms, int kind, int64_t arg);
/* Takes a reference for a background job. */
void sim_call_ref(sim_call *c);
/* Drops every call (reset). */
void sim_calls_clear(sim_t *s);

/* Grows an array by one zeroed element; NULL on allocation failure. */
void *sim_arr_push(void **arr, size_t *n, size_t *cap, size_t elsz);

#endif
