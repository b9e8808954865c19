/* SPDX-License-Identifier: Apache-2.0 */
/* The dispatch loop: claims due challenges, asks the policy (policy.h) what
 * each needs, carries it out through the challenge SQL (challenge.h) and the
 * VoIPBin client, and records what VoIPBin answered. Dispatch thread only. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget.h"
#include "hangup.h"
#include "dispatch.h"
#include "otp_config.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_time.h"
#include "otp_webhook.h"

/* The longest an idle dispatcher sleeps before it looks again on its own. */
#define DISPATCH_IDLE_MS 10000
/* With calls in flight, slots free up one finished call at a time. Claiming
 * for each, and committing each call's record on its own, would be a
 * transaction per call (and a turn of the loop with nothing to wait on while
 * every slot is busy). Instead the dispatcher waits on the calls for up to
 * this long: the next claim takes the slots freed meanwhile, one commit
 * records the calls finished meanwhile. */
#define DISPATCH_GATHER_MS 5
/* How often, at most, the dispatcher looks for fallback offers that are due
 * (it wakes for the earliest one on its own: challenge_next_due_ms). */
#define DISPATCH_FALLBACK_EVERY_MS 250
/* ...and for calls to hang up: at most one look per this many ms under load
 * (a busy dispatcher turns every few ms), well inside a call's round trip. */
#define DISPATCH_HANGUP_EVERY_MS 50

/* A request in flight to VoIPBin (the opaque of its callback). */
typedef struct call_ctx {
    dispatch_t *d;
    claimed_t row;
    int attempt;
    int sms;      /* the request was an SMS, not a call */
    int fallback; /* ...sent because every call failed */
} call_ctx_t;

static void send_sms(dispatch_t *d, const claimed_t *row, int fallback);

static const policy_cfg_t *policy(const dispatch_t *d)
{
    return &d->w->cfg.policy;
}

/* Gives up on calling: an SMS instead if the request asked for that
 * fallback, else the row fails with `cause`. attrs is consumed. */
static void give_up(dispatch_t *d, const claimed_t *row, const char *cause, json_t *attrs)
{
    if (policy_sms_fallback(row, cause)) {
        json_decref(attrs);
        send_sms(d, row, 1);
        return;
    }
    if (challenge_fail(&d->tx, row, cause, attrs) == HELD_CHANGED)
        atomic_fetch_add(&d->w->m.calls_failed, 1);
}

/* After a failed send: another try later, or give up (policy_after_failure). */
static void after_failure(dispatch_t *d, const claimed_t *row, const failure_t *f)
{
    after_t a = policy_after_failure(row, f, otp_now_ms(), policy(d), randombytes_random());

    if (a.kind == AFTER_RETRY) {
        if (challenge_retry(&d->tx, row, &a, f->cause, f->ambiguous) == HELD_CHANGED)
            atomic_fetch_add(&d->w->m.calls_retried, 1);
        return;
    }
    give_up(d, row, f->cause, a.detail ? json_pack("{s:s}", "detail", a.detail) : NULL);
}

static void service_of(const dispatch_t *d, const claimed_t *row, char brand[132], char from[18],
                       json_t **templates);

/* Records a call with how it counts as heard: a keypad call by its answer
 * (the callee keys the code in; its own webhook says what came), a call
 * that can report back by the marker, else by its length. */
static void record_call(dispatch_t *d, const claimed_t *row, const char *call_id, int attempt,
                        int adopted)
{
    const worker_settings_t *c = &d->w->cfg;
    otp_voice_heard_t times = {0, 0};
    const char *rule = "answer";

    if (!row->keypad) {
        char brand[132];
        json_t *words = NULL;

        /* The message as this call says it: the service's brand and words. */
        service_of(d, row, brand, NULL, &words);
        rule = c->callback_url && *c->callback_url ? "marker" : "timing";
        if (otp_voice_heard_times(d->w->voice, words, row->locale, brand, row->code_length,
                                  row->gate, &times) != 0)
            rule = "answer"; /* cannot happen for a row the call was made for */
        json_decref(words);
    }
    challenge_record(&d->tx, row, call_id, attempt, adopted, rule, &times);
}

