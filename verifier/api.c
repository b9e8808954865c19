/* SPDX-License-Identifier: Apache-2.0 */
#include "api.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_db.h"
#include "otp_event.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_phone.h"
#include "otp_phonenumber.h"
#include "otp_time.h"
#include "otp_cancel.h"
#include "otp_webhook.h"
#include "longpoll.h"
#include "verify.h"

#define WEBHOOK_MAX_BODY OTP_WEBHOOK_MAX_BYTES

/* One connection per HTTP thread, opened on first use, for status reads and
 * webhook events (code checks go through a->checks). */
static __thread PGconn *thread_db;

/* Who asks: the API key's id, its service and scopes, and the service's
 * wrong-code cap, as they were when the request came. */
typedef struct caller {
    char key_id[40];
    char service[OTP_SERVICE_MAX + 1];
    unsigned scopes;
    int max_failed_per_hour;
} caller_t;

typedef struct req_ctx {
    char *body;
    size_t len;
    int too_large;
    /* A code check under way: the connection is suspended until the check's
     * commit resumes it, and the handler, called again, answers. */
    enum { CHECK_NONE, CHECK_VERIFY, CHECK_KEYPAD, CHECK_FRONT } checking;
    int64_t check_started;
    verify_check_t check;
    /* POST /v1/requests waiting for Kafka's acknowledgement, suspended the
     * same way: the delivery report sets front_err and resumes conn. */
    struct MHD_Connection *conn;
    int front_err;
    char front_id[37], front_phone[OTP_PHONE_MAX + 4];
    caller_t who; /* the API key's, on an API route */
    /* GET /v1/requests/{id}?wait=N suspended until the state changes: the
     * long-poll thread resumes it with the answer in `wait`. */
    int waiting;
    longpoll_wait_t wait;
} req_ctx_t;

int api_load_key_hashes(api_t *a, const char *list, char *errstr, size_t errstr_size)
{
    const char *p = list;

    a->n_api_keys = 0;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        if (n != 64 || strspn(p, "0123456789abcdefABCDEF") < 64 || a->n_api_keys == API_MAX_KEYS) {
            snprintf(
                errstr, errstr_size,
                "OTP_API_KEY_HASHES: expected up to %d SHA-256 hex digests separated by commas",
                API_MAX_KEYS);
            return -1;
        }
        for (size_t i = 0; i < 64; i++)
            a->api_key_hashes[a->n_api_keys][i] = (char)tolower((unsigned char)p[i]);
        a->api_key_hashes[a->n_api_keys][64] = '\0';
        a->n_api_keys++;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

int api_env_keys(const api_t *a, otp_api_key_t *out)
{
    for (int i = 0; i < a->n_api_keys; i++) {
        size_t bin_len = 0;
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].id, sizeof(out[i].id), "env-%d", i + 1);
        snprintf(out[i].service, sizeof(out[i].service), "%s", OTP_SERVICE_DEFAULT);
        out[i].scopes = OTP_SCOPE_ALL;
        if (sodium_hex2bin(out[i].hash, sizeof(out[i].hash), a->api_key_hashes[i], 64, NULL,
                           &bin_len, NULL) != 0 ||
            bin_len != 32)
            return i;
    }
    return a->n_api_keys;
}

static PGconn *db(api_t *a)
{
    return otp_db_kept(&thread_db, a->db_url, "otp-verifier");
}

/* The key of the Authorization header, found by its SHA-256 among the keys in
 * memory (a revoked key is not there; an expired one, or one of a disabled
 * or removed service, does not count). 0 ok, -1 not a key we take. */
static int authorised(api_t *a, struct MHD_Connection *c, caller_t *who)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    unsigned char digest[crypto_hash_sha256_BYTES];
    const otp_svc_set_t *set;
    const otp_api_key_t *k;
    const otp_policy_t *svc = NULL;
    int rc = -1;

    if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) < 16 || strlen(h + 7) > 256)
        return -1;
    crypto_hash_sha256(digest, (const unsigned char *)h + 7, strlen(h + 7));
    set = otp_services_acquire(a->services);
    k = otp_svc_key(set, digest);
    if (k)
        svc = otp_svc_find(set, k->service);
    if (k && svc && !svc->disabled && (k->expires_ms == 0 || k->expires_ms > otp_now_ms())) {
        snprintf(who->key_id, sizeof(who->key_id), "%s", k->id);
        snprintf(who->service, sizeof(who->service), "%s", k->service);
        who->scopes = k->scopes;
        who->max_failed_per_hour = svc->max_failed_verify_per_hour;
        rc = 0;
    }
    otp_services_release(set);
    sodium_memzero(digest, sizeof(digest));
    return rc;
}

/* 403: the key is good but lacks the route's scope. */
static otp_mhd_result forbidden(api_t *a, struct MHD_Connection *c, const caller_t *who,
                                const char *scope)
{
    char words[120];

    atomic_fetch_add(&a->forbidden, 1);
    otp_warn("api_key_forbidden", "key_id=%s service=%s needs=%s", who->key_id, who->service,
             scope);
    snprintf(words, sizeof(words), "this API key lacks the %s scope", scope);
    return otp_http_error(c, 403, "forbidden", words);
}

