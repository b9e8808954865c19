/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_services.h"

#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otp_db.h"
#include "otp_log.h"

struct otp_svc_set {
    atomic_int refs;
    long generation;
    int n, n_keys;
    otp_policy_t *svc;   /* by name (strcmp) */
    otp_api_key_t *keys; /* by hash */
};

struct otp_services {
    char *db_url;
    otp_policy_t base;
    otp_api_key_t *extra;
    int n_extra, with_keys;
    PGconn *db; /* the loads' connection: the thread's, under load_lock */
    int listen_session;
    pthread_mutex_t load_lock, set_lock;
    otp_svc_set_t *current; /* under set_lock */
    long generation;
    pthread_t thread;
    int thread_started;
    atomic_int stopping;
};

static void set_free(otp_svc_set_t *set)
{
    if (!set)
        return;
    if (set->keys)
        sodium_memzero(set->keys, sizeof(*set->keys) * (size_t)set->n_keys);
    free(set->keys);
    for (int i = 0; set->svc && i < set->n; i++)
        otp_policy_clear(&set->svc[i]);
    free(set->svc);
    free(set);
}

void otp_services_release(const otp_svc_set_t *cset)
{
    otp_svc_set_t *set = (otp_svc_set_t *)cset;

    if (set && atomic_fetch_sub(&set->refs, 1) == 1)
        set_free(set);
}

const otp_svc_set_t *otp_services_acquire(otp_services_t *s)
{
    otp_svc_set_t *set;

    pthread_mutex_lock(&s->set_lock);
    set = s->current;
    atomic_fetch_add(&set->refs, 1);
    pthread_mutex_unlock(&s->set_lock);
    return set;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const otp_policy_t *)a)->service, ((const otp_policy_t *)b)->service);
}

static int by_hash(const void *a, const void *b)
{
    return memcmp(((const otp_api_key_t *)a)->hash, ((const otp_api_key_t *)b)->hash, 32);
}

const otp_policy_t *otp_svc_find(const otp_svc_set_t *set, const char *name)
{
    otp_policy_t key;

    if (!name || strlen(name) > OTP_SERVICE_MAX)
        return NULL;
    memcpy(key.service, name, strlen(name) + 1);
    return bsearch(&key, set->svc, (size_t)set->n, sizeof(*set->svc), by_name);
}

const otp_api_key_t *otp_svc_key(const otp_svc_set_t *set, const unsigned char hash[32])
{
    otp_api_key_t key;

    memcpy(key.hash, hash, 32);
    return bsearch(&key, set->keys, (size_t)set->n_keys, sizeof(*set->keys), by_hash);
}

int otp_svc_count(const otp_svc_set_t *set)
{
    return set->n;
}

int otp_svc_key_count(const otp_svc_set_t *set)
{
    return set->n_keys;
}

long otp_svc_generation(const otp_svc_set_t *set)
{
    return set->generation;
}

unsigned otp_scopes_parse(const char *list)
{
    unsigned scopes = 0;

    while (list && *list) {
        size_t k = strcspn(list, ",");
        if (k == 6 && strncmp(list, "create", 6) == 0)
            scopes |= OTP_SCOPE_CREATE;
        else if (k == 6 && strncmp(list, "verify", 6) == 0)
            scopes |= OTP_SCOPE_VERIFY;
        else if (k == 4 && strncmp(list, "read", 4) == 0)
            scopes |= OTP_SCOPE_READ;
        else
            return 0;
        list += k + (list[k] == ',');
    }
    return scopes;
}

void otp_scopes_format(unsigned scopes, char *out, size_t size)
{
    snprintf(out, size, "%s%s%s%s%s", scopes & OTP_SCOPE_CREATE ? "create" : "",
             (scopes & OTP_SCOPE_CREATE) && (scopes & (OTP_SCOPE_VERIFY | OTP_SCOPE_READ)) ? ","
                                                                                           : "",
             scopes & OTP_SCOPE_VERIFY ? "verify" : "",
             (scopes & OTP_SCOPE_VERIFY) && (scopes & OTP_SCOPE_READ) ? "," : "",
             scopes & OTP_SCOPE_READ ? "read" : "");
}

