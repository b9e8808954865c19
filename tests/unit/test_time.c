/* SPDX-License-Identifier: Apache-2.0 */
/* otp_time: RFC 3339 parsing and formatting. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_time.h"
#include "unit.h"

static void test_parse_good(void)
{
    static const struct {
        const char *s;
        int64_t ms;
    } rows[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-01-15T09:30:00Z", 1768469400000LL},
        {"2026-01-15t09:30:00z", 1768469400000LL},
        {"2026-01-15 09:30:00Z", 1768469400000LL},
        {"2026-01-15T11:30:00+02:00", 1768469400000LL},
        {"2026-01-15T04:00:00-05:30", 1768469400000LL},
        {"2026-01-15T09:30:00+00:00", 1768469400000LL},
        {"2026-01-15T09:30:00-00:00", 1768469400000LL},
        {"2026-01-16T08:29:00+22:59", 1768469400000LL},
        {"2026-01-15T09:30:00.5Z", 1768469400500LL},
        {"2026-01-15T09:30:00.05Z", 1768469400050LL},
        {"2026-01-15T09:30:00.123Z", 1768469400123LL},
        {"2026-01-15T09:30:00.123456789Z", 1768469400123LL}, /* cut, not rounded */
        {"2026-01-15T09:30:00.999999+00:00", 1768469400999LL},
        {"2022-05-01 15:10:38.721000Z", 1651417838721LL}, /* VoIPBin's legacy form */
        {"2022-05-01T15:10:38.721Z", 1651417838721LL},
        {"2024-02-29T12:00:00Z", 1709208000000LL}, /* a leap day */
        {"2000-03-01T00:00:00Z", 951868800000LL},
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
        {"1969-12-31T23:59:59.999Z", -1},
    };
    int64_t ms;

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("parse \"%s\"", rows[i].s);
        ms = -12345;
        if (CHECK_EQ_INT(otp_time_parse(rows[i].s, &ms), 0))
            CHECK_EQ_INT(ms, rows[i].ms);
    }
    unit_ctx(NULL);
}

static void test_parse_bad(void)
{
    static const char *const rows[] = {
        "",
        "2026-01-15",
        "2026-01-15T09:30:00", /* no zone */
        "2026-01-15T09:30Z",
        "2026-01-15T09:30:00 Z",
        "2026-01-15T09:30:00Z ",
        " 2026-01-15T09:30:00Z",
        "2026-01-15T09:30:00ZZ",
        "2026-01-15X09:30:00Z",
        "2026/01/15T09:30:00Z",
        "26-01-15T09:30:00Z",
        "2026-1-15T09:30:00Z",
        "2026-13-01T00:00:00Z", /* month 13 */
        "2026-00-10T00:00:00Z",
        "2026-01-00T00:00:00Z",
        "2026-01-32T00:00:00Z",
        "2026-04-31T00:00:00Z", /* April has 30 days */
        "2026-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z", /* 2023 is not a leap year */
        "2100-02-29T00:00:00Z", /* nor is 2100 */
        "2026-01-15T24:00:00Z",
        "2026-01-15T09:60:00Z",
        "2026-01-15T09:30:61Z",
        "2026-01-15T09:30:00.Z",           /* a dot without digits */
        "2026-01-15T09:30:00.1234567890Z", /* more than nanoseconds */
        "2026-01-15T09:30:00,5Z",
        "2026-01-15T09:30:00+0200",
        "2026-01-15T09:30:00+02",
        "2026-01-15T09:30:00+24:00",
        "2026-01-15T09:30:00+02:60",
        "2026-01-15T09:30:00+02:00:00",
        "2026-01-15T09:30:00UTC",
        "2026-01-15T09:30:00.5",
        "2026-01-15T09:30:00-",
        "+026-01-15T09:30:00Z",
        "2026-01-15T-9:30:00Z",
        "1768469400",
    };
    int64_t ms;

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("parse \"%s\"", rows[i]);
        ms = 7;
        if (CHECK_EQ_INT(otp_time_parse(rows[i], &ms), -1))
            CHECK_EQ_INT(ms, 7); /* untouched on failure */
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_time_parse(NULL, &ms), -1);
}

static void test_format(void)
{
    char out[40];
    static const struct {
        int64_t ms;
        const char *s;
    } rows[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1768469400123LL, "2026-01-15T09:30:00.123Z"},
        {1709208000007LL, "2024-02-29T12:00:00.007Z"},
        {253402300799999LL, "9999-12-31T23:59:59.999Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-86400000LL + 500, "1969-12-31T00:00:00.500Z"},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("format %lld", (long long)rows[i].ms);
        otp_time_format(rows[i].ms, out, sizeof(out));
        CHECK_EQ_STR(out, rows[i].s);
    }
    unit_ctx(NULL);
    /* 25 bytes are enough; a smaller buffer is cut and terminated */
    otp_time_format(1768469400123LL, out, 25);
    CHECK_EQ_STR(out, "2026-01-15T09:30:00.123Z");
    otp_time_format(1768469400123LL, out, 11);
    CHECK_EQ_STR(out, "2026-01-15");
}

/* Whatever otp_time_parse accepts, otp_time_format writes in a form it
 * accepts again, at the same instant. */
static void test_round_trip_edges(void)
{
    static const char *const rows[] = {
        "1000-01-01T00:00:00Z", "1900-03-01T00:00:00Z",      "1969-12-31T23:59:59.999Z",
        "0999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",      "0000-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59Z", "9999-12-31T23:59:00-01:00",
    };
    char out[40];

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        int64_t ms = 0, back = 0;
        unit_ctx("round trip \"%s\"", rows[i]);
        if (otp_time_parse(rows[i], &ms) != 0)
            continue; /* refusing it is fine too */
        otp_time_format(ms, out, sizeof(out));
        if (CHECK_EQ_INT(otp_time_parse(out, &back), 0))
            CHECK_EQ_INT(back, ms);
        else
            printf("    formatted as \"%s\"\n", out);
    }
    unit_ctx(NULL);
}

static void test_round_trip(void)
{
    char out[40];
    int bad = 0;

    for (int i = 0; i < 100000; i++) {
        /* 1970 .. about 2096, at millisecond resolution */
        int64_t ms =
            ((int64_t)randombytes_random() << 10 | randombytes_uniform(1024)) % 4000000000000LL;
        int64_t back = -1;
        otp_time_format(ms, out, sizeof(out));
        if (otp_time_parse(out, &back) != 0 || back != ms) {
            if (bad++ < 5)
                printf("round trip of %lld: \"%s\" -> %lld\n", (long long)ms, out, (long long)back);
        }
    }
    CHECK_EQ_INT(bad, 0);
    /* now, and the clocks move forward */
    {
        int64_t now = otp_now_ms(), back = 0, mono = otp_monotonic_ms();
        otp_time_format(now, out, sizeof(out));
        CHECK_EQ_INT(otp_time_parse(out, &back), 0);
        CHECK_EQ_INT(back, now);
        CHECK(now > 1700000000000LL);
        CHECK(otp_now_ms() >= now);
        CHECK(otp_monotonic_ms() >= mono);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    if (otp_crypto_init() != 0) {
        printf("otp_crypto_init failed\n");
        return 1;
    }
    test_parse_good();
    test_parse_bad();
    test_format();
    test_round_trip();
    test_round_trip_edges();
    return unit_finish(argv[0]);
}
