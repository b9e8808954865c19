/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sim_util.h"

typedef struct job {
    int64_t due_ns;
    uint64_t seq;
    char *uri, *method, *content_type, *body, *secret;
    size_t body_len;
    int attempts;
    uint32_t epoch;
    void *owner;
    const sim_wh_owner_ops *ops;
    int rec;
    size_t idx;
} job;

typedef struct worker {
    struct sim_wh *pool;
    pthread_t thread;
    pthread_cond_t cond;
    job **heap;
    size_t n, cap;
    CURL *curl;
} worker;

struct sim_wh {
    pthread_mutex_t *lock;
    worker *w;
    int nworkers, running, started;
    double time_scale;
    int ssrf_guard;
    const uint32_t *epoch;
    uint64_t seq;
    size_t pending;
};

const char *sim_wh_state_name(int state)
{
    switch (state) {
    case SIM_WH_PENDING:
        return "pending";
    case SIM_WH_DELIVERED:
        return "delivered";
    case SIM_WH_FAILED:
        return "failed";
    default:
        return "skipped";
    }
}

void sim_wh_sign(const char *secret, const char *body, size_t len, char out[72])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];

    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, 65, mac, sizeof mac);
}

static void job_free(job *j)
{
    if (!j)
        return;
    free(j->uri);
    free(j->method);
    free(j->content_type);
    free(j->body);
    free(j->secret);
    free(j);
}

static int job_before(const job *a, const job *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static int heap_push(worker *w, job *j)
{
    size_t i;

    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        job **h = realloc(w->heap, cap * sizeof *h);
        if (!h)
            return -1;
        w->heap = h;
        w->cap = cap;
    }
    i = w->n++;
    while (i > 0 && job_before(j, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = j;
    return 0;
}

static job *heap_pop(worker *w)
{
    job *top = w->heap[0], *last = w->heap[--w->n];
    size_t i = 0;

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = l;
        if (l >= w->n)
            break;
        if (r < w->n && job_before(w->heap[r], w->heap[l]))
            m = r;
        if (!job_before(w->heap[m], last))
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->n)
        w->heap[i] = last;
    return top;
}

static int private_addr(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 24) == 0 || (a >> 20) == 0xac1 ||
               (a >> 16) == 0xc0a8 || (a >> 16) == 0xa9fe || (a >> 22) == (100u << 2 | 1) ||
               (a >> 8) == 0xc00002 || (a >> 8) == 0xc63364 || (a >> 8) == 0xcb0071 ||
               (a >> 28) >= 14;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const unsigned char loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return !memcmp(b, loop, 16) || (b[0] & 0xfe) == 0xfc ||
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80);
    }
    return 1;
}

/* The real service's SSRF guard: only public addresses. Returns 1 when refused. */
static int ssrf_refused(const char *uri)
{
    CURLU *u = curl_url();
    char *host = NULL;
    struct addrinfo hints, *res = NULL, *ai;
    int refused = 1;

    if (!u || curl_url_set(u, CURLUPART_URL, uri, 0) || curl_url_get(u, CURLUPART_HOST, &host, 0))
        goto out;
    if (host[0] == '[') { /* IPv6 literal */
        size_t l = strlen(host);
        memmove(host, host + 1, l);
        if (l >= 2)
            host[l - 2] = '\0';
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res))
        goto out;
    refused = 0;
    for (ai = res; ai; ai = ai->ai_next)
        if (private_addr(ai->ai_addr))
            refused = 1;
out:
    if (res)
        freeaddrinfo(res);
    curl_free(host);
    curl_url_cleanup(u);
    return refused;
}

static size_t discard(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* One attempt, outside the lock. Returns 1 if it should be retried. */
static int attempt(sim_wh *pool, worker *w, job *j, long *status, char *err, size_t errlen)
{
    struct curl_slist *h = NULL;
    char hdr[128], sig[72];
    CURLcode rc;

    *status = 0;
    err[0] = '\0';
    if (pool->ssrf_guard && ssrf_refused(j->uri)) {
        snprintf(err, errlen, "refused: webhook target is not a public address");
        return 0;
    }
    if (!w->curl && !(w->curl = curl_easy_init())) {
        snprintf(err, errlen, "curl init failed");
        return 1;
    }
    snprintf(hdr, sizeof hdr, "Content-Type: %s", j->content_type);
    h = curl_slist_append(h, hdr);
    if (j->secret && *j->secret) {
        sim_wh_sign(j->secret, j->body, j->body_len, sig);
        snprintf(hdr, sizeof hdr, "X-VoIPBIN-Signature: %s", sig);
        h = curl_slist_append(h, hdr);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_reset(w->curl);
    curl_easy_setopt(w->curl, CURLOPT_URL, j->uri);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_CUSTOMREQUEST, j->method);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE, (long)j->body_len);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(w->curl, CURLOPT_USERAGENT, "Go-http-client/1.1");
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(w->curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        return 1;
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, status);
    return *status >= 500;
}

