#include "sim_api.h"

#include <string.h>

#include "sim_calls.h"
#include "sim_extras.h"
#include "sim_messages.h"

static void not_found_route(const sim_req *q, sim_resp *r)
{
    sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND", "The requested route was not found.",
                   NULL);
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
    } else if (!sim_extras_route(s, q, seg, n, r))
        not_found_route(q, r);
}