static void on_call_done(void *opaque, const vb_result_t *res)
{
    call_ctx_t *ctx = opaque;
    dispatch_t *d = ctx->d;
    claimed_t *row = &ctx->row;
    char base[96], cause[112];
    failure_t f = {cause, res->retry_after_ms, 0, 0};

    atomic_fetch_sub(&d->w->m.in_flight, 1);
    row->call_attempts = ctx->attempt;
    if (res->http_status)
        snprintf(base, sizeof(base), "http_%ld_%s", res->http_status, res->reason);
    else
        snprintf(base, sizeof(base), "%s", res->reason);
    /* An SMS's own failure is named as such: it is never answered by an SMS. */
    snprintf(cause, sizeof(cause), "%s%s", ctx->sms ? "sms_" : "", base);
    switch (policy_result(res->cls, ctx->sms, ctx->fallback)) {
    case RESULT_RECORD:
        record_call(d, row, res->call_id, ctx->attempt, 0);
        break;
    case RESULT_SMS_SENT:
        (void)challenge_sms_sent(&d->tx, row, res->call_id, ctx->fallback);
        break;
    case RESULT_RETRY:
        if (!ctx->sms)
            otp_warn("call_not_placed", "request_id=%s phone=%s cause=%s retry_after_ms=%lld",
                     row->request_id, row->phone_masked, cause, (long long)res->retry_after_ms);
        f.not_placed = !ctx->sms; /* an SMS counts no call either way */
        f.cause = base;
        after_failure(d, row, &f);
        break;
    case RESULT_RETRY_LOOKUP:
        otp_warn("call_ambiguous", "request_id=%s phone=%s cause=%s", row->request_id,
                 row->phone_masked, cause);
        f.ambiguous = 1;
        after_failure(d, row, &f);
        break;
    case RESULT_FAIL:
        if (ctx->sms) {
            give_up(d, row, cause, NULL);
            break;
        }
        otp_warn("call_refused", "request_id=%s phone=%s cause=%s message=\"%s\"", row->request_id,
                 row->phone_masked, cause, res->message);
        give_up(d, row, cause, json_pack("{s:I}", "http_status", (json_int_t)res->http_status));
        break;
    }
    free(ctx);
}

/* The row's service as it is now (a change reaches the next call): its
 * spoken brand, its caller ID for the destination country (a local number
 * where one is set) and its own words (*templates: a reference for the
 * caller to drop, NULL for the catalog's). The deployment's if the service
 * is gone. */
static void service_of(const dispatch_t *d, const claimed_t *row, char brand[132], char from[18],
                       json_t **templates)
{
    const otp_svc_set_t *set = otp_services_acquire(d->w->services);
    const otp_policy_t *p = otp_svc_find(set, row->service);

    if (!p)
        p = &d->w->policy;
    if (brand)
        snprintf(brand, 132, "%s", p->brand);
    if (from)
        snprintf(from, 18, "%s", otp_policy_caller_id(p, row->country));
    if (templates)
        *templates = json_incref(p->templates);
    otp_services_release(set);
}

/* Starts a VoIPBin request for the row; the context is the callback's. 0
 * sent (in flight), -1 not (the lease runs out and the row comes due again).
 * actions (a call) or text (an SMS, wiped) is consumed. */
