/* SPDX-License-Identifier: Apache-2.0 */
/* The sender: claims due deliveries, POSTs them (libcurl multi, one thread,
 * up to OTP_HOOKS_MAX_IN_FLIGHT at once from a fixed pool of slots) and
 * records each outcome.
 *
 * Claiming moves a row's next_try_at one lease ahead (the POST's timeout and
 * a margin), so it is not claimed again while its POST is in flight, and comes
 * back by itself if this process dies. A row is claimed only when no earlier
 * seq of its request is still to deliver (the order rule), and at most
 * OTP_HOOKS_MAX_IN_FLIGHT_PER_SERVICE rows of one service are in flight here:
 * a receiver that answers in 2 s holds its own slots, not the others'. */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "otp_backoff.h"
#include "otp_crypto.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_time.h"
#include "otp_version.h"

#define LEASE_MARGIN_MS 30000
#define IDLE_MIN_MS 20
#define IDLE_MAX_MS 1000
#define SWEEP_EVERY_MS 60000
#define RELEASE_EVERY_MS 5000
#define PURGE_BATCH "1000"

typedef struct slot {
    CURL *easy;
    struct curl_slist *hdrs;
    int busy;
    char id[24];
    char service[OTP_SERVICE_MAX + 1];
    char request_id[40];
    long seq, attempt;
    char *body;
    int64_t started_us;
} slot_t;

typedef struct sender {
    hooks_t *h;
    PGconn *db;
    int listen_session;
    CURLM *multi;
    slot_t *slots;
    int n_slots, busy;
    /* The outcomes not recorded yet, as the record statement's arrays. */
    otp_pgarray_t ids, ok, status, error, delay;
    int pending;
} sender_t;

/* The lowest seq still to deliver of row's request: one probe of the
 * (request_id, seq) index per row, as a subquery run for each row. Written as
 * NOT EXISTS it became an anti join, and with the statistics of a table that
 * had just grown from nothing (a backlog), the planner chose to scan every
 * open row for each candidate: 150 ms to 3 s a claim, and a fast receiver
 * then got 27 deliveries a second. */
#define HEAD_SEQ(row)                                                                              \
    "(SELECT min(e.seq) FROM hook_deliveries e WHERE e.request_id = " row ".request_id"            \
    "    AND e.delivered_at IS NULL AND e.gave_up_at IS NULL)"

/* Rows of every service with a webhook and a secret: due, the head of their
 * request, up to the service's free slots, the oldest due first. */
static const char claim_sql[] =
    "WITH f AS (SELECT * FROM unnest($1::text[], $2::int[]) AS f(service, busy)),"
    " c AS ("
    "  SELECT x.id FROM services s"
    "    LEFT JOIN f ON f.service = s.name"
    "   CROSS JOIN LATERAL ("
    "     SELECT d.id, d.next_try_at FROM hook_deliveries d"
    "      WHERE d.service = s.name AND d.delivered_at IS NULL AND d.gave_up_at IS NULL"
    "        AND d.next_try_at <= now() AND d.seq = " HEAD_SEQ(
        "d") "      ORDER BY d.next_try_at"
             "      LIMIT greatest(0, $3::int - coalesce(f.busy, 0))"
             "        FOR UPDATE OF d SKIP LOCKED) x"
             "   WHERE s.webhook_url IS NOT NULL AND s.webhook_secret IS NOT NULL"
             "   ORDER BY x.next_try_at LIMIT $4::int)"
             " UPDATE hook_deliveries d"
             "    SET next_try_at = now() + $5::int * interval '1 millisecond', attempts = "
             "d.attempts + 1"
             "   FROM c, services s"
             "  WHERE d.id = c.id AND s.name = d.service"
             " RETURNING d.id, d.service, d.request_id, d.seq, d.attempts, d.body, s.webhook_url,"
             "           s.webhook_secret";

/* The outcomes of a round. A failure past the give-up time gives up; a row
 * already delivered or given up (by another process after a lease ran out,
 * or meanwhile replayed) keeps what it has. */
