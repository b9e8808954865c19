#include <sodium.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_backoff.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_outbox.h"
#include "otp_time.h"
#include "otp_webhook.h"
#include "worker.h"

/* The longest an idle dispatcher sleeps before it looks again on its own. */
#define DISPATCH_IDLE_MS 10000

/* Claims due rows, as many as there are free slots and request tokens, and
 * pays for them from the shared VoIPBin budget, in one statement. Setting
 * next_attempt_at to the lease's end means a worker that dies holding the row
 * simply lets it come due again. A row still waiting on a call's final status
 * keeps that status (its webhooks still apply while it is looked up); its
 * token pays for the look-up. The budget row is written only when a row was
 * claimed; tokens accrue from its last write. */
static const char claim_sql[] =
    "WITH b AS ("
    "  SELECT least($5::float8, tokens + $4::float8 *"
    "         extract(epoch FROM clock_timestamp() - updated_at)) AS avail"
    "    FROM rate_budget WHERE name = 'voipbin' FOR UPDATE"
    "), d AS ("
    "  SELECT request_id, status AS prev_status FROM challenges"
    "   WHERE next_attempt_at <= now() ORDER BY next_attempt_at"
    "   LIMIT (SELECT least($2::int, greatest(floor(avail), 0)::int) FROM b)"
    "   FOR UPDATE SKIP LOCKED"
    "), c AS ("
    "  UPDATE challenges c SET lease_owner = $1, updated_at = now(),"
    "         status = CASE WHEN d.prev_status IN ('call_requested', 'ringing', 'answered')"
    "                       THEN c.status ELSE 'calling' END,"
    "         next_attempt_at = now() + make_interval(secs => $3::int)"
    "    FROM d WHERE c.request_id = d.request_id"
    "  RETURNING c.request_id, c.phone, c.phone_masked, c.locale, c.code_length,"
    "    (extract(epoch FROM c.expires_at) * 1000)::bigint AS expires_ms, c.call_attempts,"
    "    c.max_call_attempts, d.prev_status,"
    "    coalesce((extract(epoch FROM c.attempt_started_at) * 1000)::bigint, 0) AS started_ms,"
    "    coalesce((c.options->>'gate')::boolean, false) AS gate,"
    "    coalesce((c.options->>'amd')::boolean, false) AS amd,"
    "    coalesce((c.options->>'sms_fallback')::boolean, false) AS sms_fallback,"
    "    coalesce(c.options->>'channel' = 'sms', false) AS sms_channel,"
    "    coalesce((c.options->>'keypad')::boolean, false) AS keypad,"
    "    c.tries, c.country, coalesce(c.call_id::text, '') AS call_id"
    "), t AS ("
    "  UPDATE rate_budget r SET tokens = b.avail - (SELECT count(*) FROM c),"
    "         updated_at = clock_timestamp()"
    "    FROM b WHERE r.name = 'voipbin' AND EXISTS (SELECT 1 FROM c)"
    ")"
    "SELECT * FROM c";

/* When there may be work next: the earliest due row and when the budget
 * will have a token again (read-only). */
static const char next_work_sql[] =
    "SELECT (extract(epoch FROM min(next_attempt_at) - now()) * 1000)::bigint,"
    "  (SELECT least($2::float8, tokens + $1::float8 *"
    "          extract(epoch FROM clock_timestamp() - updated_at)) FROM rate_budget"
    "    WHERE name = 'voipbin')"
    "  FROM challenges WHERE next_attempt_at IS NOT NULL";

typedef struct claimed {
    char request_id[37];
    char phone[18];
    char phone_masked[24];
    char locale[36];
    int code_length;
    int64_t expires_ms;
    int call_attempts, max_call_attempts;
    int tries;
    char country[4];
    char prev_status[24];
    char call_id[37]; /* the call the row waits on (call_requested, ringing, answered) */
    int64_t attempt_started_ms;
    int gate, amd, sms_fallback, sms_channel, keypad;
} claimed_t;

/* A placed (or adopted) call waiting to be recorded (worker_t.records). */
typedef struct record {
    claimed_t row;
    char call_id[37];
    int attempt, adopted;
    int applied; /* its row changed: webhooks kept for it are applied after the commit */
} record_t;

typedef struct call_ctx {
    worker_t *w;
    claimed_t row;
    int attempt;
    int64_t started_ms;
    int sms;      /* the request was an SMS, not a call */
    int fallback; /* ...sent because every call failed */
} call_ctx_t;

static void send_sms(worker_t *w, const claimed_t *row, int fallback);
static void budget_charge(worker_t *w, int n);

/* The dispatch thread writes in batches: the first write opens a transaction,
 * and the loop commits once per claim batch and once per round of finished
 * calls (one WAL flush each, not one per row). Calls queued meanwhile are not
 * sent before that commit; if it fails they are dropped (rows come due again). */
static int tx_open(worker_t *w)
{
    if (PQtransactionStatus(w->ddb) == PQTRANS_IDLE)
        return otp_db_begin(w->ddb);
    return PQtransactionStatus(w->ddb) == PQTRANS_INTRANS ? 0 : -1;
}

static void flush_records(worker_t *w);

/* Writes the queued call records into the open batch and commits it, if any.
 * 0 ok (or nothing open), -1 rolled back (nothing of it is durable). */
static int tx_close(worker_t *w)
{
    PGTransactionStatusType st;

    flush_records(w);
    st = PQtransactionStatus(w->ddb);

    if (st == PQTRANS_IDLE)
        return 0;
    /* Events were written: the relay (of whichever worker leads it) hears of
     * them at this commit. One notification per batch, never per row. */
    if (st == PQTRANS_INTRANS &&
        (!w->events_in_tx || otp_db_exec(w->ddb, "notify", "NOTIFY otp_outbox", 0, NULL) == 0) &&
        otp_db_commit(w->ddb) == 0) {
        w->events_in_tx = 0;
        return 0;
    }
    w->events_in_tx = 0;
    w->n_committed = 0;
    otp_db_rollback(w->ddb);
    atomic_fetch_add(&w->m.db_errors, 1);
    return -1;
}

