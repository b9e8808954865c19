/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_auth.h"
#include "sim_calls.h"
#include "sim_extras.h"
#include "sim_messages.h"

static void bad(sim_resp *r, const sim_req *q, const char *msg)
{
    sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", msg, NULL);
}

static void ok(sim_resp *r)
{
    sim_resp_json(r, 200, json_pack("{s:b}", "ok", 1));
}

static json_t *body_object(const sim_req *q)
{
    json_error_t je;
    json_t *b;

    if (!q->body_len)
        return json_object();
    b = json_loadb(q->body, q->body_len, 0, &je);
    if (json_is_object(b))
        return b;
    json_decref(b);
    return NULL;
}

/* ---------- faults ---------- */

void sim_faults_match(sim_t *s, const char *method, const char *path, sim_fault_hit *hit)
{
    sim_fault **pp = &s->faults;

    memset(hit, 0, sizeof *hit);
    while (*pp) {
        sim_fault *f = *pp;
        int used = 0;
        if (!strncmp(path, f->path, strlen(f->path)) &&
            (!f->method[0] || !strcasecmp(method, f->method))) {
            if (f->kind == SIM_FAULT_LATENCY && !hit->latency_ms) {
                hit->latency_ms = f->lat_lo_ms;
                if (f->lat_hi_ms > f->lat_lo_ms)
                    hit->latency_ms +=
                        (long)(sim_rand01() * (double)(f->lat_hi_ms - f->lat_lo_ms + 1));
                used = 1;
            } else if (f->kind == SIM_FAULT_FAIL && !hit->fail && !hit->drop) {
                hit->fail = 1;
                hit->status = f->status;
                sim_strlcpy(hit->reason, f->reason, sizeof hit->reason);
                sim_strlcpy(hit->message, f->message, sizeof hit->message);
                used = 1;
            } else if (f->kind == SIM_FAULT_DROP && !hit->fail && !hit->drop) {
                hit->drop = 1;
                hit->drop_after = f->drop_after;
                used = 1;
            }
        }
        if (used && f->remaining > 0 && --f->remaining == 0) {
            *pp = f->next;
            free(f);
            continue;
        }
        pp = &f->next;
    }
}

static sim_fault *add_rule(sim_t *s, int kind, const char *path, const char *method, long count)
{
    sim_fault *f = calloc(1, sizeof *f), **pp = &s->faults;

    if (!f)
        return NULL;
    f->kind = kind;
    sim_strlcpy(f->path, path, sizeof f->path);
    sim_strlcpy(f->method, method, sizeof f->method);
    f->remaining = count > 0 ? count : -1;
    while (*pp)
        pp = &(*pp)->next;
    *pp = f;
    return f;
}

static const char *default_reason(int status)
{
    switch (status) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "INVALID_CREDENTIALS";
    case 402:
        return "INSUFFICIENT_BALANCE";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "RESOURCE_NOT_FOUND";
    case 409:
        return "FAILED_PRECONDITION";
    case 429:
        return "RATE_LIMIT_EXCEEDED";
    case 500:
        return "INTERNAL";
    default:
        return status >= 500 ? "SERVICE_UNAVAILABLE" : "INVALID_ARGUMENT";
    }
}

void sim_faults_clear(sim_t *s)
{
    while (s->faults) {
        sim_fault *f = s->faults;
        s->faults = f->next;
        free(f);
    }
    s->wh_duplicate = s->wh_reorder = 0;
    s->wh_drop_pct = 0;
    s->reorder_ms = 500;
    sim_ratelimit_set(s, s->cfg->rate, s->cfg->burst);
}

static long num(json_t *b, const char *k, long def)
{
    json_t *v = json_object_get(b, k);
    return json_is_number(v) ? (long)json_number_value(v) : def;
}