static const char record_sql[] =
    "WITH u AS ("
    "  UPDATE hook_deliveries d SET"
    "    delivered_at = CASE WHEN x.ok THEN now() END,"
    "    gave_up_at = CASE WHEN NOT x.ok AND d.created_at + $6::int * interval '1 second'"
    "                          <= now() + x.delay_ms * interval '1 millisecond' THEN now() END,"
    "    next_try_at = CASE WHEN x.ok THEN d.next_try_at"
    "                       ELSE now() + x.delay_ms * interval '1 millisecond' END,"
    "    last_status = x.status, last_error = x.error"
    "    FROM unnest($1::bigint[], $2::boolean[], $3::int[], $4::text[], $5::bigint[])"
    "         AS x(id, ok, status, error, delay_ms)"
    "   WHERE d.id = x.id AND d.delivered_at IS NULL AND d.gave_up_at IS NULL"
    "  RETURNING d.id, d.request_id, d.seq,"
    "            d.delivered_at IS NOT NULL OR d.gave_up_at IS NOT NULL AS done,"
    "            d.gave_up_at IS NOT NULL AS gave_up"
    "), next AS ("
    /* The request's next event, waiting at 'infinity', is due now. */
    "  UPDATE hook_deliveries n SET next_try_at = now()"
    "    FROM (SELECT (SELECT e.id FROM hook_deliveries e"
    "                   WHERE e.request_id = u.request_id AND e.seq > u.seq"
    "                     AND e.delivered_at IS NULL AND e.gave_up_at IS NULL"
    "                   ORDER BY e.seq LIMIT 1) AS id"
    "            FROM u WHERE u.done) w"
    "   WHERE n.id = w.id AND n.next_try_at = 'infinity')"
    "SELECT id, gave_up FROM u";

/* Rows left at 'infinity' with no earlier event still to deliver: the one
 * before them finished while they were being written (so its sender did not
 * see them), or came twice. Made due; a check every few seconds. */
static const char release_sql[] =
    "UPDATE hook_deliveries d SET next_try_at = now()"
    " WHERE d.next_try_at = 'infinity' AND d.delivered_at IS NULL AND d.gave_up_at IS NULL"
    "   AND d.seq = " HEAD_SEQ("d");

/* Events nobody can deliver any more (their service lost its webhook, or
 * nothing claimed them in time) are given up; old records are deleted. */
static const char give_up_sql[] =
    "UPDATE hook_deliveries SET gave_up_at = now(),"
    "       last_error = coalesce(last_error, 'not delivered in time')"
    " WHERE id IN (SELECT id FROM hook_deliveries"
    "               WHERE delivered_at IS NULL AND gave_up_at IS NULL"
    "                 AND created_at < now() - $1::int * interval '1 second'"
    "                 AND next_try_at <= now()"
    "               ORDER BY created_at LIMIT " PURGE_BATCH " FOR UPDATE SKIP LOCKED)";
static const char purge_sql[] =
    "DELETE FROM hook_deliveries WHERE id IN ("
    "  SELECT id FROM (SELECT id, created_at, delivered_at, gave_up_at FROM hook_deliveries"
    "                   ORDER BY id LIMIT " PURGE_BATCH ") o"
    "   WHERE o.created_at < now() - $1::int * interval '1 day'"
    "     AND (o.delivered_at IS NOT NULL OR o.gave_up_at IS NOT NULL))";

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

static void slot_clear(slot_t *s)
{
    curl_slist_free_all(s->hdrs);
    s->hdrs = NULL;
    free(s->body);
    s->body = NULL;
    s->busy = 0;
}