static otp_mhd_result reply_json(struct MHD_Connection *c, unsigned status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    otp_mhd_result r = otp_http_reply(c, status, "application/json", s ? s : "{}");
    free(s);
    json_decref(o);
    return r;
}

/* Called by a database thread once a check has committed. */
static void check_done(void *arg)
{
    MHD_resume_connection(arg);
}

/* Hands the check over and suspends the connection until it is done. */
static otp_mhd_result start_check(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx, int kind,
                                  const char *request_id, const char *call_id, const char *code,
                                  const caller_t *who)
{
    ctx->checking = kind;
    ctx->check_started = otp_monotonic_us();
    atomic_fetch_add(&a->checks_open, 1);
    MHD_suspend_connection(c);
    if (verify_start(a->checks, &ctx->check, &a->keys, request_id, call_id, code,
                     who ? who->service : NULL, who ? who->key_id : NULL,
                     who ? who->max_failed_per_hour : a->max_failed_per_hour, check_done, c) != 0) {
        MHD_resume_connection(c); /* res is VERIFY_ERROR: shutting down (or out of hashing) */
    }
    return MHD_YES;
}

static otp_mhd_result handle_verify(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx,
                                    const caller_t *who)
{
    char request_id[37], code[11], err[160];
    otp_mhd_result r;

    if (otp_verify_request_parse(ctx->body, ctx->len, request_id, code, err, sizeof(err)) != 0) {
        atomic_fetch_add(&a->bad_requests, 1);
        return otp_http_error(c, 400, "invalid_request", err);
    }
    r = start_check(a, c, ctx, CHECK_VERIFY, request_id, NULL, code, who);
    sodium_memzero(code, sizeof(code));
    return r;
}

/* The answer to POST /v1/verify, once its check is done. */
static otp_mhd_result verify_answer(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx)
{
    const char *request_id = ctx->check.request_id;

    otp_metric_observe(OTP_M_VERIFIER_VERIFY_LATENCY, NULL,
                       (double)(otp_monotonic_us() - ctx->check_started) / 1e6);
    switch (ctx->check.res) {
    case VERIFY_OK:
        atomic_fetch_add(&a->verified, 1);
        return reply_json(c, 200,
                          json_pack("{s:s, s:b, s:s, s:s, s:s, s:s}", "request_id", request_id,
                                    "valid", 1, "status", "verified", "service", ctx->check.service,
                                    "user_id", ctx->check.user_id, "purpose", ctx->check.purpose));
    case VERIFY_INCORRECT:
        atomic_fetch_add(&a->incorrect, 1);
        return reply_json(c, 200,
                          json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:i}", "request_id", request_id,
                                    "valid", 0, "status", "incorrect", "service",
                                    ctx->check.service, "user_id", ctx->check.user_id, "purpose",
                                    ctx->check.purpose, "attempts_left", ctx->check.attempts_left));
    case VERIFY_REJECTED:
        /* Unknown, expired, locked, used, superseded: the same status and body. */
        atomic_fetch_add(&a->rejected, 1);
        return reply_json(c, 404,
                          json_pack("{s:s, s:b, s:s, s:s}", "request_id", request_id, "valid", 0,
                                    "status", "rejected", "message",
                                    "no code can be checked for this request"));
    case VERIFY_ERROR:
    default:
        atomic_fetch_add(&a->db_errors, 1);
        return otp_http_error(c, 503, "unavailable", "the database is not reachable; try again");
    }
}

/* The answer to a keypad webhook, once its digits' check is done: the
 * outcome itself goes to the status topic. */
static otp_mhd_result keypad_answer(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx)
{
    verify_result_t vr = ctx->check.res;

    if (vr == VERIFY_ERROR)
        return otp_http_error(c, 503, "unavailable", "could not check the digits; send them again");
    atomic_fetch_add(vr == VERIFY_OK          ? &a->verified
                     : vr == VERIFY_INCORRECT ? &a->incorrect
                                              : &a->rejected,
                     1);
    return otp_http_reply(c, 200, "application/json", "{\"applied\":true}");
}

/* The body of POST /v1/requests as the otp.requested message: request_id
 * (random) and requested_at (now) filled in when missing, then checked by the
 * parser the workers use. A malloc'd string, or NULL with a 400's code and
 * words. */
static char *front_message(const char *body, size_t len, otp_request_t *req, char *code, size_t csz,
                           char *err, size_t esz)
{
    json_error_t jerr;
    json_t *o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    char id[37], at[40];
    char *s = NULL;

    if (!json_is_object(o)) {
        snprintf(code, csz, "invalid_request");
        snprintf(err, esz, "the body must be one JSON object, an otp.requested event");
        goto out;
    }
    if (!json_object_get(o, "request_id")) {
        otp_uuid_v4(id);
        json_object_set_new(o, "request_id", json_string(id));
    }
    if (!json_object_get(o, "requested_at")) {
        otp_time_format(otp_now_ms(), at, sizeof(at));
        json_object_set_new(o, "requested_at", json_string(at));
    }
    s = json_dumps(o, JSON_COMPACT);
    if (!s) {
        snprintf(code, csz, "invalid_request");
        snprintf(err, esz, "the body could not be read");
    } else if (otp_request_parse(s, strlen(s), req, code, csz, err, esz) != 0) {
        free(s);
        s = NULL;
    } else if (req->phone[0] && otp_pn_lookup(req->phone, NULL) != 0) {
        /* What ingest would refuse (dead letter): said here at once instead. */
        snprintf(code, csz, "invalid_phone");
        snprintf(err, esz, "phone is not a valid number (wrong length or unassigned range)");
        free(s);
        s = NULL;
    }
out:
    json_decref(o);
    return s;
}