/* A state change of a row this worker holds, with its event, in the open
 * batch. `set` is the SET list; $1 = request_id, $2 = worker id, then extra
 * params. 1 changed, 0 the row was no longer ours, -1 error. */
static int change_held(worker_t *w, const char *request_id, const char *set, int nextra,
                       const char *const *extra, const char *event, json_t *attrs)
{
    char sql[1024];
    const char *p[8] = {request_id, w->cfg.worker_id};
    PGresult *r;
    int changed;

    for (int i = 0; i < nextra && i < 6; i++)
        p[2 + i] = extra[i];
    snprintf(sql, sizeof(sql),
             "UPDATE challenges SET %s, updated_at = now() WHERE request_id = $1"
             " AND status = 'calling' AND lease_owner = $2",
             set);
    if (tx_open(w) != 0) {
        json_decref(attrs);
        return -1;
    }
    r = otp_db_query(w->ddb, event ? event : "change_held", sql, 2 + nextra, p);
    if (!r) {
        json_decref(attrs);
        return -1;
    }
    changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (changed && event) {
        w->events_in_tx = 1;
        return otp_outbox_add(w->ddb, request_id, event, attrs) ? -1 : 1;
    }
    json_decref(attrs);
    return changed;
}

static void finish_failed(worker_t *w, const claimed_t *row, const char *cause, json_t *attrs)
{
    /* The calls did not get through: an SMS with a fresh code, if asked for. */
    if (row->sms_fallback && !row->sms_channel && strncmp(cause, "sms_", 4) != 0) {
        json_decref(attrs);
        send_sms(w, row, 1);
        return;
    }
    if (!attrs)
        attrs = json_object();
    json_object_set_new(attrs, "cause", json_string(cause));
    json_object_set_new(attrs, "call_attempts", json_integer(row->call_attempts));
    if (change_held(w, row->request_id,
                    "status = 'failed', next_attempt_at = NULL, lease_owner = NULL,"
                    " failed_at = now(), reason = $3",
                    1, &cause, "failed", attrs) == 1) {
        atomic_fetch_add(&w->m.calls_failed, 1);
        otp_info("request_failed", "request_id=%s phone=%s cause=%s", row->request_id,
                 row->phone_masked, cause);
        /* Lets an app offer "Didn't get the call?" (a resend by SMS). */
        if (!row->sms_channel && otp_outbox_add(w->ddb, row->request_id, "fallback_available",
                                                json_pack("{s:s}", "channel", "sms")) != 0)
            atomic_fetch_add(&w->m.db_errors, 1);
    }
}

static void finish_expired(worker_t *w, const claimed_t *row, const char *reason)
{
    if (change_held(w, row->request_id,
                    "status = 'expired', next_attempt_at = NULL, lease_owner = NULL", 0, NULL,
                    "expired", json_pack("{s:s}", "reason", reason)) == 1)
        otp_info("request_expired", "request_id=%s phone=%s reason=%s", row->request_id,
                 row->phone_masked, reason);
}

/* Schedules another call after `cause`, or ends the request if no attempt or
 * not enough of the code's life is left. `not_placed`: the failed attempt
 * placed no call, so it does not count. `keep_calling`: the outcome is
 * ambiguous; the row stays 'calling' and the next claim first looks for the
 * call VoIPBin may have created. */
static void schedule_retry(worker_t *w, const claimed_t *row, const char *cause,
                           int64_t retry_after_ms, int not_placed, int keep_calling)
{
    int placed = row->call_attempts - (not_placed ? 1 : 0);
    /* The exponent counts every request sent, so a run of 429s backs off too. */
    int64_t delay = otp_backoff_delay_ms(row->tries > 0 ? row->tries : 1, w->cfg.retry_base_ms,
                                         w->cfg.retry_cap_ms, retry_after_ms, randombytes_random());
    char delay_s[24], attempts_s[12], tries_s[12];
    const char *extra[3] = {delay_s, attempts_s, tries_s};
    json_t *attrs;

    if (keep_calling && delay < 1000)
        delay = 1000; /* give the call time to show up in GET /v1.0/calls */
    if (placed >= row->max_call_attempts && !keep_calling) {
        finish_failed(w, row, cause, NULL);
        return;
    }
    if (!otp_backoff_worth_it(otp_now_ms(), delay, row->expires_ms, w->cfg.min_remaining_ms)) {
        finish_failed(w, row, cause,
                      json_pack("{s:s}", "detail", "the code would expire before another call"));
        return;
    }
    snprintf(delay_s, sizeof(delay_s), "%lld", (long long)delay);
    snprintf(attempts_s, sizeof(attempts_s), "%d", placed);
    snprintf(tries_s, sizeof(tries_s), "%d", row->tries);
    attrs = json_pack("{s:i, s:I, s:s, s:b}", "attempt", placed + 1, "delay_ms", (json_int_t)delay,
                      "cause", cause, "ambiguous", keep_calling);
    if (change_held(
            w, row->request_id,
            keep_calling
                ? "next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0),"
                  " call_attempts = $4::int, tries = greatest(tries, $5::int), lease_owner = NULL"
                : "status = 'pending', next_attempt_at = now() + make_interval(secs => $3::bigint "
                  "/ 1000.0),"
                  " call_attempts = $4::int, tries = greatest(tries, $5::int), lease_owner = NULL,"
                  " attempt_started_at = NULL",
            3, extra, "retry_scheduled", attrs) == 1) {
        atomic_fetch_add(&w->m.calls_retried, 1);
        otp_info("retry_scheduled", "request_id=%s phone=%s cause=%s delay_ms=%lld attempt=%d",
                 row->request_id, row->phone_masked, cause, (long long)delay, placed + 1);
    }
}

