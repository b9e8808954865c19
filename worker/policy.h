/* SPDX-License-Identifier: Apache-2.0 */
/* What happens next to a claimed challenge: pure decisions, no I/O, no clock
 * of their own (now_ms and the random number are arguments), so every branch
 * is unit-tested (tests/unit/test_policy.c). The dispatcher (dispatch.c) asks
 * the policy, then carries the answer out through the challenge SQL
 * (challenge.c) and the VoIPBin client. */
#ifndef OTP_WORKER_POLICY_H
#define OTP_WORKER_POLICY_H

#include <stdint.h>

#include "voipbin_client.h"

/* A claimed challenge, as the claim statement returns it (challenge.c). */
typedef struct claimed {
    char request_id[37];
    char phone[18];
    char phone_masked[24];
    char locale[36];
    int code_length;
    int64_t expires_ms;
    int call_attempts, max_call_attempts;
    int tries; /* requests sent to VoIPBin for it, 429s included (the backoff exponent) */
    char country[4];
    char service[33];     /* whose request: its brand and caller ID are read at call time */
    int fallback_after_s; /* its service's fallback_after_seconds, as of the claim */
    char prev_status[24]; /* its status before the claim */
    char call_id[37];     /* the call the row waits on (call_requested, ringing, answered) */
    int64_t attempt_started_ms;
    int gate, amd, sms_fallback, sms_channel, keypad;
} claimed_t;

/* OTP_MIN_REMAINING_SECONDS, OTP_RETRY_BASE_MS, OTP_RETRY_CAP_MS. */
typedef struct policy_cfg {
    int64_t min_remaining_ms, retry_base_ms, retry_cap_ms;
} policy_cfg_t;

/* What to do with a row just claimed. */
typedef enum {
    PLAN_SEND,    /* nothing in flight: send the code (policy_send says how) */
    PLAN_RECOVER, /* 'calling' with a request sent: find the call VoIPBin may have made */
    PLAN_RETRY,   /* its last call ended unheard (no answer, busy, ...): schedule another */
    PLAN_LOOK_UP, /* waiting on a call's final status past the timeout: ask VoIPBin */
    PLAN_EXPIRE,  /* waiting on a call it cannot name: nothing more can happen */
} plan_t;

plan_t policy_plan(const claimed_t *row);

/* How a code is sent now. */
typedef enum {
    SEND_CALL,        /* a voice call reading a fresh code */
    SEND_KEYPAD_CALL, /* a call collecting the app's code on the keypad (same hash) */
    SEND_SMS,         /* a text with a fresh code (channel "sms") */
    SEND_FAIL,        /* every allowed call was made: fail, cause "max_call_attempts" */
    SEND_EXPIRE,      /* too little of the code's life is left: expire (*why says which) */
} send_t;

send_t policy_send(const claimed_t *row, int64_t now_ms, const policy_cfg_t *cfg, const char **why);

/* A send that did not get the code through. */
typedef struct failure {
    const char *cause;      /* "http_503_...", "no_answer", "sms_..." */
    int64_t retry_after_ms; /* VoIPBin's Retry-After, 0 = none */
    int not_placed;         /* known to have placed no call: the attempt does not count */
    int ambiguous;          /* may have placed one: stay 'calling' and look for it first */
} failure_t;

typedef enum {
    AFTER_RETRY,        /* another try in delay_ms */
    AFTER_FAIL,         /* give up (detail may say why) */
    AFTER_SMS_FALLBACK, /* give up calling: text a fresh code instead */
} after_kind_t;

typedef struct after {
    after_kind_t kind;
    int64_t delay_ms;   /* AFTER_RETRY */
    int call_attempts;  /* calls that count, after this failure */
    const char *detail; /* AFTER_FAIL: static text or NULL */
} after_t;

/* The retry decision after a failure. rnd: a uniform 32-bit random number
 * (the jitter). The exponent counts every request sent (row->tries), so a
 * run of 429s backs off too. */
after_t policy_after_failure(const claimed_t *row, const failure_t *f, int64_t now_ms,
                             const policy_cfg_t *cfg, uint32_t rnd);

/* Giving up on calls: an SMS with a fresh code if the request asked for that
 * fallback and the failure was not already the SMS's own. */
int policy_sms_fallback(const claimed_t *row, const char *cause);

/* What a VoIPBin answer to a call or an SMS means for the row. */
typedef enum {
    RESULT_RECORD,       /* a call was placed: record it and wait for its status */
    RESULT_SMS_SENT,     /* the SMS was accepted: final */
    RESULT_RETRY,        /* nothing was placed: try again (failure_t.not_placed for calls) */
    RESULT_RETRY_LOOKUP, /* the outcome is unknown: look for the call before another */
    RESULT_FAIL,         /* refused for good */
} result_t;

result_t policy_result(vb_class_t cls, int sms, int sms_fallback);

#endif