/* 1 when the database already knows request_id (a challenge, or a dead
 * letter naming it); 0 not, or the database did not answer (then the topic
 * and ingest's idempotency decide). */
static int request_known(api_t *a, const char *id, const char *service)
{
    const char *p[2] = {id, service};
    PGconn *conn = db(a);
    PGresult *r = conn ? otp_db_query(conn, "front_known",
                                      "SELECT 1 FROM challenges"
                                      " WHERE request_id = $1::uuid AND service = $2"
                                      " UNION ALL"
                                      " SELECT 1 FROM dead_letters"
                                      " WHERE request_id = $1::uuid AND service = $2"
                                      " UNION ALL"
                                      " SELECT 1 FROM front_queued"
                                      " WHERE request_id = $1::uuid AND service = $2",
                                      2, p)
                       : NULL;
    int known = r && PQntuples(r) > 0;

    PQclear(r);
    return known;
}

static otp_mhd_result accepted(struct MHD_Connection *c, const char *id)
{
    char url[64];

    snprintf(url, sizeof(url), "/v1/requests/%s", id);
    return reply_json(
        c, 202,
        json_pack("{s:s, s:s, s:s}", "request_id", id, "status", "accepted", "status_url", url));
}

/* Notes a request Kafka acknowledged, so that its status reads `queued`
 * until a worker has read it; deletes a few rows over a day old on the way.
 * A failure is logged, not answered: the request is on the topic. */
static void front_remember(api_t *a, const char *id, const char *masked, const char *service)
{
    const char *p[3] = {id, masked, service};
    PGconn *conn = db(a);
    PGresult *r = conn ? otp_db_query(conn, "front_remember",
                                      "WITH old AS (DELETE FROM front_queued WHERE request_id IN ("
                                      "  SELECT request_id FROM front_queued"
                                      "  WHERE queued_at < now() - interval '1 day'"
                                      "  ORDER BY queued_at LIMIT 10))"
                                      " INSERT INTO front_queued (request_id, phone_masked,"
                                      "   service)"
                                      " VALUES ($1::uuid, $2, $3) ON CONFLICT DO NOTHING",
                                      3, p)
                       : NULL;

    if (!r)
        otp_warn("front_door_unrecorded", "request_id=%s phone=%s", id, masked[0] ? masked : "-");
    PQclear(r);
}

/* POST /v1/requests: the front door for applications without a Kafka client.
 * Validated like the topic, published to otp.requested keyed by the phone
 * (as otp-produce does), answered 202 once the broker has it. The abuse
 * limits are the workers' (ingest): GET shows rate_limited or blocked. */
void api_front_done(void *arg, int err)
{
    req_ctx_t *ctx = arg;

    ctx->front_err = err;
    MHD_resume_connection(ctx->conn);
}

/* The answer to POST /v1/requests once Kafka's report came (or none could be asked for). */
static otp_mhd_result front_answer(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx)
{
    if (ctx->front_err) {
        atomic_fetch_add(&a->front_unavailable, 1);
        otp_warn("front_door_unavailable",
                 "request_id=%s service=%s key_id=%s phone=%s error=\"%s\"", ctx->front_id,
                 ctx->who.service, ctx->who.key_id, ctx->front_phone,
                 ctx->front_err > 0 ? front_err_str(ctx->front_err) : "not published");
        return otp_http_error(c, 503, "unavailable",
                              "the request could not be queued; send it again with the same "
                              "request_id");
    }
    atomic_fetch_add(&a->front_accepted, 1);
    front_remember(a, ctx->front_id, strcmp(ctx->front_phone, "-") ? ctx->front_phone : "",
                   ctx->who.service);
    otp_info("front_door_queued", "request_id=%s service=%s key_id=%s phone=%s", ctx->front_id,
             ctx->who.service, ctx->who.key_id, ctx->front_phone);
    return accepted(c, ctx->front_id);
}