static int start(dispatch_t *d, const claimed_t *row, int attempt, int sms, int fallback,
                 json_t *actions, char *text)
{
    call_ctx_t *ctx = calloc(1, sizeof(*ctx));
    char from[18];
    int rc = -1;

    service_of(d, row, NULL, from, NULL);
    if (ctx && (sms ? text != NULL : actions != NULL)) {
        ctx->d = d;
        ctx->row = *row;
        ctx->row.tries = row->tries + 1;
        ctx->attempt = attempt;
        ctx->sms = sms;
        ctx->fallback = fallback;
        if (sms) {
            rc = vb_message_create(d->vb, from, row->phone, text, on_call_done, ctx);
        } else {
            rc = vb_call_create(d->vb, from, row->phone, actions, on_call_done, ctx);
            actions = NULL; /* stolen */
        }
    }
    if (rc == 0)
        atomic_fetch_add(&d->w->m.in_flight, 1);
    else
        free(ctx);
    json_decref(actions);
    otp_free_wiped(text); /* the client keeps its own copy of the body */
    return rc;
}

/* A fresh code and its keyed hash (hex). 0 ok. */
static int fresh_code(const dispatch_t *d, const claimed_t *row, char code[OTP_CODE_MAX + 1],
                      char hash_hex[OTP_HASH_BYTES * 2 + 1])
{
    unsigned char hash[OTP_HASH_BYTES];
    const otp_keyring_t *keys = &d->w->keys;

    if (otp_code_generate(code, OTP_CODE_MAX + 1, row->code_length) != 0 ||
        otp_code_hash(keys, keys->current_id, row->request_id, code, hash) != 0)
        return -1;
    sodium_bin2hex(hash_hex, OTP_HASH_BYTES * 2 + 1, hash, sizeof(hash));
    sodium_memzero(hash, sizeof(hash));
    return 0;
}

/* Sends the code the way policy_send says. A fresh code's plain form lives
 * in this frame and in the call's actions and request body; each is wiped
 * when freed (otp_json_wipe_freed: jansson's copies too). */
static void send_code(dispatch_t *d, const claimed_t *row)
{
    const worker_settings_t *c = &d->w->cfg;
    char code[OTP_CODE_MAX + 1], hash_hex[OTP_HASH_BYTES * 2 + 1];
    otp_voice_opts_t vopts = {row->gate, row->amd, c->callback_url, row->request_id};
    int attempt = row->call_attempts + 1;
    const char *why;
    char brand[132];
    json_t *words = NULL;

    switch (policy_send(row, otp_now_ms(), policy(d), &why)) {
    case SEND_FAIL:
        give_up(d, row, why, NULL);
        return;
    case SEND_EXPIRE:
        (void)challenge_expire(&d->tx, row, why);
        return;
    case SEND_SMS:
        send_sms(d, row, 0);
        return;
    case SEND_KEYPAD_CALL:
        /* The code is the app's (its hash came with the request): the call
         * only collects the digits, so a retry keeps the same hash. */
        service_of(d, row, brand, NULL, &words);
        if (challenge_start_keypad(&d->tx, row, attempt) == HELD_CHANGED)
            (void)start(d, row, attempt, 0, 0,
                        otp_voice_keypad_actions(d->w->voice, words, row->locale, brand,
                                                 row->code_length, c->callback_url,
                                                 row->request_id),
                        NULL);
        json_decref(words);
        return;
    case SEND_CALL:
        break;
    }
    service_of(d, row, brand, NULL, &words);
    /* The new hash replaces the old one: a retried call carries a fresh code. */
    if (fresh_code(d, row, code, hash_hex) == 0 &&
        challenge_store_code(&d->tx, row, hash_hex, d->w->keys.current_id, attempt) == HELD_CHANGED)
        (void)start(d, row, attempt, 0, 0,
                    otp_voice_actions(d->w->voice, words, row->locale, brand, code, &vopts), NULL);
    json_decref(words);
    sodium_memzero(code, sizeof(code));
}

/* send_code for many plain calls (policy_send said SEND_CALL for each): every
 * new hash in one round trip, then the calls. */
