/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_xml.h"

/* TypeListAll of bin-flow-manager: anything else is INVALID_ACTION_TYPE. */
static const char *const known_types[] = {"ai_summary",
                                          "ai_talk",
                                          "ai_task",
                                          "amd",
                                          "answer",
                                          "beep",
                                          "block",
                                          "branch",
                                          "call",
                                          "case_create",
                                          "condition_call_digits",
                                          "condition_call_status",
                                          "condition_datetime",
                                          "condition_variable",
                                          "confbridge_join",
                                          "conference_join",
                                          "connect",
                                          "conversation_send",
                                          "digits_receive",
                                          "digits_send",
                                          "echo",
                                          "email_send",
                                          "empty",
                                          "external_media_start",
                                          "external_media_stop",
                                          "fetch",
                                          "fetch_flow",
                                          "goto",
                                          "hangup",
                                          "message_send",
                                          "mute",
                                          "play",
                                          "queue_join",
                                          "recording_start",
                                          "recording_stop",
                                          "sleep",
                                          "stop",
                                          "stream_echo",
                                          "talk",
                                          "transcribe_recording",
                                          "transcribe_start",
                                          "transcribe_stop",
                                          "variable_set",
                                          "webhook_send"};

const char *sim_flow_type(const char *type)
{
    size_t i;

    for (i = 0; type && i < sizeof known_types / sizeof known_types[0]; i++)
        if (!strcmp(known_types[i], type))
            return known_types[i];
    return NULL;
}

int sim_flow_prepare(json_t *actions, char *bad, size_t badlen)
{
    size_t i;
    json_t *a;

    json_array_foreach(actions, i, a)
    {
        json_t *t, *id;
        if (!json_is_object(a))
            return -2;
        t = json_object_get(a, "type");
        if (!json_is_string(t) || !sim_flow_type(json_string_value(t))) {
            snprintf(bad, badlen, "%s", json_is_string(t) ? json_string_value(t) : "");
            return -1;
        }
        id = json_object_get(a, "id");
        if (!json_is_string(id) || !*json_string_value(id)) {
            char u[37];
            sim_uuid(u);
            json_object_set_new(a, "id", json_string(u));
        }
    }
    return 0;
}

/* ---------- variables ---------- */

static const char *addr_field(json_t *addr, const char *f)
{
    const char *v = json_string_value(json_object_get(addr, f));
    return v ? v : "";
}

/* Value of a variable name ("voipbin.call.digits", a request variable, ...). */
static const char *lookup(const sim_call *c, const char *name)
{
    const char *v;

    if (!strcmp(name, "voipbin.call.digits"))
        return c->digits.p ? c->digits.p : "";
    if (!strcmp(name, "voipbin.call.id") || !strcmp(name, "voipbin.activeflow.reference_id"))
        return c->e.id;
    if (!strcmp(name, "voipbin.call.direction"))
        return "outgoing";
    if (!strcmp(name, "voipbin.call.master_call_id"))
        return SIM_NIL_UUID;
    if (!strcmp(name, "voipbin.activeflow.id"))
        return c->activeflow_id;
    if (!strcmp(name, "voipbin.activeflow.flow_id"))
        return c->flow_id;
    if (!strcmp(name, "voipbin.activeflow.reference_type"))
        return "call";
    if (!strncmp(name, "voipbin.call.source.", 20))
        return addr_field(c->source, name + 20);
    if (!strncmp(name, "voipbin.call.destination.", 25))
        return addr_field(c->destination, name + 25);
    v = json_string_value(json_object_get(c->vars, name));
    return v ? v : ""; /* an unknown variable becomes empty */
}

char *sim_flow_subst(const sim_call *c, const char *in)
{
    sim_buf b = {0};
    char name[256];

    if (!in)
        in = "";
    while (*in) {
        const char *st = strstr(in, "${"), *en;
        size_t nl;
        if (!st)
            break;
        en = strchr(st + 2, '}');
        if (!en)
            break;
        sim_buf_add(&b, in, (size_t)(st - in));
        nl = (size_t)(en - st - 2);
        if (nl < sizeof name) {
            memcpy(name, st + 2, nl);
            name[nl] = '\0';
            sim_buf_adds(&b, lookup(c, name));
        }
        in = en + 1;
    }
    sim_buf_adds(&b, in);
    return sim_buf_take(&b);
}

