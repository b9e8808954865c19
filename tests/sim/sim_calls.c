/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_calls.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_extras.h"
#include "sim_flow.h"

#define DIAL_TIMEOUT_MS 60000 /* bin-call-manager defaultDialTimeout */
#define CALL_CAP_MS 3600000   /* defaultTimeoutCallDuration */
#define TEARDOWN_MS 200       /* terminating/canceling → hangup */

/* hangup_reason values (static strings the call points at) */
static const char *const reasons[] = {"normal",  "failed",   "busy",    "cancel",
                                      "timeout", "noanswer", "dialout", "amd"};
enum { R_NORMAL, R_FAILED, R_BUSY, R_CANCEL, R_TIMEOUT, R_NOANSWER, R_DIALOUT, R_AMD };

static const char *reason_static(const char *r)
{
    size_t i;

    for (i = 0; r && i < sizeof reasons / sizeof reasons[0]; i++)
        if (!strcmp(reasons[i], r))
            return reasons[i];
    return reasons[R_NORMAL];
}

const char *sim_call_status_name(sim_call_status st)
{
    static const char *const names[] = {"dialing",     "ringing",   "progressing",
                                        "terminating", "canceling", "hangup"};
    return names[st];
}

void *sim_arr_push(void **arr, size_t *n, size_t *cap, size_t elsz)
{
    char *p;

    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void *na = realloc(*arr, nc * elsz);
        if (!na)
            return NULL;
        *arr = na;
        *cap = nc;
    }
    p = (char *)*arr + (*n)++ * elsz;
    memset(p, 0, elsz);
    return p;
}

/* ---------- outcome (scripts) ---------- */

static int get_ms(json_t *j, const char *key, int64_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(j, key);

    if (!v)
        return 0;
    if (!json_is_number(v)) {
        snprintf(err, errlen, "%s must be a number of milliseconds", key);
        return -1;
    }
    *out = (int64_t)json_number_value(v);
    return 0;
}

static int add_keys(sim_outcome *o, const char *keys, int64_t at, int64_t interval)
{
    size_t k, n = strlen(keys), base = o->n_dtmf;
    char *nk = realloc(o->dtmf_keys, base + n + 1);
    int64_t *na;

    if (!nk)
        return -1;
    o->dtmf_keys = nk;
    na = realloc(o->dtmf_at_ms, (base + n + 1) * sizeof *na);
    if (!na)
        return -1;
    o->dtmf_at_ms = na;
    for (k = 0; k < n; k++) {
        o->dtmf_keys[base + k] = keys[k];
        o->dtmf_at_ms[base + k] = at + (int64_t)k * interval;
    }
    o->n_dtmf = base + n;
    o->dtmf_keys[o->n_dtmf] = '\0';
    return 0;
}

static int valid_keys(const char *k)
{
    for (; *k; k++)
        if (!strchr("0123456789*#ABCD", *k))
            return 0;
    return 1;
}

int sim_outcome_parse(json_t *j, sim_outcome *o, char *err, size_t errlen)
{
    const char *kind = "answer";
    json_t *v;
    int64_t interval = 150, at = 1500;

    memset(o, 0, sizeof *o);
    sim_strlcpy(o->sms, "delivered", sizeof o->sms);
    if (j && (v = json_object_get(j, "outcome"))) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "outcome must be a string");
            return -1;
        }
        kind = json_string_value(v);
    }
    if (!strcmp(kind, "human"))
        kind = "answer";
    if (!strcmp(kind, "voicemail"))
        kind = "machine";
    if (!strcmp(kind, "timeout"))
        kind = "dialout";
    if (strcmp(kind, "answer") && strcmp(kind, "busy") && strcmp(kind, "noanswer") &&
        strcmp(kind, "failed") && strcmp(kind, "machine") && strcmp(kind, "dialout")) {
        snprintf(err, errlen,
                 "outcome must be answer|busy|noanswer|failed|machine|voicemail|dialout");
        return -1;
    }
    sim_strlcpy(o->kind, kind, sizeof o->kind);
    /* defaults per kind: ring after 300 ms; busy ends 1.5 s after ringing; no answer after 20 s */
    o->ring_ms = strcmp(kind, "failed") ? 300 : -1;
    o->answer_ms = 1000;
    o->callee_hangup_ms = -1;
    o->amd_ms = 1500;
    o->end_ms = -1;
    if (!j)
        goto defaults;
    if (get_ms(j, "ring_ms", &o->ring_ms, err, errlen) ||
        get_ms(j, "answer_ms", &o->answer_ms, err, errlen) ||
        get_ms(j, "end_ms", &o->end_ms, err, errlen) ||
        get_ms(j, "callee_hangup_ms", &o->callee_hangup_ms, err, errlen) ||
        get_ms(j, "hangup_after_ms", &o->callee_hangup_ms, err, errlen) ||
        get_ms(j, "amd_ms", &o->amd_ms, err, errlen) ||
        get_ms(j, "digits_at_ms", &at, err, errlen) ||
        get_ms(j, "digit_interval_ms", &interval, err, errlen))
        return -1;
    if ((v = json_object_get(j, "digits"))) {
        if (!json_is_string(v) || !valid_keys(json_string_value(v))) {
            snprintf(err, errlen, "digits must be a string of 0-9*#ABCD");
            return -1;
        }
        if (add_keys(o, json_string_value(v), at, interval))
            return -1;
    }
    if ((v = json_object_get(j, "dtmf"))) {
        size_t i;
        json_t *e;
        if (!json_is_array(v)) {
            snprintf(err, errlen, "dtmf must be a list of {at_ms, keys}");
            return -1;
        }
        json_array_foreach(v, i, e)
        {
            json_t *k = json_object_get(e, "keys"), *a = json_object_get(e, "at_ms");
            if (!json_is_string(k) || !json_is_number(a) || !valid_keys(json_string_value(k))) {
                snprintf(err, errlen, "dtmf entries need at_ms (number) and keys (0-9*#ABCD)");
                return -1;
            }
            if (add_keys(o, json_string_value(k), (int64_t)json_number_value(a), interval))
                return -1;
        }
    }
    if ((v = json_object_get(j, "sms"))) {
        const char *sm = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(sm, "delivered") && strcmp(sm, "sent") && strcmp(sm, "failed") &&
            strcmp(sm, "gw_timeout") && strcmp(sm, "dlr_timeout")) {
            snprintf(err, errlen, "sms must be delivered|sent|failed|gw_timeout|dlr_timeout");
            return -1;
        }
        sim_strlcpy(o->sms, sm, sizeof o->sms);
    }
