/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_backoff.h"

int64_t otp_backoff_ceiling_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t c = base_ms;

    if (attempt < 1)
        attempt = 1;
    for (int i = 1; i < attempt && c < cap_ms; i++)
        c *= 2;
    return c < cap_ms ? c : cap_ms;
}

int64_t otp_backoff_delay_ms(int attempt, int64_t base_ms, int64_t cap_ms, int64_t retry_after_ms,
                             uint32_t rnd)
{
    int64_t ceiling = otp_backoff_ceiling_ms(attempt, base_ms, cap_ms);
    /* Full jitter: uniform over [0, ceiling]. */
    int64_t d = (int64_t)(((uint64_t)rnd * (uint64_t)(ceiling + 1)) >> 32);

    return d < retry_after_ms ? retry_after_ms : d;
}

int otp_backoff_worth_it(int64_t now_ms, int64_t delay_ms, int64_t expires_at_ms,
                         int64_t min_remaining_ms)
{
    return now_ms + delay_ms + min_remaining_ms <= expires_at_ms;
}
