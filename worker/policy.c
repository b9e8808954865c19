/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <string.h>

#include "otp_backoff.h"

static int is(const char *status, const char *word)
{
    return strcmp(status, word) == 0;
}

plan_t policy_plan(const claimed_t *row)
{
    const char *s = row->prev_status;

    if (is(s, "pending"))
        return PLAN_SEND;
    if (is(s, "calling"))
        /* Claimed but never sent is an ordinary send. */
        return row->attempt_started_ms == 0 || row->call_attempts == 0 ? PLAN_SEND : PLAN_RECOVER;
    if (is(s, "no_answer") || is(s, "busy") || is(s, "voicemail") || is(s, "no_input") ||
        is(s, "call_failed") || is(s, "unheard"))
        return PLAN_RETRY;
    if ((is(s, "call_requested") || is(s, "ringing") || is(s, "answered")) && row->call_id[0])
        return PLAN_LOOK_UP;
    return PLAN_EXPIRE;
}

send_t policy_send(const claimed_t *row, int64_t now_ms, const policy_cfg_t *cfg, const char **why)
{
    *why = NULL;
    if (row->call_attempts + 1 > row->max_call_attempts) {
        *why = "max_call_attempts";
        return SEND_FAIL;
    }
    if (!otp_backoff_worth_it(now_ms, 0, row->expires_ms, cfg->min_remaining_ms)) {
        *why = row->call_attempts ? "no_time_left_to_retry" : "too_late_to_call";
        return SEND_EXPIRE;
    }
    if (row->sms_channel)
        return SEND_SMS;
    return row->keypad ? SEND_KEYPAD_CALL : SEND_CALL;
}

int policy_sms_fallback(const claimed_t *row, const char *cause)
{
    return row->sms_fallback && !row->sms_channel && strncmp(cause, "sms_", 4) != 0;
}

after_t policy_after_failure(const claimed_t *row, const failure_t *f, int64_t now_ms,
                             const policy_cfg_t *cfg, uint32_t rnd)
{
    after_t a = {AFTER_FAIL, 0, row->call_attempts - (f->not_placed ? 1 : 0), NULL};

    a.delay_ms = otp_backoff_delay_ms(row->tries > 0 ? row->tries : 1, cfg->retry_base_ms,
                                      cfg->retry_cap_ms, f->retry_after_ms, rnd);
    if (f->ambiguous && a.delay_ms < 1000)
        a.delay_ms = 1000; /* give the call time to show up in GET /v1.0/calls */
    if (a.call_attempts >= row->max_call_attempts && !f->ambiguous) {
        a.kind = policy_sms_fallback(row, f->cause) ? AFTER_SMS_FALLBACK : AFTER_FAIL;
        return a;
    }
    if (!otp_backoff_worth_it(now_ms, a.delay_ms, row->expires_ms, cfg->min_remaining_ms)) {
        a.kind = policy_sms_fallback(row, f->cause) ? AFTER_SMS_FALLBACK : AFTER_FAIL;
        a.detail = "the code would expire before another call";
        return a;
    }
    a.kind = AFTER_RETRY;
    return a;
}

result_t policy_result(vb_class_t cls, int sms, int sms_fallback)
{
    switch (cls) {
    case VB_OK:
        return sms ? RESULT_SMS_SENT : RESULT_RECORD;
    case VB_RETRY_SAFE:
        /* A fallback SMS is the last resort: it is not retried. */
        return sms && sms_fallback ? RESULT_FAIL : RESULT_RETRY;
    case VB_AMBIGUOUS:
        /* An SMS cannot be looked up and adopted like a call. */
        return sms ? RESULT_FAIL : RESULT_RETRY_LOOKUP;
    case VB_PERMANENT:
        break;
    }
    return RESULT_FAIL;
}