/* Records a placed (or adopted) call, in one statement: the call row (the
 * call exists whatever happened to the challenge meanwhile), the challenge
 * status (due again OTP_CALL_STATUS_TIMEOUT_SECONDS later, or at expiry if
 * sooner: then, with no final call status yet, the call is looked up) and the
 * event. $1 call id, $2 request id, $3 attempt, $4 when to look (ms), $5
 * worker id, $6 the event's attributes. */
static const char record_sql[] =
    "WITH ins AS ("
    "  INSERT INTO calls (call_id, request_id, attempt) VALUES ($1, $2, $3)"
    "  ON CONFLICT (call_id) DO NOTHING"
    "), upd AS ("
    "  UPDATE challenges SET status = 'call_requested', call_id = $1::uuid, lease_owner = NULL,"
    "         attempt_started_at = NULL, next_attempt_at = to_timestamp($4::bigint / 1000.0),"
    "         updated_at = now()"
    "   WHERE request_id = $2 AND status = 'calling' AND lease_owner = $5"
    "  RETURNING request_id"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs) SELECT request_id, 'call_requested', $6::jsonb "
    "FROM upd"
    ")"
    "SELECT count(*) FROM upd";

/* Queues the record of a placed (or adopted) call; flush_records writes the
 * queue in one pipeline. */
static void record_call(worker_t *w, const claimed_t *row, const char *call_id, int attempt,
                        int adopted)
{
    record_t *r;

    if (w->n_records == w->cap_records) {
        int cap = w->cap_records ? w->cap_records * 2 : 64;
        record_t *nr = realloc(w->records, sizeof(*nr) * (size_t)cap);
        if (!nr) {
            /* Not recorded: the row stays 'calling' and its lease's end
             * finds the call again (lookup and adopt). */
            atomic_fetch_add(&w->m.db_errors, 1);
            return;
        }
        w->records = nr;
        w->cap_records = cap;
    }
    r = &w->records[w->n_records++];
    r->row = *row;
    snprintf(r->call_id, sizeof(r->call_id), "%s", call_id);
    r->attempt = attempt;
    r->adopted = adopted;
    r->applied = 0;
}

/* Writes the queued records into the open batch, one round trip for all. */
static void flush_records(worker_t *w)
{
    PGresult **res;
    int sent = 0, n = w->n_records, rc;

    if (n == 0)
        return;
    res = calloc((size_t)n, sizeof(*res));
    if (!res || tx_open(w) != 0 || otp_db_prepare(w->ddb, "record_call", record_sql, 6) != 0 ||
        otp_db_pipe_open(w->ddb) != 0) {
        free(res);
        w->n_records = 0;
        atomic_fetch_add(&w->m.db_errors, 1);
        return;
    }
    for (int i = 0; i < n; i++) {
        record_t *r = &w->records[i];
        char attempt_s[12], exp_s[24], *attrs;
        const char *p[6] = {r->call_id, r->row.request_id, attempt_s,
                            exp_s,      w->cfg.worker_id,  NULL};
        json_t *o = json_pack("{s:s, s:i, s:s, s:b}", "call_id", r->call_id, "attempt", r->attempt,
                              "locale", r->row.locale, "adopted", r->adopted);
        /* No final call status by then: the call is looked up. */
        int64_t look_ms = otp_now_ms() + (int64_t)w->cfg.call_status_timeout_s * 1000;

        snprintf(attempt_s, sizeof(attempt_s), "%d", r->attempt);
        snprintf(exp_s, sizeof(exp_s), "%lld",
                 (long long)(look_ms < r->row.expires_ms ? look_ms : r->row.expires_ms));
        attrs = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        p[5] = attrs;
        if (attrs && otp_db_pipe_send_prepared(w->ddb, "record_call", 6, p, NULL, NULL) == 0)
            sent++;
        free(attrs);
        if (sent != i + 1)
            break;
    }
    rc = otp_db_pipe_close(w->ddb, "record_call", res, sent);
    for (int i = 0; i < sent; i++) {
        record_t *r = &w->records[i];
        if (rc == 0 && res[i] && strcmp(PQgetvalue(res[i], 0, 0), "1") == 0) {
            w->events_in_tx = 1;
            r->applied = 1;
            atomic_fetch_add(r->adopted ? &w->m.calls_adopted : &w->m.calls_placed, 1);
            otp_info("call_requested", "request_id=%s phone=%s call_id=%s attempt=%d adopted=%d",
                     r->row.request_id, r->row.phone_masked, r->call_id, r->attempt, r->adopted);
        }
        PQclear(res[i]);
    }
    if (rc != 0 || sent != n)
        atomic_fetch_add(&w->m.db_errors, 1);
    free(res);
    /* The applied ones stay queued until the commit, for apply_recorded. */
    {
        int k = 0;
        for (int i = 0; i < sent; i++)
            if (w->records[i].applied)
                w->records[k++] = w->records[i];
        w->n_records = 0;
        w->n_committed = k;
    }
}