static json_t *faults_json(const sim_t *s)
{
    json_t *a = json_array();
    const sim_fault *f;

    for (f = s->faults; f; f = f->next) {
        static const char *const kinds[] = {"fail", "drop", "latency"};
        json_t *x = json_pack("{s:s, s:s, s:s, s:I}", "kind", kinds[f->kind], "path", f->path,
                              "method", f->method, "remaining", (json_int_t)f->remaining);
        if (f->kind == SIM_FAULT_FAIL) {
            json_object_set_new(x, "status", json_integer(f->status));
            json_object_set_new(x, "reason", json_string(f->reason));
        } else if (f->kind == SIM_FAULT_DROP)
            json_object_set_new(x, "drop", json_string(f->drop_after ? "after" : "before"));
        else
            json_object_set_new(
                x, "latency_ms",
                json_pack("[I, I]", (json_int_t)f->lat_lo_ms, (json_int_t)f->lat_hi_ms));
        json_array_append_new(a, x);
    }
    return json_pack("{s:o, s:I, s:I, s:I, s:f, s:f, s:f}", "rules", a, "webhook_duplicate",
                     (json_int_t)s->wh_duplicate, "webhook_reorder", (json_int_t)s->wh_reorder,
                     "reorder_ms", (json_int_t)s->reorder_ms, "rate", s->rl.rate, "burst",
                     s->rl.burst, "webhook_drop_pct", s->wh_drop_pct);
}

static void faults_post(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_t *b = body_object(q), *v;
    const char *path, *method;

    if (!b) {
        bad(r, q, "body must be a JSON object");
        return;
    }
    if (json_is_true(json_object_get(b, "clear")))
        sim_faults_clear(s);
    path = json_string_value(json_object_get(b, "path"));
    method = json_string_value(json_object_get(b, "method"));
    if (!path)
        path = "/v1.0/";
    if (!method)
        method = "";
    if ((v = json_object_get(b, "fail_next"))) {
        long st = num(b, "status", 500);
        sim_fault *f;
        const char *reason = json_string_value(json_object_get(b, "reason"));
        const char *msg = json_string_value(json_object_get(b, "message"));
        if (!json_is_integer(v) || json_integer_value(v) < 1 || st < 400 || st > 599) {
            bad(r, q, "fail_next needs a count >= 1 and status 400..599");
            goto out;
        }
        if (!(f = add_rule(s, SIM_FAULT_FAIL, path, method, (long)json_integer_value(v))))
            goto oom;
        f->status = (int)st;
        sim_strlcpy(f->reason, reason ? reason : default_reason((int)st), sizeof f->reason);
        sim_strlcpy(f->message, msg ? msg : "Injected failure.", sizeof f->message);
    }
    if ((v = json_object_get(b, "drop_next"))) {
        const char *when = json_string_value(json_object_get(b, "drop"));
        sim_fault *f;
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            (when && strcmp(when, "before") && strcmp(when, "after"))) {
            bad(r, q, "drop_next needs a count >= 1; drop is before|after");
            goto out;
        }
        if (!(f = add_rule(s, SIM_FAULT_DROP, path, method, (long)json_integer_value(v))))
            goto oom;
        f->drop_after = when && !strcmp(when, "after");
    }
    if ((v = json_object_get(b, "latency_ms"))) {
        long lo, hi;
        sim_fault *f;
        if (json_is_number(v))
            lo = hi = (long)json_number_value(v);
        else if (json_is_array(v) && json_array_size(v) == 2 &&
                 json_is_number(json_array_get(v, 0)) && json_is_number(json_array_get(v, 1))) {
            lo = (long)json_number_value(json_array_get(v, 0));
            hi = (long)json_number_value(json_array_get(v, 1));
        } else {
            bad(r, q, "latency_ms is a number or [min, max]");
            goto out;
        }
        if (lo < 0 || hi < lo) {
            bad(r, q, "latency_ms must be >= 0 and min <= max");
            goto out;
        }
        if (lo || hi) {
            if (!(f = add_rule(s, SIM_FAULT_LATENCY, path, method, num(b, "latency_next", 0))))
                goto oom;
            f->lat_lo_ms = lo;
            f->lat_hi_ms = hi;
        }
    }
    s->wh_duplicate += num(b, "webhook_duplicate", 0);
    s->wh_reorder += num(b, "webhook_reorder", 0);
    s->reorder_ms = num(b, "reorder_ms", s->reorder_ms);
    if ((v = json_object_get(b, "webhook_drop_pct"))) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100) {
            bad(r, q, "webhook_drop_pct is a number from 0 (all sent) to 100 (none sent)");
            goto out;
        }
        s->wh_drop_pct = json_number_value(v);
    }
    if (json_object_get(b, "rate") || json_object_get(b, "burst")) {
        json_t *rt = json_object_get(b, "rate"), *bu = json_object_get(b, "burst");
        double rate = json_is_number(rt) ? json_number_value(rt) : s->rl.rate;
        double burst = json_is_number(bu) ? json_number_value(bu) : s->rl.burst;
        if (rate < 0 || burst < 1) {
            bad(r, q, "rate must be >= 0 and burst >= 1");
            goto out;
        }
        sim_ratelimit_set(s, rate, burst);
    }
    sim_resp_json(r, 200, faults_json(s));
    goto out;
