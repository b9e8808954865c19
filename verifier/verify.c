/* SPDX-License-Identifier: Apache-2.0 */
#include "verify.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_db.h"
#include "otp_log.h"

/* The most checks one transaction carries; how long a check in a batch waits
 * for a row lock before the batch runs its checks one by one; how long a
 * check run alone waits before it answers "try again". */
#define VERIFY_BATCH_MAX 64
#define BATCH_LOCK_TIMEOUT "'100ms'"
#define SINGLE_LOCK_TIMEOUT "'2s'"

/* One statement checks a whole batch (arrays in, one row out per check, in
 * the batch's order): one executor start-up, one pass of the triggers and
 * constraints, one commit for all of them. In order:
 *   q    the checks: request id, the cap the caller's service sets (the
 *        deployment's unless the service sets one), the caller's service
 *        (NULL for a keypad webhook: any), the API key id (audit), and the
 *        keypad call id; n is the check's place in the batch;
 *   k    each check's candidate hashes, one per key id of the keyring;
 *   c0   the challenges, locked in request id order (the same lock order in
 *        every batch), if a code may still be checked for them and they are
 *        the caller's service's; `ok` compares the stored hash with the
 *        candidate of the row's key id by XOR over all 256 bits (no early
 *        exit);
 *   c    each user's checks in the batch, numbered (nth), with the cap of
 *        the first (ucap);
 *   capped the user is at the hourly cap already, by a plain read: a user
 *        flooding wrong codes over many challenges then takes no lock on the
 *        user's row and writes nothing, instead of queueing every check
 *        behind that row. Such checks are all made now (`now`: none of them
 *        writes, so none can change another's answer); otherwise only the
 *        user's first check is, and the others are deferred to the next
 *        statement of the transaction, which sees this one's writes: every
 *        check of a user sees the ones before it, as separate commits would
 *        (two checks of one challenge are of one user too);
 *   f    otherwise a wrong code is counted against the cap, only while the
 *        user is under it (the upsert's row lock makes the test and the
 *        count one step, whatever other challenges the user is checking);
 *        user rows are locked in (service, user_id) order;
 *   upd  the attempt is counted, and the code consumed or the challenge
 *        locked, in the same row change; a right code is taken only while
 *        the user is under the cap (capped, the same count);
 *   ob   the events, in the same transaction.
 * A check with no upd row and not deferred is unknown, expired, locked, used,
 * superseded or over the cap: all read-only and alike. The answers are sent
 * after the commit, so an attempt is always counted before anyone learns the
 * outcome. */
/* The states a code can be checked in, named (a state added later is refused
 * until it is listed here). A code read by a call or a text (no call id, POST
 * /v1/verify): from the first call placed until the challenge ends, the
 * waits between calls ('pending' after a retry is scheduled) included; never
 * blocked, rate_limited, expired, superseded, verified or locked. A keypad
 * code (the call id of a keypad webhook): only the digits keyed into the
 * challenge's own current call, while the challenge waits on that call. The
 * app shows a keypad code, so POST /v1/verify never checks one: it gets the
 * answer of an unknown id. */
#define LIVE_CODE                                                                                  \
    "ch.status IN ('pending', 'calling', 'call_requested', 'ringing', 'answered', 'delivered',"    \
    " 'unheard', 'no_answer', 'busy', 'voicemail', 'call_failed', 'no_input', 'failed', "          \
    "'sms_sent')"
#define LIVE_KEYPAD_CALL                                                                           \
    "ch.call_id = q.call_id AND ch.status IN ('call_requested', 'ringing', 'answered')"
#define KEYPAD "coalesce((ch.options->>'keypad')::boolean, false)"
#define LIVE                                                                                       \
    "CASE WHEN q.call_id IS NULL THEN NOT " KEYPAD " AND " LIVE_CODE " ELSE " KEYPAD               \
    " AND " LIVE_KEYPAD_CALL " END"
/* The statement's own time: in a transaction of several, now() would be the
 * BEGIN's. */
#define NOW "statement_timestamp()"
#define RECENT(col) col " > " NOW " - interval '1 hour'"
/* The id of the API key that checked the code, on its events (audit). */
#define KEY_ID                                                                                     \
    "CASE WHEN q.api_key_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('api_key_id', "       \
    "q.api_key_id) END"

