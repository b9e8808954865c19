/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sim_api.h"
#include "sim_auth.h"
#include "sim_extras.h"
#include "sim_control.h"
#include "sim_util.h"

#define MAX_BODY (1024 * 1024)

/* Per-connection request state, kept across MHD's repeated handler calls. */
typedef struct conn_st {
    sim_buf body;
    int too_big;
    int phase; /* 0 fresh, 1 suspended for injected latency, 2 resumed */
    int faults_done;
    sim_fault_hit hit;
    struct MHD_Connection *conn;
    struct conn_st *snext, *sprev; /* list of suspended connections */
    struct sim_http *h;
    int64_t start_ns;
} conn_st;

struct sim_http {
    sim_t *sim;
    struct MHD_Daemon *d;
    sim_tlist timers;   /* latency timers, cancelled at stop */
    conn_st *suspended; /* must all be resumed before MHD stops */
    int stopping;
};

const char *sim_req_arg(const sim_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *sim_req_header(const sim_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

const char *sim_req_cookie(const sim_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, key);
}

void sim_resp_json(sim_resp *r, int status, json_t *j)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->status = status;
    if (!j) {
        r->status = 500;
        return;
    }
    r->body = json_dumps(j, JSON_COMPACT);
    r->len = r->body ? strlen(r->body) : 0;
    json_decref(j);
}

const char *sim_status_name(int http)
{
    switch (http) {
    case 400:
        return "INVALID_ARGUMENT";
    case 401:
        return "UNAUTHENTICATED";
    case 402:
        return "PAYMENT_REQUIRED";
    case 403:
        return "PERMISSION_DENIED";
    case 404:
        return "NOT_FOUND";
    case 409:
        return "FAILED_PRECONDITION";
    case 429:
        return "RESOURCE_EXHAUSTED";
    case 500:
        return "INTERNAL";
    default:
        return http >= 500 ? "UNAVAILABLE" : "INVALID_ARGUMENT";
    }
}

void sim_resp_error(sim_resp *r, const sim_req *q, int http, const char *status, const char *reason,
                    const char *message, json_t *details)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "status", status ? status : sim_status_name(http),
                          "reason", reason, "message", message, "request_id", q->request_id);

    if (details && json_array_size(details))
        json_object_set_new(e, "details", details);
    else
        json_decref(details);
    sim_resp_json(r, http, json_pack("{s:o}", "error", e));
}

/* Runs on the scheduler with the lock held, so it cannot race sim_http_stop over st.
 * MHD_resume_connection only flags the connection and wakes MHD: safe under our lock. */
static void resume_cb(void *obj, int kind, int64_t arg)
{
    conn_st *st = obj;
    sim_http *h = st->h;

    (void)kind;
    (void)arg;
    if (st->phase != 1)
        return;
    st->phase = 2;
    if (st->sprev)
        st->sprev->snext = st->snext;
    else
        h->suspended = st->snext;
    if (st->snext)
        st->snext->sprev = st->sprev;
    MHD_resume_connection(st->conn);
}

static void rate_limited(sim_resp *r, const sim_req *q, int retry_after)
{
    sim_resp_error(r, q, 429, "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED",
                   "Too many requests. Please try again later.",
                   json_pack("[{s:s}]", "limited_by", "customer"));
    snprintf(r->retry_after, sizeof r->retry_after, "%d", retry_after);
}

