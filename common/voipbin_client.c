/* SPDX-License-Identifier: Apache-2.0 */
#include "voipbin_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otp_metrics.h"
#include "otp_time.h"

#include <sodium.h>

#define RESP_MAX (256 * 1024)

typedef struct vb_xfer {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    char *resp;
    size_t resp_len;
    int64_t retry_after_ms;
    vb_done_cb *cb;
    void *opaque;
    int busy;
    int is_message; /* the id is the Message's own, not calls[0].id */
    int started;    /* vb_client_perform has run since it was queued */
} vb_xfer_t;

struct vb_client {
    CURLM *multi;
    char *base_url;
    char *access_key_q; /* URL-escaped */
    long timeout_ms;
    int max;
    int in_flight;
    vb_xfer_t *pool; /* fixed: the in-flight window is also the memory bound */
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    vb_xfer_t *x = ud;
    size_t n = size * nmemb;
    char *p;

    if (x->resp_len + n > RESP_MAX)
        return 0;
    p = realloc(x->resp, x->resp_len + n + 1);
    if (!p)
        return 0;
    x->resp = p;
    memcpy(x->resp + x->resp_len, ptr, n);
    x->resp_len += n;
    x->resp[x->resp_len] = '\0';
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    vb_xfer_t *x = ud;
    size_t n = size * nitems;

    if (n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
        long s = strtol(buf + 12, NULL, 10);
        if (s > 0 && s < 3600)
            x->retry_after_ms = s * 1000;
    }
    return n;
}

vb_client_t *vb_client_new(const char *base_url, const char *access_key, int max_in_flight,
                           long timeout_ms)
{
    vb_client_t *c = calloc(1, sizeof(*c));
    char *esc = NULL;
    CURL *tmp;

    if (!c)
        return NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c->multi = curl_multi_init();
    c->base_url = strdup(base_url);
    c->max = max_in_flight;
    c->timeout_ms = timeout_ms;
    c->pool = calloc((size_t)max_in_flight, sizeof(*c->pool));
    tmp = curl_easy_init();
    if (tmp)
        esc = curl_easy_escape(tmp, access_key, 0);
    if (esc)
        c->access_key_q = strdup(esc);
    curl_free(esc);
    curl_easy_cleanup(tmp);
    if (!c->multi || !c->base_url || !c->pool || !c->access_key_q) {
        vb_client_destroy(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_in_flight);
    return c;
}

static void xfer_reset(vb_xfer_t *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    /* The body holds a code in plain form: wipe it. */
    if (x->body)
        sodium_memzero(x->body, x->body_len);
    free(x->body);
    free(x->resp);
    memset(x, 0, sizeof(*x));
}

void vb_client_destroy(vb_client_t *c)
{
    if (!c)
        return;
    for (int i = 0; c->pool && i < c->max; i++) {
        if (c->pool[i].busy)
            curl_multi_remove_handle(c->multi, c->pool[i].easy);
        xfer_reset(&c->pool[i]);
    }
    free(c->pool);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    free(c->base_url);
    if (c->access_key_q) {
        memset(c->access_key_q, 0, strlen(c->access_key_q));
        free(c->access_key_q);
    }
    free(c);
}

static CURL *easy_for(vb_client_t *c, const char *path_and_query, vb_xfer_t *x)
{
    char url[2048];
    CURL *e = curl_easy_init();
    const char *sep = strchr(path_and_query, '?') ? "&" : "?";

    if (!e)
        return NULL;
    snprintf(url, sizeof(url), "%s%s%saccesskey=%s", c->base_url, path_and_query, sep,
             c->access_key_q);
    curl_easy_setopt(e, CURLOPT_URL, url);
    memset(url, 0, sizeof(url));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 3000 ? c->timeout_ms : 3000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "otp-worker/1.0");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    return e;
}