/* Laid out as SQL, not by clang-format. */
// clang-format off
static const char verify_sql[] =
    "WITH q AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::uuid[])"
    "    WITH ORDINALITY AS q(request_id, cap, only_service, api_key_id, call_id, n)"
    "), k AS ("
    "  SELECT * FROM unnest($6::int[], $7::int[], $8::text[]) AS k(n, key_id, h)"
    "), c0 AS ("
    "  SELECT q.n, ch.request_id, ch.service, ch.user_id,"
    "    coalesce(bit_count(('x' || encode(ch.code_hash, 'hex'))::bit(256)"
    "                       # ('x' || k.h)::bit(256)) = 0, false) AS ok,"
    "    CASE WHEN q.only_service IS NOT NULL THEN q.cap"
    "         ELSE coalesce((SELECT (s.policy->>'max_failed_verify_per_hour')::int"
    "                          FROM services s WHERE s.name = ch.service), q.cap) END AS cap"
    "    FROM q JOIN challenges ch ON ch.request_id = q.request_id"
    "    LEFT JOIN k ON k.n = q.n AND k.key_id = ch.key_id"
    "   WHERE ch.code_hash IS NOT NULL AND ch.expires_at > " NOW
    "     AND (q.only_service IS NULL OR ch.service = q.only_service)"
    "     AND ch.attempts < ch.max_attempts AND " LIVE
    "   ORDER BY ch.request_id FOR UPDATE OF ch"
    "), c AS ("
    "  SELECT c0.*, row_number() OVER w AS nth, first_value(c0.cap) OVER w AS ucap"
    "    FROM c0 WINDOW w AS (PARTITION BY service, user_id ORDER BY n)"
    "), capped AS ("
    "  SELECT c.n, y.yes, y.yes OR c.nth = 1 AS now"
    "    FROM c, LATERAL (SELECT (SELECT count(*) FROM verify_user_failures u, unnest(u.at) x"
    "                              WHERE u.service = c.service AND u.user_id = c.user_id"
    "                                AND " RECENT("x") ") >= c.ucap AS yes) y"
    "), f AS ("
    "  INSERT INTO verify_user_failures AS u (service, user_id, at)"
    "  SELECT c.service, c.user_id, ARRAY[" NOW "] FROM c JOIN capped USING (n)"
    "   WHERE NOT c.ok AND NOT capped.yes AND capped.now ORDER BY c.service, c.user_id"
    "  ON CONFLICT (service, user_id) DO UPDATE"
    "     SET at = array(SELECT t FROM unnest(u.at) t WHERE " RECENT("t") " ORDER BY t) || " NOW
    "   WHERE (SELECT count(*) FROM unnest(u.at) t WHERE " RECENT("t") ")"
    "         < (SELECT c.ucap FROM c WHERE c.service = u.service AND c.user_id = u.user_id"
    "               AND c.nth = 1)"
    "  RETURNING u.service, u.user_id"
    "), upd AS ("
    "  UPDATE challenges t SET attempts = t.attempts + 1, updated_at = " NOW ","
    "     status = CASE WHEN c.ok THEN 'verified'"
    "                   WHEN t.attempts + 1 >= t.max_attempts THEN 'locked' ELSE t.status END,"
    "     verified_at = CASE WHEN c.ok THEN " NOW " ELSE t.verified_at END,"
    "     next_attempt_at = CASE WHEN c.ok OR t.attempts + 1 >= t.max_attempts THEN NULL"
    "                            ELSE t.next_attempt_at END"
    "    FROM c JOIN capped USING (n)"
    "   WHERE t.request_id = c.request_id AND capped.now"
    "     AND CASE WHEN c.ok THEN NOT capped.yes"
    "              ELSE EXISTS (SELECT 1 FROM f WHERE f.service = c.service"
    "                                             AND f.user_id = c.user_id) END"
    "  RETURNING c.n, t.request_id, c.ok, t.attempts, t.max_attempts, t.phone_masked,"
    "    t.service, t.user_id, t.purpose"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT u.request_id, 'verified', jsonb_build_object('attempts', u.attempts) || " KEY_ID
    "    FROM upd u JOIN q USING (n) WHERE u.ok"
    "  UNION ALL"
    "  SELECT u.request_id, 'verify_failed', jsonb_build_object('attempts', u.attempts,"
    "         'attempts_left', u.max_attempts - u.attempts) || " KEY_ID
    "    FROM upd u JOIN q USING (n) WHERE NOT u.ok"
    "  UNION ALL"
    "  SELECT u.request_id, 'locked', jsonb_build_object('attempts', u.attempts) || " KEY_ID
    "    FROM upd u JOIN q USING (n) WHERE NOT u.ok AND u.attempts >= u.max_attempts"
    ")"
    "SELECT q.n, coalesce(NOT capped.now, false), upd.ok, upd.attempts, upd.max_attempts,"
    "       upd.phone_masked, upd.service, upd.user_id, upd.purpose"
    "  FROM q LEFT JOIN capped ON capped.n = q.n LEFT JOIN upd ON upd.n = q.n ORDER BY q.n";