static void send_calls(dispatch_t *d, const claimed_t *rows, int n)
{
    const worker_settings_t *c = &d->w->cfg;
    char(*codes)[OTP_CODE_MAX + 1] = calloc((size_t)n, sizeof(*codes));
    char(*hashes)[OTP_HASH_BYTES * 2 + 1] = calloc((size_t)n, sizeof(*hashes));
    held_t *held = calloc((size_t)n, sizeof(*held));
    int made = 0;

    if (codes && hashes && held)
        while (made < n && fresh_code(d, &rows[made], codes[made], hashes[made]) == 0)
            made++;
    if (made > 0 &&
        challenge_store_codes(&d->tx, rows, made, hashes, d->w->keys.current_id, held) == 0)
        for (int i = 0; i < made; i++) {
            const claimed_t *row = &rows[i];
            otp_voice_opts_t vopts = {row->gate, row->amd, c->callback_url, row->request_id};
            char brand[132];
            json_t *words = NULL;

            service_of(d, row, brand, NULL, &words);
            if (held[i] == HELD_CHANGED)
                (void)start(
                    d, row, row->call_attempts + 1, 0, 0,
                    otp_voice_actions(d->w->voice, words, row->locale, brand, codes[i], &vopts),
                    NULL);
            json_decref(words);
        }
    /* Rows not reached stay 'calling' under the lease and come due again. */
    if (codes)
        sodium_memzero(codes, sizeof(*codes) * (size_t)n);
    free(codes);
    free(hashes);
    free(held);
}

/* Sends a fresh code by SMS (channel "sms", or the fallback after the last
 * failed call). The new hash replaces the old one. */
static void send_sms(dispatch_t *d, const claimed_t *row, int fallback)
{
    char code[OTP_CODE_MAX + 1], hash_hex[OTP_HASH_BYTES * 2 + 1], brand[132];
    json_t *words = NULL;

    service_of(d, row, brand, NULL, &words);
    if (fresh_code(d, row, code, hash_hex) == 0 &&
        challenge_store_code(&d->tx, row, hash_hex, d->w->keys.current_id, 0) == HELD_CHANGED)
        (void)start(d, row, row->call_attempts, 1, fallback, NULL,
                    otp_voice_render_sms(d->w->voice, words, row->locale, brand, code));
    json_decref(words);
    sodium_memzero(code, sizeof(code));
}

/* The row was 'calling' with a request sent: its worker died or the request
 * ended ambiguously. Adopt the call VoIPBin made, if any, before placing
 * another. */
static void recover_calling(dispatch_t *d, claimed_t *row)
{
    const worker_settings_t *c = &d->w->cfg;
    char call_id[37];
    int found, pages = 0;

    /* The row's token (taken by the claim) pays for the first page; further
     * pages are charged after the fact. */
    found = vb_find_call_since(d->vb, row->phone, row->attempt_started_ms - 2000, call_id, &pages);
    if (pages > 1 && budget_charge(d->tx.db, pages - 1) != 0)
        atomic_fetch_add(&d->w->m.db_errors, 1);
    if (found == 1) {
        record_call(d, row, call_id, row->call_attempts, 1);
    } else if (found == 0) {
        /* Known now: nothing was placed, so that attempt does not count (a
         * 500 that placed no call must not use up an allowed call). A new
         * call needs a token of its own; without one the row waits as an
         * ordinary pending retry. */
        row->call_attempts--;
        otp_info("call_not_placed_after_all", "request_id=%s phone=%s attempt=%d", row->request_id,
                 row->phone_masked, row->call_attempts + 1);
        if (budget_take(d->tx.db, c->rate_per_s, c->burst, 1) == 1) {
            send_code(d, row);
        } else {
            failure_t f = {"rate_budget", 0, 0, 0};
            after_failure(d, row, &f);
        }
    } else {
        /* Backs off like any try (the exponent grows), still 'calling'. */
        claimed_t again = *row;
        failure_t f = {"call_lookup_failed", 0, 0, 1};
        again.tries++;
        after_failure(d, &again, &f);
    }
}

