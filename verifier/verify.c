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

/* One statement per check; alone it is one round trip and one commit (a batch
 * of them shares both: run_batch). In order:
 *   k    the caller's candidate hashes, one per key id of the keyring;
 *   c    the challenge, locked, if a code may still be checked for it and it
 *        is the caller's service's ($5; NULL for a keypad webhook: any); `ok`
 *        compares the stored hash with the candidate of the row's key id by
 *        XOR over all 256 bits (no early exit); `cap` is its service's
 *        wrong-code cap (the deployment's, $4, unless the service sets one);
 *   capped the user is at the hourly cap already, by a plain read: a user
 *        flooding wrong codes over many challenges then takes no lock on the
 *        user's row and writes nothing, instead of queueing every check
 *        behind that row;
 *   f    otherwise a wrong code is counted against the cap, only while the
 *        user is under it (the upsert's row lock makes the test and the
 *        count one step, whatever other challenges the user is checking);
 *   upd  the attempt is counted, and the code consumed or the challenge
 *        locked, in the same row change; a right code is taken only while
 *        the user is under the cap (capped, the same count);
 *   ob   the events, in the same transaction.
 * No row back: unknown, expired, locked, used, superseded or over the cap,
 * all read-only and alike. The answer is sent after the commit, so the
 * attempt is always counted before anyone learns the outcome. */
/* The states a code can be checked in, named (a state added later is refused
 * until it is listed here). A code read by a call or a text ($7 NULL, POST
 * /v1/verify): from the first call placed until the challenge ends, the
 * waits between calls ('pending' after a retry is scheduled) included; never
 * blocked, rate_limited, expired, superseded, verified or locked. A keypad
 * code ($7 the call id of a keypad webhook): only the digits keyed into the
 * challenge's own current call, while the challenge waits on that call. The
 * app shows a keypad code, so POST /v1/verify never checks one: it gets the
 * answer of an unknown id. */
#define LIVE_CODE                                                                                  \
    "ch.status IN ('pending', 'calling', 'call_requested', 'ringing', 'answered', 'delivered',"    \
    " 'unheard', 'no_answer', 'busy', 'voicemail', 'call_failed', 'no_input', 'failed', "          \
    "'sms_sent')"
#define LIVE_KEYPAD_CALL                                                                           \
    "ch.call_id = $7::uuid AND ch.status IN ('call_requested', 'ringing', 'answered')"
#define KEYPAD "coalesce((ch.options->>'keypad')::boolean, false)"
#define LIVE                                                                                       \
    "CASE WHEN $7::uuid IS NULL THEN NOT " KEYPAD " AND " LIVE_CODE " ELSE " KEYPAD                \
    " AND " LIVE_KEYPAD_CALL " END"
/* The statement's own time: in a batch, now() would be the BEGIN's. */
#define NOW "statement_timestamp()"
#define RECENT(col) col " > " NOW " - interval '1 hour'"
/* The id of the API key that checked the code, on its events (audit). */
#define KEY_ID                                                                                     \
    "CASE WHEN $6::text IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('api_key_id', $6) END"