defaults:
    if (o->end_ms < 0) {
        if (!strcmp(kind, "busy"))
            o->end_ms = (o->ring_ms > 0 ? o->ring_ms : 0) + 1500;
        else if (!strcmp(kind, "noanswer"))
            o->end_ms = 20000;
        else if (!strcmp(kind, "failed"))
            o->end_ms = 500;
        else
            o->end_ms = DIAL_TIMEOUT_MS;
    }
    return 0;
}

void sim_outcome_free(sim_outcome *o)
{
    free(o->dtmf_keys);
    free(o->dtmf_at_ms);
    o->dtmf_keys = NULL;
    o->dtmf_at_ms = NULL;
    o->n_dtmf = 0;
}

/* The script for a destination: exact target first, then "*". Consumes one of `times`. */
static json_t *script_for(sim_t *s, const char *target)
{
    sim_script **pp, *hit = NULL, **hitp = NULL;
    json_t *out;

    for (pp = &s->scripts; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->target, target)) {
            hit = *pp;
            hitp = pp;
            break;
        }
    if (!hit)
        for (pp = &s->scripts; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->target, "*")) {
                hit = *pp;
                hitp = pp;
                break;
            }
    if (!hit)
        return NULL;
    out = json_incref(hit->outcome);
    if (hit->times > 0 && --hit->times == 0) {
        *hitp = hit->next;
        json_decref(hit->outcome);
        free(hit);
    }
    return out;
}

/* ---------- lifetime ---------- */

static void call_free(sim_call *c)
{
    size_t i;

    sim_outcome_free(&c->oc);
    json_decref(c->source);
    json_decref(c->destination);
    json_decref(c->action);
    json_decref(c->actions);
    json_decref(c->vars);
    json_decref(c->script);
    free(c->loops);
    sim_buf_free(&c->digits);
    free(c->request_body);
    for (i = 0; i < c->n_talks; i++) {
        sim_talk_rec *t = &c->talks[i];
        free(t->text);
        free(t->language);
        free(t->provider);
        free(t->voice_id);
        free(t->error);
        free(t->wav);
        free(t->audio_error);
    }
    free(c->talks);
    for (i = 0; i < c->n_events; i++)
        free(c->events[i].error);
    free(c->events);
    for (i = 0; i < c->n_sends; i++) {
        sim_send_rec *w = &c->sends[i];
        free(w->uri);
        free(w->method);
        free(w->data_type);
        free(w->body);
        free(w->error);
    }
    free(c->sends);
    free(c->dlog);
    free(c->executed);
    free(c);
}

void sim_call_ref(sim_call *c)
{
    c->refs++;
}

static void call_release(void *owner)
{
    sim_call *c = owner;

    if (--c->refs == 0 && c->removed)
        call_free(c);
}

/* Takes the call out of the store; it is freed once no job points at it. */
static void call_remove(sim_t *s, sim_call *c)
{
    sim_sched_cancel_all(&s->sched, &c->timers);
    if (!c->removed)
        sim_index_del(&s->calls, &c->e);
    c->removed = 1;
    if (!c->refs)
        call_free(c);
}