/* A `variable` option: "${name}" is substituted, a bare name is looked up. */
static char *variable_value(const sim_call *c, const char *opt)
{
    if (!opt)
        return strdup("");
    if (strstr(opt, "${"))
        return sim_flow_subst(c, opt);
    return strdup(lookup(c, opt));
}

/* ---------- option helpers ---------- */

static const char *opt_str(json_t *opt, const char *k, const char *def)
{
    const char *v = json_string_value(json_object_get(opt, k));
    return v ? v : def;
}

static long opt_long(json_t *opt, const char *k, long def)
{
    json_t *v = json_object_get(opt, k);

    if (json_is_number(v))
        return (long)json_number_value(v);
    if (json_is_string(v)) {
        char *end;
        long l = strtol(json_string_value(v), &end, 10);
        if (end != json_string_value(v))
            return l;
    }
    return def;
}

static int opt_bool(json_t *opt, const char *k)
{
    return json_is_true(json_object_get(opt, k));
}

/* Index of the action with this id, or -1. */
static long find_action(const sim_call *c, const char *id)
{
    size_t i;
    json_t *a;

    if (!id || !*id || !strcmp(id, SIM_NIL_UUID))
        return -1;
    json_array_foreach(c->actions, i, a) if (!strcmp(opt_str(a, "id", ""), id)) return (long)i;
    return -1;
}

/* Where the flow goes after this action: next_id, or the next in the array. */
static size_t default_next(const sim_call *c, json_t *a)
{
    long n = find_action(c, opt_str(a, "next_id", ""));
    return n >= 0 ? (size_t)n : c->pc + 1;
}

/* ---------- runner ---------- */

static void step(sim_t *s, sim_call *c);

/* The call's action field as the API shows it while this action runs. */
static json_t *action_view(json_t *a)
{
    char t[SIM_TIME_LEN];
    json_t *opt = json_object_get(a, "option");
    json_t *v = json_object();

    sim_fmt_time(sim_now_us(), t);
    json_object_set_new(v, "id", json_string(opt_str(a, "id", SIM_NIL_UUID)));
    json_object_set_new(v, "next_id", json_string(opt_str(a, "next_id", SIM_NIL_UUID)));
    json_object_set_new(v, "type", json_string(opt_str(a, "type", "")));
    if (opt)
        json_object_set(v, "option", opt);
    json_object_set_new(v, "tm_execute", json_string(t));
    return v;
}

/* Blocks the flow for ms; T_FLOW_DONE then moves on to c->next_pc. */
static void wait_ms(sim_t *s, sim_call *c, int media, int64_t ms)
{
    c->media = media;
    sim_call_timer(s, c, ms < 0 ? 0 : ms, T_FLOW_DONE, c->gen);
}

static void advance(sim_t *s, sim_call *c)
{
    if (c->media == SIM_MEDIA_TALK && c->cur_talk < c->n_talks && !c->talks[c->cur_talk].ended_us)
        c->talks[c->cur_talk].ended_us = sim_now_us();
    c->media = SIM_MEDIA_NONE;
    c->gen++;
    c->pc = c->next_pc;
    step(s, c);
}

static int digits_done(const sim_call *c)
{
    const char *d = c->digits.p ? c->digits.p : "";

    if (c->dr_length > 0 && (long)strlen(d) >= c->dr_length)
        return 1;
    for (; *d; d++)
        if (strchr(c->dr_key, *d))
            return 1;
    return 0;
}

static void set_digits(sim_call *c, const char *v)
{
    c->digits.len = 0;
    sim_buf_adds(&c->digits, v);
}

