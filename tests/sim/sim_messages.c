/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_MSG_SENT, T_MSG_FINAL };

static void msg_free(sim_msg *m)
{
    size_t i;

    json_decref(m->source);
    for (i = 0; i < m->n_targets; i++)
        json_decref(m->targets[i].destination);
    free(m->targets);
    free(m->text);
    free(m->request_body);
    for (i = 0; i < m->n_events; i++)
        free(m->events[i].error);
    free(m->events);
    free(m);
}

static void msg_release(void *owner)
{
    sim_msg *m = owner;

    if (--m->refs == 0 && m->removed)
        msg_free(m);
}

static void msg_remove(sim_t *s, sim_msg *m)
{
    sim_sched_cancel_all(&s->sched, &m->timers);
    if (!m->removed)
        sim_index_del(&s->messages, &m->e);
    m->removed = 1;
    if (!m->refs)
        msg_free(m);
}

static void msg_record(void *owner, int rec, size_t idx, int attempts, long http_status,
                       const char *error, int state)
{
    sim_msg *m = owner;

    (void)rec;
    if (idx >= m->n_events)
        return;
    m->events[idx].attempts = attempts;
    m->events[idx].http_status = http_status;
    m->events[idx].state = state;
    free(m->events[idx].error);
    m->events[idx].error = error ? strdup(error) : NULL;
}

static const sim_wh_owner_ops msg_ops = {msg_record, msg_release};

static json_t *msg_json(const sim_msg *m)
{
    json_t *o = json_object(), *ts = json_array();
    size_t i;

    for (i = 0; i < m->n_targets; i++) {
        const sim_msg_target *t = &m->targets[i];
        json_t *x = json_object();
        json_object_set(x, "destination", t->destination);
        json_object_set_new(x, "status", json_string(t->status));
        json_object_set_new(x, "parts", json_integer(t->parts));
        json_object_set_new(x, "tm_update", sim_time_json(t->tm_update));
        json_array_append_new(ts, x);
    }
    json_object_set_new(o, "id", json_string(m->e.id));
    json_object_set_new(o, "customer_id", json_string(m->sim->customer_id));
    json_object_set_new(o, "type", json_string("sms"));
    json_object_set(o, "source", m->source);
    json_object_set_new(o, "targets", ts);
    json_object_set_new(o, "text", json_string(m->text));
    json_object_set_new(o, "direction", json_string("outbound"));
    /* message timestamps are not omitempty: unset is null */
    json_object_set_new(o, "tm_create", sim_time_json(m->e.tm_create_us));
    json_object_set_new(o, "tm_update", sim_time_json(m->tm_update));
    json_object_set_new(o, "tm_delete", sim_time_json(m->tm_delete));
    return o;
}

static void emit(sim_t *s, sim_msg *m, const char *type)
{
    sim_event_rec *ev = sim_arr_push((void **)&m->events, &m->n_events, &m->cap_events, sizeof *ev);
    json_t *msg;
    char *body;
    sim_wh_req rq;
    const char *uri = s->customer.webhook_uri;

    if (!ev)
        return;
    sim_strlcpy(ev->type, type, sizeof ev->type);
    ev->at_us = sim_now_us();
    if (!uri || !*uri) {
        ev->state = SIM_WH_SKIPPED;
        return;
    }
    ev->state = SIM_WH_PENDING;
    msg = json_pack("{s:s, s:o}", "type", type, "data", msg_json(m));
    body = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!body)
        return;
    memset(&rq, 0, sizeof rq);
    rq.uri = uri;
    rq.method = s->customer.webhook_method;
    rq.content_type = "application/json";
    rq.body = body;
    rq.body_len = strlen(body);
    rq.secret = s->customer.webhook_secret;
    rq.shard = (unsigned)m->e.id[0] * 131u + (unsigned)m->e.id[1];
    rq.owner = m;
    rq.ops = &msg_ops;
    rq.rec = 0;
    rq.idx = m->n_events - 1;
    m->refs++;
    sim_wh_send(s->wh, &rq);
    free(body);
}