/* --max-calls: drop the oldest ended calls while the store is over the cap. */
static void enforce_retention(sim_t *s)
{
    long cap = s->cfg->max_calls;

    while (cap > 0 && s->calls.count > (size_t)cap && s->ended_head) {
        sim_call *c = s->ended_head;
        s->ended_head = c->ended_next;
        if (!s->ended_head)
            s->ended_tail = NULL;
        s->n_ended--;
        s->n_calls_dropped++;
        call_remove(s, c);
    }
}

void sim_calls_clear(sim_t *s)
{
    while (s->calls.head)
        call_remove(s, (sim_call *)s->calls.head);
    s->ended_head = s->ended_tail = NULL;
    s->n_ended = 0;
}

sim_call *sim_call_find(sim_t *s, const char *id)
{
    return (sim_call *)sim_index_find(&s->calls, id);
}

/* ---------- JSON ---------- */

static void set_time(json_t *o, const char *key, int64_t us)
{
    char t[SIM_TIME_LEN];

    if (!us)
        return;
    sim_fmt_time(us, t);
    json_object_set_new(o, key, json_string(t));
}

json_t *sim_call_json(const sim_call *c)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(c->e.id));
    json_object_set_new(o, "customer_id", json_string(c->sim->customer_id));
    json_object_set_new(o, "owner_type", json_string(""));
    json_object_set_new(o, "owner_id", json_string(SIM_NIL_UUID));
    json_object_set_new(o, "flow_id", json_string(c->flow_id));
    json_object_set_new(o, "activeflow_id", json_string(c->activeflow_id));
    json_object_set_new(o, "type", json_string("flow"));
    json_object_set_new(o, "master_call_id", json_string(SIM_NIL_UUID));
    json_object_set_new(o, "recording_id", json_string(SIM_NIL_UUID));
    json_object_set_new(o, "groupcall_id", json_string(SIM_NIL_UUID));
    json_object_set(o, "source", c->source);
    json_object_set(o, "destination", c->destination);
    json_object_set_new(o, "status", json_string(sim_call_status_name(c->status)));
    json_object_set(o, "action", c->action);
    json_object_set_new(o, "direction", json_string("outgoing"));
    /* hangup_* and unset tm_* are omitted, never null, until they apply */
    if (c->hangup_by)
        json_object_set_new(o, "hangup_by", json_string(c->hangup_by));
    if (c->hangup_reason)
        json_object_set_new(o, "hangup_reason", json_string(c->hangup_reason));
    set_time(o, "tm_ringing", c->tm_ringing);
    set_time(o, "tm_progressing", c->tm_progressing);
    set_time(o, "tm_hangup", c->tm_hangup);
    set_time(o, "tm_create", c->e.tm_create_us);
    set_time(o, "tm_update", c->tm_update);
    set_time(o, "tm_delete", c->tm_delete);
    return o;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *delivery_json(int attempts, int state, long http_status, const char *error)
{
    json_t *o = json_object();

    json_object_set_new(o, "state", json_string(sim_wh_state_name(state)));
    json_object_set_new(o, "delivered", json_boolean(state == SIM_WH_DELIVERED));
    json_object_set_new(o, "attempts", json_integer(attempts));
    json_object_set_new(o, "status_code", http_status ? json_integer(http_status) : json_null());
    json_object_set_new(o, "error",
                        str_or_null(error                     ? error
                                    : state == SIM_WH_SKIPPED ? "no webhook_uri"
                                                              : NULL));
    return o;
}

