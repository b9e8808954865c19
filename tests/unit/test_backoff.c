/* SPDX-License-Identifier: Apache-2.0 */
/* otp_backoff: ceilings, full jitter, Retry-After, and whether a retry is worth it. */
#include <limits.h>
#include <sodium.h>
#include <stdio.h>

#include "otp_backoff.h"
#include "otp_crypto.h"
#include "unit.h"

static void test_ceiling(void)
{
    int64_t want = 1000;

    for (int n = 1; n <= 12; n++) {
        unit_ctx("attempt %d", n);
        CHECK_EQ_INT(otp_backoff_ceiling_ms(n, 1000, 60000), want < 60000 ? want : 60000);
        want *= 2;
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(1, 2000, 60000), 2000);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(2, 2000, 60000), 4000);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(5, 2000, 60000), 32000);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(6, 2000, 60000), 60000);
    /* attempt numbers below 1 count as the first */
    CHECK_EQ_INT(otp_backoff_ceiling_ms(0, 2000, 60000), 2000);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(-5, 2000, 60000), 2000);
    /* far-out attempts stay at the cap (no overflow) */
    CHECK_EQ_INT(otp_backoff_ceiling_ms(100, 2000, 60000), 60000);
    CHECK_EQ_INT(otp_backoff_ceiling_ms(INT_MAX, 10, 3600000), 3600000);
    /* a base above the cap is capped */
    CHECK_EQ_INT(otp_backoff_ceiling_ms(1, 90000, 60000), 60000);
    /* never decreases with the attempt number */
    for (int n = 1; n < 64; n++)
        CHECK(otp_backoff_ceiling_ms(n + 1, 10, 3600000) >= otp_backoff_ceiling_ms(n, 10, 3600000));
}

static void test_delay(void)
{
    int out_of_range = 0;
    double sum = 0;
    const int draws = 200000;

    /* full jitter: within [0, ceiling] whatever the random number */
    for (int i = 0; i < draws; i++) {
        int attempt = 1 + (int)randombytes_uniform(12);
        int64_t c = otp_backoff_ceiling_ms(attempt, 2000, 60000);
        int64_t d = otp_backoff_delay_ms(attempt, 2000, 60000, 0, randombytes_random());
        if (d < 0 || d > c)
            out_of_range++;
    }
    CHECK_EQ_INT(out_of_range, 0);

    /* uniform: the mean is about half the ceiling */
    for (int i = 0; i < draws; i++)
        sum += (double)otp_backoff_delay_ms(3, 1000, 60000, 0, randombytes_random());
    sum /= draws;
    printf("mean delay at ceiling 4000: %.1f\n", sum);
    CHECK(sum > 1960 && sum < 2040);

    /* the ends of the random range */
    for (int n = 1; n <= 8; n++) {
        int64_t c = otp_backoff_ceiling_ms(n, 2000, 60000);
        int64_t hi = otp_backoff_delay_ms(n, 2000, 60000, 0, UINT32_MAX);
        unit_ctx("attempt %d", n);
        CHECK_EQ_INT(otp_backoff_delay_ms(n, 2000, 60000, 0, 0), 0);
        CHECK(hi <= c);
        CHECK(hi >= c - 1);
        CHECK_EQ_INT(otp_backoff_delay_ms(n, 2000, 60000, 0, UINT32_MAX / 2), c / 2);
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_backoff_delay_ms(1, 0, 60000, 0, UINT32_MAX), 0);
    CHECK(otp_backoff_delay_ms(30, 10, 3600000, 0, UINT32_MAX) <= 3600000);
}

static void test_retry_after(void)
{
    /* Retry-After is a floor */
    CHECK_EQ_INT(otp_backoff_delay_ms(1, 2000, 60000, 30000, 0), 30000);
    CHECK_EQ_INT(otp_backoff_delay_ms(1, 2000, 60000, 30000, UINT32_MAX), 30000);
    CHECK_EQ_INT(otp_backoff_delay_ms(1, 2000, 60000, 120000, UINT32_MAX), 120000);
    {
        int wrong = 0;
        for (int i = 0; i < 10000; i++) {
            uint32_t rnd = randombytes_random();
            int64_t d = otp_backoff_delay_ms(6, 2000, 60000, 5000, rnd);
            int64_t plain = otp_backoff_delay_ms(6, 2000, 60000, 0, rnd);
            wrong += !(d >= 5000 && d == (plain > 5000 ? plain : 5000));
        }
        CHECK_EQ_INT(wrong, 0);
    }
    /* 0 = no Retry-After */
    CHECK_EQ_INT(otp_backoff_delay_ms(1, 2000, 60000, 0, 0), 0);
}

static void test_worth_it(void)
{
    const int64_t now = 1768469400000LL, min = 60000;

    /* exactly min_remaining left after the delay: still worth it */
    CHECK_EQ_INT(otp_backoff_worth_it(now, 0, now + min, min), 1);
    CHECK_EQ_INT(otp_backoff_worth_it(now, 5000, now + 5000 + min, min), 1);
    /* one millisecond short: not */
    CHECK_EQ_INT(otp_backoff_worth_it(now, 0, now + min - 1, min), 0);
    CHECK_EQ_INT(otp_backoff_worth_it(now, 5001, now + 5000 + min, min), 0);
    /* already expired */
    CHECK_EQ_INT(otp_backoff_worth_it(now, 0, now - 1, min), 0);
    CHECK_EQ_INT(otp_backoff_worth_it(now, 0, now, 0), 1);
    CHECK_EQ_INT(otp_backoff_worth_it(now, 0, now - 1, 0), 0);
    /* plenty of time */
    CHECK_EQ_INT(otp_backoff_worth_it(now, 2000, now + 300000, min), 1);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (otp_crypto_init() != 0) {
        printf("otp_crypto_init failed\n");
        return 1;
    }
    test_ceiling();
    test_delay();
    test_retry_after();
    test_worth_it();
    return unit_finish(argv[0]);
}