static void *work(void *arg)
{
    worker *w = arg;
    sim_wh *pool = w->pool;
    char err[256];

    pthread_mutex_lock(pool->lock);
    while (pool->running) {
        job *j;
        long status;
        int retry, state;

        if (!w->n) {
            pthread_cond_wait(&w->cond, pool->lock);
            continue;
        }
        if (w->heap[0]->due_ns > sim_mono_ns()) {
            int64_t due = w->heap[0]->due_ns;
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            pthread_cond_timedwait(&w->cond, pool->lock, &ts);
            continue;
        }
        j = heap_pop(w);
        if (j->epoch != *pool->epoch) { /* reset since it was queued */
            j->ops->release(j->owner);
            pool->pending--;
            job_free(j);
            continue;
        }
        pthread_mutex_unlock(pool->lock);
        retry = attempt(pool, w, j, &status, err, sizeof err);
        pthread_mutex_lock(pool->lock);
        j->attempts++;
        if (!retry && !err[0])
            state = SIM_WH_DELIVERED;
        else if (retry && j->attempts < SIM_WH_MAX_ATTEMPTS)
            state = SIM_WH_PENDING;
        else
            state = SIM_WH_FAILED;
        if (j->epoch == *pool->epoch)
            j->ops->record(j->owner, j->rec, j->idx, j->attempts, status, err[0] ? err : NULL,
                           state);
        if (state == SIM_WH_PENDING && j->epoch == *pool->epoch) {
            j->due_ns = sim_mono_ns() + (int64_t)(1e9 * pool->time_scale);
            j->seq = pool->seq++;
            if (!heap_push(w, j))
                continue;
        }
        j->ops->release(j->owner);
        pool->pending--;
        job_free(j);
    }
    pthread_mutex_unlock(pool->lock);
    return NULL;
}

sim_wh *sim_wh_new(pthread_mutex_t *lock, int workers, double time_scale, int ssrf_guard,
                   const uint32_t *epoch)
{
    sim_wh *p = calloc(1, sizeof *p);
    int i;

    if (!p)
        return NULL;
    p->w = calloc((size_t)workers, sizeof *p->w);
    if (!p->w) {
        free(p);
        return NULL;
    }
    p->lock = lock;
    p->nworkers = workers;
    p->time_scale = time_scale;
    p->ssrf_guard = ssrf_guard;
    p->epoch = epoch;
    for (i = 0; i < workers; i++) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->w[i].cond, &ca);
        pthread_condattr_destroy(&ca);
        p->w[i].pool = p;
    }
    return p;
}

int sim_wh_start(sim_wh *p)
{
    int i;

    p->running = 1;
    for (i = 0; i < p->nworkers; i++)
        if (pthread_create(&p->w[i].thread, NULL, work, &p->w[i]))
            return -1;
        else
            p->started = i + 1;
    return 0;
}

void sim_wh_destroy(sim_wh *p)
{
    int i;

    if (!p)
        return;
    pthread_mutex_lock(p->lock);
    p->running = 0;
    for (i = 0; i < p->nworkers; i++)
        pthread_cond_broadcast(&p->w[i].cond);
    pthread_mutex_unlock(p->lock);
    for (i = 0; i < p->started; i++)
        pthread_join(p->w[i].thread, NULL);
    pthread_mutex_lock(p->lock);
    for (i = 0; i < p->nworkers; i++) {
        worker *w = &p->w[i];
        while (w->n) {
            job *j = heap_pop(w);
            j->ops->release(j->owner);
            job_free(j);
        }
        free(w->heap);
        if (w->curl)
            curl_easy_cleanup(w->curl);
        pthread_cond_destroy(&w->cond);
    }
    pthread_mutex_unlock(p->lock);
    free(p->w);
    free(p);
}

int sim_wh_send(sim_wh *p, const sim_wh_req *r)
{
    job *j = calloc(1, sizeof *j);
    worker *w = &p->w[r->shard % (unsigned)p->nworkers];

    if (!j)
        goto fail;
    j->uri = sim_strdup(r->uri);
    j->method = sim_strdup(r->method && *r->method ? r->method : "GET");
    j->content_type =
        sim_strdup(r->content_type && *r->content_type ? r->content_type : "application/json");
    j->body = malloc(r->body_len + 1);
    j->secret = r->secret ? strdup(r->secret) : NULL;
    if (!j->uri || !j->method || !j->content_type || !j->body || (r->secret && !j->secret))
        goto fail;
    memcpy(j->body, r->body, r->body_len);
    j->body[r->body_len] = '\0';
    j->body_len = r->body_len;
    j->due_ns = sim_mono_ns() + r->delay_ms * 1000000;
    j->seq = p->seq++;
    j->epoch = *p->epoch;
    j->owner = r->owner;
    j->ops = r->ops;
    j->rec = r->rec;
    j->idx = r->idx;
    if (heap_push(w, j))
        goto fail;
    p->pending++;
    if (w->heap[0] == j)
        pthread_cond_signal(&w->cond);
    return 0;
fail:
    job_free(j);
    r->ops->release(r->owner);
    return -1;
}

size_t sim_wh_pending(const sim_wh *p)
{
    return p->pending;
}