static void on_call_done(void *opaque, const vb_result_t *res)
{
    call_ctx_t *ctx = opaque;
    worker_t *w = ctx->w;
    claimed_t *row = &ctx->row;
    char cause[96];

    atomic_fetch_sub(&w->m.in_flight, 1);
    row->call_attempts = ctx->attempt;
    if (res->http_status)
        snprintf(cause, sizeof(cause), "http_%ld_%s", res->http_status, res->reason);
    else
        snprintf(cause, sizeof(cause), "%s", res->reason);
    if (ctx->sms) {
        if (res->cls == VB_OK) {
            const char *extra[1] = {res->call_id};
            if (change_held(w, row->request_id,
                            "status = 'sms_sent', next_attempt_at = NULL, lease_owner = NULL,"
                            " attempt_started_at = NULL, call_id = NULL",
                            0, NULL, "sms_sent",
                            json_pack("{s:s, s:b}", "message_id", extra[0], "fallback",
                                      ctx->fallback)) == 1)
                otp_info("sms_sent", "request_id=%s phone=%s message_id=%s fallback=%d",
                         row->request_id, row->phone_masked, res->call_id, ctx->fallback);
        } else if (res->cls == VB_RETRY_SAFE && !ctx->fallback) {
            schedule_retry(w, row, cause, res->retry_after_ms, 0, 0);
        } else {
            char sms_cause[112];
            snprintf(sms_cause, sizeof(sms_cause), "sms_%s", cause);
            finish_failed(w, row, sms_cause, NULL);
        }
        free(ctx);
        return;
    }
    switch (res->cls) {
    case VB_OK:
        record_call(w, row, res->call_id, ctx->attempt, 0);
        break;
    case VB_RETRY_SAFE:
        otp_warn("call_not_placed", "request_id=%s phone=%s cause=%s retry_after_ms=%lld",
                 row->request_id, row->phone_masked, cause, (long long)res->retry_after_ms);
        schedule_retry(w, row, cause, res->retry_after_ms, 1, 0);
        break;
    case VB_AMBIGUOUS:
        otp_warn("call_ambiguous", "request_id=%s phone=%s cause=%s", row->request_id,
                 row->phone_masked, cause);
        schedule_retry(w, row, cause, res->retry_after_ms, 0, 1);
        break;
    case VB_PERMANENT:
        otp_warn("call_refused", "request_id=%s phone=%s cause=%s message=\"%s\"", row->request_id,
                 row->phone_masked, cause, res->message);
        finish_failed(w, row, cause,
                      json_pack("{s:I}", "http_status", (json_int_t)res->http_status));
        break;
    }
    free(ctx);
}

/* The caller ID for a destination country: a local number where one is set. */
static const char *caller_id_for(const worker_t *w, const char *country)
{
    for (int i = 0; i < w->cfg.n_caller_ids; i++)
        if (strcmp(w->cfg.caller_ids[i].country, country) == 0)
            return w->cfg.caller_ids[i].number;
    return w->cfg.caller_id;
}

/* Generates a fresh code, stores its keyed hash, and starts the call. The
 * code lives only in this frame and in the request body being sent. */
static void place_call(worker_t *w, const claimed_t *row)
{
    char code[OTP_CODE_MAX + 1];
    unsigned char hash[OTP_HASH_BYTES];
    char hash_hex[OTP_HASH_BYTES * 2 + 1], key_id[8], attempt_s[12];
    const char *extra[3] = {hash_hex, key_id, attempt_s};
    otp_voice_opts_t vopts = {row->gate, row->amd, w->cfg.callback_url, row->request_id};
    int attempt = row->call_attempts + 1;
    call_ctx_t *ctx = NULL;
    json_t *actions = NULL;

    if (attempt > row->max_call_attempts) {
        finish_failed(w, row, "max_call_attempts", NULL);
        return;
    }
    if (!otp_backoff_worth_it(otp_now_ms(), 0, row->expires_ms, w->cfg.min_remaining_ms)) {
        finish_expired(w, row, row->call_attempts ? "no_time_left_to_retry" : "too_late_to_call");
        return;
    }
    if (row->sms_channel) {
        send_sms(w, row, 0);
        return;
    }
    if (row->keypad) {
        /* The code is the app's (its hash came with the request): the call
         * only collects the digits, so a retry keeps the same hash. */
        snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
        extra[0] = attempt_s;
        if (change_held(w, row->request_id,
                        "call_attempts = $3::int, tries = tries + 1, attempt_started_at = now()", 1,
                        extra, NULL, NULL) != 1)
            goto out;
        actions = otp_voice_keypad_actions(w->voice, row->locale, w->cfg.brand, row->code_length,
                                           w->cfg.callback_url, row->request_id);
        goto start;
    }
    if (otp_code_generate(code, sizeof(code), row->code_length) != 0 ||
        otp_code_hash(&w->keys, w->keys.current_id, row->request_id, code, hash) != 0)
        goto out;
    sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
    snprintf(key_id, sizeof(key_id), "%d", w->keys.current_id);
    snprintf(attempt_s, sizeof(attempt_s), "%d", attempt);
    /* The new hash replaces the old one: a retried call carries a fresh code. */
    if (change_held(w, row->request_id,
                    "code_hash = decode($3, 'hex'), key_id = $4::smallint, call_attempts = $5::int,"
                    " tries = tries + 1, attempt_started_at = now(), status = 'calling'",
                    3, extra, NULL, NULL) != 1)
        goto out;
    actions = otp_voice_actions(w->voice, row->locale, w->cfg.brand, code, &vopts);
start:
    ctx = calloc(1, sizeof(*ctx));
    if (!actions || !ctx)
        goto out;
    ctx->w = w;
    ctx->row = *row;
    ctx->attempt = attempt;
    ctx->row.tries = row->tries + 1;
    ctx->started_ms = otp_now_ms();
    if (vb_call_create(w->vb, caller_id_for(w, row->country), row->phone, actions, on_call_done,
                       ctx) != 0)
        goto out; /* the lease runs out and the row comes due again */
    ctx = NULL;   /* owned by the in-flight call now */
    atomic_fetch_add(&w->m.in_flight, 1);
out:
    free(ctx);
    json_decref(actions);
    sodium_memzero(code, sizeof(code));
}

/* Stores a fresh code's hash for the call about to be placed. $1 request
 * id, $2 worker id, $3 hash (hex), $4 key id, $5 attempt. */
static const char place_sql[] =
    "UPDATE challenges SET code_hash = decode($3, 'hex'), key_id = $4::smallint,"
    "       call_attempts = $5::int, tries = tries + 1, attempt_started_at = now(),"
    "       status = 'calling', updated_at = now()"
    " WHERE request_id = $1 AND status = 'calling' AND lease_owner = $2";

/* 1 when place_call would send this row a plain voice call now. */
static int plain_call(const worker_t *w, const claimed_t *row)
{
    return !row->sms_channel && !row->keypad && row->call_attempts + 1 <= row->max_call_attempts &&
           otp_backoff_worth_it(otp_now_ms(), 0, row->expires_ms, w->cfg.min_remaining_ms);
}