json_t *sim_call_record_json(const sim_call *c)
{
    json_t *o = json_object(), *a;
    json_error_t je;
    size_t i;

    json_object_set_new(o, "id", json_string(c->e.id));
    json_object_set_new(o, "status", json_string(sim_call_status_name(c->status)));
    json_object_set_new(o, "target", json_incref(json_object_get(c->destination, "target")));
    json_object_set_new(o, "request_id", json_string(c->request_id));
    json_object_set_new(o, "request_body", json_string(c->request_body ? c->request_body : ""));
    a = c->request_body ? json_loads(c->request_body, 0, &je) : NULL;
    json_object_set_new(o, "request", a ? a : json_null());
    json_object_set_new(o, "call", sim_call_json(c));
    json_object_set(o, "script", c->script ? c->script : json_null());
    json_object_set_new(o, "outcome", json_string(c->oc.kind));
    json_object_set_new(o, "machine", json_boolean(c->machine));
    json_object_set_new(o, "amd_result", str_or_null(c->amd_result));

    a = json_array();
    for (i = 0; i < c->n_talks; i++) {
        const sim_talk_rec *t = &c->talks[i];
        json_t *x = json_object();
        json_object_set_new(x, "text", json_string(t->text));
        json_object_set_new(x, "language", json_string(t->language));
        json_object_set_new(x, "provider", json_string(t->provider));
        json_object_set_new(x, "voice_id", json_string(t->voice_id));
        json_object_set_new(x, "started_at", sim_time_json(t->started_us));
        json_object_set_new(x, "ended_at", sim_time_json(t->ended_us));
        json_object_set_new(x, "duration_ms", json_integer(t->planned_ms));
        json_object_set_new(x, "async", json_boolean(t->async));
        json_object_set_new(x, "failed", json_boolean(t->failed));
        json_object_set_new(x, "error", str_or_null(t->error));
        json_object_set_new(x, "interrupted", json_boolean(t->interrupted));
        json_object_set_new(x, "wav", str_or_null(t->wav));
        json_object_set_new(x, "seconds", t->wav ? json_real(t->seconds) : json_null());
        if (t->audio_pending)
            json_object_set_new(x, "audio_pending", json_true());
        if (t->audio_error)
            json_object_set_new(x, "audio_error", json_string(t->audio_error));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "talks", a);

    json_object_set_new(o, "digits", json_string(c->digits.p ? c->digits.p : ""));
    a = json_array();
    for (i = 0; i < c->n_dlog; i++) {
        char d[2] = {c->dlog[i].digit, 0};
        json_t *x = json_object();
        json_object_set_new(x, "digit", json_string(d));
        json_object_set_new(x, "at", sim_time_json(c->dlog[i].at_us));
        json_object_set_new(x, "during", str_or_null(c->dlog[i].during));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "digits_received", a);

    a = json_array();
    for (i = 0; i < c->n_executed; i++)
        json_array_append_new(a, json_string(c->executed[i]));
    json_object_set_new(o, "actions_executed", a);
    json_object_set(o, "variables", c->vars ? c->vars : json_null());

    a = json_array();
    for (i = 0; i < c->n_events; i++) {
        const sim_event_rec *e = &c->events[i];
        json_t *x = delivery_json(e->attempts, e->state, e->http_status, e->error);
        json_object_set_new(x, "type", json_string(e->type));
        json_object_set_new(x, "call_status", json_string(e->status));
        json_object_set_new(x, "at", sim_time_json(e->at_us));
        json_object_set_new(x, "duplicate", json_boolean(e->duplicate));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "events", a);

    a = json_array();
    for (i = 0; i < c->n_sends; i++) {
        const sim_send_rec *w = &c->sends[i];
        json_t *x = delivery_json(w->attempts, w->state, w->http_status, w->error);
        json_object_set_new(x, "uri", json_string(w->uri));
        json_object_set_new(x, "method", json_string(w->method));
        json_object_set_new(x, "data_type", json_string(w->data_type));
        json_object_set_new(x, "body", json_string(w->body));
        json_object_set_new(x, "at", sim_time_json(w->at_us));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "webhook_sends", a);
    return o;
}

/* ---------- deliveries ---------- */

static void call_wh_record(void *owner, int rec, size_t idx, int attempts, long http_status,
                           const char *error, int state)
{
    sim_call *c = owner;
    char **errp;

    if (rec == REC_EVENT && idx < c->n_events) {
        c->events[idx].attempts = attempts;
        c->events[idx].http_status = http_status;
        c->events[idx].state = state;
        errp = &c->events[idx].error;
    } else if (rec == REC_SEND && idx < c->n_sends) {
        c->sends[idx].attempts = attempts;
        c->sends[idx].http_status = http_status;
        c->sends[idx].state = state;
        errp = &c->sends[idx].error;
    } else
        return;
    free(*errp);
    *errp = error ? strdup(error) : NULL;
}

const sim_wh_owner_ops sim_call_wh_ops = {call_wh_record, call_release};

static void call_audio_done(void *owner, size_t idx, const char *wav, double seconds,
                            const char *error)
{
    sim_call *c = owner;

    if (idx >= c->n_talks)
        return;
    c->talks[idx].audio_pending = 0;
    if (wav) {
        free(c->talks[idx].wav);
        c->talks[idx].wav = strdup(wav);
        c->talks[idx].seconds = seconds;
    } else {
        free(c->talks[idx].audio_error);
        c->talks[idx].audio_error = error ? strdup(error) : NULL;
    }
}

const sim_audio_owner_ops sim_call_audio_ops = {call_audio_done, call_release};

static unsigned shard_of(const char *id)
{
    unsigned h = 2166136261u;

    while (*id)
        h = (h ^ (unsigned char)*id++) * 16777619u;
    return h;
}

