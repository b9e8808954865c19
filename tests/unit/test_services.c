/* SPDX-License-Identifier: Apache-2.0 */
/* common/otp_policy.c and the pure parts of common/otp_services.c: a service's
 * overrides over the deployment's policy (every key, good and bad values),
 * names, scopes, and the topics: which service a topic carries and the
 * subscription pattern, checked with POSIX extended regexes (what Debian's
 * librdkafka uses for a "^..." subscription): every service topic matches, the
 * dead-letter topic and other topics never do. */
#include <regex.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_policy.h"
#include "otp_services.h"
#include "unit.h"

static otp_policy_t base(void)
{
    otp_policy_t p;

    memset(&p, 0, sizeof(p));
    snprintf(p.service, sizeof(p.service), "default");
    snprintf(p.brand, sizeof(p.brand), "Acme");
    snprintf(p.caller_id, sizeof(p.caller_id), "+15550100000");
    p.code_length = 6;
    p.min_code_length = 4;
    p.ttl_s = 300;
    p.max_ttl_s = 600;
    p.max_attempts = 5;
    p.max_call_attempts = 3;
    p.channels = OTP_CH_ALL;
    p.limit_user_hour = 10;
    p.max_failed_verify_per_hour = 100;
    p.fallback_after_s = 20;
    snprintf(p.default_locale, sizeof(p.default_locale), "en-US");
    return p;
}

