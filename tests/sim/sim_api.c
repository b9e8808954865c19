#include "sim_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_calls.h"
#include "sim_flow.h"
#include "sim_messages.h"

static json_t *time_or_null(int64_t us)
{
    char t[SIM_TIME_LEN];

    if (!us)
        return json_null();
    sim_fmt_time(us, t);
    return json_string(t);
}

static void not_found_route(const sim_req *q, sim_resp *r)
{
    sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND", "The requested route was not found.",
                   NULL);
}

static json_t *body_object(const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *b = json_loadb(q->body ? q->body : "", q->body_len, 0, &je);

    if (json_is_object(b))
        return b;
    json_decref(b);
    sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                   "The request body is not valid JSON.", NULL);
    return NULL;
}

/* ---------- customer ---------- */

static json_t *customer_json(const sim_t *s)
{
    json_t *o = json_object();
    const sim_customer *c = &s->customer;

    json_object_set_new(o, "id", json_string(s->customer_id));
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "detail", json_string(c->detail));
    json_object_set_new(o, "email", json_string(c->email));
    json_object_set_new(o, "phone_number", json_string(c->phone_number));
    json_object_set_new(o, "address", json_string(c->address));
    json_object_set_new(o, "webhook_method", json_string(c->webhook_method));
    json_object_set_new(o, "webhook_uri", json_string(c->webhook_uri));
    /* only the owner sees the HMAC key; an access key is the owner */
    json_object_set_new(o, "webhook_secret", json_string(c->webhook_secret));
    json_object_set_new(o, "billing_account_id", json_string(SIM_NIL_UUID));
    json_object_set_new(o, "status", json_string(s->account.status));
    json_object_set_new(o, "identity_verification_status", json_string(s->account.identity));
    json_object_set_new(o, "tm_create", time_or_null(c->tm_create));
    json_object_set_new(o, "tm_update", time_or_null(c->tm_update));
    json_object_set_new(o, "tm_delete", json_null());
    return o;
}

static void customer_put(sim_t *s, const sim_req *q, sim_resp *r)
{
    static const char *const fields[] = {"name",    "detail",         "email",      "phone_number",
                                         "address", "webhook_method", "webhook_uri"};
    char **dst[] = {&s->customer.name,         &s->customer.detail,  &s->customer.email,
                    &s->customer.phone_number, &s->customer.address, &s->customer.webhook_method,
                    &s->customer.webhook_uri};
    json_t *b = body_object(q, r);
    const char *m, *u;
    size_t i;

    if (!b)
        return;
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(b, fields[i]);
        if (v && !json_is_string(v)) {
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                           "Customer fields are strings.", NULL);
            goto out;
        }
    }
    m = json_string_value(json_object_get(b, "webhook_method"));
    u = json_string_value(json_object_get(b, "webhook_uri"));
    if (m && *m && strcmp(m, "POST") && strcmp(m, "GET") && strcmp(m, "PUT") &&
        strcmp(m, "DELETE")) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                       "webhook_method must be POST, GET, PUT or DELETE.", NULL);
        goto out;
    }
    if (u && *u && strncmp(u, "http://", 7) && strncmp(u, "https://", 8)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                       "webhook_uri must be an http(s) URL.", NULL);
        goto out;
    }
    /* full replacement: an omitted field becomes "", exactly the real gateway's gotcha */
    for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *nv = sim_strdup(json_string_value(json_object_get(b, fields[i])));
        if (!nv)
            continue;
        free(*dst[i]);
        *dst[i] = nv;
    }
    s->customer.tm_update = sim_now_us();
    sim_resp_json(r, 200, customer_json(s));
out:
    json_decref(b);
}

/* ---------- outbound_config ---------- */

static json_t *outbound_json(const sim_t *s)
{
    json_t *o = json_object();
    json_t *wl = json_deep_copy(s->outbound.whitelist);

    json_object_set_new(o, "id", json_string(s->outbound.id));
    json_object_set_new(o, "customer_id", json_string(s->customer_id));
    json_object_set_new(o, "name", json_string(s->outbound.name));
    json_object_set_new(o, "detail", json_string(s->outbound.detail));
    if (s->outbound.allow_all) /* a simulator convenience; the real list names countries */
        json_array_append_new(wl, json_string("all"));
    json_object_set_new(o, "destination_whitelist", wl);
    json_object_set(o, "codecs", s->outbound.codecs);
    json_object_set_new(o, "default_outgoing_source_number_id",
                        json_string(s->outbound.default_source_id[0] ? s->outbound.default_source_id
                                                                     : SIM_NIL_UUID));
    json_object_set_new(o, "tm_create", time_or_null(s->outbound.tm_create));
    json_object_set_new(o, "tm_update", time_or_null(s->outbound.tm_update));
    json_object_set_new(o, "tm_delete", json_null());
    return o;
}