static otp_mhd_result handle_request_post(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx,
                                          const caller_t *who)
{
    otp_request_t req;
    char code[48], err[300], topic[256];
    char *msg = front_message(ctx->body, ctx->len, &req, code, sizeof(code), err, sizeof(err));

    if (!msg) {
        atomic_fetch_add(&a->bad_requests, 1);
        return otp_http_error(c, 400, code, err);
    }
    if (otp_services_topic(a->topic_requests, who->service, topic, sizeof(topic)) != 0) {
        free(msg);
        return otp_http_error(c, 500, "internal", "the service's topic name is too long");
    }
    if (request_known(a, req.request_id, who->service)) {
        /* The same request_id again: the same answer, nothing published. */
        free(msg);
        atomic_fetch_add(&a->front_repeated, 1);
        return accepted(c, req.request_id);
    }
    /* Published without holding this thread: the delivery report resumes
     * the connection (suspended first, so that it cannot come too early). */
    snprintf(ctx->front_id, sizeof(ctx->front_id), "%s", req.request_id);
    if (req.phone[0])
        otp_phone_mask(req.phone, ctx->front_phone, sizeof(ctx->front_phone));
    else
        snprintf(ctx->front_phone, sizeof(ctx->front_phone), "-");
    ctx->conn = c;
    ctx->checking = CHECK_FRONT;
    atomic_fetch_add(&a->checks_open, 1);
    MHD_suspend_connection(c);
    if (front_publish(a->front, topic, req.phone[0] ? req.phone : req.resend_of, msg, strlen(msg),
                      who->key_id, ctx, err, sizeof(err)) != 0) {
        otp_warn("front_door_publish_failed", "request_id=%s error=\"%s\"", ctx->front_id, err);
        ctx->front_err = -1;
        MHD_resume_connection(c);
    }
    free(msg);
    return MHD_YES;
}

static json_t *error_json(unsigned *status, unsigned code, const char *what, const char *message)
{
    *status = code;
    return json_pack("{s:{s:s, s:s}}", "error", "code", what, "message", message);
}

/* A request of `service` that never became a challenge: its dead letter says
 * why; one the front door queued and no worker has read yet is `queued`. */
static json_t *unread_state(PGconn *conn, const char *id, const char *service, unsigned *status)
{
    const char *p[2] = {id, service};
    PGresult *r = otp_db_query(
        conn, "status_unread",
        "SELECT 'rejected', reason, error, NULL FROM ("
        "  SELECT reason, error FROM dead_letters WHERE request_id = $1::uuid AND service = $2"
        "  ORDER BY id DESC LIMIT 1) d"
        " UNION ALL"
        " SELECT 'queued', NULL, NULL, phone_masked FROM front_queued"
        "  WHERE request_id = $1::uuid AND service = $2"
        " LIMIT 1",
        2, p);
    json_t *o;

    if (!r)
        return error_json(status, 503, "unavailable", "the database is not reachable; try again");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return error_json(status, 404, "not_found", "no request with this id");
    }
    *status = 200;
    if (strcmp(PQgetvalue(r, 0, 0), "rejected") == 0)
        o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "request_id", id, "status", "rejected", "reason",
                      PQgetvalue(r, 0, 1), "message", PQgetvalue(r, 0, 2), "service", service);
    else
        o = json_pack("{s:s, s:s, s:s, s:s}", "request_id", id, "status", "queued", "phone",
                      PQgetvalue(r, 0, 3), "service", service);
    PQclear(r);
    return o;
}

/* The public state of a request of `service` (GET /v1/requests/{id}), or an
 * error object; *status is the HTTP status. Another service's request
 * answers as an unknown one. */
static json_t *request_state(PGconn *conn, const char *id, const char *service, unsigned *status)
{
    const char *p[2] = {id, service};
    PGresult *r;
    json_t *o;

    if (!conn)
        return error_json(status, 503, "unavailable", "the database is not reachable; try again");
    r = otp_db_query(conn, "status",
                     "SELECT status, phone_masked, locale, call_attempts,"
                     "  greatest(max_attempts - attempts, 0),"
                     "  to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                     "  expires_at <= now(), reason, fallback_offered_at IS NOT NULL,"
                     "  to_char(coalesce(fallback_offered_at, fallback_at) AT TIME ZONE 'UTC',"
                     "          'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                     "  to_char(CASE WHEN status IN ('pending', 'unheard', 'no_answer', 'busy',"
                     "                 'voicemail', 'call_failed', 'no_input')"
                     "          THEN next_attempt_at END AT TIME ZONE 'UTC',"
                     "          'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), user_id, purpose"
                     " FROM challenges WHERE request_id = $1 AND service = $2",
                     2, p);
    if (!r)
        return error_json(status, 503, "unavailable", "the database is not reachable; try again");
    if (PQntuples(r) == 0) {
        PQclear(r);
        return unread_state(conn, id, service, status);
    }
    *status = 200;
    o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:s}", "request_id", id, "status",
                  PQgetvalue(r, 0, 6)[0] == 't' && strcmp(PQgetvalue(r, 0, 0), "verified") != 0 &&
                          strcmp(PQgetvalue(r, 0, 0), "locked") != 0
                      ? "expired"
                      : PQgetvalue(r, 0, 0),
                  "phone", PQgetvalue(r, 0, 1), "locale", PQgetvalue(r, 0, 2), "call_attempts",
                  (int)strtol(PQgetvalue(r, 0, 3), NULL, 10), "attempts_left",
                  (int)strtol(PQgetvalue(r, 0, 4), NULL, 10), "expires_at", PQgetvalue(r, 0, 5),
                  "service", service, "user_id", PQgetvalue(r, 0, 11), "purpose",
                  PQgetvalue(r, 0, 12));
    /* Why it ended without a code to check: a refusal (rate_limited, blocked,
     * expired on arrival) or the cause of the last failed call. */
    if (o && !PQgetisnull(r, 0, 7))
        json_object_set_new(o, "reason", json_string(PQgetvalue(r, 0, 7)));
    /* "Didn't get the call?": offered (fallback_available) or when it will
     * be; the next call's time while one is scheduled. */
    if (o) {
        json_object_set_new(o, "fallback_available", json_boolean(PQgetvalue(r, 0, 8)[0] == 't'));
        if (!PQgetisnull(r, 0, 9))
            json_object_set_new(o, "resend_available_at", json_string(PQgetvalue(r, 0, 9)));
        if (!PQgetisnull(r, 0, 10))
            json_object_set_new(o, "next_call_at", json_string(PQgetvalue(r, 0, 10)));
    }
    PQclear(r);
    return o;
}

