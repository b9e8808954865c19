/* SPDX-License-Identifier: Apache-2.0 */
/* sim_http: the HTTP server (libmicrohttpd) and the request pipeline every route shares:
 * request ids, injected faults, authentication, the rate limit, then the route handlers. */
#ifndef SIM_HTTP_H
#define SIM_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "sim.h"

/* One request as handlers see it; lookups go through the functions below. */
typedef struct sim_req {
    const char *method;
    const char *path;
    const char *body;
    size_t body_len;
    char request_id[72];
    void *conn; /* struct MHD_Connection * */
} sim_req;

/* Query argument, header, cookie, or NULL. */
const char *sim_req_arg(const sim_req *r, const char *key);
const char *sim_req_header(const sim_req *r, const char *key);
const char *sim_req_cookie(const sim_req *r, const char *key);

typedef struct sim_resp {
    int status;
    char *body; /* heap, may be NULL: no body */
    size_t len;
    char retry_after[16];
} sim_resp;

/* Serializes and steals j. */
void sim_resp_json(sim_resp *r, int status, json_t *j);
/* The gateway error envelope {"error":{status,reason,message,request_id[,details]}}; steals
 * details. */
void sim_resp_error(sim_resp *r, const sim_req *q, int http, const char *status, const char *reason,
                    const char *message, json_t *details);
/* Canonical error.status for an HTTP code (500 → INTERNAL, ...). */
const char *sim_status_name(int http);

typedef struct sim_http sim_http;

/* Listens on cfg->listen; *port gets the bound port. */
sim_http *sim_http_start(sim_t *s, int *port, char *err, size_t errlen);
void sim_http_stop(sim_http *h);

#endif