/* No final call event came in OTP_CALL_STATUS_TIMEOUT_SECONDS (webhooks lost:
 * the verifier down past VoIPBin's retries, a wrong callback URL, the
 * network): asks VoIPBin for the call (GET /v1.0/calls/{id}, paid by the
 * row's claim token) and applies the answer exactly as its webhook would be
 * applied (otp_call_event_apply: a missed call is then retried by the next
 * claim, an answered one is delivered). Runs outside any batch. */
static void look_up_call(dispatch_t *d, const claimed_t *row)
{
    json_t *call = NULL, *env = NULL;
    char *body = NULL, type[40];
    const char *status = "", *reason = "";
    int found = vb_call_get(d->vb, row->call_id, &call);

    if (found == 1) {
        otp_call_event_t ev;
        char err[128];

        status = json_string_value(json_object_get(call, "status"));
        reason = json_string_value(json_object_get(call, "hangup_reason"));
        snprintf(type, sizeof(type), "call_%s", status ? status : "");
        env = json_pack("{s:s, s:O}", "type", type, "data", call);
        body = env ? json_dumps(env, JSON_COMPACT) : NULL;
        if (!body || otp_call_event_parse(body, strlen(body), &ev, err, sizeof(err)) != 0)
            otp_warn("call_lookup_unreadable", "request_id=%s phone=%s call_id=%s", row->request_id,
                     row->phone_masked, row->call_id);
        else if (otp_call_event_apply(d->tx.db, &ev, body) < 0)
            atomic_fetch_add(&d->w->m.db_errors, 1);
    }
    otp_info("call_looked_up",
             "request_id=%s phone=%s call_id=%s found=%d status=%s hangup_reason=%s",
             row->request_id, row->phone_masked, row->call_id, found, status ? status : "",
             reason ? reason : "");
    (void)challenge_look_again(&d->tx, row, d->w->cfg.call_status_timeout_s / 3);
    free(body);
    json_decref(env);
    json_decref(call);
}

/* Look-ups after the batch's commit (no lock held across a request), bounded
 * per round: the calls in flight wait meanwhile, and the lease margin counts
 * on it. Rows left over go back to the pool with their tokens. */
static void look_up_calls(dispatch_t *d, const claimed_t *rows, int n)
{
    int64_t until = otp_monotonic_ms() + DISPATCH_LOOKUP_ROUND_MS;
    int done = 0;

    while (done < n && (done == 0 || otp_monotonic_ms() < until))
        look_up_call(d, &rows[done++]);
    if (done < n && (challenge_release(&d->tx, rows + done, n - done) != 0 ||
                     budget_charge(d->tx.db, -(n - done)) != 0))
        atomic_fetch_add(&d->w->m.db_errors, 1);
    if (n && otp_db_exec(d->tx.db, "notify", "NOTIFY otp_outbox", 0, NULL) != 0)
        atomic_fetch_add(&d->w->m.db_errors, 1);
}