char *api_status_body(void *cls, PGconn *conn, const char *id, const char *service,
                      unsigned *status, char version[17])
{
    json_t *o = request_state(conn, id, service, status);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char digest[65];

    (void)cls;
    version[0] = '\0';
    if (s && *status == 200) {
        /* The version names the state: a hash of the body without it. */
        otp_sha256_hex(s, digest);
        memcpy(version, digest, 16);
        version[16] = '\0';
        free(s);
        json_object_set_new(o, "version", json_string(version));
        s = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    return s;
}

static otp_mhd_result reply_body(struct MHD_Connection *c, unsigned status, char *body)
{
    otp_mhd_result r = body ? otp_http_reply(c, status, "application/json", body)
                            : otp_http_error(c, 500, "internal", "out of memory");
    free(body);
    return r;
}

/* GET /v1/requests/{id}[?wait=N[&since=version]]: the state now, or, with
 * wait, once it differs from `since` (default: the state now), at most N
 * seconds later (then the same state again). Only the key's service's. */
static otp_mhd_result handle_status(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx,
                                    const char *id, const caller_t *who)
{
    const char *wait_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    longpoll_wait_t *w = &ctx->wait;
    char version[17], *end = NULL, *body;
    unsigned status = 0;
    long wait = 0;

    if (!otp_uuid_valid(id))
        return otp_http_error(c, 400, "invalid_request", "the path must end in a request UUID");
    if (wait_s) {
        errno = 0;
        wait = strtol(wait_s, &end, 10);
        if (errno || end == wait_s || *end || wait < 0 || wait > API_MAX_WAIT_SECONDS)
            return otp_http_error(c, 400, "invalid_wait",
                                  "wait must be a whole number of seconds from 0 to 25");
    }
    if (since && (strlen(since) != 16 || strspn(since, "0123456789abcdef") != 16))
        return otp_http_error(c, 400, "invalid_since",
                              "since must be the version of an earlier answer (16 hex digits)");
    body = api_status_body(a, db(a), id, who->service, &status, version);
    if (!body || status != 200 || wait == 0 || (since && strcmp(since, version) != 0) ||
        !a->longpoll)
        return reply_body(c, status, body);
    free(body);
    memset(w, 0, sizeof(*w));
    w->conn = c;
    snprintf(w->request_id, sizeof(w->request_id), "%s", id);
    snprintf(w->service, sizeof(w->service), "%s", who->service);
    snprintf(w->version, sizeof(w->version), "%s", version);
    w->deadline_us = otp_monotonic_us() + (int64_t)wait * 1000000;
    ctx->waiting = 1;
    if (longpoll_add(a->longpoll, w) != 0) {
        ctx->waiting = 0; /* stopping: the state now */
        body = api_status_body(a, db(a), id, who->service, &status, version);
        return reply_body(c, status, body);
    }
    return MHD_YES;
}

/* POST /v1/requests/{id}/cancel: the request ends 'cancelled' (otp_cancel.h);
 * a call still reading its code is hung up by the worker. */
static otp_mhd_result handle_cancel(api_t *a, struct MHD_Connection *c, const char *id,
                                    const caller_t *who)
{
    PGconn *conn = db(a);
    otp_cancel_result_t res;
    json_t *o;

    if (!otp_uuid_valid(id))
        return otp_http_error(c, 400, "invalid_request",
                              "the path must be /v1/requests/<request UUID>/cancel");
    if (!conn)
        return otp_http_error(c, 503, "unavailable", "the database is not reachable; try again");
    switch (otp_cancel_request(conn, id, "api", who->service, who->key_id, &res)) {
    case OTP_CANCEL_DONE:
    case OTP_CANCEL_ALREADY:
        o = json_pack("{s:s, s:s}", "request_id", id, "status", "cancelled");
        if (o && res.call_id[0])
            json_object_set_new(o, "call_id", json_string(res.call_id));
        otp_info("request_cancelled", "request_id=%s service=%s key_id=%s call_id=%s before=%s", id,
                 who->service, who->key_id, res.call_id, res.status);
        return reply_json(c, 200, o);
    case OTP_CANCEL_FINAL:
        return otp_http_error(c, 409, "not_cancellable",
                              strcmp(res.status, "verified") == 0 ? "the request is verified"
                              : strcmp(res.status, "expired") == 0
                                  ? "the request has expired"
                                  : "the request is over (see GET /v1/requests/{id})");
    case OTP_CANCEL_NOT_FOUND:
        return otp_http_error(c, 404, "not_found", "no request with this id");
    case OTP_CANCEL_ERROR:
        break;
    }
    return otp_http_error(c, 503, "unavailable", "the database is not reachable; try again");
}

static otp_mhd_result handle_webhook(api_t *a, struct MHD_Connection *c, req_ctx_t *ctx)
{
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-VoIPBIN-Signature");
    otp_call_event_t ev;
    char err[160];
    PGconn *conn;
    int rc;

    if (!otp_webhook_signature_ok(a->webhook_secret, ctx->body ? ctx->body : "", ctx->len, sig)) {
        atomic_fetch_add(&a->webhooks_bad_signature, 1);
        otp_warn("webhook_bad_signature", "bytes=%zu signature=%s", ctx->len,
                 sig ? "wrong" : "missing");
        return otp_http_error(c, 401, "bad_signature",
                              "X-VoIPBIN-Signature is missing or does not match the body");
    }
    rc = otp_call_event_parse(ctx->body, ctx->len, &ev, err, sizeof(err));
    if (rc < 0) {
        atomic_fetch_add(&a->bad_requests, 1);
        return otp_http_error(c, 400, "invalid_event", err);
    }
    atomic_fetch_add(&a->webhooks, 1);
    if (rc == 1)
        return otp_http_reply(c, 200, "application/json", "{\"applied\":false}");
    if (ev.keypad) {
        /* Keypad mode: the digits are checked like any verify request; the
         * outcome (verified / verify_failed / locked) goes to the status topic. */
        otp_mhd_result r =
            start_check(a, c, ctx, CHECK_KEYPAD, ev.request_id, ev.call_id, ev.digits, NULL);
        sodium_memzero(ev.digits, sizeof(ev.digits));
        return r;
    }
    conn = db(a);
    rc = conn ? otp_call_event_apply(conn, &ev, ctx->body) : -1;
    if (rc < 0) {
        atomic_fetch_add(&a->db_errors, 1);
        /* 5xx: VoIPBin delivers again. */
        return otp_http_error(c, 503, "unavailable", "could not record the event; send it again");
    }
    if (rc == 1)
        atomic_fetch_add(&a->webhooks_pending, 1);
    if (rc == 2) {
        /* A call of the account that is not ours: acknowledged, not kept. */
        atomic_fetch_add(&a->webhooks_not_ours, 1);
        otp_debug("webhook_not_ours", "type=%s call_id=%s", ev.type, ev.call_id);
        return otp_http_reply(c, 200, "application/json", "{\"applied\":false}");
    }
    otp_debug("webhook", "type=%s call_id=%s status=%s pending=%d", ev.type, ev.call_id, ev.status,
              rc);
    return otp_http_reply(c, 200, "application/json",
                          rc == 1 ? "{\"applied\":\"later\"}" : "{\"applied\":true}");
}

/* The verifier's counters (api_t), as metric families. */
#define COUNTER(id, label, field) OTP_METRIC_COUNTER(api_t, field, id, label)
static const otp_metric_counter_t counters[] = {
    COUNTER(OTP_M_VERIFIER_VERIFY, "verified", verified),
    COUNTER(OTP_M_VERIFIER_VERIFY, "incorrect", incorrect),
    COUNTER(OTP_M_VERIFIER_VERIFY, "rejected", rejected),
    COUNTER(OTP_M_VERIFIER_BAD_REQUESTS, NULL, bad_requests),
    COUNTER(OTP_M_VERIFIER_UNAUTHORIZED, NULL, unauthorized),
    COUNTER(OTP_M_VERIFIER_FORBIDDEN, NULL, forbidden),
    COUNTER(OTP_M_VERIFIER_RATE_LIMITED, "address", limited_address),
    COUNTER(OTP_M_VERIFIER_RATE_LIMITED, "key", limited_key),
    COUNTER(OTP_M_VERIFIER_WEBHOOKS, "accepted", webhooks),
    COUNTER(OTP_M_VERIFIER_WEBHOOKS, "bad_signature", webhooks_bad_signature),
    COUNTER(OTP_M_VERIFIER_WEBHOOKS, "early", webhooks_pending),
    COUNTER(OTP_M_VERIFIER_WEBHOOKS, "not_ours", webhooks_not_ours),
    COUNTER(OTP_M_VERIFIER_WEBHOOKS, "dropped", webhooks_dropped),
    COUNTER(OTP_M_VERIFIER_FRONT_DOOR, "queued", front_accepted),
    COUNTER(OTP_M_VERIFIER_FRONT_DOOR, "repeated", front_repeated),
    COUNTER(OTP_M_VERIFIER_FRONT_DOOR, "unavailable", front_unavailable),
    COUNTER(OTP_M_VERIFIER_DB_ERRORS, NULL, db_errors),
    COUNTER(OTP_M_VERIFIER_CHECK_TRANSACTIONS, "alone", check_stats.alone),
    COUNTER(OTP_M_VERIFIER_CHECK_TRANSACTIONS, "batch", check_stats.batch),
    COUNTER(OTP_M_VERIFIER_CHECK_TRANSACTIONS, "split", check_stats.split),
    COUNTER(OTP_M_VERIFIER_CHECKS_DEFERRED, NULL, check_stats.deferred),
};
#undef COUNTER

static otp_mhd_result handle_metrics(api_t *a, struct MHD_Connection *c)
{
    atomic_store(&a->webhooks_dropped, otp_webhook_pending_dropped());
    otp_metric_set_counters(counters, sizeof(counters) / sizeof(counters[0]), a);
    return otp_http_reply_metrics(c, OTP_PROG_VERIFIER);
}

otp_mhd_result api_admin_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    api_t *a = cls;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return otp_http_error(c, 405, "method_not_allowed", "only GET is served here");
    if (strcmp(url, "/healthz") == 0)
        return otp_http_reply(c, 200, "application/json", "{\"status\":\"ok\"}");
    if (strcmp(url, "/readyz") == 0) {
        PGconn *conn = db(a);
        PGresult *r = conn ? PQexec(conn, "SELECT 1") : NULL;
        int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        return otp_http_reply(c, ok ? 200 : 503, "application/json",
                              ok ? "{\"status\":\"ok\",\"database\":true}"
                                 : "{\"status\":\"not_ready\",\"database\":false}");
    }
    if (strcmp(url, "/metrics") == 0)
        return handle_metrics(a, c);
    return otp_http_error(c, 404, "not_found", "GET /healthz, /readyz or /metrics");
}