// clang-format on

/* "1,2" and "hex,hex": the candidate hash of `code` under every key of the
 * keyring, so the row's own key id picks one. The same work on every path,
 * whether or not the challenge exists. */
static int candidates(const otp_keyring_t *keys, const char *request_id, const char *code,
                      verify_check_t *chk)
{
    size_t ni = 0, nh = 0;

    for (int i = 0; i < keys->n; i++) {
        unsigned char h[OTP_HASH_BYTES];
        int w;

        if (otp_code_hash(keys, keys->keys[i].id, request_id, code, h) != 0)
            return -1;
        w = snprintf(chk->ids + ni, sizeof(chk->ids) - ni, "%s%d", i ? "," : "", keys->keys[i].id);
        if (w < 0 || (size_t)w >= sizeof(chk->ids) - ni ||
            nh + 2 * OTP_HASH_BYTES + 2 > sizeof(chk->hashes))
            return -1;
        ni += (size_t)w;
        if (i)
            chk->hashes[nh++] = ',';
        sodium_bin2hex(chk->hashes + nh, sizeof(chk->hashes) - nh, h, sizeof(h));
        nh += 2 * OTP_HASH_BYTES;
        sodium_memzero(h, sizeof(h));
    }
    chk->nkeys = keys->n;
    return 0;
}

/* Row i of the statement's answer, read into its check. */
static verify_result_t read_answer(const PGresult *r, int i, verify_check_t *j)
{
    int attempts, max_attempts;
    const char *key_id = j->key_id[0] ? j->key_id : "-";

    if (PQgetisnull(r, i, 2))
        return VERIFY_REJECTED;
    attempts = (int)strtol(PQgetvalue(r, i, 3), NULL, 10);
    max_attempts = (int)strtol(PQgetvalue(r, i, 4), NULL, 10);
    snprintf(j->service, sizeof(j->service), "%s", PQgetvalue(r, i, 6));
    snprintf(j->user_id, sizeof(j->user_id), "%s", PQgetvalue(r, i, 7));
    snprintf(j->purpose, sizeof(j->purpose), "%s", PQgetvalue(r, i, 8));
    if (PQgetvalue(r, i, 2)[0] == 't') {
        otp_info("verified", "request_id=%s service=%s key_id=%s phone=%s attempts=%d",
                 j->request_id, j->service, key_id, PQgetvalue(r, i, 5), attempts);
        return VERIFY_OK;
    }
    j->attempts_left = max_attempts - attempts;
    otp_info("verify_failed", "request_id=%s service=%s key_id=%s phone=%s attempts_left=%d",
             j->request_id, j->service, key_id, PQgetvalue(r, i, 5), j->attempts_left);
    return VERIFY_INCORRECT;
}

/* The statement's eight arrays for n checks. The candidate hashes are written
 * into one buffer sized for them, wiped by args_free. */
typedef struct verify_args {
    otp_pgarray_t rid, cap, svc, key, call;
    char *kn, *kid, *kh;
    size_t kh_size;
    const char *p[8];
} verify_args_t;