/* place_call for many rows (each passed plain_call): every new hash in one
 * round trip, then the calls. The codes live in this frame's buffer (wiped
 * before it returns) and in the request bodies being sent. */
static void place_batch(worker_t *w, const claimed_t *rows, int n)
{
    char(*codes)[OTP_CODE_MAX + 1] = calloc((size_t)n, sizeof(*codes));
    PGresult **res = calloc((size_t)n, sizeof(*res));
    char key_id[8];
    int sent = 0;

    if (!codes || !res || tx_open(w) != 0 ||
        otp_db_prepare(w->ddb, "place_call", place_sql, 5) != 0 || otp_db_pipe_open(w->ddb) != 0)
        goto out; /* the leases run out and the rows come due again */
    snprintf(key_id, sizeof(key_id), "%d", w->keys.current_id);
    for (int i = 0; i < n; i++) {
        unsigned char hash[OTP_HASH_BYTES];
        char hash_hex[OTP_HASH_BYTES * 2 + 1], attempt_s[12];
        const char *p[5] = {rows[i].request_id, w->cfg.worker_id, hash_hex, key_id, attempt_s};

        if (otp_code_generate(codes[i], sizeof(codes[i]), rows[i].code_length) != 0 ||
            otp_code_hash(&w->keys, w->keys.current_id, rows[i].request_id, codes[i], hash) != 0)
            break;
        sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
        snprintf(attempt_s, sizeof(attempt_s), "%d", rows[i].call_attempts + 1);
        if (otp_db_pipe_send_prepared(w->ddb, "place_call", 5, p, NULL, NULL) != 0)
            break;
        sent++;
    }
    if (otp_db_pipe_close(w->ddb, "place_call", res, sent) != 0) {
        atomic_fetch_add(&w->m.db_errors, 1);
        goto out; /* the batch is rolled back at its commit */
    }
    for (int i = 0; i < sent; i++) {
        const claimed_t *row = &rows[i];
        otp_voice_opts_t vopts = {row->gate, row->amd, w->cfg.callback_url, row->request_id};
        json_t *actions;
        call_ctx_t *ctx;

        if (strcmp(PQcmdTuples(res[i]), "1") != 0)
            continue; /* no longer ours */
        actions = otp_voice_actions(w->voice, row->locale, w->cfg.brand, codes[i], &vopts);
        ctx = calloc(1, sizeof(*ctx));
        if (actions && ctx) {
            ctx->w = w;
            ctx->row = *row;
            ctx->attempt = row->call_attempts + 1;
            ctx->row.tries = row->tries + 1;
            ctx->started_ms = otp_now_ms();
            if (vb_call_create(w->vb, caller_id_for(w, row->country), row->phone, actions,
                               on_call_done, ctx) == 0) {
                ctx = NULL; /* owned by the in-flight call now */
                atomic_fetch_add(&w->m.in_flight, 1);
            }
        }
        free(ctx);
        json_decref(actions);
    }
out:
    if (res)
        for (int i = 0; i < n; i++)
            PQclear(res[i]);
    free(res);
    if (codes) {
        sodium_memzero(codes, sizeof(*codes) * (size_t)n);
        free(codes);
    }
}

/* Sends a fresh code by SMS (channel "sms", or the fallback after the last
 * failed call). The new hash replaces the old one. */
static void send_sms(worker_t *w, const claimed_t *row, int fallback)
{
    char code[OTP_CODE_MAX + 1];
    unsigned char hash[OTP_HASH_BYTES];
    char hash_hex[OTP_HASH_BYTES * 2 + 1], key_id[8];
    const char *extra[2] = {hash_hex, key_id};
    call_ctx_t *ctx = NULL;
    char *text = NULL;

    if (otp_code_generate(code, sizeof(code), row->code_length) != 0 ||
        otp_code_hash(&w->keys, w->keys.current_id, row->request_id, code, hash) != 0)
        goto out;
    sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
    snprintf(key_id, sizeof(key_id), "%d", w->keys.current_id);
    if (change_held(w, row->request_id,
                    "code_hash = decode($3, 'hex'), key_id = $4::smallint, tries = tries + 1,"
                    " status = 'calling'",
                    2, extra, NULL, NULL) != 1)
        goto out;
    text = otp_voice_render_sms(w->voice, row->locale, w->cfg.brand, code);
    ctx = calloc(1, sizeof(*ctx));
    if (!text || !ctx)
        goto out;
    ctx->w = w;
    ctx->row = *row;
    ctx->row.tries = row->tries + 1;
    ctx->attempt = row->call_attempts;
    ctx->sms = 1;
    ctx->fallback = fallback;
    ctx->started_ms = otp_now_ms();
    if (vb_message_create(w->vb, caller_id_for(w, row->country), row->phone, text, on_call_done,
                          ctx) != 0)
        goto out;
    ctx = NULL;
    atomic_fetch_add(&w->m.in_flight, 1);
out:
    free(ctx);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    sodium_memzero(code, sizeof(code));
}

/* The row was 'calling' when claimed: its worker died or its request ended
 * ambiguously. Adopt the call VoIPBin made, if any, before placing another. */
static void recover_calling(worker_t *w, claimed_t *row)
{
    char call_id[37];
    int found, pages = 0;

    if (row->attempt_started_ms == 0 || row->call_attempts == 0) {
        place_call(w, row); /* claimed but never sent */
        return;
    }
    /* The row's token (taken by dispatch_run) pays for the first lookup page;
     * further pages are charged after the fact. */
    found = vb_find_call_since(w->vb, row->phone, row->attempt_started_ms - 2000, call_id, &pages);
    if (pages > 1)
        budget_charge(w, pages - 1);
    if (found == 1) {
        record_call(w, row, call_id, row->call_attempts, 1);
    } else if (found == 0) {
        /* Known now: nothing was placed, so that attempt does not count (a
         * 500 that placed no call must not use up an allowed call). A new
         * call needs a token of its own; without one the row waits as an
         * ordinary pending retry. */
        row->call_attempts--;
        otp_info("call_not_placed_after_all", "request_id=%s phone=%s attempt=%d", row->request_id,
                 row->phone_masked, row->call_attempts + 1);
        if (budget_take(w, 1) == 1)
            place_call(w, row);
        else
            schedule_retry(w, row, "rate_budget", 0, 0, 0);
    } else {
        /* Backs off like any try (the exponent grows), still 'calling'. */
        claimed_t again = *row;
        again.tries++;
        schedule_retry(w, &again, "call_lookup_failed", 0, 0, 1);
    }
}

