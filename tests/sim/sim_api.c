/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_api.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim_calls.h"
#include "sim_extras.h"
#include "sim_messages.h"

static void not_found_route(const sim_req *q, sim_resp *r)
{
    sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND", "The requested route was not found.",
                   NULL);
}

/* GET /v1.0/calls and /v1.0/messages: newest first; page_size 1-100 (anything else is 100, as
 * in the gateway); page_token lists what was created before it. The next token is the last
 * item's tm_create, also on the last page; "" only when the page is empty. */
static void list_page(const sim_index *ix, json_t *(*view)(const sim_entry *e), const sim_req *q,
                      sim_resp *r)
{
    const char *ps = sim_req_arg(q, "page_size"), *pt = sim_req_arg(q, "page_token");
    long size = 100;
    int64_t before = INT64_MAX, last = 0;
    json_t *res = json_array();
    const sim_entry *e;
    char tok[SIM_TIME_LEN] = "";

    if (ps) {
        char *end;
        long v = strtol(ps, &end, 10);
        if (*end == '\0' && v > 0 && v <= 100)
            size = v;
    }
    if (pt && *pt && sim_parse_time(pt, &before))
        before = INT64_MAX;
    for (e = ix->tail; e && (long)json_array_size(res) < size; e = e->prev) {
        json_t *item = e->tm_create_us < before ? view(e) : NULL;
        if (!item)
            continue;
        json_array_append_new(res, item);
        last = e->tm_create_us;
    }
    if (last)
        sim_fmt_time6(last, tok);
    sim_resp_json(r, 200, json_pack("{s:o, s:s}", "result", res, "next_page_token", tok));
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
    char seg[4][SIM_SEG_LEN];
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
            list_page(&s->calls, sim_call_listed, q, r);
        else if (n == 1 && !strcmp(m, "POST"))
            sim_calls_create(s, q, r);
        else if (n == 2 || n == 3)
            call_by_id(s, q, r, seg[1], n == 3 ? seg[2] : NULL);
        else
            not_found_route(q, r);
    } else if (!strcmp(seg[0], "messages")) {
        if (n == 1 && !strcmp(m, "GET"))
            list_page(&s->messages, sim_msg_listed, q, r);
        else if (n == 1 && !strcmp(m, "POST"))
            sim_messages_create(s, q, r);
        else if (n == 2 && (!strcmp(m, "GET") || !strcmp(m, "DELETE")))
            sim_messages_get(s, q, r, seg[1], !strcmp(m, "DELETE"));
        else
            not_found_route(q, r);
    } else if (!sim_extras_route(s, q, seg, n, r))
        not_found_route(q, r);
}