/* The services of r (name, policy, disabled) as policies over the base. */
static int load_services(otp_services_t *s, PGresult *r, otp_svc_set_t *set)
{
    set->n = PQntuples(r);
    set->svc = calloc((size_t)(set->n ? set->n : 1), sizeof(*set->svc));
    if (!set->svc)
        return -1;
    for (int i = 0; i < set->n; i++) {
        otp_policy_t *p = &set->svc[i];
        char err[256];

        *p = s->base;
        snprintf(p->service, sizeof(p->service), "%s", PQgetvalue(r, i, 0));
        p->disabled = PQgetvalue(r, i, 2)[0] == 't';
        if (otp_policy_apply_text(p, PQgetvalue(r, i, 1), err, sizeof(err)) != 0) {
            /* Only otp-admin writes policies, and it checks them the same way:
             * a row that no longer passes was edited by hand. */
            otp_error("service_policy_invalid", "service=%s error=\"%s\"", PQgetvalue(r, i, 0),
                      err);
            otp_policy_clear(p);
            *p = s->base;
            snprintf(p->service, sizeof(p->service), "%s", PQgetvalue(r, i, 0));
            p->disabled = 1;
        }
    }
    qsort(set->svc, (size_t)set->n, sizeof(*set->svc), by_name);
    return 0;
}

static int load_keys(otp_services_t *s, PGresult *r, otp_svc_set_t *set)
{
    int n = PQntuples(r);

    set->keys = calloc((size_t)(n + s->n_extra + 1), sizeof(*set->keys));
    if (!set->keys)
        return -1;
    for (int i = 0; i < n; i++) {
        otp_api_key_t *k = &set->keys[set->n_keys];
        size_t bin_len = 0;

        snprintf(k->id, sizeof(k->id), "%s", PQgetvalue(r, i, 0));
        snprintf(k->service, sizeof(k->service), "%s", PQgetvalue(r, i, 1));
        k->scopes = otp_scopes_parse(PQgetvalue(r, i, 3));
        k->expires_ms = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        if (sodium_hex2bin(k->hash, sizeof(k->hash), PQgetvalue(r, i, 2), 64, NULL, &bin_len,
                           NULL) != 0 ||
            bin_len != 32 || k->scopes == 0) {
            otp_error("api_key_invalid", "key_id=%s", k->id);
            continue;
        }
        set->n_keys++;
    }
    for (int i = 0; i < s->n_extra; i++)
        set->keys[set->n_keys++] = s->extra[i];
    qsort(set->keys, (size_t)set->n_keys, sizeof(*set->keys), by_hash);
    return 0;
}

/* One load on s->db (under load_lock): a new set replaces the current one. */
static int load(otp_services_t *s)
{
    PGresult *rs = NULL, *rk = NULL;
    otp_svc_set_t *set = NULL, *old;
    int rc = -1;

    rs = otp_db_query(s->db, "services_load", "SELECT name, policy::text, disabled FROM services",
                      0, NULL);
    if (rs && !s->with_keys)
        rk = otp_db_query(s->db, "api_keys_none", "SELECT '', '', '', '', 0 WHERE false", 0, NULL);
    else if (rs)
        rk = otp_db_query(s->db, "api_keys_load",
                          "SELECT id, service, key_hash, array_to_string(scopes, ','),"
                          "  coalesce((extract(epoch FROM expires_at) * 1000)::bigint, 0)"
                          "  FROM api_keys WHERE revoked_at IS NULL",
                          0, NULL);
    if (!rk)
        goto out;
    set = calloc(1, sizeof(*set));
    if (!set || load_services(s, rs, set) != 0 || load_keys(s, rk, set) != 0)
        goto out;
    atomic_init(&set->refs, 1);
    set->generation = ++s->generation;
    pthread_mutex_lock(&s->set_lock);
    old = s->current;
    s->current = set;
    pthread_mutex_unlock(&s->set_lock);
    otp_info("services_loaded", "services=%d keys=%d generation=%ld", set->n, set->n_keys,
             set->generation);
    set = NULL;
    otp_services_release(old);
    rc = 0;
out:
    set_free(set);
    PQclear(rs);
    PQclear(rk);
    return rc;
}

int otp_services_reload(otp_services_t *s)
{
    int rc = -1;

    pthread_mutex_lock(&s->load_lock);
    if (otp_db_ensure(s->db) == 0)
        rc = load(s);
    pthread_mutex_unlock(&s->load_lock);
    return rc;
}