/* Starts the POST of one claimed row (r's row i). 0 started, -1 not. */
static int start(sender_t *sn, slot_t *s, PGresult *r, int i)
{
    hooks_t *h = sn->h;
    char sig[OTP_HOOK_SIGNATURE_MAX + 16];
    char hdr[OTP_HOOK_SIGNATURE_MAX + 32];
    size_t body_len = (size_t)PQgetlength(r, i, 5);

    snprintf(s->id, sizeof(s->id), "%s", PQgetvalue(r, i, 0));
    snprintf(s->service, sizeof(s->service), "%s", PQgetvalue(r, i, 1));
    snprintf(s->request_id, sizeof(s->request_id), "%s", PQgetvalue(r, i, 2));
    s->seq = strtol(PQgetvalue(r, i, 3), NULL, 10);
    s->attempt = strtol(PQgetvalue(r, i, 4), NULL, 10);
    s->body = malloc(body_len + 1);
    if (!s->body)
        return -1;
    memcpy(s->body, PQgetvalue(r, i, 5), body_len + 1);
    /* Signed at each attempt with the time of the attempt: a retry hours later
     * is not refused as a replay by the receiver's 5-minute rule. */
    if (otp_hook_signature(PQgetvalue(r, i, 7), (long long)(otp_now_ms() / 1000), s->body, body_len,
                           sig, sizeof(sig)) < 0)
        goto fail;
    snprintf(hdr, sizeof(hdr), "OTP-Signature: %s", sig);
    sodium_memzero(sig, sizeof(sig));
    s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    s->hdrs = s->hdrs ? curl_slist_append(s->hdrs, hdr) : NULL;
    s->hdrs = s->hdrs ? curl_slist_append(s->hdrs, "Expect:") : NULL;
    if (!s->hdrs)
        goto fail;
    curl_easy_reset(s->easy);
    curl_easy_setopt(s->easy, CURLOPT_URL, PQgetvalue(r, i, 6));
    curl_easy_setopt(s->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, h->cfg.timeout_ms);
    curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     h->cfg.timeout_ms < 5000 ? h->cfg.timeout_ms : 5000L);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)body_len);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "otp-hooks/" OTP_VERSION);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    /* A redirect is not followed (an answer other than 2xx is a failure). */
    curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
    s->started_us = otp_monotonic_us();
    if (curl_multi_add_handle(sn->multi, s->easy) != CURLM_OK)
        goto fail;
    s->busy = 1;
    sn->busy++;
    return 0;
fail:
    slot_clear(s);
    return -1;
}

static void add_outcome(sender_t *sn, const char *id, int ok, long status, const char *error,
                        int64_t delay_ms)
{
    char num[24];

    otp_pgarray_add(&sn->ids, id);
    otp_pgarray_add(&sn->ok, ok ? "t" : "f");
    snprintf(num, sizeof(num), "%ld", status);
    otp_pgarray_add(&sn->status, status ? num : NULL);
    otp_pgarray_add(&sn->error, error);
    snprintf(num, sizeof(num), "%lld", (long long)delay_ms);
    otp_pgarray_add(&sn->delay, num);
    sn->pending++;
}