/* Returns 1 when the talk blocks the flow. */
static int do_talk(sim_t *s, sim_call *c, json_t *opt)
{
    sim_talk_rec *t = sim_arr_push((void **)&c->talks, &c->n_talks, &c->cap_talks, sizeof *t);
    char name[64];
    size_t idx = c->n_talks - 1;

    if (!t)
        return 0;
    t->text = sim_flow_subst(c, opt_str(opt, "text", ""));
    t->language = sim_strdup(opt_str(opt, "language", ""));
    t->provider = sim_strdup(opt_str(opt, "provider", "gcp"));
    t->voice_id = sim_strdup(opt_str(opt, "voice_id", ""));
    t->started_us = sim_now_us();
    t->async = opt_bool(opt, "async");
    if (!t->text || !sim_tts_accepts(t->text)) {
        /* the real TTS refuses text that is not XML inside <speak>; the action fails and the
         * call-manager moves on to the next action */
        t->failed = 1;
        t->error = strdup("text is not valid XML inside <speak> (escape &, < and >)");
        t->ended_us = t->started_us;
        return 0;
    }
    t->planned_ms = sim_tts_duration_ms(t->text);
    if (s->audio) {
        char *ssml = sim_tts_ssml(t->text);
        snprintf(name, sizeof name, "%s-%zu.wav", c->e.id, idx + 1);
        if (ssml) {
            t->audio_pending = 1;
            sim_call_ref(c);
            sim_audio_render(s->audio, ssml, t->language, name, c, &sim_call_audio_ops, idx);
            free(ssml);
        }
    }
    if (t->async) {
        t->ended_us = t->started_us + (int64_t)(t->planned_ms * s->cfg->time_scale * 1000);
        return 0;
    }
    c->cur_talk = idx;
    c->talk_next = !strcmp(opt_str(opt, "digits_handle", ""), "next");
    wait_ms(s, c, SIM_MEDIA_TALK, t->planned_ms);
    return 1;
}

static void do_webhook_send(sim_t *s, sim_call *c, json_t *opt)
{
    sim_send_rec *w = sim_arr_push((void **)&c->sends, &c->n_sends, &c->cap_sends, sizeof *w);
    json_t *data = json_object_get(opt, "data");
    char *raw = NULL;
    sim_wh_req rq;

    if (!w)
        return;
    if (data && !json_is_string(data))
        raw = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    w->uri = sim_flow_subst(c, opt_str(opt, "uri", ""));
    w->method = sim_strdup(opt_str(opt, "method", "POST"));
    w->data_type = sim_strdup(opt_str(opt, "data_type", "application/json"));
    w->body = sim_flow_subst(c, raw ? raw : opt_str(opt, "data", ""));
    w->at_us = sim_now_us();
    free(raw);
    if (!w->uri || !*w->uri || !w->body) {
        w->state = SIM_WH_SKIPPED;
        w->error = strdup("no uri");
        return;
    }
    w->state = SIM_WH_PENDING;
    memset(&rq, 0, sizeof rq);
    rq.uri = w->uri;
    rq.method = w->method;
    rq.content_type = w->data_type;
    rq.body = w->body;
    rq.body_len = strlen(w->body);
    rq.secret = s->customer.webhook_secret;
    rq.shard = (unsigned)c->e.id[0] * 31u + (unsigned)c->e.id[1];
    rq.owner = c;
    rq.ops = &sim_call_wh_ops;
    rq.rec = REC_SEND;
    rq.idx = c->n_sends - 1;
    sim_call_ref(c);
    sim_wh_send(s->wh, &rq);
}

static int compare(const char *op, double l, double r)
{
    if (!strcmp(op, "=="))
        return l == r;
    if (!strcmp(op, "!="))
        return l != r;
    if (!strcmp(op, ">"))
        return l > r;
    if (!strcmp(op, ">="))
        return l >= r;
    if (!strcmp(op, "<"))
        return l < r;
    if (!strcmp(op, "<="))
        return l <= r;
    return 0;
}

static int condition_variable(const sim_call *c, json_t *opt)
{
    char *val = variable_value(c, opt_str(opt, "variable", ""));
    const char *op = opt_str(opt, "condition", "==");
    const char *vt = opt_str(opt, "value_type", "string");
    int ok;

    if (!val)
        return 0;
    if (!strcmp(vt, "number")) {
        json_t *n = json_object_get(opt, "value_number");
        ok = compare(op, strtod(val, NULL), json_is_number(n) ? json_number_value(n) : 0);
    } else if (!strcmp(vt, "length"))
        ok = compare(op, (double)strlen(val), (double)opt_long(opt, "value_length", 0));
    else
        ok = compare(op, (double)strcmp(val, opt_str(opt, "value_string", "")), 0);
    free(val);
    return ok;
}

static void record_executed(sim_call *c, const char *type)
{
    const char **p =
        sim_arr_push((void **)&c->executed, &c->n_executed, &c->cap_executed, sizeof *p);

    if (p)
        *p = type;
}