/* The set before the first load: the deployment's service and the extra keys. */
static int fallback(otp_services_t *s)
{
    otp_svc_set_t *set = calloc(1, sizeof(*set));

    if (!set || !(set->svc = calloc(1, sizeof(*set->svc))) ||
        !(set->keys = calloc((size_t)s->n_extra + 1, sizeof(*set->keys)))) {
        set_free(set);
        return -1;
    }
    set->svc[0] = s->base;
    snprintf(set->svc[0].service, sizeof(set->svc[0].service), "%s", OTP_SERVICE_DEFAULT);
    set->n = 1;
    if (s->n_extra)
        memcpy(set->keys, s->extra, sizeof(*s->extra) * (size_t)s->n_extra);
    set->n_keys = s->n_extra;
    qsort(set->keys, (size_t)set->n_keys, sizeof(*set->keys), by_hash);
    atomic_init(&set->refs, 1);
    set->generation = ++s->generation;
    s->current = set;
    return 0;
}

/* Waits for NOTIFY otp_services and loads again; after a lost connection it
 * listens again and loads (a change made meanwhile sent its notification to
 * nobody). */
static void *refresh_main(void *arg)
{
    otp_services_t *s = arg;
    int listening = s->listen_session != 0;

    while (!atomic_load(&s->stopping)) {
        int got;

        if (!listening) {
            pthread_mutex_lock(&s->load_lock);
            listening = otp_db_ensure(s->db) == 0 &&
                        otp_db_listen(s->db, "otp_services", &s->listen_session) == 0 &&
                        load(s) == 0;
            pthread_mutex_unlock(&s->load_lock);
            if (!listening) {
                for (int i = 0; i < 10 && !atomic_load(&s->stopping); i++)
                    usleep(100 * 1000);
                continue;
            }
        }
        pthread_mutex_lock(&s->load_lock);
        got = otp_db_wait_notify(s->db, 0);
        pthread_mutex_unlock(&s->load_lock);
        if (got == 0) {
            /* Wait outside the lock, then look again under it. */
            struct pollfd pfd = {.fd = PQsocket(s->db), .events = POLLIN};
            poll(&pfd, 1, 200);
            continue;
        }
        if (got < 0) {
            otp_warn("services_listen_lost", "retry_ms=1000");
            s->listen_session = 0;
            listening = 0;
            continue;
        }
        pthread_mutex_lock(&s->load_lock);
        if (load(s) != 0)
            listening = 0;
        pthread_mutex_unlock(&s->load_lock);
    }
    return NULL;
}

otp_services_t *otp_services_start(const char *db_url, const otp_policy_t *base, int with_keys,
                                   const otp_api_key_t *extra, int n_extra, char *err, size_t errsz)
{
    otp_services_t *s = calloc(1, sizeof(*s));

    if (!s)
        goto fail;
    s->base = *base;
    s->with_keys = with_keys;
    s->db_url = strdup(db_url);
    if (n_extra > 0) {
        s->extra = calloc((size_t)n_extra, sizeof(*s->extra));
        if (!s->extra)
            goto fail;
        memcpy(s->extra, extra, sizeof(*extra) * (size_t)n_extra);
        s->n_extra = n_extra;
    }
    pthread_mutex_init(&s->load_lock, NULL);
    pthread_mutex_init(&s->set_lock, NULL);
    s->db = otp_db_connect(db_url, "otp-services", err, errsz);
    if (!s->db || otp_db_listen(s->db, "otp_services", &s->listen_session) != 0 || load(s) != 0) {
        /* PostgreSQL not there yet: start with the deployment's own service
         * and the extra keys; the thread loads the rest once it answers
         * (nothing is served without the database meanwhile anyway). */
        otp_warn("services_load_failed", "retry_ms=1000 error=\"%.*s\"",
                 (int)strcspn(s->db ? PQerrorMessage(s->db) : err, "\n"),
                 s->db ? PQerrorMessage(s->db) : err);
        if (!s->db)
            s->db = PQconnectStart(db_url);
        if (!s->db || fallback(s) != 0) {
            snprintf(err, errsz, "out of memory");
            goto fail;
        }
        s->listen_session = 0;
    }
    if (pthread_create(&s->thread, NULL, refresh_main, s) != 0) {
        snprintf(err, errsz, "could not start the services thread");
        goto fail;
    }
    s->thread_started = 1;
    return s;
fail:
    if (s && !s->db_url)
        snprintf(err, errsz, "out of memory");
    otp_services_stop(s);
    return NULL;
}