static void enforce_retention(sim_t *s)
{
    long cap = s->cfg->max_calls;

    while (cap > 0 && s->messages.count > (size_t)cap && s->mended_head) {
        sim_msg *m = s->mended_head;
        s->mended_head = m->ended_next;
        if (!s->mended_head)
            s->mended_tail = NULL;
        s->n_mended--;
        msg_remove(s, m);
    }
}

static void msg_timer(void *obj, int kind, int64_t arg)
{
    sim_msg *m = obj;
    sim_t *s = m->sim;
    size_t i;
    int changed = 0;

    (void)arg;
    for (i = 0; i < m->n_targets; i++) {
        sim_msg_target *t = &m->targets[i];
        const char *next = NULL;
        if (kind == T_MSG_SENT && !strcmp(t->status, "queued"))
            next =
                !strcmp(t->final, "failed") || !strcmp(t->final, "gw_timeout") ? t->final : "sent";
        else if (kind == T_MSG_FINAL && !strcmp(t->status, "sent") && strcmp(t->final, "sent"))
            next = t->final;
        if (next) {
            sim_strlcpy(t->status, next, sizeof t->status);
            t->tm_update = sim_now_us();
            changed = 1;
        }
    }
    if (changed) {
        m->tm_update = sim_now_us();
        emit(s, m, "message_updated");
    }
    if (kind == T_MSG_SENT)
        sim_sched_add(&s->sched, &m->timers, sim_scaled_ns(s, 1500), msg_timer, m, T_MSG_FINAL, 0);
    else {
        m->ended_next = NULL;
        if (s->mended_tail)
            s->mended_tail->ended_next = m;
        else
            s->mended_head = m;
        s->mended_tail = m;
        s->n_mended++;
        enforce_retention(s);
    }
}

/* GSM-7 fits 160 characters (153 per part when split); anything else UCS-2, 70 (67). */
static int sms_parts(const char *text)
{
    size_t n = 0;
    int gsm = 1;
    const unsigned char *p;

    for (p = (const unsigned char *)text; *p; p++) {
        if (*p >= 0x80)
            gsm = 0;
        if ((*p & 0xc0) != 0x80)
            n++;
    }
    if (gsm)
        return n <= 160 ? 1 : (int)((n + 152) / 153);
    return n <= 70 ? 1 : (int)((n + 66) / 67);
}

static const char *sms_final(sim_t *s, const char *target)
{
    sim_script *sc;
    const char *hit = NULL;

    for (sc = s->scripts; sc; sc = sc->next) {
        const char *v = json_string_value(json_object_get(sc->outcome, "sms"));
        if (!v)
            continue;
        if (!strcmp(sc->target, target))
            return v;
        if (!strcmp(sc->target, "*"))
            hit = v;
    }
    return hit ? hit : "delivered";
}