void sim_call_emit(sim_t *s, sim_call *c, const char *type)
{
    sim_event_rec *ev;
    json_t *msg;
    char *body;
    int copies = 1, k;
    int64_t delay = 0;
    const char *uri = s->customer.webhook_uri;

    ev = sim_arr_push((void **)&c->events, &c->n_events, &c->cap_events, sizeof *ev);
    if (!ev)
        return;
    sim_strlcpy(ev->type, type, sizeof ev->type);
    sim_strlcpy(ev->status, sim_call_status_name(c->status), sizeof ev->status);
    ev->at_us = sim_now_us();
    if (!uri || !*uri) {
        ev->state = SIM_WH_SKIPPED; /* shown as error "no webhook_uri" without a copy per event */
        return;
    }
    if (s->wh_drop_pct > 0 && sim_rand01() * 100.0 < s->wh_drop_pct) {
        ev->state = SIM_WH_SKIPPED;
        ev->error = strdup("dropped (webhook_drop_pct)");
        return;
    }
    ev->state = SIM_WH_PENDING;
    msg = json_object();
    json_object_set_new(msg, "type", json_string(type));
    json_object_set_new(msg, "data", sim_call_json(c));
    body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!body)
        return;
    if (s->wh_duplicate > 0) {
        s->wh_duplicate--;
        copies = 2;
    }
    if (s->wh_reorder > 0) {
        s->wh_reorder--;
        delay = s->reorder_ms;
    }
    for (k = 0; k < copies; k++) {
        sim_wh_req rq;
        size_t idx = c->n_events - 1;
        if (k) {
            sim_event_rec *dup =
                sim_arr_push((void **)&c->events, &c->n_events, &c->cap_events, sizeof *dup);
            if (!dup)
                break;
            *dup = c->events[idx];
            dup->duplicate = 1;
            dup->error = NULL;
            idx = c->n_events - 1;
        }
        memset(&rq, 0, sizeof rq);
        rq.uri = uri;
        rq.method = s->customer.webhook_method;
        rq.content_type = "application/json";
        rq.body = body;
        rq.body_len = strlen(body);
        rq.secret = s->customer.webhook_secret;
        rq.delay_ms = delay;
        rq.shard = shard_of(c->e.id);
        rq.owner = c;
        rq.ops = &sim_call_wh_ops;
        rq.rec = REC_EVENT;
        rq.idx = idx;
        c->refs++;
        sim_wh_send(s->wh, &rq);
    }
    free(body);
}

/* ---------- state machine ---------- */

static void touch(sim_call *c)
{
    c->tm_update = sim_now_us();
}

void sim_call_set_action(sim_t *s, sim_call *c, json_t *action)
{
    json_decref(c->action);
    c->action = action;
    touch(c);
    sim_call_emit(s, c, "call_updated");
}

static void call_timer_cb(void *obj, int kind, int64_t arg);

void sim_call_timer(sim_t *s, sim_call *c, int64_t ms, int kind, int64_t arg)
{
    sim_sched_add(&s->sched, &c->timers, sim_scaled_ns(s, ms), call_timer_cb, c, kind, arg);
}

/* The final transition: status hangup with who and why. */
static void finish(sim_t *s, sim_call *c, const char *by, const char *reason)
{
    if (c->status == CALL_HANGUP)
        return;
    sim_sched_cancel_all(&s->sched, &c->timers);
    sim_flow_stop(c);
    c->status = CALL_HANGUP;
    c->hangup_by = by;
    c->hangup_reason = reason_static(reason);
    c->tm_hangup = sim_now_us();
    touch(c);
    sim_call_emit(s, c, "call_hangup");
    /* the flow is over: keep the records, drop the runtime */
    json_decref(c->actions);
    c->actions = NULL;
    free(c->loops);
    c->loops = NULL;
    c->ended_next = NULL;
    if (s->ended_tail)
        s->ended_tail->ended_next = c;
    else
        s->ended_head = c;
    s->ended_tail = c;
    s->n_ended++;
}

void sim_call_hanging_up(sim_t *s, sim_call *c, const char *reason)
{
    switch (c->status) {
    case CALL_DIALING:
    case CALL_RINGING:
        /* not answered yet: canceling → hangup local/cancel */
        sim_sched_cancel_all(&s->sched, &c->timers);
        c->status = CALL_CANCELING;
        touch(c);
        sim_call_emit(s, c, "call_canceling");
        sim_call_timer(s, c, TEARDOWN_MS, T_FINISH, 0);
        break;
    case CALL_PROGRESSING:
        sim_sched_cancel_all(&s->sched, &c->timers);
        sim_flow_stop(c);
        c->pending_reason = reason_static(reason);
        c->status = CALL_TERMINATING;
        touch(c);
        sim_call_emit(s, c, "call_terminating");
        sim_call_timer(s, c, TEARDOWN_MS, T_FINISH, 0);
        break;
    default:
        break; /* already going away: idempotent, as the real hangup */
    }
}

void sim_call_remote_end(sim_t *s, sim_call *c, const char *reason)
{
    if (c->status == CALL_DIALING || c->status == CALL_RINGING || c->status == CALL_PROGRESSING)
        finish(s, c, "remote", reason);
}

void sim_call_hangup_api(sim_t *s, sim_call *c)
{
    sim_call_hanging_up(s, c, "normal");
}

void sim_call_delete_api(sim_t *s, sim_call *c)
{
    if (c->tm_delete)
        return;
    sim_call_hanging_up(s, c, "normal");
    c->tm_delete = sim_now_us();
    touch(c);
    sim_call_emit(s, c, "call_deleted");
}

