/* SPDX-License-Identifier: Apache-2.0 */
/* worker/policy.c: what the dispatcher does with a claimed challenge, after a
 * failed send and after each kind of VoIPBin answer. Pure: the clock and the
 * jitter are arguments, so every branch is checked at its edges. */
#include <stdio.h>
#include <string.h>

#include "../../worker/policy.h"
#include "unit.h"

#define NOW 1000000000000LL /* ms */

static const policy_cfg_t cfg = {60000, 1000, 30000}; /* min remaining 60 s, base 1 s, cap 30 s */

static claimed_t row(const char *prev, int attempts, int max, int64_t expires_in_ms)
{
    claimed_t r;

    memset(&r, 0, sizeof(r));
    snprintf(r.request_id, sizeof(r.request_id), "0e0b5c1e-7d4f-4a43-9d68-5e3c7a0f2b11");
    snprintf(r.prev_status, sizeof(r.prev_status), "%s", prev);
    r.call_attempts = attempts;
    r.max_call_attempts = max;
    r.expires_ms = NOW + expires_in_ms;
    r.tries = attempts;
    return r;
}

static void test_plan(void)
{
    claimed_t r = row("pending", 0, 3, 300000);
    static const char *const retry[] = {"no_answer", "busy", "voicemail", "no_input",
                                        "call_failed"};
    static const char *const waiting[] = {"call_requested", "ringing", "answered"};

    CHECK_EQ_INT(policy_plan(&r), PLAN_SEND);
    /* 'calling' when claimed: never sent → send; sent → recover first. */
    r = row("calling", 0, 3, 300000);
    CHECK_EQ_INT(policy_plan(&r), PLAN_SEND);
    r = row("calling", 1, 3, 300000);
    CHECK_EQ_INT(policy_plan(&r), PLAN_SEND); /* attempt never started */
    r.attempt_started_ms = NOW - 5000;
    CHECK_EQ_INT(policy_plan(&r), PLAN_RECOVER);
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        r = row(retry[i], 1, 3, 300000);
        unit_ctx("%s", retry[i]);
        CHECK_EQ_INT(policy_plan(&r), PLAN_RETRY);
    }
    for (size_t i = 0; i < sizeof(waiting) / sizeof(waiting[0]); i++) {
        unit_ctx("%s", waiting[i]);
        r = row(waiting[i], 1, 3, 300000);
        CHECK_EQ_INT(policy_plan(&r), PLAN_EXPIRE); /* no call id: nothing to look up */
        snprintf(r.call_id, sizeof(r.call_id), "9d1c1f4e-5b7a-4c3e-8f0a-1b2c3d4e5f60");
        CHECK_EQ_INT(policy_plan(&r), PLAN_LOOK_UP);
    }
    unit_ctx(NULL);
    r = row("verified", 1, 3, 300000);
    CHECK_EQ_INT(policy_plan(&r), PLAN_EXPIRE);
}

static void test_send(void)
{
    claimed_t r = row("pending", 0, 3, 300000);
    const char *why = "x";

    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_CALL);
    CHECK(why == NULL);
    r.keypad = 1;
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_KEYPAD_CALL);
    r.keypad = 0;
    r.sms_channel = 1;
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_SMS);
    /* The last allowed call may still go; one more may not. */
    r = row("pending", 2, 3, 300000);
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_CALL);
    r = row("pending", 3, 3, 300000);
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_FAIL);
    CHECK_EQ_STR(why, "max_call_attempts");
    /* Exactly the minimum left still calls; a millisecond less expires. */
    r = row("pending", 0, 3, 60000);
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_CALL);
    r = row("pending", 0, 3, 59999);
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_EXPIRE);
    CHECK_EQ_STR(why, "too_late_to_call");
    r = row("pending", 1, 3, 59999);
    CHECK_EQ_INT(policy_send(&r, NOW, &cfg, &why), SEND_EXPIRE);
    CHECK_EQ_STR(why, "no_time_left_to_retry");
}

static void test_after_failure(void)
{
    claimed_t r = row("calling", 1, 3, 300000);
    failure_t f = {"http_503_unavailable", 0, 0, 0};
    after_t a;

    /* Jitter 0 → delay 0; the most jitter → the ceiling (base · 2^(tries-1)). */
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_RETRY);
    CHECK_EQ_INT(a.call_attempts, 1);
    CHECK_EQ_INT(a.delay_ms, 0);
    r.tries = 3;
    a = policy_after_failure(&r, &f, NOW, &cfg, UINT32_MAX);
    CHECK(a.delay_ms >= 3990 && a.delay_ms <= 4000);
    /* Retry-After is a floor. */
    f.retry_after_ms = 7000;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.delay_ms, 7000);
    f.retry_after_ms = 0;
    /* A request that placed no call does not use up an attempt. */
    r = row("calling", 3, 3, 300000);
    f.not_placed = 1;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_RETRY);
    CHECK_EQ_INT(a.call_attempts, 2);
    f.not_placed = 0;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_FAIL);
    CHECK(a.detail == NULL);
    /* ...unless the request asked for the SMS fallback. */
    r.sms_fallback = 1;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_SMS_FALLBACK);
    /* An SMS's own failure is never answered by another SMS. */
    f.cause = "sms_http_503_unavailable";
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_FAIL);
    /* Ambiguous: at least a second (the call may show up in the list), and
     * never given up on for the count: the call may exist. */
    f.cause = "timeout";
    f.ambiguous = 1;
    r.sms_fallback = 0;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_RETRY);
    CHECK_EQ_INT(a.delay_ms, 1000);
    /* Not enough life left after the delay: fail with the reason. */
    r = row("calling", 1, 3, 60500);
    f.ambiguous = 0;
    f.retry_after_ms = 1000;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_FAIL);
    CHECK_EQ_STR(a.detail, "the code would expire before another call");
    f.retry_after_ms = 500;
    a = policy_after_failure(&r, &f, NOW, &cfg, 0);
    CHECK_EQ_INT(a.kind, AFTER_RETRY);
}

static void test_result(void)
{
    CHECK_EQ_INT(policy_result(VB_OK, 0, 0), RESULT_RECORD);
    CHECK_EQ_INT(policy_result(VB_OK, 1, 0), RESULT_SMS_SENT);
    CHECK_EQ_INT(policy_result(VB_OK, 1, 1), RESULT_SMS_SENT);
    CHECK_EQ_INT(policy_result(VB_RETRY_SAFE, 0, 0), RESULT_RETRY);
    CHECK_EQ_INT(policy_result(VB_RETRY_SAFE, 1, 0), RESULT_RETRY);
    CHECK_EQ_INT(policy_result(VB_RETRY_SAFE, 1, 1), RESULT_FAIL);
    CHECK_EQ_INT(policy_result(VB_AMBIGUOUS, 0, 0), RESULT_RETRY_LOOKUP);
    CHECK_EQ_INT(policy_result(VB_AMBIGUOUS, 1, 0), RESULT_FAIL);
    CHECK_EQ_INT(policy_result(VB_PERMANENT, 0, 0), RESULT_FAIL);
    CHECK_EQ_INT(policy_result(VB_PERMANENT, 1, 0), RESULT_FAIL);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_plan();
    test_send();
    test_after_failure();
    test_result();
    return unit_finish(argv[0]);
}