static void args_free(verify_args_t *a)
{
    otp_pgarray_free(&a->rid);
    otp_pgarray_free(&a->cap);
    otp_pgarray_free(&a->svc);
    otp_pgarray_free(&a->key);
    otp_pgarray_free(&a->call);
    if (a->kh)
        sodium_memzero(a->kh, a->kh_size);
    free(a->kn);
    free(a->kid);
    free(a->kh);
    memset(a, 0, sizeof(*a));
}

static int args_build(verify_args_t *a, verify_check_t *const *jobs, int n)
{
    size_t keys = 0, kn_size, on = 0, oi = 0, oh = 0;

    memset(a, 0, sizeof(*a));
    for (int i = 0; i < n; i++)
        keys += (size_t)jobs[i]->nkeys;
    kn_size = keys * 8 + 3; /* ",64" at most each */
    a->kn = malloc(kn_size);
    a->kid = malloc(n * sizeof(jobs[0]->ids) + 3);
    a->kh_size = n * sizeof(jobs[0]->hashes) + 3;
    a->kh = malloc(a->kh_size);
    if (!a->kn || !a->kid || !a->kh)
        return -1;
    a->kn[on++] = a->kid[oi++] = a->kh[oh++] = '{';
    for (int i = 0; i < n; i++) {
        const verify_check_t *j = jobs[i];
        size_t li = strlen(j->ids), lh = strlen(j->hashes);

        otp_pgarray_add(&a->rid, j->request_id);
        otp_pgarray_add(&a->cap, j->cap);
        otp_pgarray_add(&a->svc, j->only_service[0] ? j->only_service : NULL);
        otp_pgarray_add(&a->key, j->key_id[0] ? j->key_id : NULL);
        otp_pgarray_add(&a->call, j->call_id[0] ? j->call_id : NULL);
        for (int k = 0; k < j->nkeys; k++)
            on += (size_t)snprintf(a->kn + on, kn_size - on, "%s%d", on > 1 ? "," : "", i + 1);
        if (oi > 1)
            a->kid[oi++] = ',';
        memcpy(a->kid + oi, j->ids, li);
        oi += li;
        if (oh > 1)
            a->kh[oh++] = ',';
        memcpy(a->kh + oh, j->hashes, lh);
        oh += lh;
    }
    a->kn[on++] = a->kid[oi++] = a->kh[oh++] = '}';
    a->kn[on] = a->kid[oi] = a->kh[oh] = '\0';
    a->p[0] = otp_pgarray_str(&a->rid);
    a->p[1] = otp_pgarray_str(&a->cap);
    a->p[2] = otp_pgarray_str(&a->svc);
    a->p[3] = otp_pgarray_str(&a->key);
    a->p[4] = otp_pgarray_str(&a->call);
    a->p[5] = a->kn;
    a->p[6] = a->kid;
    a->p[7] = a->kh;
    for (int k = 0; k < 5; k++)
        if (!a->p[k])
            return -1;
    return 0;
}

/* The answers of one statement over jobs[0..n): each check's result, and the
 * deferred checks moved to the front of jobs, in order. Returns how many were
 * deferred, or -1 if the answer is not one row per check. */
static int read_answers(const PGresult *r, verify_check_t **jobs, int n)
{
    int deferred = 0;

    if (PQntuples(r) != n)
        return -1;
    for (int i = 0; i < n; i++) {
        verify_check_t *j = jobs[i];
        if (PQgetvalue(r, i, 1)[0] == 't')
            jobs[deferred++] = j;
        else
            j->res = read_answer(r, i, j);
    }
    return deferred;
}

struct verify_pool {
    const char *db_url;
    verify_stats_t *stats;
    int n_threads;
    pthread_t threads[VERIFY_MAX_CONNECTIONS];
    pthread_mutex_t lock;
    pthread_cond_t more;
    pthread_cond_t idle;
    verify_check_t *head, *tail; /* FIFO */
    int pending;                 /* started, done() not yet called */
    unsigned long seq;
    int closing, stopping;
};

/* The checks alone, one statement each in autocommit: one round trip and one
 * commit each. A check waits for a row lock at most SINGLE_LOCK_TIMEOUT (the
 * session's setting), then answers VERIFY_ERROR having counted nothing: a row
 * held that long must not stop the checks queued behind it on this thread. */