/* 429 with Retry-After (whole seconds). */
static otp_mhd_result too_many(struct MHD_Connection *c, int wait_s, const char *what)
{
    char msg[120], after[16];
    json_t *o;
    char *text;
    struct MHD_Response *r;
    otp_mhd_result ret;

    snprintf(msg, sizeof(msg), "too many requests from this %s; retry after %d s", what, wait_s);
    snprintf(after, sizeof(after), "%d", wait_s);
    o = json_pack("{s:{s:s, s:s}}", "error", "code", "rate_limited", "message", msg);
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return MHD_NO;
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Retry-After", after);
    ret = MHD_queue_response(c, 429, r);
    MHD_destroy_response(r);
    return ret;
}

/* The client's address as text ("" when unknown). */
static void client_address(struct MHD_Connection *c, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;

    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
}

/* The per-address and per-key limits of an API route, on its first call:
 * 0 go on, else the 429 is queued (*ret). The address is counted before the
 * key is checked (a client guessing keys is slowed too). */
static int over_limit(api_t *a, struct MHD_Connection *c, int keyed, otp_mhd_result *ret)
{
    char addr[INET6_ADDRSTRLEN], digest[65];
    const char *h;
    int64_t now = otp_monotonic_us();
    int wait;

    client_address(c, addr, sizeof(addr));
    if ((wait = ratelimit_take(a->per_address, addr, now)) != 0) {
        atomic_fetch_add(&a->limited_address, 1);
        *ret = too_many(c, wait, "address");
        return 1;
    }
    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!keyed || !a->per_key || !h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    otp_sha256_hex(h + 7, digest);
    if ((wait = ratelimit_take(a->per_key, digest, now)) != 0) {
        atomic_fetch_add(&a->limited_key, 1);
        *ret = too_many(c, wait, "API key");
        return 1;
    }
    return 0;
}