void otp_services_stop(otp_services_t *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    otp_services_release(s->current);
    if (s->db)
        PQfinish(s->db);
    if (s->extra)
        sodium_memzero(s->extra, sizeof(*s->extra) * (size_t)s->n_extra);
    free(s->extra);
    free(s->db_url);
    pthread_mutex_destroy(&s->load_lock);
    pthread_mutex_destroy(&s->set_lock);
    free(s);
}

const char *otp_services_topic_service(const char *base, const char *topic,
                                       char out[OTP_SERVICE_MAX + 1])
{
    size_t n = strlen(base);

    if (strcmp(topic, base) == 0) {
        memcpy(out, OTP_SERVICE_DEFAULT, sizeof(OTP_SERVICE_DEFAULT));
        return out;
    }
    if (strncmp(topic, base, n) != 0 || topic[n] != '.' || !otp_service_name_ok(topic + n + 1))
        return NULL;
    memcpy(out, topic + n + 1, strlen(topic + n + 1) + 1);
    return out;
}

int otp_services_topic(const char *base, const char *service, char *out, size_t size)
{
    int w = strcmp(service, OTP_SERVICE_DEFAULT) == 0 ? snprintf(out, size, "%s", base)
                                                      : snprintf(out, size, "%s.%s", base, service);
    return w < 0 || (size_t)w >= size ? -1 : 0;
}

/* Appends s to out at *n; -1 when it does not fit. */
static int put(char *out, size_t size, size_t *n, const char *s, size_t len)
{
    if (*n + len + 1 > size)
        return -1;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
    return 0;
}

/* "[...]": the name characters (first: no '-') less `except` (0 = none). */
static int put_class(char *out, size_t size, size_t *n, int first, char except)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
    char cls[48];
    size_t k = 0;

    cls[k++] = '[';
    for (const char *c = chars; *c; c++)
        if (*c != except && !(first && *c == '-'))
            cls[k++] = *c;
    cls[k++] = ']';
    return put(out, size, n, cls, k);
}

int otp_services_topic_pattern(const char *base, const char *dlq_topic, char *out, size_t size)
{
    const char *word = NULL;
    size_t n = 0;
    int rc = put(out, size, &n, "^", 1);

    /* The dead-letter topic's suffix, if it would look like a service name. */
    if (strncmp(dlq_topic, base, strlen(base)) == 0 && dlq_topic[strlen(base)] == '.') {
        const char *suffix = dlq_topic + strlen(base) + 1;
        if (strlen(suffix) <= OTP_SERVICE_MAX &&
            strspn(suffix, "abcdefghijklmnopqrstuvwxyz0123456"
                           "789-") == strlen(suffix) &&
            suffix[0] && suffix[0] != '-')
            word = suffix;
    }
    for (const char *b = base; *b && rc == 0; b++)
        rc = *b == '.' ? put(out, size, &n, "\\.", 2) : put(out, size, &n, b, 1);
    if (rc == 0)
        rc = put(out, size, &n, "\\.", 2);
    if (rc == 0 && !word) {
        rc = put_class(out, size, &n, 1, 0);
        rc = rc ? rc : put(out, size, &n, "[a-z0-9-]*$", 11);
        return rc;
    }
    /* Every name but `word`: one that leaves it at its i-th character, a
     * proper prefix of it, or one that goes on after it. */
    rc = rc ? rc : put(out, size, &n, "(", 1);
    for (size_t i = 0; word && word[i] && rc == 0; i++) {
        if (i > 0) {
            rc = put(out, size, &n, "|", 1);
            rc = rc ? rc : put(out, size, &n, word, i);
            rc = rc ? rc : put(out, size, &n, "|", 1);
        }
        rc = rc ? rc : put(out, size, &n, word, i);
        rc = rc ? rc : put_class(out, size, &n, i == 0, word[i]);
        rc = rc ? rc : put(out, size, &n, "[a-z0-9-]*", 10);
    }
    rc = rc ? rc : put(out, size, &n, "|", 1);
    rc = rc ? rc : put(out, size, &n, word, strlen(word));
    rc = rc ? rc : put(out, size, &n, "[a-z0-9-]+)$", 12);
    return rc;
}