static void run_one(PGconn *db, verify_check_t *j, verify_stats_t *stats)
{
    verify_args_t a;
    PGresult *r = NULL;

    if (args_build(&a, &j, 1) == 0)
        r = otp_db_query_prepared(db, "verify", verify_sql, 8, a.p);
    args_free(&a);
    /* Alone, nothing is deferred. */
    if (r && read_answers(r, &j, 1) == 0)
        atomic_fetch_add(&stats->alone, 1);
    PQclear(r);
}

/* Arrival order: a user's checks are made in the order they came. */
static int by_seq(const void *a, const void *b)
{
    const verify_check_t *x = *(verify_check_t *const *)a, *y = *(verify_check_t *const *)b;

    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The checks that queued while this connection's last commit was on its way,
 * as one transaction (group commit: n checks share one WAL flush and one
 * wake-up): BEGIN and the statement over all of them in one round trip, then
 * a statement over the checks it deferred (a user's second check, and later
 * ones, each seeing the one before, as separate commits would), then COMMIT.
 * Every statement locks its challenges in request id order; a wait longer than
 * BATCH_LOCK_TIMEOUT (another batch holding a user's failure row, a worker
 * recording the call) ends the transaction, and the checks then run one by
 * one. When the connection fails the checks keep VERIFY_ERROR: whether the
 * commit happened is not known, so nothing runs twice. */
static void run_batch(PGconn *db, verify_check_t **jobs, int n, verify_stats_t *stats)
{
    verify_check_t *left[VERIFY_BATCH_MAX];
    PGresult *res[3] = {0};
    verify_args_t a;
    int sent = 0, rc, m = n;

    qsort(jobs, (size_t)n, sizeof(*jobs), by_seq);
    memcpy(left, jobs, (size_t)n * sizeof(*jobs));
    if (otp_db_prepare(db, "verify", verify_sql, 8) != 0 || args_build(&a, left, m) != 0 ||
        otp_db_pipe_open(db) != 0) {
        args_free(&a);
        return;
    }
    rc = otp_db_pipe_send(db, "BEGIN", 0, NULL, NULL, NULL);
    if (rc == 0) {
        sent++;
        rc = otp_db_pipe_send(db, "SET LOCAL lock_timeout = " BATCH_LOCK_TIMEOUT, 0, NULL, NULL,
                              NULL);
    }
    if (rc == 0) {
        sent++;
        rc = otp_db_pipe_send_prepared(db, "verify", 8, a.p, NULL, NULL);
    }
    if (rc == 0)
        sent++;
    args_free(&a);
    rc = otp_db_pipe_close(db, "verify_batch", res, sent) != 0 || rc != 0 || sent != 3;
    if (rc == 0)
        m = read_answers(res[2], left, m);
    for (int i = 0; i < sent; i++)
        PQclear(res[i]);
    rc = rc != 0 || m < 0;
    /* The deferred checks, a statement each round, until none is left. */
    while (rc == 0 && m > 0) {
        PGresult *r = NULL;
        atomic_fetch_add(&stats->deferred, m);
        if (args_build(&a, left, m) == 0)
            r = otp_db_query_prepared(db, "verify", verify_sql, 8, a.p);
        args_free(&a);
        m = r ? read_answers(r, left, m) : -1;
        PQclear(r);
        rc = m < 0;
    }
    if (rc == 0)
        rc = otp_db_commit(db) != 0;
    if (rc == 0) {
        atomic_fetch_add(&stats->batch, 1);
        return;
    }
    /* Nothing may be answered from a transaction that did not commit. */
    for (int i = 0; i < n; i++)
        jobs[i]->res = VERIFY_ERROR;
    if (PQstatus(db) != CONNECTION_OK)
        return;
    /* A statement failed, so the COMMIT did not run: nothing was counted. */
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        otp_db_rollback(db);
    otp_warn("verify_batch_split", "checks=%d", n);
    atomic_fetch_add(&stats->split, 1);
    for (int i = 0; i < n; i++)
        run_one(db, jobs[i], stats);
}

static void *db_thread(void *arg)
{
    verify_pool_t *p = arg;
    verify_check_t *jobs[VERIFY_BATCH_MAX];
    PGconn *db = NULL;
    int session = 0;

    for (;;) {
        int n = 0;

        pthread_mutex_lock(&p->lock);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->more, &p->lock);
        if (!p->head) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        while (p->head && n < VERIFY_BATCH_MAX) {
            jobs[n++] = p->head;
            p->head = p->head->next;
        }
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);

        /* Each res is VERIFY_ERROR (verify_start) until the check gets its answer. */
        if (otp_db_kept(&db, p->db_url, "otp-verifier") && PQstatus(db) == CONNECTION_OK) {
            /* A new session (the first, or after a reset) gets the single checks' lock
             * timeout. */
            if (PQbackendPID(db) != session &&
                otp_db_exec(db, "verify_session", "SET lock_timeout = " SINGLE_LOCK_TIMEOUT, 0,
                            NULL) == 0)
                session = PQbackendPID(db);
            if (n == 1)
                run_one(db, jobs[0], p->stats);
            else
                run_batch(db, jobs, n, p->stats);
        }
        /* done() may free the check: nothing touches it after. */
        for (int i = 0; i < n; i++) {
            sodium_memzero(jobs[i]->hashes, sizeof(jobs[i]->hashes));
            jobs[i]->done(jobs[i]->arg);
        }
        pthread_mutex_lock(&p->lock);
        p->pending -= n;
        if (p->pending == 0)
            pthread_cond_broadcast(&p->idle);
        pthread_mutex_unlock(&p->lock);
    }
    PQfinish(db);
    return NULL;
}

