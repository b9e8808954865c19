/* SPDX-License-Identifier: Apache-2.0 */
/* Retry timing: exponential backoff with full jitter and a cap, Retry-After
 * honoured. Pure functions, so the schedule is unit-tested without a clock. */
#ifndef OTP_BACKOFF_H
#define OTP_BACKOFF_H

#include <stdint.h>

/* The ceiling of attempt n (1-based): min(cap, base * 2^(n-1)). */
int64_t otp_backoff_ceiling_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* A delay for attempt n: uniform in [0, ceiling] using `rnd` (a uniform
 * 32-bit random number), then at least retry_after_ms (0 = none). */
int64_t otp_backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, int64_t retry_after_ms,
                             uint32_t rnd);

/* 1 if another call can be placed at now_ms + delay_ms and still leave the
 * user min_remaining_ms before expires_at_ms. */
int otp_backoff_worth_it(int64_t now_ms, int64_t delay_ms, int64_t expires_at_ms,
                         int64_t min_remaining_ms);

#endif