/* Takes n tokens whether or not they are there (the bucket may go below 0):
 * requests already sent must be paid for. */
static void budget_charge(worker_t *w, int n)
{
    char n_s[12];
    const char *p[1] = {n_s};

    snprintf(n_s, sizeof(n_s), "%d", n);
    if (otp_db_exec(w->ddb, "budget_charge",
                    "UPDATE rate_budget SET tokens = tokens - $1::int WHERE name = 'voipbin'", 1,
                    p))
        atomic_fetch_add(&w->m.db_errors, 1);
}

int budget_take(worker_t *w, int want)
{
    char want_s[12];
    const char *p[3] = {w->cfg.rate_per_s, w->cfg.burst, want_s};
    PGresult *r;
    int got;

    snprintf(want_s, sizeof(want_s), "%d", want);
    r = otp_db_query(w->ddb, "budget_take",
                     "WITH b AS (SELECT least($2::float8, tokens + $1::float8 *"
                     "    extract(epoch FROM clock_timestamp() - updated_at)) AS avail"
                     "  FROM rate_budget WHERE name = 'voipbin' FOR UPDATE)"
                     "UPDATE rate_budget r SET updated_at = clock_timestamp(),"
                     "  tokens = b.avail - least($3::int, greatest(floor(b.avail), 0)::int)"
                     "  FROM b WHERE r.name = 'voipbin'"
                     " RETURNING least($3::int, greatest(floor(b.avail), 0)::int)",
                     3, p);
    if (!r)
        return -1;
    got = PQntuples(r) ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return got;
}

/* Applies webhooks kept for calls recorded in the committed batch. A webhook
 * handler that found the call unknown keeps its event under the call's lock
 * (otp_webhook.c): taking every call's lock first makes each such event
 * visible to the look-up. One round trip for the batch; only the calls with
 * kept events are applied one by one. */
static void apply_recorded(worker_t *w)
{
    otp_pgarray_t ids = {0};
    PGresult *res[3] = {NULL, NULL, NULL};
    const char *p[1];
    int rc = -1, n = w->n_committed;

    w->n_committed = 0;
    if (n == 0)
        return;
    for (int i = 0; i < n; i++)
        otp_pgarray_add(&ids, w->records[i].call_id);
    p[0] = otp_pgarray_str(&ids);
    if (!p[0] || otp_db_pipe_open(w->ddb) != 0)
        goto out;
    if (otp_db_pipe_send(w->ddb,
                         "SELECT count(pg_advisory_lock(727276, hashtext(x)))"
                         "  FROM (SELECT unnest($1::text[]) x ORDER BY 1) s",
                         1, p, NULL, NULL) == 0 &&
        otp_db_pipe_send(w->ddb,
                         "SELECT DISTINCT call_id::text FROM webhook_pending"
                         " WHERE call_id = ANY($1::uuid[])",
                         1, p, NULL, NULL) == 0 &&
        otp_db_pipe_send(w->ddb,
                         "SELECT count(pg_advisory_unlock(727276, hashtext(x)))"
                         "  FROM unnest($1::text[]) x",
                         1, p, NULL, NULL) == 0)
        rc = 0;
    if (otp_db_pipe_close(w->ddb, "apply_recorded", res, 3) != 0 || rc != 0) {
        rc = -1;
        goto out;
    }
    for (int i = 0; i < PQntuples(res[1]); i++)
        if (otp_call_apply_pending(w->ddb, PQgetvalue(res[1], i, 0)) != 0)
            rc = -1;
out:
    if (rc != 0)
        atomic_fetch_add(&w->m.db_errors, 1);
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    otp_pgarray_free(&ids);
}

/* 1 when the row was waiting on a placed call's final status. */
static int waits_on_call(const claimed_t *row)
{
    return strcmp(row->prev_status, "call_requested") == 0 ||
           strcmp(row->prev_status, "ringing") == 0 || strcmp(row->prev_status, "answered") == 0;
}

/* After a look-up: a row still waiting on its call is asked about again
 * later ($4 s, never past expiry), or ends 'expired' once the code's life is
 * over. Rows a webhook or the look-up has moved on are left alone. $1 request
 * id, $2 call id, $3 worker id, $4 seconds. */