/* Runs actions until one blocks, the flow ends, or the call is no longer answered. */
static void step(sim_t *s, sim_call *c)
{
    int guard = 0;

    while (c->status == CALL_PROGRESSING) {
        json_t *a, *opt;
        const char *type;
        long target;

        if (!c->actions || c->pc >= json_array_size(c->actions)) {
            sim_call_hanging_up(s, c, "normal"); /* out of actions: local/normal */
            return;
        }
        if (++guard > 10000) { /* a goto/branch loop that never blocks */
            sim_call_hanging_up(s, c, "normal");
            return;
        }
        a = json_array_get(c->actions, c->pc);
        opt = json_object_get(a, "option");
        type = sim_flow_type(opt_str(a, "type", ""));
        if (!type)
            type = "empty";
        c->next_pc = default_next(c, a);
        c->cur_type = type;
        record_executed(c, type);
        c->gen++;

        /* flow-manager actions: no media, the call's action does not change */
        if (!strcmp(type, "goto")) {
            target = find_action(c, opt_str(opt, "target_id", ""));
            if (target < 0) {
                sim_call_hanging_up(s, c, "normal");
                return;
            }
            if (c->loops[c->pc] < opt_long(opt, "loop_count", 0)) {
                c->loops[c->pc]++;
                c->pc = (size_t)target;
            } else
                c->pc = c->next_pc;
            continue;
        }
        if (!strcmp(type, "branch")) {
            char *val = variable_value(c, opt_str(opt, "variable", "voipbin.call.digits"));
            const char *tid = json_string_value(
                json_object_get(json_object_get(opt, "target_ids"), val ? val : ""));
            free(val);
            if (!tid)
                tid = opt_str(opt, "default_target_id", "");
            target = find_action(c, tid);
            c->pc = target >= 0 ? (size_t)target : c->next_pc;
            continue;
        }
        if (!strcmp(type, "condition_variable")) {
            if (condition_variable(c, opt))
                c->pc = c->next_pc;
            else {
                target = find_action(c, opt_str(opt, "false_target_id", ""));
                c->pc = target >= 0 ? (size_t)target : c->next_pc;
            }
            continue;
        }
        if (!strcmp(type, "variable_set")) {
            char *v = sim_flow_subst(c, opt_str(opt, "value", ""));
            const char *key = opt_str(opt, "key", "");
            /* VoIPBin keeps the call's digits in this activeflow variable
             * itself (call-manager digit.go), so setting it resets them. */
            if (v && !strcmp(key, "voipbin.call.digits"))
                set_digits(c, v);
            else if (*key && v)
                json_object_set_new(c->vars, key, json_string(v));
            free(v);
            c->pc = c->next_pc;
            continue;
        }
        if (!strcmp(type, "webhook_send")) {
            do_webhook_send(s, c, opt); /* sync or not, delivery never blocks the flow */
            c->pc = c->next_pc;
            continue;
        }
        if (!strcmp(type, "stop")) {
            sim_call_hanging_up(s, c, "normal");
            return;
        }
        if (!strcmp(type, "empty") || !strcmp(type, "message_send") ||
            !strcmp(type, "email_send") || !strcmp(type, "fetch") || !strcmp(type, "fetch_flow") ||
            !strcmp(type, "call") || !strcmp(type, "condition_datetime") ||
            !strcmp(type, "condition_call_digits") || !strcmp(type, "condition_call_status") ||
            !strcmp(type, "conversation_send") || !strcmp(type, "case_create")) {
            c->pc = c->next_pc;
            continue;
        }

        /* call-manager actions: the call's action changes (call_updated) */
        sim_call_set_action(s, c, action_view(a));
        if (c->status != CALL_PROGRESSING)
            return;
        if (!strcmp(type, "talk")) {
            if (do_talk(s, c, opt))
                return;
        } else if (!strcmp(type, "sleep")) {
            wait_ms(s, c, SIM_MEDIA_WAIT, opt_long(opt, "duration", 0));
            return;
        } else if (!strcmp(type, "digits_receive")) {
            c->dr_length = opt_long(opt, "length", 0);
            sim_strlcpy(c->dr_key, opt_str(opt, "key", ""), sizeof c->dr_key);
            if (!digits_done(c)) { /* stored type-ahead digits may already satisfy it */
                wait_ms(s, c, SIM_MEDIA_DIGITS, opt_long(opt, "duration", 0));
                return;
            }
        } else if (!strcmp(type, "amd")) {
            int async = opt_bool(opt, "async");
            c->pending_reason =
                !strcmp(opt_str(opt, "machine_handle", ""), "hangup") ? "amd" : NULL;
            sim_call_timer(s, c, c->oc.amd_ms, T_FLOW_AMD, async ? -1 : (int64_t)c->gen);
            if (!async) {
                c->media = SIM_MEDIA_AMD;
                return;
            }
        } else if (!strcmp(type, "hangup")) {
            sim_call_hanging_up(s, c, opt_str(opt, "reason", "normal"));
            return;
        } else if (!strcmp(type, "beep")) {
            wait_ms(s, c, SIM_MEDIA_WAIT, 500);
            return;
        } else if (!strcmp(type, "play")) {
            size_t n = json_array_size(json_object_get(opt, "stream_urls"));
            wait_ms(s, c, SIM_MEDIA_WAIT, 3000 * (int64_t)(n ? n : 1));
            return;
        } else if (!strcmp(type, "digits_send")) {
            long len = (long)strlen(opt_str(opt, "digits", ""));
            long dur = opt_long(opt, "duration", 250), gap = opt_long(opt, "interval", 0);
            wait_ms(s, c, SIM_MEDIA_WAIT, dur * len + (len > 1 ? gap * (len - 1) : 0));
            return;
        } else if (!strcmp(type, "echo") || !strcmp(type, "stream_echo")) {
            long d = opt_long(opt, "duration", 0);
            wait_ms(s, c, SIM_MEDIA_WAIT, d > 0 ? d : 180000);
            return;
        } else if (!strcmp(type, "block") || !strcmp(type, "ai_talk") ||
                   !strcmp(type, "queue_join") || !strcmp(type, "conference_join") ||
                   !strcmp(type, "confbridge_join") || !strcmp(type, "connect")) {
            c->media = SIM_MEDIA_WAIT; /* holds until someone hangs up */
            return;
        }
        c->pc = c->next_pc; /* answer, recording_*, mute, ...: done at once */
    }
}

