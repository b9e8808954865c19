/* SPDX-License-Identifier: Apache-2.0 */
/* otp_phone and otp_phonenumber: E.164 acceptance, masking, region, validity
 * and number type (libphonenumber). */
#include <stdio.h>
#include <string.h>

#include "otp_phone.h"
#include "otp_phonenumber.h"
#include "unit.h"

static const struct {
    const char *s;
    int ok;
} e164_table[] = {
    {"+14155552671", 1},      /* US */
    {"+442071838750", 1},     /* GB */
    {"+4915112345678", 1},    /* DE mobile */
    {"+819012345678", 1},     /* JP */
    {"+971501234567", 1},     /* AE */
    {"+1234567", 1},          /* 7 digits: the shortest */
    {"+123456789012345", 1},  /* 15 digits: the longest */
    {"+123456", 0},           /* 6 digits */
    {"+1234567890123456", 0}, /* 16 digits */
    {"", 0},
    {"+", 0},
    {"14155552671", 0},  /* no '+' */
    {"+04155552671", 0}, /* leading 0 */
    {"++14155552671", 0},
    {"+1 4155552671", 0},   /* space */
    {"+1-415-555-2671", 0}, /* dashes */
    {"+1(415)5552671", 0},
    {"+1415555267a", 0},
    {"+14155552671 ", 0}, /* trailing space */
    {" +14155552671", 0}, /* leading space */
    {"+14155552671\n", 0},
    {"00442071838750", 0}, /* international prefix instead of '+' */
    {"+１4155552671", 0},  /* full-width digit (UTF-8) */
    {"+4415\xd9\xa3"
     "0000",
     0}, /* Arabic-Indic digit */
    {"+-4155552671", 0},
};

static void test_e164(void)
{
    for (size_t i = 0; i < sizeof(e164_table) / sizeof(*e164_table); i++) {
        unit_ctx("e164 row %zu \"%s\"", i, e164_table[i].s);
        CHECK_EQ_INT(otp_phone_is_e164(e164_table[i].s), e164_table[i].ok);
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_phone_is_e164(NULL), 0);
    CHECK(sizeof(e164_table) / sizeof(*e164_table) >= 15);
}

/* Whatever the length: same length, only '*' or the original character at each
 * place, the shown characters are a head ('+' and at most 4 digits) and the
 * last 2 digits, and at least 4 digits stay hidden (otp_phone.c's own rule). */
static void check_mask(const char *num)
{
    char m[OTP_PHONE_MAX + 8];
    size_t n = strlen(num), head = 0, tail = 0, hidden = 0;

    memset(m, 'X', sizeof(m));
    otp_phone_mask(num, m, sizeof(m));
    unit_ctx("mask \"%s\" -> \"%s\"", num, m);
    if (!CHECK_EQ_INT(strlen(m), n))
        return;
    for (size_t i = 0; i < n; i++)
        CHECK(m[i] == '*' || m[i] == num[i]);
    while (head < n && m[head] != '*')
        head++;
    while (tail < n - head && m[n - 1 - tail] != '*')
        tail++;
    for (size_t i = head; i < n - tail; i++)
        hidden += m[i] == '*';
    CHECK(head >= 1 && head <= 5);         /* '+' and up to 4 digits */
    CHECK_EQ_INT(tail, 2);                 /* the last two digits */
    CHECK_EQ_INT(hidden, n - head - tail); /* nothing shown in the middle */
    CHECK(hidden >= 4);
    CHECK(m[0] == '+');
    CHECK(strcmp(m, num) != 0);
    unit_ctx(NULL);
}

static void test_mask(void)
{
    char m[32], tiny[6];
    const char *digits = "987654321012345";

    CHECK_EQ_INT(OTP_PHONE_MAX, 17);
    otp_phone_mask("+14155552671", m, sizeof(m));
    CHECK_EQ_STR(m, "+14*******71");
    otp_phone_mask("+4915112345678", m, sizeof(m));
    CHECK_EQ_STR(m, "+4915*******78");

    /* every length 7..15, and every valid row of the table */
    for (int len = 7; len <= 15; len++) {
        char num[20];
        snprintf(num, sizeof(num), "+%.*s", len, digits);
        check_mask(num);
    }
    for (size_t i = 0; i < sizeof(e164_table) / sizeof(*e164_table); i++)
        if (e164_table[i].ok)
            check_mask(e164_table[i].s);

    /* invalid input is never echoed */
    otp_phone_mask("14155552671", m, sizeof(m));
    CHECK_EQ_STR(m, "(invalid)");
    otp_phone_mask("+1 415 555 2671", m, sizeof(m));
    CHECK_EQ_STR(m, "(invalid)");
    otp_phone_mask(NULL, m, sizeof(m));
    CHECK_EQ_STR(m, "(invalid)");

    /* a small buffer is cut and NUL-terminated, and never shows more digits */
    memset(tiny, 'X', sizeof(tiny));
    otp_phone_mask("+14155552671", tiny, sizeof(tiny));
    CHECK_EQ_INT(strlen(tiny), sizeof(tiny) - 1);
    CHECK_EQ_STR(tiny, "+14**");
    memset(tiny, 'X', sizeof(tiny));
    otp_phone_mask("+14155552671", tiny, 1);
    CHECK_EQ_STR(tiny, "");
    CHECK_EQ_INT(tiny[1], 'X');
    memset(tiny, 'X', sizeof(tiny));
    otp_phone_mask("+14155552671", tiny, 0);
    CHECK_EQ_INT(tiny[0], 'X');
}