static void answer(sim_t *s, sim_call *c)
{
    size_t i;

    c->status = CALL_PROGRESSING;
    c->tm_progressing = sim_now_us();
    touch(c);
    sim_call_emit(s, c, "call_progressing");
    for (i = 0; i < c->oc.n_dtmf; i++)
        sim_call_timer(s, c, c->oc.dtmf_at_ms[i], T_DTMF, (int64_t)i);
    if (c->oc.callee_hangup_ms >= 0)
        sim_call_timer(s, c, c->oc.callee_hangup_ms, T_CALLEE_HANGUP, 0);
    sim_call_timer(s, c, CALL_CAP_MS, T_CAP, 0);
    sim_flow_start(s, c);
}

void sim_call_keys(sim_t *s, sim_call *c, const char *keys)
{
    for (; *keys && c->status == CALL_PROGRESSING; keys++) {
        sim_digit_rec *d = sim_arr_push((void **)&c->dlog, &c->n_dlog, &c->cap_dlog, sizeof *d);
        if (d) {
            d->digit = *keys;
            d->at_us = sim_now_us();
            d->during = c->cur_type;
        }
        sim_flow_digit(s, c, *keys);
    }
}

static void call_timer_cb(void *obj, int kind, int64_t arg)
{
    sim_call *c = obj;
    sim_t *s = c->sim;

    switch (kind) {
    case T_RING:
        if (c->status == CALL_DIALING) {
            c->status = CALL_RINGING;
            c->tm_ringing = sim_now_us();
            touch(c);
            sim_call_emit(s, c, "call_ringing");
        }
        break;
    case T_ANSWER:
        if (c->status == CALL_DIALING || c->status == CALL_RINGING)
            answer(s, c);
        break;
    case T_REMOTE_END:
        if (c->status == CALL_DIALING || c->status == CALL_RINGING)
            finish(s, c, "remote", reasons[arg]);
        break;
    case T_CALLEE_HANGUP:
        if (c->status == CALL_PROGRESSING)
            finish(s, c, "remote", "normal");
        break;
    case T_CAP:
        if (c->status == CALL_PROGRESSING)
            finish(s, c, "remote", "timeout");
        break;
    case T_DTMF:
        if (c->status == CALL_PROGRESSING && (size_t)arg < c->oc.n_dtmf) {
            char k[2] = {c->oc.dtmf_keys[arg], 0};
            sim_call_keys(s, c, k);
        }
        break;
    case T_FINISH:
        if (c->status == CALL_TERMINATING)
            finish(s, c, "local", c->pending_reason ? c->pending_reason : "normal");
        else if (c->status == CALL_CANCELING)
            finish(s, c, "local", "cancel");
        break;
    case T_FLOW_DONE:
    case T_FLOW_AMD:
        sim_flow_timer(s, c, kind, arg);
        break;
    }
    if (c->status == CALL_HANGUP)
        enforce_retention(s);
}

/* Timers at creation, from the script (times from now, simulated ms). */
static void schedule_outcome(sim_t *s, sim_call *c)
{
    const sim_outcome *o = &c->oc;
    int64_t ring = o->ring_ms;

    if (!strcmp(o->kind, "answer") || !strcmp(o->kind, "machine")) {
        int64_t ans = o->answer_ms < 0 ? 0 : o->answer_ms;
        if (ring >= 0 && ring < ans && ring < DIAL_TIMEOUT_MS)
            sim_call_timer(s, c, ring, T_RING, 0);
        if (ans >= DIAL_TIMEOUT_MS)
            sim_call_timer(s, c, DIAL_TIMEOUT_MS, T_REMOTE_END, R_DIALOUT);
        else
            sim_call_timer(s, c, ans, T_ANSWER, 0);
        return;
    }
    if (ring >= 0 && ring < o->end_ms && ring < DIAL_TIMEOUT_MS)
        sim_call_timer(s, c, ring, T_RING, 0);
    if (!strcmp(o->kind, "dialout") || o->end_ms >= DIAL_TIMEOUT_MS)
        sim_call_timer(s, c, DIAL_TIMEOUT_MS, T_REMOTE_END, R_DIALOUT);
    else if (!strcmp(o->kind, "busy"))
        sim_call_timer(s, c, o->end_ms, T_REMOTE_END, R_BUSY);
    else if (!strcmp(o->kind, "noanswer"))
        sim_call_timer(s, c, o->end_ms, T_REMOTE_END, R_NOANSWER);
    else
        sim_call_timer(s, c, o->end_ms, T_REMOTE_END, R_FAILED);
}

/* ---------- POST /v1.0/calls ---------- */

/* Why a destination could not be placed (each is logged and skipped by the real code). */
typedef enum {
    NP_OK,
    NP_INACTIVE,
    NP_TYPE,
    NP_TARGET,
    NP_WHITELIST,
    NP_BALANCE,
    NP_SOURCE
} np_reason;