static const char look_again_sql[] =
    "WITH exp AS ("
    "  UPDATE challenges SET status = 'expired', next_attempt_at = NULL, lease_owner = NULL,"
    "         updated_at = now()"
    "   WHERE request_id = $1 AND call_id = $2::uuid AND lease_owner = $3"
    "     AND status IN ('call_requested', 'ringing', 'answered') AND expires_at <= now()"
    "  RETURNING request_id"
    "), again AS ("
    "  UPDATE challenges SET lease_owner = NULL, updated_at = now(),"
    "         next_attempt_at = least(now() + make_interval(secs => $4::int), expires_at)"
    "   WHERE request_id = $1 AND call_id = $2::uuid AND lease_owner = $3"
    "     AND status IN ('call_requested', 'ringing', 'answered') AND expires_at > now()"
    "  RETURNING request_id"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'expired', jsonb_build_object('reason', 'no_final_call_status',"
    "         'call_id', $2::text) FROM exp"
    ")"
    "SELECT (SELECT count(*) FROM exp), (SELECT count(*) FROM again)";

/* No final call event came in OTP_CALL_STATUS_TIMEOUT_SECONDS (webhooks lost:
 * the verifier down past VoIPBin's retries, a wrong callback URL, the
 * network): asks VoIPBin for the call (GET /v1.0/calls/{id}, paid by the
 * row's claim token) and applies the answer exactly as its webhook would be
 * applied (otp_call_event_apply: a missed call is then retried by the next
 * claim, an answered one is delivered). Runs outside any transaction. */
static void look_up_call(worker_t *w, const claimed_t *row)
{
    json_t *call = NULL, *env = NULL;
    char *body = NULL, type[40], secs[12], expired_s[24] = "0";
    const char *status = "", *reason = "";
    const char *p[4] = {row->request_id, row->call_id, w->cfg.worker_id, secs};
    int found = vb_call_get(w->vb, row->call_id, &call);
    int again_s = w->cfg.call_status_timeout_s / 3;
    PGresult *r;

    if (found == 1) {
        otp_call_event_t ev;
        char err[128];

        status = json_string_value(json_object_get(call, "status"));
        reason = json_string_value(json_object_get(call, "hangup_reason"));
        snprintf(type, sizeof(type), "call_%s", status);
        env = json_pack("{s:s, s:O}", "type", type, "data", call);
        body = env ? json_dumps(env, JSON_COMPACT) : NULL;
        if (!body || otp_call_event_parse(body, strlen(body), &ev, err, sizeof(err)) != 0) {
            otp_warn("call_lookup_unreadable", "request_id=%s phone=%s call_id=%s", row->request_id,
                     row->phone_masked, row->call_id);
        } else if (otp_call_event_apply(w->ddb, &ev, body) < 0) {
            atomic_fetch_add(&w->m.db_errors, 1);
        }
    }
    otp_info("call_looked_up",
             "request_id=%s phone=%s call_id=%s found=%d status=%s hangup_reason=%s",
             row->request_id, row->phone_masked, row->call_id, found, status ? status : "",
             reason ? reason : "");
    snprintf(secs, sizeof(secs), "%d", again_s > 1 ? again_s : 1);
    r = otp_db_query(w->ddb, "look_again", look_again_sql, 4, p);
    if (!r)
        atomic_fetch_add(&w->m.db_errors, 1);
    else
        snprintf(expired_s, sizeof(expired_s), "%s", PQgetvalue(r, 0, 0));
    if (strcmp(expired_s, "1") == 0)
        otp_info("request_expired", "request_id=%s phone=%s reason=no_final_call_status",
                 row->request_id, row->phone_masked);
    PQclear(r);
    free(body);
    json_decref(env);
    json_decref(call);
}

/* Hands claimed look-ups back unasked: due now again, their tokens refunded. */
static void release_lookups(worker_t *w, const claimed_t *rows, int n)
{
    otp_pgarray_t ids = {0};
    const char *p[2];

    for (int i = 0; i < n; i++)
        otp_pgarray_add(&ids, rows[i].request_id);
    p[0] = otp_pgarray_str(&ids);
    p[1] = w->cfg.worker_id;
    if (!p[0] || otp_db_exec(w->ddb, "release_lookups",
                             "UPDATE challenges SET next_attempt_at = now(), lease_owner = NULL"
                             " WHERE request_id = ANY($1::uuid[]) AND lease_owner = $2"
                             "   AND status IN ('call_requested', 'ringing', 'answered')",
                             2, p) != 0)
        atomic_fetch_add(&w->m.db_errors, 1);
    else
        budget_charge(w, -n);
    otp_pgarray_free(&ids);
}

/* Reads the claimed row's columns by name. */
static void read_claimed(const PGresult *r, int i, claimed_t *row)
{
#define COL(name) PQgetvalue(r, i, PQfnumber(r, name))
#define FLAG(name) (COL(name)[0] == 't')
    memset(row, 0, sizeof(*row));
    snprintf(row->request_id, sizeof(row->request_id), "%s", COL("request_id"));
    snprintf(row->phone, sizeof(row->phone), "%s", COL("phone"));
    snprintf(row->phone_masked, sizeof(row->phone_masked), "%s", COL("phone_masked"));
    snprintf(row->locale, sizeof(row->locale), "%s", COL("locale"));
    snprintf(row->prev_status, sizeof(row->prev_status), "%s", COL("prev_status"));
    snprintf(row->country, sizeof(row->country), "%s", COL("country"));
    snprintf(row->call_id, sizeof(row->call_id), "%s", COL("call_id"));
    row->code_length = (int)strtol(COL("code_length"), NULL, 10);
    row->expires_ms = strtoll(COL("expires_ms"), NULL, 10);
    row->call_attempts = (int)strtol(COL("call_attempts"), NULL, 10);
    row->max_call_attempts = (int)strtol(COL("max_call_attempts"), NULL, 10);
    row->attempt_started_ms = strtoll(COL("started_ms"), NULL, 10);
    row->tries = (int)strtol(COL("tries"), NULL, 10);
    row->gate = FLAG("gate");
    row->amd = FLAG("amd");
    row->sms_fallback = FLAG("sms_fallback");
    row->sms_channel = FLAG("sms_channel");
    row->keypad = FLAG("keypad");
#undef FLAG
#undef COL
}

int dispatch_run(worker_t *w, int *asked)
{
    int free_slots = w->cfg.max_in_flight - vb_client_in_flight(w->vb);
    char limit[12], lease[12];
    const char *p[5] = {w->cfg.worker_id, limit, lease, w->cfg.rate_per_s, w->cfg.burst};
    PGresult *r;
    claimed_t *plain, *look;
    int n, n_plain = 0, n_look = 0;

    *asked = free_slots;
    if (free_slots <= 0)
        return 0;
    if (otp_db_ensure(w->ddb) != 0)
        return -1;
    snprintf(limit, sizeof(limit), "%d", free_slots);
    snprintf(lease, sizeof(lease), "%d", w->cfg.lease_s);
    if (tx_open(w) != 0)
        return -1;
    r = otp_db_query_prepared(w->ddb, "claim", claim_sql, 5, p);
    if (!r) {
        atomic_fetch_add(&w->m.db_errors, 1);
        otp_db_rollback(w->ddb);
        return -1;
    }
    n = PQntuples(r);
    plain = n ? calloc((size_t)n, sizeof(*plain)) : NULL;
    look = n ? calloc((size_t)n, sizeof(*look)) : NULL;
    for (int i = 0; i < n; i++) {
        claimed_t row;

        read_claimed(r, i, &row);
        if (strcmp(row.prev_status, "pending") == 0 && plain && plain_call(w, &row))
            plain[n_plain++] = row;
        else if (strcmp(row.prev_status, "pending") == 0)
            place_call(w, &row);
        else if (strcmp(row.prev_status, "calling") == 0)
            recover_calling(w, &row);
        else if (strcmp(row.prev_status, "no_answer") == 0 ||
                 strcmp(row.prev_status, "busy") == 0 ||
                 strcmp(row.prev_status, "voicemail") == 0 ||
                 strcmp(row.prev_status, "no_input") == 0 ||
                 strcmp(row.prev_status, "call_failed") == 0)
            schedule_retry(w, &row, row.prev_status, 0, 0, 0);
        else if (waits_on_call(&row) && look && row.call_id[0])
            look[n_look++] = row; /* asked after the commit: no lock held across a request */
        else
            finish_expired(w, &row, "no_final_call_status");
    }
    PQclear(r);
    if (n_plain)
        place_batch(w, plain, n_plain);
    free(plain);
    if (tx_close(w) != 0) {
        /* Nothing of the batch is durable: its calls must not go out. */
        int dropped = vb_client_drop_unsent(w->vb, free);
        atomic_fetch_sub(&w->m.in_flight, dropped);
        otp_warn("dispatch_batch_rolled_back", "claimed=%d calls_not_sent=%d", n, dropped);
        w->n_committed = 0;
        free(look);
        return -1;
    }
    apply_recorded(w); /* calls adopted in this batch */
    {
        /* Calls in flight wait while the look-ups run: bounded per round
         * (the lease margin counts on it). Rows left over go back to the
         * pool with their tokens. */
        int64_t until = otp_monotonic_ms() + DISPATCH_LOOKUP_ROUND_MS;
        int done = 0;
        while (done < n_look && (done == 0 || otp_monotonic_ms() < until))
            look_up_call(w, &look[done++]);
        if (done < n_look)
            release_lookups(w, look + done, n_look - done);
    }
    if (n_look && otp_db_exec(w->ddb, "notify", "NOTIFY otp_outbox", 0, NULL) != 0)
        atomic_fetch_add(&w->m.db_errors, 1);
    free(look);
    return n;
}

/* How long the dispatcher may sleep: until the earliest due row, or until
 * the budget has a token again when rows are due now. -1 on error. */
static int64_t next_work_ms(worker_t *w)
{
    const char *p[2] = {w->cfg.rate_per_s, w->cfg.burst};
    PGresult *r = otp_db_query(w->ddb, "next_work", next_work_sql, 2, p);
    double rate = strtod(w->cfg.rate_per_s, NULL), tokens;
    int64_t wait = DISPATCH_IDLE_MS;

    if (!r)
        return -1;
    tokens = strtod(PQgetvalue(r, 0, 1), NULL);
    if (!PQgetisnull(r, 0, 0)) {
        int64_t due_in = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        wait = due_in > 0 ? due_in : 0;
    }
    PQclear(r);
    if (wait == 0 && tokens < 1.0 && rate > 0)
        wait = (int64_t)((1.0 - tokens) / rate * 1000.0) + 1;
    return wait < DISPATCH_IDLE_MS ? wait : DISPATCH_IDLE_MS;
}

void *dispatch_thread(void *arg)
{
    worker_t *w = arg;
    int64_t drain_deadline, claim_at = 0;
    int session = 0;

    while (*w->running) {
        int64_t now = otp_monotonic_ms();
        int woken;

        if (otp_db_ensure(w->ddb) != 0 || otp_db_listen(w->ddb, "otp_due", &session) != 0) {
            usleep(200000);
            continue;
        }
        if (now >= claim_at) {
            int asked = 0, claimed = dispatch_run(w, &asked);
            int64_t wait = 0;
            if (claimed < 0)
                wait = 200;
            else if (claimed < asked && (wait = next_work_ms(w)) < 0)
                wait = 200;
            else if (claimed < asked && wait < 20)
                wait = 20; /* due rows held by other workers: look again soon, not at once */
            claim_at = otp_monotonic_ms() + wait;
        }
        if (vb_client_in_flight(w->vb) > 0) {
            int64_t t = claim_at - otp_monotonic_ms();
            vb_client_perform(w->vb, t < 0 ? 0 : t > 20 ? 20 : (int)t);
            /* The results of the calls that finished, in one commit. If it
             * fails they are lost here, and found again: their rows stay
             * 'calling' until the lease ends, then the claim looks the call up. */
            if (tx_close(w) == 0)
                apply_recorded(w);
            else
                w->n_committed = 0;
            woken = otp_db_wait_notify(w->ddb, 0);
        } else {
            int64_t t = claim_at - otp_monotonic_ms();
            /* Idle: sleep until a row is due or someone says one is. */
            woken = t > 0 ? otp_db_wait_notify(w->ddb, t > 500 ? 500 : (int)t) : 0;
        }
        if (woken == 1)
            claim_at = 0;
    }
    /* Drain: no new claims; the calls in flight finish and are recorded. */
    drain_deadline = otp_monotonic_ms() + 15000;
    while (vb_client_in_flight(w->vb) > 0 && otp_monotonic_ms() < drain_deadline) {
        vb_client_perform(w->vb, 100);
        if (tx_close(w) == 0)
            apply_recorded(w);
    }
    if (tx_close(w) != 0)
        otp_warn("dispatch_drain_rolled_back", "in_flight=%d", vb_client_in_flight(w->vb));
    free(w->records);
    w->records = NULL;
    return NULL;
}