static int matches(const char *pattern, const char *topic)
{
    regex_t re;
    int m;

    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return -1;
    m = regexec(&re, topic, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

static void overrides(void)
{
    otp_policy_t p = base();
    char err[256];
    static const char *const bad[][2] = {
        {"{\"brand\":\"\"}", "policy.brand"},
        {"{\"brand\":\"a\\u0007b\"}", "policy.brand"},
        {"{\"brand\":\"0123456789012345678901234567890123\"}", "policy.brand"},
        {"{\"brand\":7}", "policy.brand"},
        {"{\"caller_id\":\"12345\"}", "policy.caller_id"},
        {"{\"caller_ids\":{\"GB\":\"+442071234567\"}}", "policy.caller_ids"},
        {"{\"caller_ids\":{\"gb\":\"07123\"}}", "policy.caller_ids"},
        {"{\"caller_ids\":[\"gb\"]}", "policy.caller_ids"},
        {"{\"code_length\":3}", "policy.code_length"},
        {"{\"code_length\":11}", "policy.code_length"},
        {"{\"code_length\":\"6\"}", "policy.code_length"},
        {"{\"min_code_length\":8}", "policy.min_code_length"},
        {"{\"ttl_seconds\":59}", "policy.ttl_seconds"},
        {"{\"ttl_seconds\":601}", "policy.ttl_seconds"},
        {"{\"max_ttl_seconds\":120}", "policy.max_ttl_seconds"},
        {"{\"max_attempts\":0}", "policy.max_attempts"},
        {"{\"max_call_attempts\":11}", "policy.max_call_attempts"},
        {"{\"channels\":[\"fax\"]}", "policy.channels"},
        {"{\"channels\":[\"gate\"]}", "policy.channels"},
        {"{\"channels\":\"voice\"}", "policy.channels"},
        {"{\"countries\":[\"USA\"]}", "policy.countries"},
        {"{\"countries\":[\"US\"]}", "policy.countries"},
        {"{\"limits\":{\"user_hour\":-1}}", "policy.limits"},
        {"{\"limits\":{\"users\":1}}", "policy.limits.users"},
        {"{\"default_locale\":\"x\"}", "policy.default_locale"},
        {"{\"default_locale\":\"de DE\"}", "policy.default_locale"},
        {"{\"max_failed_verify_per_hour\":0}", "policy.max_failed_verify_per_hour"},
        {"{\"fallback_after_seconds\":1}", "policy.fallback_after_seconds"},
        {"{\"colour\":\"red\"}", "policy.colour"},
        {"{\"templates\":{\"en-US\":{\"sms\":\"no code here\"}}}", "policy.templates.en-US.sms"},
        {"{\"templates\":{\"en-US\":{\"jingle\":\"la\"}}}", "policy.templates.en-US.jingle"},
        {"{\"templates\":[]}", "policy.templates"},
        {"[]", "policy"},
        {"not json", "policy"},
    };

    CHECK_EQ_INT(otp_policy_apply_text(&p, "{}", err, sizeof(err)), 0);
    CHECK_EQ_STR(p.brand, "Acme");
    CHECK_EQ_INT(otp_policy_apply_text(
                     &p,
                     "{\"brand\":\"Beta Bank\",\"caller_id\":\"+15550100001\","
                     "\"caller_ids\":{\"gb\":\"+442071234567\",\"de\":\"+493012345678\"},"
                     "\"code_length\":8,\"min_code_length\":7,\"ttl_seconds\":120,"
                     "\"max_ttl_seconds\":240,\"max_attempts\":3,\"max_call_attempts\":2,"
                     "\"channels\":[\"voice\",\"gate\"],\"countries\":[\"gb\",\"de\"],"
                     "\"limits\":{\"phone_15min\":1,\"phone_day\":2,\"user_hour\":3,"
                     "\"country_hour\":4},\"default_locale\":\"de-DE\","
                     "\"max_failed_verify_per_hour\":7,\"fallback_after_seconds\":30,"
                     "\"templates\":{\"en-US\":{\"intro\":\"Your {brand} sign-in code is\"}}}",
                     err, sizeof(err)),
                 0);
    CHECK_EQ_STR(p.brand, "Beta Bank");
    CHECK_EQ_STR(otp_policy_caller_id(&p, "gb"), "+442071234567");
    CHECK_EQ_STR(otp_policy_caller_id(&p, "de"), "+493012345678");
    CHECK_EQ_STR(otp_policy_caller_id(&p, "fr"), "+15550100001");
    CHECK_EQ_INT(p.code_length, 8);
    CHECK_EQ_INT(p.min_code_length, 7);
    CHECK_EQ_INT(p.ttl_s, 120);
    CHECK_EQ_INT(p.max_ttl_s, 240);
    CHECK_EQ_INT(p.max_attempts, 3);
    CHECK_EQ_INT(p.max_call_attempts, 2);
    CHECK_EQ_INT(p.channels, OTP_CH_VOICE | OTP_CH_GATE);
    CHECK(otp_policy_country_allowed(&p, "gb"));
    CHECK(!otp_policy_country_allowed(&p, "us"));
    CHECK(!otp_policy_country_allowed(&p, ""));
    CHECK_EQ_INT(p.limit_phone_15min, 1);
    CHECK_EQ_INT(p.limit_phone_day, 2);
    CHECK_EQ_INT(p.limit_user_hour, 3);
    CHECK_EQ_INT(p.limit_country_hour, 4);
    CHECK_EQ_STR(p.default_locale, "de-DE");
    CHECK_EQ_INT(p.max_failed_verify_per_hour, 7);
    CHECK_EQ_INT(p.fallback_after_s, 30);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(p.templates, "en-US"), "intro")),
                 "Your {brand} sign-in code is");
    /* null keeps the base's; [] countries = all again. */
    CHECK_EQ_INT(otp_policy_apply_text(&p, "{\"brand\":null,\"countries\":[]}", err, sizeof(err)),
                 0);
    CHECK_EQ_STR(p.brand, "Beta Bank");
    CHECK(otp_policy_country_allowed(&p, "us"));
    /* The JSON form reads back as the same policy. */
    {
        json_t *o = otp_policy_to_json(&p);
        otp_policy_t q = base();
        CHECK(o != NULL);
        json_t *o2 = NULL;
        char *a = NULL, *b = NULL;
        CHECK(o != NULL);
        CHECK_EQ_INT(otp_policy_apply(&q, o, err, sizeof(err)), 0);
        o2 = otp_policy_to_json(&q);
        a = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        b = json_dumps(o2, JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_EQ_STR(a, b);
        CHECK(strstr(a, "\"countries\":[]") != NULL);
        CHECK(strstr(a, "\"templates\":{\"en-US\":{\"intro\":\"Your {brand} sign-in code is\"}}") !=
              NULL);
        free(a);
        free(b);
        json_decref(o);
        json_decref(o2);
        otp_policy_clear(&q);
    }
    /* {} takes the service's words away: the catalog's again. */
    CHECK_EQ_INT(otp_policy_apply_text(&p, "{\"templates\":{}}", err, sizeof(err)), 0);
    CHECK(p.templates == NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        otp_policy_t q = base();
        unit_ctx("%s", bad[i][0]);
        err[0] = '\0';
        CHECK_EQ_INT(otp_policy_apply_text(&q, bad[i][0], err, sizeof(err)), -1);
        CHECK(strncmp(err, bad[i][1], strlen(bad[i][1])) == 0);
        otp_policy_clear(&q);
    }
    unit_ctx(NULL);
}