static const char *np_message(np_reason r)
{
    switch (r) {
    case NP_INACTIVE:
        return "The customer is not active.";
    case NP_TYPE:
        return "The destination type is not supported for a call.";
    case NP_TARGET:
        return "The destination is not a valid E.164 number.";
    case NP_WHITELIST:
        return "The destination country is not in the outbound destination whitelist.";
    case NP_BALANCE:
        return "Insufficient balance.";
    case NP_SOURCE:
        return "The source is not a number owned by the customer and no default source is "
               "configured.";
    default:
        return "";
    }
}

static int owns_number(const sim_t *s, const char *n)
{
    size_t i;

    if (!s->n_numbers)
        return sim_is_e164(n); /* --numbers not given: any E.164 source */
    for (i = 0; i < s->n_numbers; i++)
        if (!strcmp(s->numbers[i].number, n))
            return 1;
    return 0;
}

static int whitelisted(const sim_t *s, const char *cc)
{
    size_t i;
    json_t *v;

    if (s->outbound.allow_all)
        return 1;
    if (!cc)
        return 0;
    json_array_foreach(s->outbound.whitelist, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), cc)) return 1;
    return 0;
}

/* Only the non-empty address fields, as Go's omitempty renders them. */
static json_t *address_out(json_t *in)
{
    static const char *const keys[] = {"type", "target", "target_name", "name", "detail"};
    json_t *o = json_object();
    size_t i;

    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(in, keys[i]);
        if (json_is_string(v) && *json_string_value(v))
            json_object_set_new(o, keys[i], json_string(json_string_value(v)));
    }
    return o;
}

/* Resolves the caller id; NULL when none is valid. Returns a new reference. */
static json_t *resolve_source(const sim_t *s, json_t *src)
{
    const char *target = json_string_value(json_object_get(src, "target"));
    const char *type = json_string_value(json_object_get(src, "type"));
    size_t i;

    if (target && *target) {
        if (type && *type && strcmp(type, "tel"))
            return NULL;
        if (!owns_number(s, target))
            return NULL;
        return address_out(src);
    }
    if (!s->outbound.default_source_id[0])
        return NULL;
    for (i = 0; i < s->n_numbers; i++)
        if (!strcmp(s->numbers[i].id, s->outbound.default_source_id))
            return json_pack("{s:s, s:s}", "type", "tel", "target", s->numbers[i].number);
    return NULL;
}

static np_reason placeable(const sim_t *s, json_t *src, json_t *dst, json_t **src_out)
{
    const char *type = json_string_value(json_object_get(dst, "type"));
    const char *target = json_string_value(json_object_get(dst, "target"));

    *src_out = NULL;
    if (strcmp(s->account.status, "active"))
        return NP_INACTIVE;
    if (!type || (strcmp(type, "tel") && strcmp(type, "sip")))
        return NP_TYPE;
    if (!target || !*target)
        return NP_TARGET;
    if (!strcmp(type, "tel")) {
        if (!sim_is_e164(target))
            return NP_TARGET;
        if (!whitelisted(s, sim_country_of(target)))
            return NP_WHITELIST;
    }
    if (s->account.balance <= 0)
        return NP_BALANCE;
    *src_out = resolve_source(s, src);
    return *src_out ? NP_OK : NP_SOURCE;
}

static int check_variables(json_t *vars)
{
    const char *k;
    json_t *v;
    size_t total = 0;

    if (!vars)
        return 0;
    if (json_object_size(vars) > 100)
        return -1;
    json_object_foreach(vars, k, v)
    {
        size_t l = strlen(json_string_value(v));
        if (l > 32 * 1024)
            return -1;
        total += strlen(k) + l;
    }
    return total > 64 * 1024 ? -1 : 0;
}

static sim_call *call_new(sim_t *s, const sim_req *q, json_t *src, json_t *dst, json_t *actions,
                          const char *flow_id, json_t *vars)
{
    sim_call *c = calloc(1, sizeof *c);
    const char *target = json_string_value(json_object_get(dst, "target"));
    char err[160];
    const char *k;
    json_t *v;

    if (!c)
        return NULL;
    c->sim = s;
    sim_uuid(c->e.id);
    sim_uuid(c->activeflow_id);
    sim_strlcpy(c->flow_id, flow_id, sizeof c->flow_id);
    c->status = CALL_DIALING;
    c->source = src; /* owned now */
    c->destination = address_out(dst);
    c->action = json_pack("{s:s, s:s, s:n}", "id", "00000000-0000-0000-0000-000000000001",
                          "next_id", SIM_NIL_UUID, "tm_execute");
    c->actions = json_incref(actions);
    c->vars = json_object();
    json_object_foreach(
        vars, k,
        v) if (strncmp(k, "voipbin.", 8)) /* reserved names are ignored, as the real API does */
        json_object_set(c->vars, k, v);
    c->request_body = malloc(q->body_len + 1);
    if (c->request_body) {
        memcpy(c->request_body, q->body, q->body_len);
        c->request_body[q->body_len] = '\0';
    }
    sim_strlcpy(c->request_id, q->request_id, sizeof c->request_id);
    c->script = script_for(s, target ? target : "");
    if (sim_outcome_parse(c->script, &c->oc, err, sizeof err))
        sim_outcome_parse(NULL, &c->oc, err, sizeof err);
    c->machine = !strcmp(c->oc.kind, "machine");
    sim_index_add(&s->calls, &c->e);
    s->n_calls_created++;
    return c;
}