/* The gateway's middleware order, then the route. Lock held. */
static void route(sim_t *s, const sim_req *q, const conn_st *st, sim_resp *r)
{
    const char *p = q->path;
    int retry;

    if (!strncmp(p, "/_sim/", 6)) {
        sim_control_handle(s, q, r);
        return;
    }
    if (st->hit.fail) {
        if (st->hit.status == 429)
            rate_limited(r, q, 1);
        else
            sim_resp_error(r, q, st->hit.status, NULL, st->hit.reason, st->hit.message, NULL);
        return;
    }
    if (!strcmp(p, "/ping")) {
        sim_resp_json(r, 200, json_pack("{s:s}", "message", "pong"));
        return;
    }
    if (!strcmp(p, "/auth/login") && !strcmp(q->method, "POST")) {
        sim_extras_login(s, q, r);
        return;
    }
    if (!strncmp(p, "/v1.0/auth/", 11)) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND",
                       "Authentication routes are served at /auth/..., without /v1.0.", NULL);
        return;
    }
    if (strncmp(p, "/v1.0/", 6)) {
        sim_resp_error(r, q, 404, "NOT_FOUND", "ROUTE_NOT_FOUND",
                       "The requested route was not found.", NULL);
        return;
    }
    switch (sim_auth_check(s, q)) {
    case SIM_AUTH_MISSING:
        sim_resp_error(r, q, 401, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED",
                       "Authentication is required.", NULL);
        return;
    case SIM_AUTH_INVALID:
        sim_resp_error(r, q, 401, "UNAUTHENTICATED", "INVALID_CREDENTIALS",
                       "The credentials are invalid or expired.", NULL);
        return;
    case SIM_AUTH_OK:
        break;
    }
    if (!strcmp(s->account.status, "frozen")) {
        sim_resp_error(r, q, 403, "PERMISSION_DENIED", "ACCOUNT_FROZEN", "The account is frozen.",
                       json_pack("[{s:n, s:n, s:s}]", "deletion_scheduled_at",
                                 "deletion_effective_at", "recovery_endpoint", "/auth/recovery"));
        return;
    }
    if (!sim_ratelimit_take(s, &retry)) {
        rate_limited(r, q, retry);
        return;
    }
    sim_api_handle(s, q, p + 5, r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    sim_http *h = cls;
    sim_t *s = h->sim;
    conn_st *st = *con_cls;
    sim_req q;
    sim_resp r;
    struct MHD_Response *resp;
    const char *rid;
    enum MHD_Result ret;
    int control = !strncmp(url, "/_sim/", 6);

    (void)version;
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        st->conn = conn;
        st->h = h;
        st->start_ns = sim_mono_ns();
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (st->body.len + *upload_data_size > MAX_BODY)
            st->too_big = 1;
        else if (sim_buf_add(&st->body, upload_data, *upload_data_size))
            st->too_big = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!control && !st->faults_done) {
        st->faults_done = 1;
        pthread_mutex_lock(&s->lock);
        s->n_requests++;
        sim_faults_match(s, method, url, &st->hit);
        if (st->hit.drop && !st->hit.drop_after) {
            pthread_mutex_unlock(&s->lock);
            return MHD_NO; /* close without a response */
        }
        if (st->hit.latency_ms > 0 && !h->stopping) {
            st->phase = 1;
            st->snext = h->suspended;
            if (h->suspended)
                h->suspended->sprev = st;
            h->suspended = st;
            MHD_suspend_connection(conn);
            sim_sched_add(&s->sched, &h->timers, st->hit.latency_ms * 1000000, resume_cb, st, 0, 0);
            pthread_mutex_unlock(&s->lock);
            return MHD_YES;
        }
        pthread_mutex_unlock(&s->lock);
    }

    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    q.method = method;
    q.path = url;
    q.body = st->body.p ? st->body.p : "";
    q.body_len = st->body.len;
    q.conn = conn;
    rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (sim_request_id_safe(rid))
        sim_strlcpy(q.request_id, rid, sizeof q.request_id);
    else
        sim_request_id(q.request_id);

    if (st->too_big)
        sim_resp_error(&r, &q, 413, "INVALID_ARGUMENT", "REQUEST_TOO_LARGE",
                       "The request body is too large.", NULL);
    else {
        pthread_mutex_lock(&s->lock);
        route(s, &q, st, &r);
        pthread_mutex_unlock(&s->lock);
    }
    if (s->cfg->verbose)
        fprintf(stderr, "voipbin-sim: %s %s -> %d (%.1f ms) %s\n", method, url, r.status,
                (double)(sim_mono_ns() - st->start_ns) / 1e6, q.request_id);
    if (st->hit.drop && st->hit.drop_after) {
        free(r.body); /* processed, but the client never hears back */
        return MHD_NO;
    }
    if (r.body)
        resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r.body);
        return MHD_NO;
    }
    if (r.body)
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(resp, "X-Request-Id", q.request_id);
    if (r.retry_after[0])
        MHD_add_response_header(resp, "Retry-After", r.retry_after);
    ret = MHD_queue_response(conn, (unsigned)(r.status ? r.status : 500), resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    conn_st *st = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (!st)
        return;
    sim_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6, char *err,
                        size_t errlen)
{
    char host[128], port[16];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints, *res = NULL;
    size_t hl;

    if (!colon) {
        snprintf(err, errlen, "--listen must be host:port");
        return -1;
    }
    hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, errlen, "--listen host too long");
        return -1;
    }
    memcpy(host, listen, hl);
    host[hl] = '\0';
    sim_strlcpy(port, colon + 1, sizeof port);
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res) || !res) {
        snprintf(err, errlen, "--listen: cannot resolve %s", listen);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

sim_http *sim_http_start(sim_t *s, int *port, char *err, size_t errlen)
{
    sim_http *h = calloc(1, sizeof *h);
    struct sockaddr_storage ss;
    int v6 = 0;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    const union MHD_DaemonInfo *info;

    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->sim = s;
    memset(&ss, 0, sizeof ss);
    if (parse_listen(s->cfg->listen, &ss, &v6, err, errlen)) {
        free(h);
        return NULL;
    }
    if (v6)
        flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handler, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned int)s->cfg->http_threads, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned int)4000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!h->d) {
        snprintf(err, errlen, "cannot listen on %s", s->cfg->listen);
        free(h);
        return NULL;
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return h;
}

void sim_http_stop(sim_http *h)
{
    if (!h)
        return;
    /* MHD must not stop with suspended connections: resume them first */
    pthread_mutex_lock(&h->sim->lock);
    h->stopping = 1;
    sim_sched_cancel_all(&h->sim->sched, &h->timers);
    while (h->suspended) {
        conn_st *st = h->suspended;
        h->suspended = st->snext;
        st->phase = 2;
        MHD_resume_connection(st->conn);
    }
    pthread_mutex_unlock(&h->sim->lock);
    MHD_stop_daemon(h->d);
    free(h);
}