oom:
    sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "out of memory", NULL);
out:
    json_decref(b);
}

/* ---------- scripts ---------- */

static int add_script(sim_t *s, json_t *o, char *err, size_t errlen)
{
    const char *target = json_string_value(json_object_get(o, "target"));
    sim_outcome oc;
    sim_script *sc, **pp;
    json_t *times = json_object_get(o, "times");

    if (!target || !*target || strlen(target) >= sizeof sc->target) {
        snprintf(err, errlen, "target is required (an E.164 number or \"*\")");
        return -1;
    }
    if (sim_outcome_parse(o, &oc, err, errlen))
        return -1;
    sim_outcome_free(&oc);
    if (times && (!json_is_integer(times) || json_integer_value(times) < 0)) {
        snprintf(err, errlen, "times must be a non-negative integer");
        return -1;
    }
    /* a new script for the same target replaces the old one */
    for (pp = &s->scripts; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->target, target)) {
            sc = *pp;
            *pp = sc->next;
            json_decref(sc->outcome);
            free(sc);
            break;
        }
    sc = calloc(1, sizeof *sc);
    if (!sc)
        return -1;
    sim_strlcpy(sc->target, target, sizeof sc->target);
    sc->outcome = json_deep_copy(o);
    sc->times = times ? (long)json_integer_value(times) : 0;
    for (pp = &s->scripts; *pp; pp = &(*pp)->next)
        ;
    *pp = sc;
    return 0;
}

static json_t *scripts_json(const sim_t *s)
{
    json_t *a = json_array();
    const sim_script *sc;

    for (sc = s->scripts; sc; sc = sc->next) {
        json_t *x = json_deep_copy(sc->outcome);
        json_object_set_new(x, "times_left", json_integer(sc->times));
        json_array_append_new(a, x);
    }
    return a;
}

static void script_post(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_t *b = body_object(q), *list, *e;
    char err[160];
    size_t i;

    if (!b) {
        bad(r, q, "body must be a JSON object");
        return;
    }
    list = json_object_get(b, "scripts");
    if (json_is_array(list)) {
        json_array_foreach(list, i, e) if (!json_is_object(e) || add_script(s, e, err, sizeof err))
        {
            bad(r, q, json_is_object(e) ? err : "scripts holds objects");
            goto out;
        }
    } else if (add_script(s, b, err, sizeof err)) {
        bad(r, q, err);
        goto out;
    }
    sim_resp_json(r, 200, json_pack("{s:o}", "scripts", scripts_json(s)));
out:
    json_decref(b);
}

/* ---------- records ---------- */

static void calls_get(sim_t *s, const sim_req *q, sim_resp *r)
{
    const char *target = sim_req_arg(q, "target"), *id = sim_req_arg(q, "id");
    json_t *a = json_array();
    sim_entry *e;

    for (e = s->calls.head; e; e = e->next) {
        const sim_call *c = (const sim_call *)e;
        const char *t = json_string_value(json_object_get(c->destination, "target"));
        if (target && (!t || strcmp(t, target)))
            continue;
        if (id && strcmp(id, e->id))
            continue;
        json_array_append_new(a, sim_call_record_json(c));
    }
    sim_resp_json(r, 200, a);
}