/* Queues a POST of req (a reference is taken) to path. */
static int post_json(vb_client_t *c, const char *path, json_t *req, int is_message, vb_done_cb *cb,
                     void *opaque)
{
    vb_xfer_t *x = NULL;

    for (int i = 0; i < c->max; i++) {
        if (!c->pool[i].busy) {
            x = &c->pool[i];
            break;
        }
    }
    if (!x || !req)
        return -1;
    x->body = json_dumps(req, JSON_COMPACT);
    if (!x->body)
        return -1;
    x->body_len = strlen(x->body);
    x->is_message = is_message;
    x->easy = easy_for(c, path, x);
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "Accept: application/json");
    if (!x->easy || !x->headers) {
        xfer_reset(x);
        return -1;
    }
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
    curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE, (long)x->body_len);
    /* A POST that places a call or sends an SMS must go out once. On a reused
     * keep-alive connection that breaks before any answer, libcurl silently
     * sends the request again on a new connection (it assumes the server had
     * closed the idle connection) -- but the server may have acted on the
     * first one: a second paid call for one attempt. A connection of its own,
     * never reused, makes such a break an error the caller sees (ambiguous,
     * looked up before any new call). */
    curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
    x->cb = cb;
    x->opaque = opaque;
    x->busy = 1;
    curl_multi_add_handle(c->multi, x->easy);
    c->in_flight++;
    return 0;
}

/* POST path with {source, destinations: [one tel], key: value}; value is stolen. */
static int post_to(vb_client_t *c, const char *path, const char *source, const char *destination,
                   const char *key, json_t *value, vb_done_cb *cb, void *opaque)
{
    json_t *req =
        json_pack("{s:{s:s, s:s}, s:[{s:s, s:s}], s:O}", "source", "type", "tel", "target", source,
                  "destinations", "type", "tel", "target", destination, key, value);
    int rc = post_json(c, path, req, strcmp(path, "/messages") == 0, cb, opaque);

    json_decref(req);
    json_decref(value);
    return rc;
}

int vb_call_create(vb_client_t *c, const char *source, const char *destination, json_t *actions,
                   vb_done_cb *cb, void *opaque)
{
    return post_to(c, "/calls", source, destination, "actions", actions, cb, opaque);
}

int vb_message_create(vb_client_t *c, const char *source, const char *destination, const char *text,
                      vb_done_cb *cb, void *opaque)
{
    return post_to(c, "/messages", source, destination, "text", json_string(text), cb, opaque);
}

vb_class_t vb_classify(long http_status, int transport_error, int sent)
{
    if (http_status == 0)
        return (transport_error && sent) ? VB_AMBIGUOUS : VB_RETRY_SAFE;
    if (http_status >= 200 && http_status < 300)
        return VB_OK;
    if (http_status == 429 || http_status == 503)
        return VB_RETRY_SAFE;
    if (http_status >= 500)
        return VB_AMBIGUOUS;
    if (http_status == 408)
        return VB_AMBIGUOUS;
    return VB_PERMANENT;
}

/* Fills reason/message from the error envelope {"error":{status,reason,message}}. */
static void read_envelope(const char *body, vb_result_t *r)
{
    json_t *root = body ? json_loads(body, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    const char *reason = json_string_value(json_object_get(err, "reason"));
    const char *msg = json_string_value(json_object_get(err, "message"));

    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "HTTP_ERROR");
    snprintf(r->message, sizeof(r->message), "%s", msg ? msg : "");
    json_decref(root);
}

/* Request time by operation, and the answer by status class (429 apart). */
static void count_answer(CURL *easy, const char *op, long http_status, CURLcode cc)
{
    curl_off_t us = 0;

    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &us);
    otp_metric_observe(OTP_M_VOIPBIN_REQUEST, op, (double)us / 1e6);
    otp_metric_add(OTP_M_VOIPBIN_RESPONSES,
                   cc != CURLE_OK || http_status == 0 ? "transport"
                   : http_status == 429               ? "429"
                   : http_status < 300                ? "2xx"
                   : http_status < 500                ? "4xx"
                                                      : "5xx",
                   1);
    if (cc == CURLE_OK && http_status == 429)
        otp_metric_add(OTP_M_VOIPBIN_RATE_LIMITED, NULL, 1);
}