static void test_country(void)
{
    static const struct {
        const char *phone, *iso;
    } rows[] = {
        /* NANP: one calling code, many regions (libphonenumber's metadata). */
        {"+14155552671", "us"},
        {"+12015550123", "us"},
        {"+16135550123", "ca"},
        {"+15062345678", "ca"},
        {"+18765230123", "jm"},
        {"+18762101234", "jm"},
        {"+18092345678", "do"},
        {"+17872345678", "pr"},
        {"+12423591234", "bs"},
        {"+18682911234", "tt"},
        {"+442071838750", "gb"},
        {"+4915112345678", "de"},
        {"+819012345678", "jp"},
        {"+971501234567", "ae"},
        {"+972501234567", "il"},
        {"+79123456789", "ru"},
        {"+33612345678", "fr"},
        {"+353861234567", "ie"},
        {"+85251234567", "hk"},
        {"+8613812345678", "cn"},
        {"+2348031234567", "ng"},
        {"+27821234567", "za"},
        {"+359888123456", "bg"}, /* not in the old hand-written table */
        {"+881612345678", ""},   /* satellite: valid, no country */
        {"+15550000001", ""},    /* 555 is no area code: not a number */
        {"+9991234567", ""},
        {"+8001234567", ""},
        {"4155552671", ""},
        {"+1", ""},
        {"", ""},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("country of %s", rows[i].phone);
        CHECK_EQ_STR(otp_phone_country(rows[i].phone), rows[i].iso);
    }
    unit_ctx(NULL);
    CHECK_EQ_STR(otp_phone_country(NULL), "");
}

/* A valid mobile and a valid landline of the country of every locale in
 * common/locales (es-419: Mexico and Argentina), with region and type. */
static void test_locale_countries(void)
{
    static const struct {
        const char *phone, *iso;
        otp_pn_type_t type;
    } rows[] = {
        {"+12015550123", "us", OTP_PN_FIXED_LINE_OR_MOBILE}, /* the US does not tell them apart */
        {"+447400123456", "gb", OTP_PN_MOBILE},
        {"+441212345678", "gb", OTP_PN_FIXED_LINE},
        {"+4915123456789", "de", OTP_PN_MOBILE},
        {"+4930123456", "de", OTP_PN_FIXED_LINE},
        {"+33612345678", "fr", OTP_PN_MOBILE},
        {"+33123456789", "fr", OTP_PN_FIXED_LINE},
        {"+34612345678", "es", OTP_PN_MOBILE},
        {"+34810123456", "es", OTP_PN_FIXED_LINE},
        {"+5491123456789", "ar", OTP_PN_MOBILE},
        {"+541123456789", "ar", OTP_PN_FIXED_LINE},
        {"+522221234567", "mx", OTP_PN_FIXED_LINE_OR_MOBILE},
        {"+522001234567", "mx", OTP_PN_FIXED_LINE},
        {"+393123456789", "it", OTP_PN_MOBILE},
        {"+390212345678", "it", OTP_PN_FIXED_LINE},
        {"+5511961234567", "br", OTP_PN_MOBILE},
        {"+551123456789", "br", OTP_PN_FIXED_LINE},
        {"+351912345678", "pt", OTP_PN_MOBILE},
        {"+351212345678", "pt", OTP_PN_FIXED_LINE},
        {"+819012345678", "jp", OTP_PN_MOBILE},
        {"+81312345678", "jp", OTP_PN_FIXED_LINE},
        {"+821020000000", "kr", OTP_PN_MOBILE},
        {"+8222123456", "kr", OTP_PN_FIXED_LINE},
        {"+8613123456789", "cn", OTP_PN_MOBILE},
        {"+861012345678", "cn", OTP_PN_FIXED_LINE},
        {"+886912345678", "tw", OTP_PN_MOBILE},
        {"+886221234567", "tw", OTP_PN_FIXED_LINE},
        {"+79123456789", "ru", OTP_PN_MOBILE},
        {"+73011234567", "ru", OTP_PN_FIXED_LINE},
        {"+918123456789", "in", OTP_PN_MOBILE},
        {"+917410410123", "in", OTP_PN_FIXED_LINE_OR_MOBILE},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        otp_pn_info_t info;
        unit_ctx("%s", rows[i].phone);
        if (!CHECK_EQ_INT(otp_pn_lookup(rows[i].phone, &info), 0))
            continue;
        CHECK_EQ_STR(info.region, rows[i].iso);
        CHECK_EQ_STR(otp_pn_type_name(info.type), otp_pn_type_name(rows[i].type));
    }
    unit_ctx(NULL);
}