static void call_action(sim_t *s, const sim_req *q, sim_resp *r, const char *id, const char *what)
{
    sim_call *c = sim_call_find(s, id);
    json_t *b;

    if (!c) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "CALL_NOT_FOUND", "The call was not found.", NULL);
        return;
    }
    if (!what) {
        sim_resp_json(r, 200, sim_call_record_json(c));
        return;
    }
    b = body_object(q);
    if (!b) {
        bad(r, q, "body must be a JSON object");
        return;
    }
    if (!strcmp(what, "digits")) {
        const char *d = json_string_value(json_object_get(b, "digits"));
        if (!d) {
            bad(r, q, "digits is required");
            goto out;
        }
        sim_call_keys(s, c, d);
    } else if (!strcmp(what, "callee_hangup")) {
        const char *reason = json_string_value(json_object_get(b, "reason"));
        sim_call_remote_end(s, c, reason ? reason : "normal");
    } else {
        sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND", "Unknown control route.", NULL);
        goto out;
    }
    sim_resp_json(r, 200, sim_call_record_json(c));
out:
    json_decref(b);
}

static void messages_get(sim_t *s, sim_resp *r)
{
    json_t *a = json_array();
    sim_entry *e;

    for (e = s->messages.head; e; e = e->next)
        json_array_append_new(a, sim_msg_record_json((const sim_msg *)e));
    sim_resp_json(r, 200, a);
}

static void stats(sim_t *s, sim_resp *r)
{
    size_t live = 0;
    sim_entry *e;

    for (e = s->calls.head; e; e = e->next)
        if (((const sim_call *)e)->status != CALL_HANGUP)
            live++;
    sim_resp_json(
        r, 200,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", (json_int_t)s->n_requests,
                  "calls_created", (json_int_t)s->n_calls_created, "calls_stored",
                  (json_int_t)s->calls.count, "calls_live", (json_int_t)live, "calls_dropped",
                  (json_int_t)s->n_calls_dropped, "messages_stored", (json_int_t)s->messages.count,
                  "timers_pending", (json_int_t)sim_sched_pending(&s->sched), "webhooks_pending",
                  (json_int_t)sim_wh_pending(s->wh)));
}

void sim_control_handle(sim_t *s, const sim_req *q, sim_resp *r)
{
    const char *p = q->path + 5; /* after "/_sim" */
    const char *m = q->method;
    int get = !strcmp(m, "GET"), post = !strcmp(m, "POST"), del = !strcmp(m, "DELETE");

    if (!strcmp(p, "/reset") && post) {
        sim_state_reset(s);
        ok(r);
    } else if (!strcmp(p, "/script") || !strcmp(p, "/scripts")) {
        if (post)
            script_post(s, q, r);
        else if (get)
            sim_resp_json(r, 200, json_pack("{s:o}", "scripts", scripts_json(s)));
        else if (del) {
            while (s->scripts) {
                sim_script *sc = s->scripts;
                s->scripts = sc->next;
                json_decref(sc->outcome);
                free(sc);
            }
            ok(r);
        } else
            bad(r, q, "GET, POST or DELETE");
    } else if (!strcmp(p, "/faults")) {
        if (post)
            faults_post(s, q, r);
        else if (get)
            sim_resp_json(r, 200, faults_json(s));
        else if (del) {
            sim_faults_clear(s);
            ok(r);
        } else
            bad(r, q, "GET, POST or DELETE");
    } else if (!strcmp(p, "/account")) {
        sim_extras_account(s, q, r);
    } else if (!strcmp(p, "/calls") && get) {
        calls_get(s, q, r);
    } else if (!strncmp(p, "/calls/", 7)) {
        char id[40];
        const char *rest = p + 7, *slash = strchr(rest, '/');
        size_t l = slash ? (size_t)(slash - rest) : strlen(rest);
        if (l >= sizeof id) {
            sim_resp_error(r, q, 404, "NOT_FOUND", "CALL_NOT_FOUND", "The call was not found.",
                           NULL);
            return;
        }
        memcpy(id, rest, l);
        id[l] = '\0';
        call_action(s, q, r, id, slash ? slash + 1 : NULL);
    } else if (!strcmp(p, "/messages") && get) {
        messages_get(s, r);
    } else if ((!strcmp(p, "/stats") || !strcmp(p, "/health")) && get) {
        stats(s, r);
    } else
        sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND", "Unknown control route.", NULL);
}