static void finish(vb_client_t *c, vb_xfer_t *x, CURLcode cc)
{
    vb_result_t r;
    curl_off_t up = 0;

    memset(&r, 0, sizeof(r));
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.http_status);
    curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    count_answer(x->easy, x->is_message ? "create_message" : "create_call", r.http_status, cc);
    if (cc != CURLE_OK) {
        int sent = up >= (curl_off_t)x->body_len && x->body_len > 0;
        /* A connect failure never reached the server, whatever curl counted. */
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST)
            sent = 0;
        r.http_status = 0;
        r.cls = vb_classify(0, 1, sent);
        snprintf(r.reason, sizeof(r.reason), "%s",
                 cc == CURLE_OPERATION_TIMEDOUT ? "timeout"
                 : cc == CURLE_COULDNT_CONNECT  ? "connect_failed"
                                                : "transport_error");
        snprintf(r.message, sizeof(r.message), "%s", curl_easy_strerror(cc));
    } else {
        r.cls = vb_classify(r.http_status, 0, 1);
        r.retry_after_ms = x->retry_after_ms;
        if (r.cls == VB_OK) {
            json_t *root = json_loads(x->resp ? x->resp : "", 0, NULL);
            const char *id = x->is_message
                                 ? json_string_value(json_object_get(root, "id"))
                                 : json_string_value(json_object_get(
                                       json_array_get(json_object_get(root, "calls"), 0), "id"));
            if (id && strlen(id) == 36) {
                memcpy(r.call_id, id, 37);
            } else {
                /* 200 without a call: nothing was placed (every destination skipped). */
                r.cls = VB_PERMANENT;
                snprintf(r.reason, sizeof(r.reason), "NO_CALL_IN_RESPONSE");
            }
            json_decref(root);
        } else {
            read_envelope(x->resp, &r);
        }
    }
    curl_multi_remove_handle(c->multi, x->easy);
    c->in_flight--;
    {
        vb_done_cb *cb = x->cb;
        void *opaque = x->opaque;
        xfer_reset(x);
        cb(opaque, &r);
    }
}

int vb_client_perform(vb_client_t *c, int timeout_ms, int wake_fd)
{
    struct curl_waitfd wake = {wake_fd, CURL_WAIT_POLLIN, 0};
    int running = 0, left;
    CURLMsg *m;

    if (c->in_flight == 0)
        return 0;
    for (int i = 0; i < c->max; i++)
        c->pool[i].started |= c->pool[i].busy;
    if (timeout_ms > 0)
        curl_multi_poll(c->multi, wake_fd >= 0 ? &wake : NULL, wake_fd >= 0 ? 1 : 0, timeout_ms,
                        NULL);
    curl_multi_perform(c->multi, &running);
    while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
        vb_xfer_t *x = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        finish(c, x, m->data.result);
    }
    return c->in_flight;
}

int vb_client_drop_unsent(vb_client_t *c, void (*free_opaque)(void *))
{
    int n = 0;

    for (int i = 0; i < c->max; i++) {
        vb_xfer_t *x = &c->pool[i];
        if (!x->busy || x->started)
            continue;
        curl_multi_remove_handle(c->multi, x->easy);
        c->in_flight--;
        if (free_opaque)
            free_opaque(x->opaque);
        xfer_reset(x);
        n++;
    }
    return n;
}

int vb_client_in_flight(const vb_client_t *c)
{
    return c->in_flight;
}

