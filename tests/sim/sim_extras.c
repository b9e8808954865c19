/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_extras.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_flow.h"
#include "sim_util.h"

/* ---------- JWT: POST /auth/login, Bearer / ?token= / cookie ---------- */

#define JWT_LIFETIME_US (7LL * 24 * 3600 * 1000000) /* TokenExpiration: 7 days */

static int b64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    if (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > outlen)
        return -1;
    sodium_bin2base64(out, outlen, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

static void jwt_mac(const sim_t *s, const char *data, size_t n, unsigned char mac[32])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, s->jwt_key, sizeof s->jwt_key);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)data, n);
    crypto_auth_hmacsha256_final(&st, mac);
}

static char *jwt_issue(const sim_t *s, const char *username)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char exp[SIM_TIME_LEN], h64[64], p64[1024], m64[64], *payload, *out = NULL;
    unsigned char mac[32];
    json_t *claims;
    sim_buf b = {0};

    sim_fmt_time(sim_now_us() + JWT_LIFETIME_US, exp);
    claims = json_pack("{s:s, s:s, s:s, s:s}", "customer_id", s->customer_id, "username", username,
                       "type", "agent", "expire", exp);
    payload = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!payload || b64url((const unsigned char *)hdr, strlen(hdr), h64, sizeof h64) ||
        b64url((const unsigned char *)payload, strlen(payload), p64, sizeof p64))
        goto out;
    sim_buf_adds(&b, h64);
    sim_buf_adds(&b, ".");
    sim_buf_adds(&b, p64);
    jwt_mac(s, b.p, b.len, mac);
    if (b64url(mac, sizeof mac, m64, sizeof m64))
        goto out;
    sim_buf_adds(&b, ".");
    sim_buf_adds(&b, m64);
    out = sim_buf_take(&b);
out:
    sim_buf_free(&b);
    free(payload);
    return out;
}

int sim_extras_jwt_valid(const sim_t *s, const char *tok)
{
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    unsigned char mac[32], got[64], pl[1024];
    size_t got_len = 0, pl_len = 0;
    json_t *claims;
    json_error_t je;
    int64_t exp;
    int ok;

    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return 0;
    jwt_mac(s, tok, (size_t)(d2 - tok), mac);
    if (sodium_base642bin(got, sizeof got, d2 + 1, strlen(d2 + 1), NULL, &got_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        got_len != sizeof mac || sodium_memcmp(got, mac, sizeof mac))
        return 0;
    if (sodium_base642bin(pl, sizeof pl - 1, d1 + 1, (size_t)(d2 - d1 - 1), NULL, &pl_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return 0;
    claims = json_loadb((const char *)pl, pl_len, 0, &je);
    ok = claims && !sim_parse_time(json_string_value(json_object_get(claims, "expire")), &exp) &&
         exp > sim_now_us();
    json_decref(claims);
    return ok;
}

void sim_extras_login(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *body = json_loadb(q->body ? q->body : "", q->body_len, 0, &je);
    const char *u = json_string_value(json_object_get(body, "username"));
    const char *p = json_string_value(json_object_get(body, "password"));
    char *tok;

    r->status = 400; /* bare 400, no envelope: the legacy /auth handlers */
    if (!u || !p || !*u || !*p || strcmp(u, s->cfg->username) || strcmp(p, s->cfg->password))
        goto out;
    tok = jwt_issue(s, u);
    if (tok) {
        sim_resp_json(r, 200, json_pack("{s:s, s:s}", "username", u, "token", tok));
        free(tok);
    }
out:
    json_decref(body);
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

static const char *str_or(json_t *o, const char *k, const char *def)
{
    const char *v = json_string_value(json_object_get(o, k));

    return v ? v : def;
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
    json_object_set_new(o, "tm_create", sim_time_json(c->tm_create));
    json_object_set_new(o, "tm_update", sim_time_json(c->tm_update));
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
    json_object_set_new(o, "tm_create", sim_time_json(s->outbound.tm_create));
    json_object_set_new(o, "tm_update", sim_time_json(s->outbound.tm_update));
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
    json_t *t = sim_time_json(s->customer.tm_create);
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

/* ---------- stored flows (POST/GET/DELETE /v1.0/flows, flow_id) ---------- */

typedef struct sim_flow_res {
    sim_entry e;
    json_t *flow; /* the API object, actions included */
} sim_flow_res;

json_t *sim_extras_flow_actions(sim_t *s, const char *id)
{
    sim_flow_res *f = (sim_flow_res *)sim_index_find(&s->flows, id);

    return f && json_is_null(json_object_get(f->flow, "tm_delete"))
               ? json_object_get(f->flow, "actions")
               : NULL;
}

static void flows_create(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *body = json_loadb(q->body ? q->body : "", q->body_len, 0, &je), *acts;
    sim_flow_res *f;
    char bad[96], msg[160], t[SIM_TIME_LEN];
    int rc;

    if (!json_is_object(body)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_JSON_BODY",
                       "The request body is not valid JSON.", NULL);
        goto out;
    }
    acts = json_object_get(body, "actions");
    acts = json_is_array(acts) ? json_deep_copy(acts) : json_array();
    rc = sim_flow_prepare(acts, bad, sizeof bad);
    if (rc) {
        snprintf(msg, sizeof msg,
                 rc == -1 ? "The action type '%s' is not valid." : "Invalid action%s.",
                 rc == -1 ? bad : "");
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ACTION_TYPE", msg, NULL);
        json_decref(acts);
        goto out;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        json_decref(acts);
        sim_resp_error(r, q, 500, "INTERNAL", "INTERNAL", "An internal error has occurred.", NULL);
        goto out;
    }
    sim_uuid(f->e.id);
    sim_index_add(&s->flows, &f->e);
    sim_fmt_time(f->e.tm_create_us, t);
    f->flow = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:s, s:s, s:n}", "id", f->e.id,
                        "customer_id", s->customer_id, "type", "flow", "name",
                        str_or(body, "name", ""), "detail", str_or(body, "detail", ""), "actions",
                        acts, "persist", 1, "tm_create", t, "tm_update", t, "tm_delete");
    sim_resp_json(r, 200, json_incref(f->flow));
out:
    json_decref(body);
}

static void flows_list(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_t *res = json_array();
    sim_entry *e;
    char tok[SIM_TIME_LEN] = "";

    (void)q;
    for (e = s->flows.tail; e && json_array_size(res) < 100; e = e->prev) {
        sim_flow_res *f = (sim_flow_res *)e;
        if (!json_is_null(json_object_get(f->flow, "tm_delete")))
            continue;
        json_array_append(res, f->flow);
        sim_fmt_time6(e->tm_create_us, tok);
    }
    sim_resp_json(r, 200, json_pack("{s:o, s:s}", "result", res, "next_page_token", tok));
}

static void flows_get(sim_t *s, const sim_req *q, sim_resp *r, const char *id, int del)
{
    sim_flow_res *f;

    if (!sim_is_uuid(id)) {
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ID", "The id is not a valid UUID.",
                       NULL);
        return;
    }
    f = (sim_flow_res *)sim_index_find(&s->flows, id);
    if (!f) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "RESOURCE_NOT_FOUND", "The flow was not found.",
                       NULL);
        return;
    }
    if (del && json_is_null(json_object_get(f->flow, "tm_delete"))) {
        char t[SIM_TIME_LEN];
        sim_fmt_time(sim_now_us(), t);
        json_object_set_new(f->flow, "tm_delete", json_string(t));
    }
    sim_resp_json(r, 200, json_incref(f->flow));
}