static void outbound_put(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_t *b = body_object(q, r), *v, *e;
    size_t i, k;

    if (!b)
        return;
    if ((v = json_object_get(b, "destination_whitelist"))) {
        json_t *wl = json_array();
        int all = 0;
        if (!json_is_array(v)) {
            json_decref(wl);
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                           "destination_whitelist must be a list of country codes.", NULL);
            goto out;
        }
        json_array_foreach(v, i, e)
        {
            char cc[8];
            const char *x = json_string_value(e);
            if (!x || strlen(x) >= sizeof cc) {
                json_decref(wl);
                sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                               "destination_whitelist holds ISO 3166 alpha-2 codes.", NULL);
                goto out;
            }
            for (k = 0; x[k]; k++)
                cc[k] = (char)(x[k] >= 'A' && x[k] <= 'Z' ? x[k] + 32 : x[k]);
            cc[k] = '\0';
            if (!strcmp(cc, "all"))
                all = 1;
            else
                json_array_append_new(wl, json_string(cc));
        }
        json_decref(s->outbound.whitelist);
        s->outbound.whitelist = wl;
        s->outbound.allow_all = all;
    }
    if (json_is_string(v = json_object_get(b, "name"))) {
        free(s->outbound.name);
        s->outbound.name = sim_strdup(json_string_value(v));
    }
    if (json_is_string(v = json_object_get(b, "detail"))) {
        free(s->outbound.detail);
        s->outbound.detail = sim_strdup(json_string_value(v));
    }
    if (json_is_array(v = json_object_get(b, "codecs"))) {
        json_decref(s->outbound.codecs);
        s->outbound.codecs = json_deep_copy(v);
    }
    if ((v = json_object_get(b, "default_outgoing_source_number_id"))) {
        const char *id = json_string_value(v);
        int found = 0;
        if (!id || !*id || !strcmp(id, SIM_NIL_UUID))
            s->outbound.default_source_id[0] = '\0';
        else {
            for (i = 0; i < s->n_numbers; i++)
                if (!strcmp(s->numbers[i].id, id))
                    found = 1;
            if (!found) {
                sim_resp_error(
                    r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                    "default_outgoing_source_number_id is not a number of this customer.", NULL);
                goto out;
            }
            sim_strlcpy(s->outbound.default_source_id, id, sizeof s->outbound.default_source_id);
        }
    }
    s->outbound.tm_update = sim_now_us();
    sim_resp_json(r, 200, outbound_json(s));
out:
    json_decref(b);
}

/* ---------- numbers ---------- */

static json_t *number_json(const sim_t *s, const sim_number *n)
{
    json_t *t = time_or_null(s->customer.tm_create);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b}", "id", n->id,
                  "customer_id", s->customer_id, "number", n->number, "type", "normal",
                  "call_flow_id", SIM_NIL_UUID, "message_flow_id", SIM_NIL_UUID, "name", "",
                  "detail", "", "status", "active", "t38_enabled", 0, "emergency_enabled", 0);

    json_object_set(o, "tm_purchase", t);
    json_object_set(o, "tm_create", t);
    json_object_set(o, "tm_update", t);
    json_object_set_new(o, "tm_delete", json_null());
    json_decref(t);
    return o;
}

static void numbers(sim_t *s, const sim_req *q, sim_resp *r, const char *id)
{
    size_t i;
    json_t *res;

    if (id) {
        if (!sim_is_uuid(id)) {
            sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ID",
                           "The id is not a valid UUID.", NULL);
            return;
        }
        for (i = 0; i < s->n_numbers; i++)
            if (!strcmp(s->numbers[i].id, id)) {
                sim_resp_json(r, 200, number_json(s, &s->numbers[i]));
                return;
            }
        sim_resp_error(r, q, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND", "The number was not found.",
                       NULL);
        return;
    }
    res = json_array();
    for (i = 0; i < s->n_numbers; i++)
        json_array_append_new(res, number_json(s, &s->numbers[i]));
    {
        char tok[SIM_TIME_LEN] = "";
        if (s->n_numbers)
            sim_fmt_time6(s->customer.tm_create, tok);
        sim_resp_json(r, 200, json_pack("{s:o, s:s}", "result", res, "next_page_token", tok));
    }
}