int dispatch_run(dispatch_t *d, int *asked)
{
    const worker_settings_t *c = &d->w->cfg;
    int free_slots = c->max_in_flight - vb_client_in_flight(d->vb);
    claimed_t *rows = NULL, *calls, *look;
    const otp_svc_set_t *set;
    int n, n_calls = 0, n_look = 0;

    *asked = free_slots;
    if (otp_db_ensure(d->tx.db) != 0)
        return -1;
    /* Calls of requests no longer in force end first: nothing reads a dead
     * code longer than needed. Then the time-based fallback offers. */
    if (otp_monotonic_ms() >= d->hangup_next_ms) {
        (void)hangup_run(d);
        d->hangup_next_ms = otp_monotonic_ms() + DISPATCH_HANGUP_EVERY_MS;
    }
    if (otp_monotonic_ms() >= d->fallback_next_ms) {
        if (challenge_offer_fallbacks(&d->tx, c->fallback_after_s) < 0)
            atomic_fetch_add(&d->w->m.db_errors, 1);
        d->fallback_next_ms = otp_monotonic_ms() + DISPATCH_FALLBACK_EVERY_MS;
    }
    if (free_slots <= 0)
        return 0;
    n = challenge_claim(&d->tx, free_slots, c->lease_s, c->rate_per_s, c->burst, &rows);
    if (n <= 0)
        return n;
    /* The service's fallback time, as of now, for the calls recorded. */
    set = otp_services_acquire(d->w->services);
    for (int i = 0; i < n; i++) {
        const otp_policy_t *p = otp_svc_find(set, rows[i].service);
        rows[i].fallback_after_s = p ? p->fallback_after_s : c->fallback_after_s;
    }
    otp_services_release(set);
    /* Plain calls and look-ups are gathered; the calls go out together. */
    calls = calloc((size_t)n, sizeof(*calls));
    look = calloc((size_t)n, sizeof(*look));
    for (int i = 0; i < n; i++) {
        claimed_t *row = &rows[i];
        const char *why;

        switch (policy_plan(row)) {
        case PLAN_SEND:
            if (calls && policy_send(row, otp_now_ms(), policy(d), &why) == SEND_CALL)
                calls[n_calls++] = *row;
            else
                send_code(d, row);
            break;
        case PLAN_RECOVER:
            recover_calling(d, row);
            break;
        case PLAN_RETRY: {
            failure_t f = {row->prev_status, 0, 0, 0};
            after_failure(d, row, &f);
            break;
        }
        case PLAN_LOOK_UP:
            if (look)
                look[n_look++] = *row;
            else
                (void)challenge_expire(&d->tx, row, "no_final_call_status");
            break;
        case PLAN_EXPIRE:
            (void)challenge_expire(&d->tx, row, "no_final_call_status");
            break;
        }
    }
    if (n_calls)
        send_calls(d, calls, n_calls);
    free(calls);
    if (challenge_commit(&d->tx) != 0) {
        /* Nothing of the batch is durable: its calls must not go out. */
        int dropped = vb_client_drop_unsent(d->vb, free);
        atomic_fetch_sub(&d->w->m.in_flight, dropped);
        otp_warn("dispatch_batch_rolled_back", "claimed=%d calls_not_sent=%d", n, dropped);
        free(look);
        free(rows);
        return -1;
    }
    challenge_apply_recorded(&d->tx); /* calls adopted in this batch */
    look_up_calls(d, look, n_look);
    free(look);
    free(rows);
    return n;
}

/* How long the dispatcher may sleep: until the earliest due row, or until
 * the budget has a token again when rows are due now. -1 on error. */
static int64_t next_work_ms(dispatch_t *d)
{
    int64_t due = challenge_next_due_ms(&d->tx), wait;

    if (due < 0)
        return -1;
    if (due > 0)
        return due < DISPATCH_IDLE_MS ? due : DISPATCH_IDLE_MS;
    wait = budget_wait_ms(d->tx.db, d->w->cfg.rate_per_s, d->w->cfg.burst);
    return wait < DISPATCH_IDLE_MS ? wait : DISPATCH_IDLE_MS;
}

/* The results of the calls that finished, in one commit. If it fails they are
 * lost here and found again: their rows stay 'calling' until the lease ends,
 * then the claim looks the call up. */
static void commit_results(dispatch_t *d)
{
    if (challenge_commit(&d->tx) == 0)
        challenge_apply_recorded(&d->tx);
    else
        challenge_forget(&d->tx);
}