void sim_flow_start(sim_t *s, sim_call *c)
{
    size_t n = json_array_size(c->actions);

    c->pc = 0;
    c->media = SIM_MEDIA_NONE;
    free(c->loops);
    c->loops = calloc(n ? n : 1, sizeof *c->loops);
    if (!c->loops) {
        sim_call_hanging_up(s, c, "normal");
        return;
    }
    step(s, c);
}

void sim_flow_timer(sim_t *s, sim_call *c, int kind, int64_t arg)
{
    if (c->status != CALL_PROGRESSING)
        return;
    if (kind == T_FLOW_AMD) {
        int machine = c->machine;
        c->amd_result = machine ? "MACHINE" : "HUMAN";
        if (machine && c->pending_reason && !strcmp(c->pending_reason, "amd")) {
            sim_call_hanging_up(s, c, "amd"); /* terminating → hangup local/amd */
            return;
        }
        c->pending_reason = NULL;
        if (arg < 0 || (uint32_t)arg != c->gen || c->media != SIM_MEDIA_AMD)
            return; /* async amd, or the flow has moved on */
        advance(s, c);
        return;
    }
    if ((uint32_t)arg != c->gen || c->media == SIM_MEDIA_NONE)
        return; /* stale */
    advance(s, c);
}

void sim_flow_digit(sim_t *s, sim_call *c, char d)
{
    char one[2] = {d, 0};

    if (c->media == SIM_MEDIA_DIGITS) {
        sim_buf_add(&c->digits, one, 1); /* appended during digits_receive */
        if (digits_done(c))
            advance(s, c);
        return;
    }
    /* any other time the key overwrites the variable: type-ahead for the next digits_receive */
    set_digits(c, one);
    if (c->media == SIM_MEDIA_TALK && c->talk_next) {
        if (c->cur_talk < c->n_talks)
            c->talks[c->cur_talk].interrupted = 1;
        advance(s, c);
    }
}

void sim_flow_stop(sim_call *c)
{
    if (c->media == SIM_MEDIA_TALK && c->cur_talk < c->n_talks && !c->talks[c->cur_talk].ended_us) {
        c->talks[c->cur_talk].ended_us = sim_now_us();
        c->talks[c->cur_talk].interrupted = 1;
    }
    c->media = SIM_MEDIA_NONE;
    c->gen++;
}