int vb_find_call_since(vb_client_t *c, const char *destination, int64_t since_ms,
                       char call_id_out[37], int *requests_out)
{
    char token[64] = "";
    int found = -1;

    *requests_out = 0;
    /* Newest first; stop at an empty page or once items are older than since. */
    for (int page = 0; page < 20; page++) {
        vb_xfer_t x;
        char path[256];
        CURLcode cc;
        long status = 0;
        json_t *root, *result, *item;
        size_t i;
        int older = 0;

        memset(&x, 0, sizeof(x));
        snprintf(path, sizeof(path), "/calls?page_size=100%s%s", token[0] ? "&page_token=" : "",
                 token);
        x.easy = easy_for(c, path, &x);
        if (!x.easy)
            return -1;
        (*requests_out)++;
        cc = curl_easy_perform(x.easy);
        curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
        count_answer(x.easy, "list_calls", status, cc);
        if (cc != CURLE_OK || status != 200) {
            xfer_reset(&x);
            return -1;
        }
        root = json_loads(x.resp ? x.resp : "", 0, NULL);
        xfer_reset(&x);
        result = json_object_get(root, "result");
        if (!json_is_array(result)) {
            json_decref(root);
            return -1;
        }
        found = 0;
        json_array_foreach(result, i, item)
        {
            const char *tc = json_string_value(json_object_get(item, "tm_create"));
            const char *dst =
                json_string_value(json_object_get(json_object_get(item, "destination"), "target"));
            const char *id = json_string_value(json_object_get(item, "id"));
            int64_t t;
            if (!tc || otp_time_parse(tc, &t) != 0)
                continue;
            if (t < since_ms) {
                older = 1;
                break;
            }
            if (dst && id && strcmp(dst, destination) == 0 && strlen(id) == 36) {
                memcpy(call_id_out, id, 37);
                json_decref(root);
                return 1;
            }
        }
        {
            const char *next = json_string_value(json_object_get(root, "next_page_token"));
            size_t n = json_array_size(result);
            if (older || n == 0 || !next || !*next || strlen(next) >= sizeof(token)) {
                json_decref(root);
                break;
            }
            /* The token is a tm_create timestamp: safe in a query string as it is. */
            snprintf(token, sizeof(token), "%s", next);
            json_decref(root);
        }
    }
    return found;
}

int vb_call_get(vb_client_t *c, const char *call_id, json_t **call_out)
{
    vb_xfer_t x;
    char path[64];
    long status = 0;
    CURLcode cc;
    json_t *root;

    *call_out = NULL;
    if (strlen(call_id) != 36 || strspn(call_id, "0123456789abcdefABCDEF-") != 36)
        return -1; /* never put anything else in the path */
    memset(&x, 0, sizeof(x));
    snprintf(path, sizeof(path), "/calls/%s", call_id);
    x.easy = easy_for(c, path, &x);
    if (!x.easy)
        return -1;
    cc = curl_easy_perform(x.easy);
    curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 404) {
        xfer_reset(&x);
        return 0;
    }
    if (cc != CURLE_OK || status != 200) {
        xfer_reset(&x);
        return -1;
    }
    root = json_loads(x.resp ? x.resp : "", 0, NULL);
    xfer_reset(&x);
    if (!json_is_object(root) || !json_is_string(json_object_get(root, "status"))) {
        json_decref(root);
        return -1;
    }
    *call_out = root;
    return 1;
}

int vb_call_hangup(vb_client_t *c, const char *call_id, char status_out[16])
{
    vb_xfer_t x;
    char path[80];
    long status = 0;
    CURLcode cc;
    json_t *root;
    int rc;

    if (status_out)
        status_out[0] = '\0';
    if (strlen(call_id) != 36 || strspn(call_id, "0123456789abcdefABCDEF-") != 36)
        return -2; /* never put anything else in the path */
    memset(&x, 0, sizeof(x));
    snprintf(path, sizeof(path), "/calls/%s/hangup", call_id);
    x.easy = easy_for(c, path, &x);
    x.headers = curl_slist_append(NULL, "Accept: application/json");
    if (!x.easy || !x.headers) {
        xfer_reset(&x);
        return -1;
    }
    curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, x.headers);
    curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE, 0L);
    cc = curl_easy_perform(x.easy);
    curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &status);
    count_answer(x.easy, "hangup_call", status, cc);
    if (cc != CURLE_OK || status == 429 || status >= 500)
        rc = -1;
    else if (status == 404)
        rc = 0;
    else if (status != 200)
        rc = -2;
    else
        rc = 1;
    if (rc == 1 && status_out) {
        root = json_loads(x.resp ? x.resp : "", 0, NULL);
        snprintf(status_out, 16, "%s",
                 json_string_value(json_object_get(root, "status"))
                     ? json_string_value(json_object_get(root, "status"))
                     : "");
        json_decref(root);
    }
    xfer_reset(&x);
    return rc;
}