/* Laid out as SQL, not by clang-format. */
// clang-format off
static const char verify_sql[] =
    "WITH k AS ("
    "  SELECT * FROM unnest($2::int[], $3::text[]) AS k(key_id, h)"
    "), c AS ("
    "  SELECT ch.request_id, ch.service, ch.user_id,"
    "    coalesce(bit_count(('x' || encode(ch.code_hash, 'hex'))::bit(256)"
    "                       # ('x' || k.h)::bit(256)) = 0, false) AS ok,"
    "    CASE WHEN $5::text IS NOT NULL THEN $4::int"
    "         ELSE coalesce((SELECT (s.policy->>'max_failed_verify_per_hour')::int"
    "                          FROM services s WHERE s.name = ch.service), $4::int) END AS cap"
    "    FROM challenges ch LEFT JOIN k ON k.key_id = ch.key_id"
    "   WHERE ch.request_id = $1 AND ch.code_hash IS NOT NULL AND ch.expires_at > " NOW
    "     AND ($5::text IS NULL OR ch.service = $5::text)"
    "     AND ch.attempts < ch.max_attempts AND " LIVE " FOR UPDATE OF ch"
    "), capped AS ("
    "  SELECT count(*) >= (SELECT cap FROM c) AS yes"
    "    FROM c, verify_user_failures u, unnest(u.at) x"
    "   WHERE u.service = c.service AND u.user_id = c.user_id AND " RECENT("x")
    "), f AS ("
    "  INSERT INTO verify_user_failures AS u (service, user_id, at)"
    "  SELECT service, user_id, ARRAY[" NOW "] FROM c, capped WHERE NOT ok AND NOT capped.yes"
    "  ON CONFLICT (service, user_id) DO UPDATE"
    "     SET at = array(SELECT t FROM unnest(u.at) t WHERE " RECENT("t") " ORDER BY t) || " NOW
    "   WHERE (SELECT count(*) FROM unnest(u.at) t WHERE " RECENT("t") ") < (SELECT cap FROM c)"
    "  RETURNING 1"
    "), upd AS ("
    "  UPDATE challenges t SET attempts = t.attempts + 1, updated_at = " NOW ","
    "     status = CASE WHEN c.ok THEN 'verified'"
    "                   WHEN t.attempts + 1 >= t.max_attempts THEN 'locked' ELSE t.status END,"
    "     verified_at = CASE WHEN c.ok THEN " NOW " ELSE t.verified_at END,"
    "     next_attempt_at = CASE WHEN c.ok OR t.attempts + 1 >= t.max_attempts THEN NULL"
    "                            ELSE t.next_attempt_at END"
    "    FROM c, capped"
    "   WHERE t.request_id = c.request_id"
    "     AND CASE WHEN c.ok THEN NOT capped.yes ELSE EXISTS (SELECT 1 FROM f) END"
    "  RETURNING t.request_id, c.ok, t.attempts, t.max_attempts, t.phone_masked, t.service,"
    "    t.user_id, t.purpose"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'verified', jsonb_build_object('attempts', attempts) || " KEY_ID
    "    FROM upd WHERE ok"
    "  UNION ALL"
    "  SELECT request_id, 'verify_failed', jsonb_build_object('attempts', attempts,"
    "         'attempts_left', max_attempts - attempts) || " KEY_ID " FROM upd WHERE NOT ok"
    "  UNION ALL"
    "  SELECT request_id, 'locked', jsonb_build_object('attempts', attempts) || " KEY_ID
    "    FROM upd WHERE NOT ok AND attempts >= max_attempts"
    ")"
    "SELECT ok, attempts, max_attempts, phone_masked, service, user_id, purpose FROM upd";
// clang-format on

/* "{1,2}" and "{hex,hex}": the candidate hash of `code` under every key of
 * the keyring, so the row's own key id picks one. The same work on every
 * path, whether or not the challenge exists. */
static int candidates(const otp_keyring_t *keys, const char *request_id, const char *code,
                      char *ids, size_t ids_size, char *hashes, size_t hashes_size)
{
    size_t ni = 0, nh = 0;

    ids[ni++] = '{';
    hashes[nh++] = '{';
    for (int i = 0; i < keys->n; i++) {
        unsigned char h[OTP_HASH_BYTES];
        int w;

        if (otp_code_hash(keys, keys->keys[i].id, request_id, code, h) != 0)
            return -1;
        w = snprintf(ids + ni, ids_size - ni, "%s%d", i ? "," : "", keys->keys[i].id);
        if (w < 0 || (size_t)w >= ids_size - ni || nh + 2 * OTP_HASH_BYTES + 3 > hashes_size)
            return -1;
        ni += (size_t)w;
        if (i)
            hashes[nh++] = ',';
        sodium_bin2hex(hashes + nh, hashes_size - nh, h, sizeof(h));
        nh += 2 * OTP_HASH_BYTES;
        sodium_memzero(h, sizeof(h));
    }
    if (ni + 2 > ids_size)
        return -1;
    ids[ni++] = '}';
    ids[ni] = '\0';
    hashes[nh++] = '}';
    hashes[nh] = '\0';
    return 0;
}

/* The row of one check, read into its job. */
static verify_result_t read_answer(const PGresult *r, verify_check_t *j)
{
    int attempts, max_attempts;
    const char *key_id = j->key_id[0] ? j->key_id : "-";

    if (PQntuples(r) == 0)
        return VERIFY_REJECTED;
    attempts = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
    max_attempts = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    snprintf(j->service, sizeof(j->service), "%s", PQgetvalue(r, 0, 4));
    snprintf(j->user_id, sizeof(j->user_id), "%s", PQgetvalue(r, 0, 5));
    snprintf(j->purpose, sizeof(j->purpose), "%s", PQgetvalue(r, 0, 6));
    if (PQgetvalue(r, 0, 0)[0] == 't') {
        otp_info("verified", "request_id=%s service=%s key_id=%s phone=%s attempts=%d",
                 j->request_id, j->service, key_id, PQgetvalue(r, 0, 3), attempts);
        return VERIFY_OK;
    }
    j->attempts_left = max_attempts - attempts;
    otp_info("verify_failed", "request_id=%s service=%s key_id=%s phone=%s attempts_left=%d",
             j->request_id, j->service, key_id, PQgetvalue(r, 0, 3), j->attempts_left);
    return VERIFY_INCORRECT;
}