/* Numbers a fraudster would like called, and numbers that are no numbers. */
static void test_types_and_validity(void)
{
    static const struct {
        const char *phone;
        int valid;
        otp_pn_type_t type;
    } rows[] = {
        {"+19005550100", 1, OTP_PN_PREMIUM_RATE},  /* US 1-900 */
        {"+449012345678", 1, OTP_PN_PREMIUM_RATE}, /* UK 09 */
        {"+448712345678", 1, OTP_PN_PREMIUM_RATE}, /* UK 087 */
        {"+448719876543", 1, OTP_PN_PREMIUM_RATE},
        {"+445512345678", 1, OTP_PN_UAN},             /* UK 055 corporate */
        {"+447012345678", 1, OTP_PN_PERSONAL_NUMBER}, /* UK 070 */
        {"+447640123456", 1, OTP_PN_PAGER},           /* UK 076 */
        {"+448001234567", 1, OTP_PN_TOLL_FREE},
        {"+499001234567", 1, OTP_PN_PREMIUM_RATE}, /* German 0900 */
        {"+881612345678", 1, OTP_PN_MOBILE},       /* satellite (+881 6 Iridium) */
        {"+4990012345678", 0, OTP_PN_UNKNOWN},     /* 0900 with a digit too many */
        {"+88161234567", 0, OTP_PN_UNKNOWN},       /* satellite, a digit too few */
        {"+442071230000123", 0, OTP_PN_UNKNOWN},   /* too many digits */
        {"+4420712", 0, OTP_PN_UNKNOWN},           /* too few digits */
        {"+1201555012", 0, OTP_PN_UNKNOWN},        /* NANP, 9 digits */
        {"+120155501234", 0, OTP_PN_UNKNOWN},      /* NANP, 11 digits */
        {"+12010000001", 0, OTP_PN_UNKNOWN},       /* exchange 000 does not exist */
        {"+15550000001", 0, OTP_PN_UNKNOWN},       /* area code 555 does not exist */
        {"+447700900123", 0, OTP_PN_UNKNOWN},      /* Ofcom drama range: never assigned */
        {"+8816", 0, OTP_PN_UNKNOWN},
        {"+1 2015550123", 0, OTP_PN_UNKNOWN}, /* the library would read it; E.164 would not */
        {"12015550123", 0, OTP_PN_UNKNOWN},
        {"+", 0, OTP_PN_UNKNOWN},
        {"", 0, OTP_PN_UNKNOWN},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        otp_pn_info_t info;
        unit_ctx("%s", rows[i].phone);
        int rc = otp_pn_lookup(rows[i].phone, &info);
        CHECK_EQ_INT(rc, rows[i].valid ? 0 : -1);
        if (rc == 0 && rows[i].valid)
            CHECK_EQ_STR(otp_pn_type_name(info.type), otp_pn_type_name(rows[i].type));
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_pn_lookup(NULL, NULL), -1);
    CHECK_EQ_INT(otp_pn_lookup("+12015550123", NULL), 0);
    /* Names round-trip, and nothing else is a name. */
    for (int t = 0; t < OTP_PN_NTYPES; t++) {
        const char *n = otp_pn_type_name((otp_pn_type_t)t);
        CHECK_EQ_INT(otp_pn_type_from_name(n, strlen(n)), t);
    }
    CHECK_EQ_INT(otp_pn_type_from_name("premium", 7), -1);
    CHECK_EQ_INT(otp_pn_type_from_name("premium_rate,uan", 12), OTP_PN_PREMIUM_RATE);
    CHECK_EQ_INT(otp_pn_type_from_name("", 0), -1);
    CHECK_EQ_STR(otp_pn_type_name(OTP_PN_NTYPES), "unknown");
}

int main(int argc, char **argv)
{
    (void)argc;
    test_e164();
    test_mask();
    test_country();
    test_locale_countries();
    test_types_and_validity();
    return unit_finish(argv[0]);
}