/* A finished transfer: its outcome into the arrays, its slot free. */
static void finish(sender_t *sn, slot_t *s, CURLcode code)
{
    hooks_t *h = sn->h;
    long status = 0;
    curl_off_t retry_after_s = 0;
    char error[128] = "";
    const char *cause = NULL;
    int64_t delay_ms = 0;

    otp_metric_observe(OTP_M_HOOKS_DURATION, NULL,
                       (double)(otp_monotonic_us() - s->started_us) / 1e6);
    if (code == CURLE_OK)
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (code == CURLE_OK && status >= 200 && status < 300) {
        add_outcome(sn, s->id, 1, status, NULL, 0);
        otp_debug("hook_delivered", "service=%s request_id=%s seq=%ld attempt=%ld status=%ld",
                  s->service, s->request_id, s->seq, s->attempt, status);
    } else {
        if (code == CURLE_OPERATION_TIMEDOUT) {
            cause = "timeout";
            atomic_fetch_add(&h->m.f_timeout, 1);
        } else if (code != CURLE_OK) {
            cause = "transport";
            atomic_fetch_add(&h->m.f_transport, 1);
        } else if (status == 429) {
            cause = "429";
            atomic_fetch_add(&h->m.f_429, 1);
        } else if (status >= 500) {
            cause = "5xx";
            atomic_fetch_add(&h->m.f_5xx, 1);
        } else if (status >= 400) {
            cause = "4xx";
            atomic_fetch_add(&h->m.f_4xx, 1);
        } else {
            cause = "3xx";
            atomic_fetch_add(&h->m.f_3xx, 1);
        }
        if (code != CURLE_OK)
            snprintf(error, sizeof(error), "%s", curl_easy_strerror(code));
        else
            snprintf(error, sizeof(error), "HTTP %ld", status);
        if (code == CURLE_OK && (status == 429 || status == 503))
            curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after_s);
        delay_ms = otp_backoff_delay_ms((int)s->attempt, h->cfg.retry_base_ms, h->cfg.retry_cap_ms,
                                        retry_after_s > 0 ? (int64_t)retry_after_s * 1000 : 0,
                                        randombytes_random());
        add_outcome(sn, s->id, 0, status, error, delay_ms);
        otp_info("hook_failed",
                 "service=%s request_id=%s seq=%ld attempt=%ld cause=%s error=\"%s\" "
                 "retry_in_ms=%lld",
                 s->service, s->request_id, s->seq, s->attempt, cause, error, (long long)delay_ms);
    }
    curl_multi_remove_handle(sn->multi, s->easy);
    slot_clear(s);
    sn->busy--;
}

static void reset_outcomes(sender_t *sn)
{
    otp_pgarray_free(&sn->ids);
    otp_pgarray_free(&sn->ok);
    otp_pgarray_free(&sn->status);
    otp_pgarray_free(&sn->error);
    otp_pgarray_free(&sn->delay);
    memset(&sn->ids, 0, sizeof(sn->ids));
    memset(&sn->ok, 0, sizeof(sn->ok));
    memset(&sn->status, 0, sizeof(sn->status));
    memset(&sn->error, 0, sizeof(sn->error));
    memset(&sn->delay, 0, sizeof(sn->delay));
    sn->pending = 0;
}

/* Writes the outcomes of the finished POSTs. Kept for the next round when
 * the database fails (the leases keep the rows from being claimed again). */
static int record(sender_t *sn)
{
    hooks_t *h = sn->h;
    char give_up[24];
    const char *p[6];
    PGresult *r;
    long n, gave_up = 0;

    if (sn->pending == 0)
        return 0;
    snprintf(give_up, sizeof(give_up), "%ld", h->cfg.give_up_s);
    p[0] = otp_pgarray_str(&sn->ids);
    p[1] = otp_pgarray_str(&sn->ok);
    p[2] = otp_pgarray_str(&sn->status);
    p[3] = otp_pgarray_str(&sn->error);
    p[4] = otp_pgarray_str(&sn->delay);
    p[5] = give_up;
    if (!p[0] || !p[1] || !p[2] || !p[3] || !p[4])
        return -1;
    r = otp_db_query_prepared(sn->db, "hooks_record", record_sql, 6, p);
    if (!r) {
        atomic_fetch_add(&h->m.db_errors, 1);
        return -1;
    }
    n = PQntuples(r);
    for (long i = 0; i < n; i++)
        gave_up += PQgetvalue(r, (int)i, 1)[0] == 't';
    PQclear(r);
    /* Counted from the arrays: one outcome per POST, whether or not the row
     * still needed it. */
    {
        long ok = 0;
        const char *s = p[1];
        for (; *s; s++)
            ok += *s == 't';
        atomic_fetch_add(&h->m.delivered, ok);
        atomic_fetch_add(&h->m.retried, sn->pending - ok - gave_up);
        atomic_fetch_add(&h->m.gave_up, gave_up);
    }
    reset_outcomes(sn);
    return 0;
}