void sim_extras_flows_clear(sim_t *s)
{
    while (s->flows.head) {
        sim_flow_res *f = (sim_flow_res *)s->flows.head;
        sim_index_del(&s->flows, &f->e);
        json_decref(f->flow);
        free(f);
    }
}

/* ---------- POST/GET /_sim/account ---------- */

static json_t *account_json(const sim_t *s)
{
    return json_pack("{s:f, s:s, s:s, s:s}", "balance", s->account.balance, "status",
                     s->account.status, "identity_verification_status", s->account.identity,
                     "webhook_secret", s->customer.webhook_secret);
}

void sim_extras_account(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *b, *v;

    if (strcmp(q->method, "POST")) {
        sim_resp_json(r, 200, account_json(s));
        return;
    }
    b = q->body_len ? json_loadb(q->body, q->body_len, 0, &je) : json_object();
    if (!json_is_object(b)) {
        json_decref(b);
        sim_resp_error(r, q, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                       "body must be a JSON object", NULL);
        return;
    }
    if (json_is_number(v = json_object_get(b, "balance")))
        s->account.balance = json_number_value(v);
    if (json_is_string(v = json_object_get(b, "status")))
        sim_strlcpy(s->account.status, json_string_value(v), sizeof s->account.status);
    if (json_is_string(v = json_object_get(b, "identity_verification_status")))
        sim_strlcpy(s->account.identity, json_string_value(v), sizeof s->account.identity);
    if (json_is_string(v = json_object_get(b, "webhook_secret"))) {
        char *n = strdup(json_string_value(v));
        if (n) {
            free(s->customer.webhook_secret);
            s->customer.webhook_secret = n;
        }
    }
    sim_resp_json(r, 200, account_json(s));
    json_decref(b);
}

int sim_extras_route(sim_t *s, const sim_req *q, char seg[][SIM_SEG_LEN], int n, sim_resp *r)
{
    const char *m = q->method;

    if (!strcmp(seg[0], "customer") && n == 1) {
        if (!strcmp(m, "GET"))
            sim_resp_json(r, 200, customer_json(s));
        else if (!strcmp(m, "PUT"))
            customer_put(s, q, r);
        else
            return 0;
    } else if (!strcmp(seg[0], "outbound_config") && n == 1) {
        if (!strcmp(m, "GET"))
            sim_resp_json(r, 200, outbound_json(s));
        else if (!strcmp(m, "PUT"))
            outbound_put(s, q, r);
        else
            return 0;
    } else if (!strcmp(seg[0], "numbers") && n <= 2 && !strcmp(m, "GET")) {
        numbers(s, q, r, n == 2 ? seg[1] : NULL);
    } else if (!strcmp(seg[0], "flows")) {
        if (n == 1 && !strcmp(m, "POST"))
            flows_create(s, q, r);
        else if (n == 1 && !strcmp(m, "GET"))
            flows_list(s, q, r);
        else if (n == 2 && (!strcmp(m, "GET") || !strcmp(m, "DELETE")))
            flows_get(s, q, r, seg[1], !strcmp(m, "DELETE"));
        else
            return 0;
    } else
        return 0;
    return 1;
}