/* The statement's parameters for a check. */
static void params(const verify_check_t *j, const char *p[7])
{
    p[0] = j->request_id;
    p[1] = j->ids;
    p[2] = j->hashes;
    p[3] = j->cap;
    p[4] = j->only_service[0] ? j->only_service : NULL;
    p[5] = j->key_id[0] ? j->key_id : NULL;
    p[6] = j->call_id[0] ? j->call_id : NULL;
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

/* The check alone, in autocommit: one statement, one commit. It waits for a
 * row lock at most SINGLE_LOCK_TIMEOUT (the session's setting), then answers
 * VERIFY_ERROR having counted nothing: a row held that long must not stop
 * the checks queued behind it on this thread. */
static void run_one(PGconn *db, verify_check_t *j, verify_stats_t *stats)
{
    const char *p[7];
    PGresult *r;

    params(j, p);
    r = otp_db_query_prepared(db, "verify", verify_sql, 7, p);
    j->res = r ? read_answer(r, j) : VERIFY_ERROR;
    if (r)
        atomic_fetch_add(&stats->alone, 1);
    PQclear(r);
}

/* Request id order (the same lock order in every batch), then arrival. */
static int by_request_id(const void *a, const void *b)
{
    const verify_check_t *x = *(verify_check_t *const *)a, *y = *(verify_check_t *const *)b;
    int c = strcmp(x->request_id, y->request_id);

    return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The checks that queued while this connection's last commit was on its way,
 * as one transaction in one round trip: BEGIN, each check's statement, COMMIT
 * (group commit: n checks share one WAL flush and one wake-up). Each
 * statement sees the ones before it, as separate commits would, so two checks
 * of one challenge, or of one user's challenges, give the answers they would
 * give one after the other. The challenge rows are locked in request id order,
 * as every batch does; a wait longer than BATCH_LOCK_TIMEOUT (another batch
 * holding a user's failure row, a worker recording the call) ends the
 * transaction, and the checks then run one by one. When the connection fails
 * the checks keep VERIFY_ERROR: whether the commit happened is not known, so
 * nothing runs twice. */
static void run_batch(PGconn *db, verify_check_t **jobs, int n, verify_stats_t *stats)
{
    PGresult *res[VERIFY_BATCH_MAX + 3] = {0};
    int sent = 0, rc;

    qsort(jobs, (size_t)n, sizeof(*jobs), by_request_id);
    if (otp_db_prepare(db, "verify", verify_sql, 7) != 0 || otp_db_pipe_open(db) != 0)
        return;
    rc = otp_db_pipe_send(db, "BEGIN", 0, NULL, NULL, NULL);
    if (rc == 0) {
        sent++;
        rc = otp_db_pipe_send(db, "SET LOCAL lock_timeout = " BATCH_LOCK_TIMEOUT, 0, NULL, NULL,
                              NULL);
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *p[7];
        params(jobs[i], p);
        sent++;
        rc = otp_db_pipe_send_prepared(db, "verify", 7, p, NULL, NULL);
    }
    if (rc == 0) {
        sent++;
        rc = otp_db_pipe_send(db, "COMMIT", 0, NULL, NULL, NULL);
    }
    if (rc == 0)
        sent++;
    rc = otp_db_pipe_close(db, "verify_batch", res, sent) != 0 || rc != 0 || sent != n + 3;
    if (rc == 0) {
        for (int i = 0; i < n; i++)
            jobs[i]->res = read_answer(res[i + 2], jobs[i]);
    }
    for (int i = 0; i < sent; i++)
        PQclear(res[i]);
    if (rc == 0) {
        atomic_fetch_add(&stats->batch, 1);
        return;
    }
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
    if (candidates(keys, request_id, code, chk->ids, sizeof(chk->ids), chk->hashes,
                   sizeof(chk->hashes)) != 0) {
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