void sim_messages_create(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *body = json_loadb(q->body ? q->body : "", q->body_len, 0, &je), *src, *dsts, *text, *d;
    sim_msg *m = NULL;
    size_t i;
    int documented = !strcmp(s->cfg->error_mode, "documented");

    if (!json_is_object(body)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                       "The request body is not valid JSON.", NULL);
        goto out;
    }
    src = json_object_get(body, "source");
    dsts = json_object_get(body, "destinations");
    text = json_object_get(body, "text");
    if ((src && !json_is_object(src)) || (dsts && !json_is_array(dsts)) ||
        (text && !json_is_string(text))) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                       "The request body does not match the expected format.", NULL);
        goto out;
    }
    if (!json_array_size(dsts)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                       "destinations must not be empty.", NULL);
        goto out;
    }
    /* message-manager returns plain errors here, which the gateway turns into 500 */
    if (strcmp(s->account.identity, "verified")) {
        if (documented)
            sim_resp_error(r, q, 403, "PERMISSION_DENIED", "IDENTITY_VERIFICATION_REQUIRED",
                           "Identity verification is required to send messages.", NULL);
        else
            sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "An internal error has occurred.",
                           NULL);
        goto out;
    }
    if (s->account.balance <= 0) {
        if (documented)
            sim_resp_error(r, q, 402, "PAYMENT_REQUIRED", "INSUFFICIENT_BALANCE",
                           "Insufficient balance.", NULL);
        else
            sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "An internal error has occurred.",
                           NULL);
        goto out;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->targets = calloc(json_array_size(dsts), sizeof *m->targets))) {
        free(m);
        sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "An internal error has occurred.", NULL);
        goto out;
    }
    m->sim = s;
    sim_uuid(m->e.id);
    m->source = src ? json_deep_copy(src) : json_object();
    m->text = sim_strdup(json_string_value(text));
    m->request_body = malloc(q->body_len + 1);
    if (m->request_body) {
        memcpy(m->request_body, q->body, q->body_len);
        m->request_body[q->body_len] = '\0';
    }
    sim_strlcpy(m->request_id, q->request_id, sizeof m->request_id);
    json_array_foreach(dsts, i, d)
    {
        sim_msg_target *t = &m->targets[m->n_targets++];
        const char *tg = json_string_value(json_object_get(d, "target"));
        t->destination = json_is_object(d) ? json_deep_copy(d) : json_object();
        sim_strlcpy(t->status, "queued", sizeof t->status);
        sim_strlcpy(t->final, sms_final(s, tg ? tg : ""), sizeof t->final);
        t->parts = sms_parts(m->text);
    }
    sim_index_add(&s->messages, &m->e);
    m->tm_update = m->e.tm_create_us;
    emit(s, m, "message_created");
    sim_sched_add(&s->sched, &m->timers, sim_scaled_ns(s, 300), msg_timer, m, T_MSG_SENT, 0);
    sim_resp_json(r, 200, msg_json(m));
out:
    json_decref(body);
}

json_t *sim_msg_listed(const sim_entry *e)
{
    const sim_msg *m = (const sim_msg *)e;

    return m->tm_delete ? NULL : msg_json(m);
}

void sim_messages_get(sim_t *s, const sim_req *q, sim_resp *r, const char *id, int del)
{
    sim_msg *m;

    if (!sim_is_uuid(id)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ID", "The id is not a valid UUID.",
                       NULL);
        return;
    }
    m = (sim_msg *)sim_index_find(&s->messages, id);
    if (!m) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "MESSAGE_NOT_FOUND", "The message was not found.",
                       NULL);
        return;
    }
    if (del && !m->tm_delete) {
        m->tm_delete = m->tm_update = sim_now_us();
        emit(s, m, "message_deleted");
    }
    sim_resp_json(r, 200, msg_json(m));
}

json_t *sim_msg_record_json(const sim_msg *m)
{
    json_t *o = json_object(), *a = json_array(), *req;
    json_error_t je;
    size_t i;

    json_object_set_new(o, "id", json_string(m->e.id));
    json_object_set_new(o, "text", json_string(m->text));
    json_object_set_new(o, "request_id", json_string(m->request_id));
    json_object_set_new(o, "request_body", json_string(m->request_body ? m->request_body : ""));
    req = m->request_body ? json_loads(m->request_body, 0, &je) : NULL;
    json_object_set_new(o, "request", req ? req : json_null());
    json_object_set_new(o, "message", msg_json(m));
    for (i = 0; i < m->n_events; i++) {
        const sim_event_rec *e = &m->events[i];
        json_t *x = json_object();
        json_object_set_new(x, "type", json_string(e->type));
        json_object_set_new(x, "at", sim_time_json(e->at_us));
        json_object_set_new(x, "state", json_string(sim_wh_state_name(e->state)));
        json_object_set_new(x, "delivered", json_boolean(e->state == SIM_WH_DELIVERED));
        json_object_set_new(x, "attempts", json_integer(e->attempts));
        json_object_set_new(x, "status_code",
                            e->http_status ? json_integer(e->http_status) : json_null());
        json_object_set_new(x, "error",
                            e->error                     ? json_string(e->error)
                            : e->state == SIM_WH_SKIPPED ? json_string("no webhook_uri")
                                                         : json_null());
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "events", a);
    return o;
}

void sim_messages_clear(sim_t *s)
{
    while (s->messages.head)
        msg_remove(s, (sim_msg *)s->messages.head);
    s->mended_head = s->mended_tail = NULL;
    s->n_mended = 0;
}
