/* otp_phone: E.164 acceptance, masking, country lookup. */
#include <stdio.h>
#include <string.h>

#include "otp_phone.h"
#include "unit.h"

static const struct {
    const char *s;
    int ok;
} e164_table[] = {
    {"+14155552671", 1},       /* US */
    {"+442071838750", 1},      /* GB */
    {"+4915112345678", 1},     /* DE mobile */
    {"+819012345678", 1},      /* JP */
    {"+971501234567", 1},      /* AE */
    {"+1234567", 1},           /* 7 digits: the shortest */
    {"+123456789012345", 1},   /* 15 digits: the longest */
    {"+123456", 0},            /* 6 digits */
    {"+1234567890123456", 0},  /* 16 digits */
    {"", 0},
    {"+", 0},
    {"14155552671", 0},        /* no '+' */
    {"+04155552671", 0},       /* leading 0 */
    {"++14155552671", 0},
    {"+1 4155552671", 0},      /* space */
    {"+1-415-555-2671", 0},    /* dashes */
    {"+1(415)5552671", 0},
    {"+1415555267a", 0},
    {"+14155552671 ", 0},      /* trailing space */
    {" +14155552671", 0},      /* leading space */
    {"+14155552671\n", 0},
    {"00442071838750", 0},     /* international prefix instead of '+' */
    {"+１4155552671", 0},      /* full-width digit (UTF-8) */
    {"+4415\xd9\xa3" "0000", 0}, /* Arabic-Indic digit */
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
    CHECK(head >= 1 && head <= 5);        /* '+' and up to 4 digits */
    CHECK_EQ_INT(tail, 2);                /* the last two digits */
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
        {"+14155552671", "us"},  {"+16135550123", "us"},  /* NANP, Canada too */
        {"+442071838750", "gb"}, {"+4915112345678", "de"}, {"+819012345678", "jp"},
        {"+971501234567", "ae"}, {"+972501234567", "il"}, {"+79123456789", "ru"},
        {"+33612345678", "fr"},  {"+353861234567", "ie"}, {"+852912345678", "hk"},
        {"+8613812345678", "cn"}, {"+2348012345678", "ng"}, {"+27821234567", "za"},
        {"+3591234567", ""},     /* Bulgaria: not in the table */
        {"+9991234567", ""},     {"+8001234567", ""},
        {"4155552671", ""},      {"+1", ""},  {"", ""},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("country of %s", rows[i].phone);
        CHECK_EQ_STR(otp_phone_country(rows[i].phone), rows[i].iso);
    }
    unit_ctx(NULL);
    CHECK_EQ_STR(otp_phone_country(NULL), "");
}

int main(int argc, char **argv)
{
    (void)argc;
    test_e164();
    test_mask();
    test_country();
    return unit_finish(argv[0]);
}