/* Claims up to the free slots and starts their POSTs. Returns how many. */
static int claim(sender_t *sn)
{
    hooks_t *h = sn->h;
    otp_pgarray_t names = {0}, counts = {0};
    char per[16], free_s[16], lease[24];
    const char *p[5];
    PGresult *r = NULL;
    int n = 0, k = 0;

    /* This process's POSTs in flight per service. */
    for (int i = 0; i < sn->n_slots; i++) {
        int count = 0, seen = 0;
        char num[16];
        if (!sn->slots[i].busy)
            continue;
        for (int j = 0; j < i && !seen; j++)
            seen = sn->slots[j].busy && strcmp(sn->slots[j].service, sn->slots[i].service) == 0;
        if (seen)
            continue;
        for (int j = i; j < sn->n_slots; j++)
            count += sn->slots[j].busy && strcmp(sn->slots[j].service, sn->slots[i].service) == 0;
        snprintf(num, sizeof(num), "%d", count);
        otp_pgarray_add(&names, sn->slots[i].service);
        otp_pgarray_add(&counts, num);
    }
    snprintf(per, sizeof(per), "%d", h->cfg.max_per_service);
    snprintf(free_s, sizeof(free_s), "%d", sn->n_slots - sn->busy);
    snprintf(lease, sizeof(lease), "%ld", h->cfg.timeout_ms + LEASE_MARGIN_MS);
    p[0] = otp_pgarray_str(&names);
    p[1] = otp_pgarray_str(&counts);
    p[2] = per;
    p[3] = free_s;
    p[4] = lease;
    if (p[0] && p[1])
        r = otp_db_query_prepared(sn->db, "hooks_claim", claim_sql, 5, p);
    otp_pgarray_free(&names);
    otp_pgarray_free(&counts);
    if (!r) {
        atomic_fetch_add(&h->m.db_errors, 1);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        while (k < sn->n_slots && sn->slots[k].busy)
            k++;
        if (k == sn->n_slots)
            break; /* cannot happen: the claim asked for the free slots only */
        if (start(sn, &sn->slots[k], r, i) == 0) {
            n++;
        } else {
            /* Not sent: due again after a short pause. */
            add_outcome(sn, PQgetvalue(r, i, 0), 0, 0, "could not start the request", 1000);
            otp_error("hook_start_failed", "service=%s request_id=%s", PQgetvalue(r, i, 1),
                      PQgetvalue(r, i, 2));
        }
    }
    PQclear(r);
    atomic_store(&h->m.in_flight, sn->busy);
    return n;
}

static void sweep(sender_t *sn)
{
    hooks_t *h = sn->h;
    char give_up[24], keep[24];
    const char *p1[1] = {give_up}, *p2[1] = {keep};
    PGresult *r;

    snprintf(give_up, sizeof(give_up), "%ld", h->cfg.give_up_s);
    snprintf(keep, sizeof(keep), "%ld", h->cfg.keep_days);
    r = otp_db_query(sn->db, "hooks_give_up", give_up_sql, 1, p1);
    if (r) {
        long n = strtol(PQcmdTuples(r), NULL, 10);
        if (n > 0) {
            atomic_fetch_add(&h->m.gave_up, n);
            otp_warn("hooks_gave_up", "deliveries=%ld reason=\"not delivered in time\"", n);
        }
        PQclear(r);
    } else {
        atomic_fetch_add(&h->m.db_errors, 1);
    }
    if (otp_db_exec(sn->db, "hooks_purge", purge_sql, 1, p2) != 0)
        atomic_fetch_add(&h->m.db_errors, 1);
}

/* Reads what finished. */
static void collect(sender_t *sn)
{
    CURLMsg *m;
    int left, still;

    curl_multi_perform(sn->multi, &still);
    while ((m = curl_multi_info_read(sn->multi, &left)) != NULL) {
        slot_t *s = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (s)
            finish(sn, s, m->data.result);
    }
    atomic_store(&sn->h->m.in_flight, sn->busy);
}