void sim_calls_create(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *body = json_loadb(q->body ? q->body : "", q->body_len, 0, &je);
    json_t *src, *dsts, *acts, *vars, *fid, *actions = NULL, *calls, *d, *v;
    char flow_id[37], bad[96], msg[160];
    np_reason first = NP_OK;
    size_t i;
    const char *k;

    if (!json_is_object(body)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                       "The request body is not valid JSON.", NULL);
        goto out;
    }
    src = json_object_get(body, "source");
    dsts =
        json_object_get(body, "destinations"); /* a singular "destination" is ignored, as in Go */
    acts = json_object_get(body, "actions");
    vars = json_object_get(body, "variables");
    fid = json_object_get(body, "flow_id");
    if ((src && !json_is_object(src) && !json_is_null(src)) ||
        (dsts && !json_is_array(dsts) && !json_is_null(dsts)) ||
        (acts && !json_is_array(acts) && !json_is_null(acts)) ||
        (vars && !json_is_object(vars) && !json_is_null(vars)) ||
        (fid && !json_is_string(fid) && !json_is_null(fid))) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                       "The request body does not match the expected format.", NULL);
        goto out;
    }
    if (json_is_object(vars)) {
        json_object_foreach(vars, k, v) if (!json_is_string(v))
        {
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                           "variables must map strings to strings.", NULL);
            goto out;
        }
        if (check_variables(vars)) {
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_VARIABLES",
                           "variables: at most 100 keys, 64 KiB in total, 32 KiB per value.", NULL);
            goto out;
        }
    }
    json_array_foreach(dsts, i, d)
    {
        const char *t = json_string_value(json_object_get(d, "type"));
        if (t && !strcmp(t, "tel") && strcmp(s->account.identity, "verified")) {
            sim_resp_error(r, q, 403, "PERMISSION_DENIED", "IDENTITY_VERIFICATION_REQUIRED",
                           "Identity verification is required to make PSTN calls.", NULL);
            goto out;
        }
    }
    if (json_is_string(fid) && *json_string_value(fid)) {
        json_t *stored = sim_extras_flow_actions(s, json_string_value(fid));
        if (!stored) {
            sim_resp_error(r, q, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND", "The flow was not found.",
                           NULL);
            goto out;
        }
        actions = json_incref(stored);
        sim_strlcpy(flow_id, json_string_value(fid), sizeof flow_id);
    } else {
        /* inline actions become a temporary flow "tmp" */
        int rc;
        actions = json_is_array(acts) ? json_deep_copy(acts) : json_array();
        rc = sim_flow_prepare(actions, bad, sizeof bad);
        if (rc) {
            if (rc == -1)
                snprintf(msg, sizeof msg, "The action type '%s' is not valid.", bad);
            else
                snprintf(msg, sizeof msg, "Every action must be an object with a type.");
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ACTION_TYPE", msg, NULL);
            goto out;
        }
        sim_uuid(flow_id);
    }
    calls = json_array();
    json_array_foreach(dsts, i, d)
    {
        json_t *src_out = NULL;
        np_reason why = json_is_object(d) ? placeable(s, src, d, &src_out) : NP_TYPE;
        sim_call *c;
        if (why != NP_OK) {
            if (first == NP_OK)
                first = why;
            continue;
        }
        c = call_new(s, q, src_out, d, actions, flow_id, vars);
        if (!c) {
            json_decref(src_out);
            continue;
        }
        sim_call_emit(s, c, "call_created");
        schedule_outcome(s, c);
        json_array_append_new(calls, sim_call_json(c));
    }
    if (!json_array_size(calls)) {
        json_decref(calls);
        if (first == NP_OK)
            first = NP_TARGET; /* no destinations at all */
        if (strcmp(s->cfg->error_mode, "documented"))
            sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "An internal error has occurred.",
                           NULL);
        else if (first == NP_BALANCE)
            sim_resp_error(r, q, 402, "PAYMENT_REQUIRED", "INSUFFICIENT_BALANCE", np_message(first),
                           NULL);
        else
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                           first == NP_TARGET && !json_array_size(dsts)
                               ? "destinations must not be empty."
                               : np_message(first),
                           NULL);
        goto out;
    }
    sim_resp_json(r, 200, json_pack("{s:o, s:[]}", "calls", calls, "groupcalls"));
    enforce_retention(s);
out:
    json_decref(actions);
    json_decref(body);
}

json_t *sim_call_listed(const sim_entry *e)
{
    const sim_call *c = (const sim_call *)e;

    return c->tm_delete ? NULL : sim_call_json(c);
}