int api_origin_allowed(const char *list, const char *origin)
{
    size_t olen = origin ? strlen(origin) : 0;

    for (const char *p = list; olen && p && *p;) {
        size_t n;
        p += strspn(p, " ");
        n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n == olen && memcmp(p, origin, n) == 0)
            return 1;
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return 0;
}

/* OPTIONS (a browser's CORS preflight): answered without a key, 204 for an
 * allowed origin, 403 otherwise. */
static otp_mhd_result preflight(struct MHD_Connection *c, int allowed)
{
    struct MHD_Response *r;
    otp_mhd_result ret;

    if (!allowed)
        return otp_http_error(c, 403, "origin_not_allowed",
                              "this Origin may not call the API from a browser (OTP_CORS_ORIGINS)");
    r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    otp_http_add_cors(r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return ret;
}

/* The routes that need an API key. */
static int is_api_route(const char *url)
{
    return strcmp(url, "/v1/verify") == 0 || strcmp(url, "/v1/requests") == 0 ||
           strncmp(url, "/v1/requests/", 13) == 0;
}

/* One request on either listener: the webhook listener serves only VoIPBin's
 * webhook, the API listener everything else. The route and the API key are
 * checked on the first call, before any of the body is read. */
static otp_mhd_result serve(api_t *a, int webhook_listener, struct MHD_Connection *c,
                            const char *url, const char *method, const char *upload_data,
                            size_t *upload_data_size, void **con_cls)
{
    req_ctx_t *ctx = *con_cls;
    int is_post = strcmp(method, "POST") == 0;
    int is_webhook = strcmp(url, "/v1/webhooks/voipbin") == 0;
    caller_t who = {0};

    if (!ctx) {
        if (webhook_listener && !is_webhook)
            return otp_http_error(c, 404, "not_found",
                                  "this listener serves only POST /v1/webhooks/voipbin");
        if (!webhook_listener && is_webhook)
            return otp_http_error(c, 404, "not_found",
                                  "no such endpoint (VoIPBin's webhook has a listener of its own)");
        /* A browser's preflight carries no key: answered before the key check. */
        if (!webhook_listener && strcmp(method, "OPTIONS") == 0 && strncmp(url, "/v1/", 4) == 0)
            return preflight(
                c, api_origin_allowed(a->cors_origins,
                                      MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin")));
        if (!webhook_listener) {
            otp_mhd_result limited;
            int keyed = is_api_route(url);

            if (keyed && authorised(a, c, &who) != 0) {
                /* Counted against the address first: guessing keys is limited too. */
                if (over_limit(a, c, 0, &limited))
                    return limited;
                atomic_fetch_add(&a->unauthorized, 1);
                return otp_http_error(c, 401, "unauthorized",
                                      "send Authorization: Bearer <api key> with a key that is "
                                      "neither revoked nor expired");
            }
            if (over_limit(a, c, keyed, &limited))
                return limited;
        }
        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return MHD_NO;
        ctx->who = who;
        *con_cls = ctx;
        return MHD_YES;
    }
    if (ctx->waiting) {
        char *body = ctx->wait.body;
        ctx->waiting = 0;
        ctx->wait.body = NULL; /* reply_body frees it */
        return reply_body(c, ctx->wait.status, body);
    }
    if (ctx->checking != CHECK_NONE) {
        otp_mhd_result r = ctx->checking == CHECK_VERIFY  ? verify_answer(a, c, ctx)
                           : ctx->checking == CHECK_FRONT ? front_answer(a, c, ctx)
                                                          : keypad_answer(a, c, ctx);
        ctx->checking = CHECK_NONE;
        atomic_fetch_sub(&a->checks_open, 1);
        return r;
    }
    if (*upload_data_size) {
        size_t limit = is_webhook ? WEBHOOK_MAX_BODY : a->max_body;
        if (!ctx->too_large && ctx->len + *upload_data_size <= limit) {
            char *nb = realloc(ctx->body, ctx->len + *upload_data_size + 1);
            if (!nb)
                return MHD_NO;
            ctx->body = nb;
            memcpy(ctx->body + ctx->len, upload_data, *upload_data_size);
            ctx->len += *upload_data_size;
            ctx->body[ctx->len] = '\0';
        } else {
            ctx->too_large = 1; /* keep reading, answer 413 at the end */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (ctx->too_large)
        return otp_http_error(c, 413, "body_too_large",
                              "the body is larger than this endpoint takes");
    if (is_post) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (!ct || strncmp(ct, "application/json", 16) != 0)
            return otp_http_error(c, 415, "unsupported_media_type",
                                  "send the body as Content-Type: application/json");
    }
    if (is_webhook) {
        if (!is_post)
            return otp_http_error(c, 405, "method_not_allowed", "use POST");
        return handle_webhook(a, c, ctx);
    }
    if (is_api_route(url)) { /* the key was checked on the first call */
        who = ctx->who;
        if (strcmp(url, "/v1/verify") == 0) {
            if (!is_post)
                return otp_http_error(c, 405, "method_not_allowed", "use POST");
            if (!(who.scopes & OTP_SCOPE_VERIFY))
                return forbidden(a, c, &who, "verify");
            return handle_verify(a, c, ctx, &who);
        }
        if (strcmp(url, "/v1/requests") == 0) {
            if (!is_post)
                return otp_http_error(c, 405, "method_not_allowed", "use POST");
            if (!(who.scopes & OTP_SCOPE_CREATE))
                return forbidden(a, c, &who, "create");
            return handle_request_post(a, c, ctx, &who);
        }
        if (strlen(url) == 13 + 36 + 7 && strcmp(url + 13 + 36, "/cancel") == 0) {
            char id[37];
            if (!is_post)
                return otp_http_error(c, 405, "method_not_allowed", "use POST");
            if (!(who.scopes & OTP_SCOPE_CREATE))
                return forbidden(a, c, &who, "create");
            snprintf(id, sizeof(id), "%.36s", url + 13);
            return handle_cancel(a, c, id, &who);
        }
        if (strcmp(method, "GET") != 0)
            return otp_http_error(c, 405, "method_not_allowed", "use GET");
        if (!(who.scopes & OTP_SCOPE_READ))
            return forbidden(a, c, &who, "read");
        return handle_status(a, c, ctx, url + 13, &who);
    }
    return otp_http_error(c, 404, "not_found", "no such endpoint");
}

otp_mhd_result api_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                          const char *version, const char *upload_data, size_t *upload_data_size,
                          void **con_cls)
{
    api_t *a = cls;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    otp_mhd_result r;

    (void)version;
    otp_http_cors_origin(api_origin_allowed(a->cors_origins, origin) ? origin : NULL);
    r = serve(cls, 0, c, url, method, upload_data, upload_data_size, con_cls);
    otp_http_cors_origin(NULL);
    return r;
}

otp_mhd_result api_webhook_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    return serve(cls, 1, c, url, method, upload_data, upload_data_size, con_cls);
}

void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                   enum MHD_RequestTerminationCode toe)
{
    req_ctx_t *ctx = *con_cls;
    api_t *a = cls;
    (void)c;
    (void)toe;
    if (ctx && ctx->checking != CHECK_NONE)
        atomic_fetch_sub(&a->checks_open, 1); /* ended before its answer (client gone) */
    if (ctx) {
        free(ctx->wait.body); /* resumed, then the client went away */
        if (ctx->body)
            sodium_memzero(ctx->body, ctx->len);
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}