/* ---------- calls by id ---------- */

static void call_by_id(sim_t *s, const sim_req *q, sim_resp *r, const char *id, const char *sub)
{
    sim_call *c;
    const char *m = q->method;

    if (!sim_is_uuid(id)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ID",
                       "The call id is not a valid UUID.", NULL);
        return;
    }
    c = sim_call_find(s, id);
    if (!sub) {
        if (strcmp(m, "GET") && strcmp(m, "DELETE")) {
            not_found_route(q, r);
            return;
        }
        if (!c) {
            sim_resp_error(r, q, 404, "NOT_FOUND", "CALL_NOT_FOUND", "The call was not found.",
                           NULL);
            return;
        }
        if (!strcmp(m, "DELETE"))
            sim_call_delete_api(s, c);
        sim_resp_json(r, 200, sim_call_json(c));
        return;
    }
    if (strcmp(m, "POST") || (strcmp(sub, "hangup") && strcmp(sub, "talk"))) {
        not_found_route(q, r);
        return;
    }
    if (!c) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "CALL_NOT_FOUND", "The call was not found.", NULL);
        return;
    }
    if (!strcmp(sub, "talk")) {
        r->status = 200; /* 200 with an empty body */
        return;
    }
    sim_call_hangup_api(s, c); /* idempotent: an ended call comes back as it is */
    sim_resp_json(r, 200, sim_call_json(c));
}

void sim_api_handle(sim_t *s, const sim_req *q, const char *path, sim_resp *r)
{
    char seg[4][96];
    int n = 0;
    const char *p = path;
    const char *m = q->method;

    while (*p == '/')
        p++;
    while (*p && n < 4) {
        size_t l = strcspn(p, "/");
        if (l >= sizeof seg[0]) {
            not_found_route(q, r);
            return;
        }
        memcpy(seg[n], p, l);
        seg[n][l] = '\0';
        n++;
        p += l;
        while (*p == '/')
            p++;
    }
    if (*p || n == 0) {
        not_found_route(q, r);
        return;
    }
    if (!strcmp(seg[0], "calls")) {
        if (n == 1 && !strcmp(m, "GET"))
            sim_calls_list(s, q, r);
        else if (n == 1 && !strcmp(m, "POST"))
            sim_calls_create(s, q, r);
        else if (n == 2 || n == 3)
            call_by_id(s, q, r, seg[1], n == 3 ? seg[2] : NULL);
        else
            not_found_route(q, r);
    } else if (!strcmp(seg[0], "messages")) {
        if (n == 1 && !strcmp(m, "GET"))
            sim_messages_list(s, q, r);
        else if (n == 1 && !strcmp(m, "POST"))
            sim_messages_create(s, q, r);
        else if (n == 2 && (!strcmp(m, "GET") || !strcmp(m, "DELETE")))
            sim_messages_get(s, q, r, seg[1], !strcmp(m, "DELETE"));
        else
            not_found_route(q, r);
    } else if (!strcmp(seg[0], "customer") && n == 1) {
        if (!strcmp(m, "GET"))
            sim_resp_json(r, 200, customer_json(s));
        else if (!strcmp(m, "PUT"))
            customer_put(s, q, r);
        else
            not_found_route(q, r);
    } else if (!strcmp(seg[0], "outbound_config") && n == 1) {
        if (!strcmp(m, "GET"))
            sim_resp_json(r, 200, outbound_json(s));
        else if (!strcmp(m, "PUT"))
            outbound_put(s, q, r);
        else
            not_found_route(q, r);
    } else if (!strcmp(seg[0], "numbers") && n <= 2 && !strcmp(m, "GET")) {
        numbers(s, q, r, n == 2 ? seg[1] : NULL);
    } else if (!strcmp(seg[0], "flows")) {
        if (n == 1 && !strcmp(m, "POST"))
            sim_flows_create(s, q, r);
        else if (n == 1 && !strcmp(m, "GET"))
            sim_flows_list(s, q, r);
        else if (n == 2 && (!strcmp(m, "GET") || !strcmp(m, "DELETE")))
            sim_flows_get(s, q, r, seg[1], !strcmp(m, "DELETE"));
        else
            not_found_route(q, r);
    } else
        not_found_route(q, r);
}