void *hooks_sender_thread(void *arg)
{
    hooks_t *h = arg;
    sender_t sn = {.h = h};
    int64_t claim_at = 0, sweep_at = 0, release_at = 0, idle_ms = IDLE_MIN_MS;

    sn.n_slots = h->cfg.max_in_flight;
    sn.slots = calloc((size_t)sn.n_slots, sizeof(*sn.slots));
    sn.multi = curl_multi_init();
    if (!sn.slots || !sn.multi) {
        otp_error("hooks_sender_failed", "error=\"out of memory\"");
        goto out;
    }
    for (int i = 0; i < sn.n_slots; i++)
        if (!(sn.slots[i].easy = curl_easy_init())) {
            otp_error("hooks_sender_failed", "error=\"curl_easy_init\"");
            goto out;
        }
    while (*h->running || sn.busy > 0 || sn.pending > 0) {
        int64_t now = otp_monotonic_ms();
        struct curl_waitfd wake = {.fd = -1, .events = CURL_WAIT_POLLIN};
        int wait_ms;

        atomic_store(&h->sender_alive_ms, now);
        collect(&sn);
        if (!otp_db_kept(&sn.db, h->cfg.db_url, "otp-hooks-sender") ||
            PQstatus(sn.db) != CONNECTION_OK ||
            otp_db_listen(sn.db, "otp_hooks", &sn.listen_session) != 0) {
            if (!*h->running && sn.busy == 0)
                break; /* stopping and the database is gone: the leases bring the rows back */
            curl_multi_poll(sn.multi, NULL, 0, 500, NULL);
            continue;
        }
        if (record(&sn) != 0) {
            if (!*h->running && sn.busy == 0)
                break;
            curl_multi_poll(sn.multi, NULL, 0, 200, NULL);
            continue;
        }
        if (otp_db_wait_notify(sn.db, 0) == 1)
            claim_at = 0;
        if (*h->running && now >= claim_at && sn.busy < sn.n_slots) {
            int want = sn.n_slots - sn.busy;
            int got = claim(&sn);
            if (got < 0) {
                claim_at = now + 1000;
            } else if (got > 0 && got == want) {
                idle_ms = IDLE_MIN_MS;
                claim_at = now;
            } else if (got > 0) {
                idle_ms = IDLE_MIN_MS;
                claim_at = now + IDLE_MIN_MS;
            } else {
                /* Nothing due: wait for new rows (NOTIFY), a retry's time, or
                 * a slot that frees up, polling less often while idle. */
                idle_ms = idle_ms * 2 > IDLE_MAX_MS ? IDLE_MAX_MS : idle_ms * 2;
                claim_at = now + idle_ms;
            }
        }
        if (*h->running && now >= release_at) {
            if (otp_db_exec(sn.db, "hooks_release", release_sql, 0, NULL) != 0)
                atomic_fetch_add(&h->m.db_errors, 1);
            release_at = now + RELEASE_EVERY_MS;
        }
        if (*h->running && now >= sweep_at) {
            sweep(&sn);
            sweep_at = now + SWEEP_EVERY_MS;
        }
        wait_ms = (int)(claim_at > now ? claim_at - now : 0);
        if (wait_ms > IDLE_MAX_MS || !*h->running)
            wait_ms = *h->running ? IDLE_MAX_MS : 100;
        wake.fd = PQsocket(sn.db);
        curl_multi_poll(sn.multi, wake.fd >= 0 ? &wake : NULL, wake.fd >= 0 ? 1 : 0, wait_ms, NULL);
        if (wake.fd >= 0 && (wake.revents & CURL_WAIT_POLLIN) && otp_db_wait_notify(sn.db, 0) == 1)
            claim_at = 0;
    }
out:
    for (int i = 0; sn.slots && i < sn.n_slots; i++) {
        if (sn.slots[i].busy)
            curl_multi_remove_handle(sn.multi, sn.slots[i].easy);
        slot_clear(&sn.slots[i]);
        curl_easy_cleanup(sn.slots[i].easy);
    }
    curl_multi_cleanup(sn.multi);
    free(sn.slots);
    reset_outcomes(&sn);
    PQfinish(sn.db);
    otp_info("hooks_sender_stopped", "delivered=%lld", (long long)atomic_load(&h->m.delivered));
    return NULL;
}