verify_pool_t *verify_pool_new(const char *db_url, int connections, verify_stats_t *stats,
                               char *errstr, size_t errstr_size)
{
    verify_pool_t *p = calloc(1, sizeof(*p));

    if (!p || connections < 1 || connections > VERIFY_MAX_CONNECTIONS) {
        snprintf(errstr, errstr_size, "verify pool: %s",
                 p ? "connections out of range" : "out of memory");
        free(p);
        return NULL;
    }
    p->db_url = db_url;
    p->stats = stats;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->more, NULL);
    pthread_cond_init(&p->idle, NULL);
    for (; p->n_threads < connections; p->n_threads++) {
        if (pthread_create(&p->threads[p->n_threads], NULL, db_thread, p) != 0) {
            snprintf(errstr, errstr_size, "verify pool: cannot start a database thread");
            verify_pool_destroy(p);
            return NULL;
        }
    }
    return p;
}

void verify_pool_close(verify_pool_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    while (p->pending > 0)
        pthread_cond_wait(&p->idle, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void verify_pool_destroy(verify_pool_t *p)
{
    if (!p)
        return;
    verify_pool_close(p);
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->more);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int verify_start(verify_pool_t *p, verify_check_t *chk, const otp_keyring_t *keys,
                 const char *request_id, const char *call_id, const char *code, const char *service,
                 const char *key_id, int max_failed_per_hour, void (*done)(void *arg), void *arg)
{
    memset(chk, 0, sizeof(*chk));
    chk->res = VERIFY_ERROR;
    snprintf(chk->request_id, sizeof(chk->request_id), "%s", request_id);
    snprintf(chk->only_service, sizeof(chk->only_service), "%s", service ? service : "");
    snprintf(chk->key_id, sizeof(chk->key_id), "%s", key_id ? key_id : "");
    snprintf(chk->call_id, sizeof(chk->call_id), "%s", call_id ? call_id : "");
    snprintf(chk->cap, sizeof(chk->cap), "%d", max_failed_per_hour);
    chk->done = done;
    chk->arg = arg;
    if (candidates(keys, request_id, code, chk) != 0) {
        sodium_memzero(chk->hashes, sizeof(chk->hashes));
        return -1;
    }
    pthread_mutex_lock(&p->lock);
    if (p->closing) {
        pthread_mutex_unlock(&p->lock);
        sodium_memzero(chk->hashes, sizeof(chk->hashes));
        return -1;
    }
    if (p->tail)
        p->tail->next = chk;
    else
        p->head = chk;
    p->tail = chk;
    chk->seq = p->seq++;
    p->pending++;
    pthread_cond_signal(&p->more);
    pthread_mutex_unlock(&p->lock);
    return 0;
}
