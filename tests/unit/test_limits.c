/* SPDX-License-Identifier: Apache-2.0 */
/* worker/limits.c: limits_decide, the pure decision (country allowlist,
 * blocked number types, premium prefixes, budgets), with the settings read
 * the way the worker reads them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../worker/limits.h"
#include "otp_config.h"
#include "otp_phone.h"
#include "unit.h"

static int load(limits_cfg_t *l, const char *allow, const char *types, const char *premium)
{
    char err[256] = "";

    setenv("OTP_COUNTRY_ALLOWLIST", allow, 1);
    if (types)
        setenv("OTP_BLOCKED_NUMBER_TYPES", types, 1);
    else
        unsetenv("OTP_BLOCKED_NUMBER_TYPES");
    if (premium)
        setenv("OTP_PREMIUM_PREFIXES", premium, 1);
    else
        unsetenv("OTP_PREMIUM_PREFIXES");
    if (otp_config_load(OTP_PROG_WORKER, err, sizeof(err)) != 0) {
        printf("config: %s\n", err);
        return -1;
    }
    return limits_load(l, err, sizeof(err));
}

static const char *decide(const limits_cfg_t *l, const char *phone, const char *country)
{
    limits_counts_t c = {0};
    const char *reason = "";
    limits_verdict_t v = limits_decide(l, NULL, phone, NULL, country, &c, &reason);
    return v == LIMITS_ALLOW ? "allow" : reason;
}

/* OTP_COUNTRY_ALLOWLIST=us no longer lets the Caribbean through. */
static void test_allowlist_nanp(void)
{
    limits_cfg_t l;
    static const struct {
        const char *phone, *want;
    } rows[] = {
        {"+12015550123", "allow"},                /* New Jersey */
        {"+14155552671", "allow"},                /* California */
        {"+18765230123", "country_not_allowed"},  /* Jamaica */
        {"+18092345678", "country_not_allowed"},  /* Dominican Republic */
        {"+16135550123", "country_not_allowed"},  /* Ottawa */
        {"+17872345678", "country_not_allowed"},  /* Puerto Rico */
        {"+881612345678", "country_not_allowed"}, /* satellite: no country */
    };

    if (!CHECK_EQ_INT(load(&l, "us", NULL, NULL), 0))
        return;
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("allowlist us, %s", rows[i].phone);
        CHECK_EQ_STR(decide(&l, rows[i].phone, otp_phone_country(rows[i].phone)), rows[i].want);
    }
    unit_ctx(NULL);
}

/* The default OTP_BLOCKED_NUMBER_TYPES, with the prefix list emptied so the
 * number type alone decides; the event's reason names the type. */
static void test_number_types(void)
{
    limits_cfg_t l;
    static const struct {
        const char *phone, *want;
    } rows[] = {
        {"+19005550100", "number_type_premium_rate"},     /* US 1-900 */
        {"+449012345678", "number_type_premium_rate"},    /* UK 09 */
        {"+448712345678", "number_type_premium_rate"},    /* UK 087 */
        {"+499001234567", "number_type_premium_rate"},    /* German 0900 */
        {"+445512345678", "number_type_uan"},             /* UK 055 */
        {"+447012345678", "number_type_personal_number"}, /* UK 070 */
        {"+447640123456", "number_type_pager"},           /* UK 076 */
        {"+448001234567", "allow"},                       /* toll free: not blocked by default */
        {"+447400123456", "allow"},                       /* UK mobile */
        {"+441212345678", "allow"},                       /* UK landline */
        {"+4915123456789", "allow"},
        {"+4930123456", "allow"},
    };

    if (!CHECK_EQ_INT(load(&l, "", NULL, ""), 0))
        return;
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("default types, %s", rows[i].phone);
        CHECK_EQ_STR(decide(&l, rows[i].phone, otp_phone_country(rows[i].phone)), rows[i].want);
    }
    unit_ctx(NULL);

    /* Empty: only the prefix list is left, and it still holds. */
    if (!CHECK_EQ_INT(load(&l, "", "", NULL), 0))
        return;
    CHECK_EQ_INT(l.blocked_types, 0);
    CHECK_EQ_STR(decide(&l, "+499001234567", "de"), "allow");
    CHECK_EQ_STR(decide(&l, "+19005550100", "us"), "premium_rate_prefix");
    CHECK_EQ_STR(decide(&l, "+881612345678", ""), "premium_rate_prefix");   /* satellite */
    CHECK_EQ_STR(decide(&l, "+447012345678", "gb"), "premium_rate_prefix"); /* +4470 */

    /* An operator may block more (voip, toll_free). */
    if (!CHECK_EQ_INT(load(&l, "", "voip,toll_free", ""), 0))
        return;
    CHECK_EQ_STR(decide(&l, "+448001234567", "gb"), "number_type_toll_free");
    CHECK_EQ_STR(decide(&l, "+19005550100", "us"), "allow");
}

static void test_bad_setting(void)
{
    limits_cfg_t l;
    char err[256] = "";

    setenv("OTP_BLOCKED_NUMBER_TYPES", "premium_rate,premium", 1);
    if (!CHECK_EQ_INT(otp_config_load(OTP_PROG_WORKER, err, sizeof(err)), 0))
        return;
    CHECK_EQ_INT(limits_load(&l, err, sizeof(err)), -1);
    CHECK(strstr(err, "OTP_BLOCKED_NUMBER_TYPES") != NULL);
    CHECK(strstr(err, "\"premium\"") != NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    setenv("OTP_HASH_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
    setenv("OTP_VOIPBIN_ACCESS_KEY", "vb_live_8f2a1c", 1);
    setenv("OTP_CALLER_ID", "+14155550100", 1);
    test_allowlist_nanp();
    test_number_types();
    test_bad_setting();
    return unit_finish(argv[0]);
}