static void names_and_scopes(void)
{
    char s[32];

    CHECK(otp_service_name_ok("default"));
    CHECK(otp_service_name_ok("shop-eu-2"));
    CHECK(otp_service_name_ok("0123456789abcdef0123456789abcdef"));
    CHECK(!otp_service_name_ok("0123456789abcdef0123456789abcdefg"));
    CHECK(!otp_service_name_ok(""));
    CHECK(!otp_service_name_ok("-a"));
    CHECK(!otp_service_name_ok("Shop"));
    CHECK(!otp_service_name_ok("a.b"));
    CHECK(!otp_service_name_ok("a_b"));
    CHECK(!otp_service_name_ok("dlq"));
    CHECK_EQ_INT(otp_scopes_parse("create,verify,read"), OTP_SCOPE_ALL);
    CHECK_EQ_INT(otp_scopes_parse("read"), OTP_SCOPE_READ);
    CHECK_EQ_INT(otp_scopes_parse("verify,create"), OTP_SCOPE_VERIFY | OTP_SCOPE_CREATE);
    CHECK_EQ_INT(otp_scopes_parse(""), 0);
    CHECK_EQ_INT(otp_scopes_parse("read,"), OTP_SCOPE_READ);
    CHECK_EQ_INT(otp_scopes_parse("admin"), 0);
    CHECK_EQ_INT(otp_scopes_parse("read,write"), 0);
    for (unsigned m = 1; m <= OTP_SCOPE_ALL; m++) {
        otp_scopes_format(m, s, sizeof(s));
        unit_ctx("%u", m);
        CHECK_EQ_INT(otp_scopes_parse(s), m);
    }
    unit_ctx(NULL);
}

static void topics(void)
{
    char svc[OTP_SERVICE_MAX + 1], t[128], pat[1024];
    static const char *const yes[] = {
        "otp.requested.shop", "otp.requested.d",   "otp.requested.dl",    "otp.requested.dlqx",
        "otp.requested.dla",  "otp.requested.xlq", "otp.requested.a-b-c", "otp.requested.0"};
    static const char *const no[] = {
        "otp.requested",       "otp.requested.dlq",     "otp.requested.",     "otp.requested.-a",
        "otp.requested.Shop",  "otp.requested.a.b",     "otp.requestedXshop", "otp.call_status",
        "xotp.requested.shop", "otp.requested.shop.dlq"};

    CHECK_EQ_STR(otp_services_topic_service("otp.requested", "otp.requested", svc), "default");
    CHECK_EQ_STR(otp_services_topic_service("otp.requested", "otp.requested.shop", svc), "shop");
    CHECK(otp_services_topic_service("otp.requested", "otp.requested.dlq", svc) == NULL);
    CHECK(otp_services_topic_service("otp.requested", "otp.requested.Shop", svc) == NULL);
    CHECK(otp_services_topic_service("otp.requested", "otp.requestedshop", svc) == NULL);
    CHECK(otp_services_topic_service("otp.requested", "other", svc) == NULL);
    CHECK_EQ_INT(otp_services_topic("otp.requested", "default", t, sizeof(t)), 0);
    CHECK_EQ_STR(t, "otp.requested");
    CHECK_EQ_INT(otp_services_topic("otp.requested", "shop", t, sizeof(t)), 0);
    CHECK_EQ_STR(t, "otp.requested.shop");
    CHECK_EQ_INT(otp_services_topic("otp.requested", "shop", t, 10), -1);

    CHECK_EQ_INT(otp_services_topic_pattern("otp.requested", "otp.requested.dlq", pat, sizeof(pat)),
                 0);
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        unit_ctx("%s ~ %s", yes[i], pat);
        CHECK_EQ_INT(matches(pat, yes[i]), 1);
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        unit_ctx("%s !~ %s", no[i], pat);
        CHECK_EQ_INT(matches(pat, no[i]), 0);
    }
    /* A dead-letter topic elsewhere: nothing to leave out. */
    CHECK_EQ_INT(otp_services_topic_pattern("otp.requested", "dead.letters", pat, sizeof(pat)), 0);
    unit_ctx("%s", pat);
    CHECK_EQ_INT(matches(pat, "otp.requested.dlq"), 1);
    CHECK_EQ_INT(matches(pat, "otp.requested.shop"), 1);
    CHECK_EQ_INT(matches(pat, "otp.requested"), 0);
    /* Another reserved word (a DLQ named otp.requested.bad-letters). */
    CHECK_EQ_INT(
        otp_services_topic_pattern("otp.requested", "otp.requested.bad-letters", pat, sizeof(pat)),
        0);
    unit_ctx("%s", pat);
    CHECK_EQ_INT(matches(pat, "otp.requested.bad-letters"), 0);
    CHECK_EQ_INT(matches(pat, "otp.requested.bad-letter"), 1);
    CHECK_EQ_INT(matches(pat, "otp.requested.bad-lettersx"), 1);
    CHECK_EQ_INT(matches(pat, "otp.requested.bad"), 1);
    CHECK_EQ_INT(otp_services_topic_pattern("otp.requested", "otp.requested.dlq", pat, 20), -1);
    unit_ctx(NULL);
}

int main(int argc, char **argv)
{
    (void)argc;
    overrides();
    names_and_scopes();
    topics();
    return unit_finish(argv[0]);
}