dispatch_t *dispatch_new(worker_t *w, char *errstr, size_t errstr_size)
{
    const worker_settings_t *c = &w->cfg;
    dispatch_t *d = calloc(1, sizeof(*d));

    if (!d) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    d->w = w;
    d->tx.worker_id = c->worker_id;
    d->tx.m = &w->m;
    d->tx.call_status_timeout_s = c->call_status_timeout_s;
    d->tx.fallback_after_s = c->fallback_after_s;
    d->tx.db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-worker-dispatch", errstr,
                              errstr_size);
    if (!d->tx.db) {
        free(d);
        return NULL;
    }
    d->vb = vb_client_new(otp_config_str("OTP_VOIPBIN_BASE_URL"),
                          otp_config_str("OTP_VOIPBIN_ACCESS_KEY"), c->max_in_flight,
                          c->call_timeout_ms);
    if (!d->vb) {
        snprintf(errstr, errstr_size, "OTP_VOIPBIN_BASE_URL: cannot set up the HTTP client");
        dispatch_free(d);
        return NULL;
    }
    atomic_store(&w->m.dispatch_db_ok, 1);
    return d;
}

void dispatch_free(dispatch_t *d)
{
    if (!d)
        return;
    vb_client_destroy(d->vb);
    PQfinish(d->tx.db);
    challenge_tx_free(&d->tx);
    free(d);
}

/* Fewer than an eighth of the slots free while calls are in flight: not yet
 * worth a claim of its own; the next one, DISPATCH_GATHER_MS later, takes
 * whatever is free by then. */
static int few_free(const dispatch_t *d)
{
    int max = d->w->cfg.max_in_flight, busy = vb_client_in_flight(d->vb);

    return busy > 0 && (max - busy) * 8 < max;
}

void *dispatch_thread(void *arg)
{
    dispatch_t *d = arg;
    worker_t *w = d->w;
    int64_t drain_deadline, claim_at = 0, results_at = 0;
    int session = 0, gathered = 0;

    while (*w->running) {
        int64_t now = otp_monotonic_ms();
        int woken;

        atomic_store(&w->m.dispatch_db_ok, PQstatus(d->tx.db) == CONNECTION_OK);
        if (otp_db_ensure(d->tx.db) != 0 || otp_db_listen(d->tx.db, "otp_due", &session) != 0) {
            usleep(200000);
            continue;
        }
        if (now >= claim_at) {
            int gather = !gathered && few_free(d);
            int asked = 0, claimed = gather ? 0 : dispatch_run(d, &asked);
            int64_t wait = 0;
            gathered = gather; /* one wait at most, then the slots there are */
            if (claimed < 0)
                wait = 200;
            else if (asked <= 0)
                wait = DISPATCH_GATHER_MS; /* (nearly) every slot busy */
            else if (claimed < asked && (wait = next_work_ms(d)) < 0)
                wait = 200;
            else if (claimed < asked && wait < 20)
                wait = 20; /* due rows held by other workers: look again soon, not at once */
            claim_at = otp_monotonic_ms() + wait;
        }
        if (vb_client_in_flight(d->vb) > 0) {
            int64_t t = claim_at - otp_monotonic_ms();
            /* A NOTIFY otp_due (the database socket) ends the wait. */
            vb_client_perform(d->vb, t < 0 ? 0 : t > 20 ? 20 : (int)t, PQsocket(d->tx.db));
            now = otp_monotonic_ms();
            if (now - results_at >= DISPATCH_GATHER_MS || vb_client_in_flight(d->vb) == 0) {
                commit_results(d);
                results_at = now;
            }
            woken = otp_db_wait_notify(d->tx.db, 0);
        } else {
            int64_t t = claim_at - otp_monotonic_ms();
            /* Idle: sleep until a row is due or someone says one is. */
            woken = t > 0 ? otp_db_wait_notify(d->tx.db, t > 500 ? 500 : (int)t) : 0;
        }
        if (woken == 1)
            claim_at = 0;
    }
    /* Drain: no new claims; the calls in flight finish and are recorded. */
    drain_deadline = otp_monotonic_ms() + 15000;
    while (vb_client_in_flight(d->vb) > 0 && otp_monotonic_ms() < drain_deadline) {
        vb_client_perform(d->vb, 100, -1);
        commit_results(d);
    }
    if (challenge_commit(&d->tx) != 0)
        otp_warn("dispatch_drain_rolled_back", "in_flight=%d", vb_client_in_flight(d->vb));
    return NULL;
}
