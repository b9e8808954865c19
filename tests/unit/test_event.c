/* SPDX-License-Identifier: Apache-2.0 */
/* otp_event: otp.requested parsing and its reasons, the JSON round trip, the
 * DLQ envelope, verify request bodies, locale tags. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_event.h"
#include "otp_time.h"
#include "unit.h"

#define RID "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01"
#define RID_UP "0B6E2A52-6D8E-4C8A-9F55-0A3E3F6C1D01"
/* A good event, missing the fields given after it. */
#define F_RID "\"request_id\":\"" RID "\""
#define F_USER "\"user_id\":\"u-42\""
#define F_PHONE "\"phone\":\"+14155552671\""
#define F_AT "\"requested_at\":\"2026-01-15T09:30:00Z\""
#define GOOD "{" F_RID "," F_USER "," F_PHONE "," F_AT
#define EV(extra) GOOD extra "}"

/* Parses a copy of exactly len bytes on the heap, so a read past len is an
 * ASan error rather than a lucky read of a NUL. */
static int parse(const char *buf, size_t len, otp_request_t *req, char *reason, size_t rsz,
                 char *err, size_t esz)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    if (len)
        memcpy(copy, buf, len);
    rc = otp_request_parse(copy, len, req, reason, rsz, err, esz);
    free(copy);
    return rc;
}

static void test_request_good(void)
{
    otp_request_t r;
    char reason[64], err[256];
    int64_t at;

    reason[0] = err[0] = '\0';
    if (!CHECK_EQ_INT(parse(EV(""), strlen(EV("")), &r, reason, sizeof(reason), err, sizeof(err)),
                      0)) {
        printf("    reason=%s err=%s\n", reason, err);
        return;
    }
    CHECK_EQ_STR(r.request_id, RID);
    CHECK_EQ_STR(r.user_id, "u-42");
    CHECK_EQ_STR(r.phone, "+14155552671");
    CHECK_EQ_STR(r.locale, "");
    CHECK_EQ_STR(r.purpose, "login");
    CHECK_EQ_INT(otp_time_parse("2026-01-15T09:30:00Z", &at), 0);
    CHECK_EQ_INT(r.requested_at_ms, at);
    CHECK_EQ_INT(r.ttl_seconds, 0);
    CHECK_EQ_INT(r.code_length, 0);
    CHECK_EQ_INT(r.delivery.gate, -1);
    CHECK_EQ_INT(r.delivery.amd, -1);
    CHECK_EQ_INT(r.delivery.sms_fallback, -1);
    CHECK_EQ_STR(r.metadata, "");

    /* every optional field */
    {
        const char *ev =
            "{\"schema_version\":1,\"request_id\":\"" RID_UP "\",\"user_id\":\"user \\u00e9 42\","
            "\"phone\":\"+4915112345678\",\"locale\":\"de-DE\",\"purpose\":\"password_reset.v2-x\","
            "\"requested_at\":\"2026-01-15T10:30:00.250+01:00\",\"ttl_seconds\":600,"
            "\"code_length\":10,\"delivery\":{\"gate\":true,\"amd\":false,\"sms_fallback\":true},"
            "\"metadata\":{\"z\":1,\"a\":[true,null],\"m\":{\"k\":\"v\"}}}";
        CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0);
        CHECK_EQ_STR(r.request_id, RID); /* lower-cased */
        CHECK_EQ_STR(r.user_id, "user \xc3\xa9 42");
        CHECK_EQ_STR(r.phone, "+4915112345678");
        CHECK_EQ_STR(r.locale, "de-DE");
        CHECK_EQ_STR(r.purpose, "password_reset.v2-x");
        CHECK_EQ_INT(r.requested_at_ms, at + 250);
        CHECK_EQ_INT(r.ttl_seconds, 600);
        CHECK_EQ_INT(r.code_length, 10);
        CHECK_EQ_INT(r.delivery.gate, 1);
        CHECK_EQ_INT(r.delivery.amd, 0);
        CHECK_EQ_INT(r.delivery.sms_fallback, 1);
        CHECK_EQ_STR(r.metadata, "{\"a\":[true,null],\"m\":{\"k\":\"v\"},\"z\":1}");
    }
    /* the other bounds, nulls for the optional locale and metadata, one delivery key */
    {
        const char *ev =
            EV(",\"ttl_seconds\":60,\"code_length\":4,\"locale\":null,\"metadata\":null,"
               "\"delivery\":{\"amd\":true},\"locale\":null");
        /* (the duplicate "locale" above must be refused; the same without it passes) */
        const char *ev2 =
            EV(",\"ttl_seconds\":60,\"code_length\":4,\"locale\":null,\"metadata\":null,"
               "\"delivery\":{\"amd\":true}");
        CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), -1);
        CHECK_EQ_INT(parse(ev2, strlen(ev2), &r, reason, sizeof(reason), err, sizeof(err)), 0);
        CHECK_EQ_INT(r.ttl_seconds, 60);
        CHECK_EQ_INT(r.code_length, 4);
        CHECK_EQ_STR(r.locale, "");
        CHECK_EQ_STR(r.metadata, "");
        CHECK_EQ_INT(r.delivery.gate, -1);
        CHECK_EQ_INT(r.delivery.amd, 1);
        CHECK_EQ_INT(r.delivery.sms_fallback, -1);
    }
    /* whitespace, 128-byte user_id, 64-byte purpose */
    {
        char ev[1024], user[OTP_USER_ID_MAX + 1], purpose[OTP_PURPOSE_MAX + 1];
        memset(user, 'u', OTP_USER_ID_MAX);
        user[OTP_USER_ID_MAX] = '\0';
        memset(purpose, 'p', OTP_PURPOSE_MAX);
        purpose[OTP_PURPOSE_MAX] = '\0';
        snprintf(ev, sizeof(ev),
                 " {\n\t\"request_id\" : \"%s\" ,\"user_id\":\"%s\",\"phone\":\"+14155552671\","
                 "\"purpose\":\"%s\",\"requested_at\":\"2026-01-15 09:30:00Z\"}\n ",
                 RID, user, purpose);
        CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0);
        CHECK_EQ_STR(r.user_id, user);
        CHECK_EQ_STR(r.purpose, purpose);
    }
}

#define RID2 "5d0f3c1e-8a7b-4e2d-9c6f-1b2a3c4d5e6f"
#define SEALED "c2VhbGVkLWJveC1vZi10aGUtY29kZQ=="

/* Resends, the SMS channel and keypad mode. */
static void test_request_delivery_modes(void)
{
    otp_request_t r;
    char reason[64], err[256];
    const char *ev;

    /* a resend may leave out user_id and phone */
    ev = "{" F_RID ",\"resend_of\":\"5D0F3C1E-8A7B-4E2D-9C6F-1B2A3C4D5E6F\"," F_AT "}";
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_STR(r.resend_of, RID2); /* lower-cased */
        CHECK_EQ_STR(r.user_id, "");
        CHECK_EQ_STR(r.phone, "");
    }
    ev = EV(",\"resend_of\":\"" RID2 "\"");
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_STR(r.resend_of, RID2);
        CHECK_EQ_STR(r.user_id, "u-42");
        CHECK_EQ_STR(r.phone, "+14155552671");
    }
    /* channels and modes */
    ev = EV(",\"delivery\":{\"channel\":\"sms\"}");
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_INT(r.delivery.sms, 1);
        CHECK_EQ_INT(r.delivery.keypad, 0);
    }
    ev = EV(",\"delivery\":{\"channel\":\"voice\",\"mode\":\"speak\"}");
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_INT(r.delivery.sms, 0);
        CHECK_EQ_INT(r.delivery.keypad, 0);
    }
    ev = EV(",\"delivery\":{\"mode\":\"keypad\"},\"keypad_code_sealed\":\"" SEALED "\"");
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_INT(r.delivery.keypad, 1);
        CHECK_EQ_STR(r.keypad_code_sealed, SEALED);
    }
    /* without delivery, neither */
    ev = EV("");
    if (CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0)) {
        CHECK_EQ_INT(r.delivery.sms, 0);
        CHECK_EQ_INT(r.delivery.keypad, 0);
        CHECK_EQ_STR(r.resend_of, "");
        CHECK_EQ_STR(r.keypad_code_sealed, "");
    }
}

/* Builds a message of exactly `len` bytes: a good event padded with spaces. */
static char *padded_event(size_t len)
{
    const char *ev = EV("");
    size_t n = strlen(ev);
    char *buf = malloc(len + 1);

    memset(buf, ' ', len);
    memcpy(buf, ev, n < len ? n : len);
    buf[len] = '\0';
    return buf;
}

/* An event whose metadata serialises to exactly `n` bytes of compact JSON. */
static char *metadata_event(size_t n)
{
    size_t fill = n - 8; /* {"k":"<fill>"} */
    char *val = malloc(fill + 1), *ev = malloc(n + 512);

    memset(val, 'm', fill);
    val[fill] = '\0';
    snprintf(ev, n + 512, GOOD ",\"metadata\":{\"k\":\"%s\"}}", val);
    free(val);
    return ev;
}

/* An event whose metadata holds `depth` nested arrays. */
static char *nested_event(size_t depth)
{
    char *ev = malloc(2 * depth + 256);
    size_t at = (size_t)snprintf(ev, 256, "%s", GOOD ",\"metadata\":{\"a\":");

    memset(ev + at, '[', depth);
    at += depth;
    memset(ev + at, ']', depth);
    at += depth;
    memcpy(ev + at, "}}", 3);
    return ev;
}

static const struct {
    const char *what;
    const char *msg; /* NULL: built in the test (see below) */
    size_t len;      /* 0: strlen(msg) */
    const char *reason;
    int named; /* the rejection still names the request */
} bad_requests[] = {
    {"empty", "", 0, "empty", 0},
    {"not JSON", "hello", 0, "invalid_json", 0},
    {"truncated JSON", GOOD, 0, "invalid_json", 0},
    {"trailing garbage", EV("") " x", 0, "invalid_json", 0},
    {"two objects", EV("") EV(""), 0, "invalid_json", 0},
    {"array", "[" EV("") "]", 0, "not_an_object", 0},
    /* jansson's json_loadb takes only an object or an array at the top
     * (no JSON_DECODE_ANY), so a bare string, number or null is invalid_json. */
    {"string", "\"" RID "\"", 0, "invalid_json", 0},
    {"number", "42", 0, "invalid_json", 0},
    {"null", "null", 0, "invalid_json", 0},
    {"missing request_id", "{" F_USER "," F_PHONE "," F_AT "}", 0, "missing_request_id", 0},
    {"request_id a number", "{\"request_id\":42," F_USER "," F_PHONE "," F_AT "}", 0,
     "invalid_request_id", 0},
    {"request_id not a UUID", "{\"request_id\":\"abc\"," F_USER "," F_PHONE "," F_AT "}", 0,
     "invalid_request_id", 0},
    {"request_id in braces",
     "{\"request_id\":\"{0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d0}\"," F_USER "," F_PHONE "," F_AT "}",
     0, "invalid_request_id", 0},
    {"request_id null", "{\"request_id\":null," F_USER "," F_PHONE "," F_AT "}", 0,
     "invalid_request_id", 0},
    {"missing user_id", "{" F_RID "," F_PHONE "," F_AT "}", 0, "missing_user_id", 1},
    {"user_id empty", "{" F_RID ",\"user_id\":\"\"," F_PHONE "," F_AT "}", 0, "invalid_user_id", 1},
    {"user_id a number", "{" F_RID ",\"user_id\":42," F_PHONE "," F_AT "}", 0, "invalid_user_id",
     1},
    {"user_id with a tab", "{" F_RID ",\"user_id\":\"a\\tb\"," F_PHONE "," F_AT "}", 0,
     "invalid_user_id", 1},
    {"user_id with a newline", "{" F_RID ",\"user_id\":\"a\\nb\"," F_PHONE "," F_AT "}", 0,
     "invalid_user_id", 1},
    {"user_id with DEL", "{" F_RID ",\"user_id\":\"a\\u007fb\"," F_PHONE "," F_AT "}", 0,
     "invalid_user_id", 1},
    {"user_id with ESC", "{" F_RID ",\"user_id\":\"\\u001b[31m\"," F_PHONE "," F_AT "}", 0,
     "invalid_user_id", 1},
    {"user_id too long", NULL, 0, "invalid_user_id", 1},
    {"missing phone", "{" F_RID "," F_USER "," F_AT "}", 0, "missing_phone", 1},
    {"phone without +", "{" F_RID "," F_USER ",\"phone\":\"14155552671\"," F_AT "}", 0,
     "invalid_phone", 1},
    {"phone a number", "{" F_RID "," F_USER ",\"phone\":14155552671," F_AT "}", 0, "invalid_phone",
     1},
    {"phone with spaces", "{" F_RID "," F_USER ",\"phone\":\"+1 415 555 2671\"," F_AT "}", 0,
     "invalid_phone", 1},
    {"phone too long", "{" F_RID "," F_USER ",\"phone\":\"+1234567890123456\"," F_AT "}", 0,
     "invalid_phone", 1},
    {"locale a word", EV(",\"locale\":\"english\""), 0, "invalid_locale", 1},
    {"locale one letter", EV(",\"locale\":\"e\""), 0, "invalid_locale", 1},
    {"locale trailing dash", EV(",\"locale\":\"en-\""), 0, "invalid_locale", 1},
    {"locale underscore", EV(",\"locale\":\"en_US\""), 0, "invalid_locale", 1},
    {"locale a number", EV(",\"locale\":5"), 0, "invalid_locale", 1},
    {"locale with markup", EV(",\"locale\":\"en-<US>\""), 0, "invalid_locale", 1},
    {"purpose upper-case", EV(",\"purpose\":\"Login\""), 0, "invalid_purpose", 1},
    {"purpose empty", EV(",\"purpose\":\"\""), 0, "invalid_purpose", 1},
    {"purpose with space", EV(",\"purpose\":\"log in\""), 0, "invalid_purpose", 1},
    {"purpose a bool", EV(",\"purpose\":true"), 0, "invalid_purpose", 1},
    {"purpose too long",
     EV(",\"purpose\":\"p23456789012345678901234567890123456789012345678901234567"
        "89012345\""),
     0, "invalid_purpose", 1},
    {"missing requested_at", "{" F_RID "," F_USER "," F_PHONE "}", 0, "missing_requested_at", 1},
    {"requested_at bad month",
     "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"2026-13-01T00:00:00Z\"}", 0,
     "invalid_requested_at", 1},
    {"requested_at bad day",
     "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"2026-04-31T00:00:00Z\"}", 0,
     "invalid_requested_at", 1},
    {"requested_at no zone",
     "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"2026-01-15T09:30:00\"}", 0,
     "invalid_requested_at", 1},
    {"requested_at a date", "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"2026-01-15\"}", 0,
     "invalid_requested_at", 1},
    {"requested_at epoch number", "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":1768469400}",
     0, "invalid_requested_at", 1},
    {"ttl too small", EV(",\"ttl_seconds\":59"), 0, "invalid_ttl", 1},
    {"ttl too large", EV(",\"ttl_seconds\":601"), 0, "invalid_ttl", 1},
    {"ttl fractional", EV(",\"ttl_seconds\":120.5"), 0, "invalid_ttl", 1},
    {"ttl real", EV(",\"ttl_seconds\":120.0"), 0, "invalid_ttl", 1},
    {"ttl string", EV(",\"ttl_seconds\":\"120\""), 0, "invalid_ttl", 1},
    {"ttl huge", EV(",\"ttl_seconds\":4294967416"), 0, "invalid_ttl", 1},
    {"ttl negative", EV(",\"ttl_seconds\":-300"), 0, "invalid_ttl", 1},
    {"code_length 3", EV(",\"code_length\":3"), 0, "invalid_code_length", 1},
    {"code_length 11", EV(",\"code_length\":11"), 0, "invalid_code_length", 1},
    {"code_length string", EV(",\"code_length\":\"6\""), 0, "invalid_code_length", 1},
    {"code_length null", EV(",\"code_length\":null"), 0, "invalid_code_length", 1},
    {"delivery an array", EV(",\"delivery\":[]"), 0, "invalid_delivery", 1},
    {"delivery a bool", EV(",\"delivery\":true"), 0, "invalid_delivery", 1},
    {"delivery unknown key", EV(",\"delivery\":{\"sms\":true}"), 0, "invalid_delivery", 1},
    {"delivery gate a string", EV(",\"delivery\":{\"gate\":\"yes\"}"), 0, "invalid_delivery", 1},
    {"delivery amd a number", EV(",\"delivery\":{\"amd\":1}"), 0, "invalid_delivery", 1},
    {"delivery sms_fallback null", EV(",\"delivery\":{\"sms_fallback\":null}"), 0,
     "invalid_delivery", 1},
    {"metadata an array", EV(",\"metadata\":[1]"), 0, "invalid_metadata", 1},
    {"metadata a string", EV(",\"metadata\":\"x\""), 0, "invalid_metadata", 1},
    {"metadata too large", NULL, 0, "metadata_too_large", 1},
    {"resend_of not a UUID", EV(",\"resend_of\":\"abc\""), 0, "invalid_resend_of", 1},
    {"resend_of a number", EV(",\"resend_of\":7"), 0, "invalid_resend_of", 1},
    {"resend_of null", EV(",\"resend_of\":null"), 0, "invalid_resend_of", 1},
    {"resend with a bad phone", "{" F_RID ",\"resend_of\":\"" RID2 "\",\"phone\":\"123\"," F_AT "}",
     0, "invalid_phone", 1},
    {"resend without requested_at", "{" F_RID ",\"resend_of\":\"" RID2 "\"}", 0,
     "missing_requested_at", 1},
    {"channel unknown", EV(",\"delivery\":{\"channel\":\"fax\"}"), 0, "invalid_delivery", 1},
    {"channel a bool", EV(",\"delivery\":{\"channel\":true}"), 0, "invalid_delivery", 1},
    {"mode unknown", EV(",\"delivery\":{\"mode\":\"spell\"}"), 0, "invalid_delivery", 1},
    {"keypad without the sealed code", EV(",\"delivery\":{\"mode\":\"keypad\"}"), 0,
     "invalid_keypad_code", 1},
    {"sealed code without keypad", EV(",\"keypad_code_sealed\":\"" SEALED "\""), 0,
     "invalid_keypad_code", 1},
    {"sealed code empty", EV(",\"delivery\":{\"mode\":\"keypad\"},\"keypad_code_sealed\":\"\""), 0,
     "invalid_keypad_code", 1},
    {"sealed code a number", EV(",\"delivery\":{\"mode\":\"keypad\"},\"keypad_code_sealed\":1"), 0,
     "invalid_keypad_code", 1},
    {"keypad by SMS",
     EV(",\"delivery\":{\"mode\":\"keypad\",\"channel\":\"sms\"},"
        "\"keypad_code_sealed\":\"" SEALED "\""),
     0, "invalid_delivery", 1},
    {"unknown field", EV(",\"code\":\"123456\""), 0, "unknown_field", 1},
    {"unknown field, case", EV(",\"Phone\":\"+14155552671\""), 0, "unknown_field", 1},
    {"duplicate key", EV(",\"phone\":\"+4915112345678\""), 0, "invalid_json", 0},
    {"duplicate request_id", EV(",\"request_id\":\"" RID "\""), 0, "invalid_json", 0},
    {"schema_version 2", EV(",\"schema_version\":2"), 0, "unsupported_schema_version", 1},
    {"schema_version string", EV(",\"schema_version\":\"1\""), 0, "unsupported_schema_version", 1},
    {"too large", NULL, OTP_EVENT_MAX_BYTES + 1, "too_large", 0},
    {"embedded NUL byte", GOOD "}\0", sizeof(GOOD "}\0") - 1, "invalid_json", 0},
    {"NUL escape in user_id", "{" F_RID ",\"user_id\":\"a\\u0000b\"," F_PHONE "," F_AT "}", 0,
     "invalid_json", 0},
    {"invalid UTF-8", "{" F_RID ",\"user_id\":\"a\xff\"," F_PHONE "," F_AT "}", 0, "invalid_json",
     0},
    {"lone surrogate", "{" F_RID ",\"user_id\":\"\\ud800\"," F_PHONE "," F_AT "}", 0,
     "invalid_json", 0},
    {"nesting deeper than the parser allows", NULL, 0, "invalid_json", 0},
};

static void test_request_bad(void)
{
    size_t n = sizeof(bad_requests) / sizeof(*bad_requests);

    CHECK(n >= 25);
    for (size_t i = 0; i < n; i++) {
        otp_request_t r;
        char reason[64] = "unset", err[256] = "";
        const char *msg = bad_requests[i].msg;
        size_t len = bad_requests[i].len;
        char *built = NULL;

        if (!msg && strcmp(bad_requests[i].reason, "too_large") == 0) {
            built = padded_event(len);
        } else if (!msg && strcmp(bad_requests[i].reason, "metadata_too_large") == 0) {
            built = metadata_event(OTP_METADATA_MAX + 1);
        } else if (!msg && strcmp(bad_requests[i].reason, "invalid_json") == 0) {
            /* deeper than jansson's limit of 2048 */
            built = nested_event(3000);
        } else if (!msg) {
            char user[OTP_USER_ID_MAX + 2];
            memset(user, 'u', OTP_USER_ID_MAX + 1);
            user[OTP_USER_ID_MAX + 1] = '\0';
            built = malloc(1024);
            snprintf(built, 1024, "{" F_RID ",\"user_id\":\"%s\"," F_PHONE "," F_AT "}", user);
        }
        if (built)
            msg = built;
        if (!len)
            len = strlen(msg);
        unit_ctx("bad request %zu (%s)", i, bad_requests[i].what);
        CHECK_EQ_INT(parse(msg, len, &r, reason, sizeof(reason), err, sizeof(err)), -1);
        CHECK_EQ_STR(reason, bad_requests[i].reason);
        CHECK(err[0] != '\0');
        if (bad_requests[i].named)
            CHECK_EQ_STR(r.request_id, RID);
        else
            CHECK_EQ_STR(r.request_id, "");
        free(built);
    }
    unit_ctx(NULL);
}

static void test_request_bounds(void)
{
    otp_request_t r;
    char reason[64], err[256];
    char *ev;

    /* exactly OTP_EVENT_MAX_BYTES is accepted */
    ev = padded_event(OTP_EVENT_MAX_BYTES);
    CHECK_EQ_INT(parse(ev, OTP_EVENT_MAX_BYTES, &r, reason, sizeof(reason), err, sizeof(err)), 0);
    free(ev);
    /* metadata of exactly OTP_METADATA_MAX bytes is accepted and kept whole */
    ev = metadata_event(OTP_METADATA_MAX);
    CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0);
    CHECK_EQ_INT(strlen(r.metadata), OTP_METADATA_MAX);
    free(ev);
    /* nesting within the parser's limit is fine */
    ev = nested_event(100);
    CHECK_EQ_INT(parse(ev, strlen(ev), &r, reason, sizeof(reason), err, sizeof(err)), 0);
    free(ev);
    /* only `len` bytes are read: a good event followed by junk, cut before the junk */
    {
        const char *s = EV("") "garbage";
        CHECK_EQ_INT(parse(s, strlen(EV("")), &r, reason, sizeof(reason), err, sizeof(err)), 0);
    }
    /* small reason/errstr buffers are cut, not overrun */
    {
        char rs[4], es[8];
        CHECK_EQ_INT(otp_request_parse("[]", 2, &r, rs, sizeof(rs), es, sizeof(es)), -1);
        CHECK_EQ_STR(rs, "not");
        CHECK_EQ_INT(strlen(es), sizeof(es) - 1);
    }
}

static void check_same_request(const otp_request_t *a, const otp_request_t *b)
{
    CHECK_EQ_STR(a->request_id, b->request_id);
    CHECK_EQ_STR(a->user_id, b->user_id);
    CHECK_EQ_STR(a->phone, b->phone);
    CHECK_EQ_STR(a->locale, b->locale);
    CHECK_EQ_STR(a->purpose, b->purpose);
    CHECK_EQ_INT(a->requested_at_ms, b->requested_at_ms);
    CHECK_EQ_INT(a->ttl_seconds, b->ttl_seconds);
    CHECK_EQ_INT(a->code_length, b->code_length);
    CHECK_EQ_INT(a->delivery.gate, b->delivery.gate);
    CHECK_EQ_INT(a->delivery.amd, b->delivery.amd);
    CHECK_EQ_INT(a->delivery.sms_fallback, b->delivery.sms_fallback);
    CHECK_EQ_INT(a->delivery.sms, b->delivery.sms);
    CHECK_EQ_INT(a->delivery.keypad, b->delivery.keypad);
    CHECK_EQ_STR(a->metadata, b->metadata);
    CHECK_EQ_STR(a->resend_of, b->resend_of);
    CHECK_EQ_STR(a->keypad_code_sealed, b->keypad_code_sealed);
}

static void round_trip(const char *what, const char *ev)
{
    otp_request_t a, b;
    char reason[64], err[256];
    char *json;

    unit_ctx("round trip %s", what);
    if (!CHECK_EQ_INT(parse(ev, strlen(ev), &a, reason, sizeof(reason), err, sizeof(err)), 0)) {
        printf("    %s: %s\n", reason, err);
        unit_ctx(NULL);
        return;
    }
    json = otp_request_to_json(&a);
    if (CHECK(json != NULL)) {
        if (!CHECK_EQ_INT(parse(json, strlen(json), &b, reason, sizeof(reason), err, sizeof(err)),
                          0))
            printf("    %s: %s: %s\n", reason, err, json);
        else
            check_same_request(&a, &b);
    }
    free(json);
    unit_ctx(NULL);
}

static void test_round_trip(void)
{
    round_trip("minimal", EV(""));
    round_trip(
        "full",
        EV(",\"locale\":\"pt-BR\",\"purpose\":\"signup\",\"ttl_seconds\":120,\"code_length\":8,"
           "\"delivery\":{\"gate\":false,\"amd\":true,\"sms_fallback\":false},"
           "\"metadata\":{\"tenant\":\"t1\",\"n\":[1,2,{\"x\":null}],\"q\":\"\\\"<&>\"}"));
    round_trip("offset and fraction", "{" F_RID "," F_USER "," F_PHONE
                                      ",\"requested_at\":\"2026-06-30T23:59:59.999-07:30\"}");
    round_trip("resend", "{" F_RID ",\"resend_of\":\"" RID2 "\"," F_AT "}");
    round_trip("sms", EV(",\"delivery\":{\"channel\":\"sms\",\"sms_fallback\":true}"));
    round_trip("keypad",
               EV(",\"delivery\":{\"mode\":\"keypad\"},\"keypad_code_sealed\":\"" SEALED "\""));
    round_trip("voice, speak", EV(",\"delivery\":{\"channel\":\"voice\",\"mode\":\"speak\"}"));
    round_trip("before 1970",
               "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"1969-12-31T23:59:59.5Z\"}");
    /* accepted, so it must serialise to something accepted again */
    round_trip("last minute of 9999 with an offset",
               "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"9999-12-31T23:59:00+01:00\"}");
    /* past 9999 once the offset is applied: refused, as it could not be written back */
    {
        otp_request_t a;
        char reason[64], err[256];
        const char *ev =
            "{" F_RID "," F_USER "," F_PHONE ",\"requested_at\":\"9999-12-31T23:59:00-01:00\"}";
        unit_ctx("year 10000 after the offset");
        CHECK_EQ_INT(parse(ev, strlen(ev), &a, reason, sizeof(reason), err, sizeof(err)), -1);
        CHECK_EQ_STR(reason, "invalid_requested_at");
        unit_ctx(NULL);
    }
    round_trip("unicode user",
               "{" F_RID ",\"user_id\":\"\\u00fc\\u4e2d\\ud83d\\ude00 \\\"q\\\"\"," F_PHONE "," F_AT
               "}");

    /* a request built in code */
    {
        otp_request_t a, b;
        char reason[64], err[256];
        char *json;

        memset(&a, 0, sizeof(a));
        snprintf(a.request_id, sizeof(a.request_id), "%s", RID);
        snprintf(a.user_id, sizeof(a.user_id), "%s", "user@example.com");
        snprintf(a.phone, sizeof(a.phone), "%s", "+819012345678");
        snprintf(a.locale, sizeof(a.locale), "%s", "ja-JP");
        snprintf(a.purpose, sizeof(a.purpose), "%s", "login");
        a.requested_at_ms = 1768469400123LL;
        a.ttl_seconds = 300;
        a.code_length = 6;
        a.delivery.gate = 1;
        a.delivery.amd = -1;
        a.delivery.sms_fallback = 0;
        snprintf(a.metadata, sizeof(a.metadata), "%s", "{\"a\":1}");
        json = otp_request_to_json(&a);
        unit_ctx("round trip from a struct");
        if (CHECK(json != NULL) &&
            CHECK_EQ_INT(parse(json, strlen(json), &b, reason, sizeof(reason), err, sizeof(err)),
                         0))
            check_same_request(&a, &b);
        free(json);
        unit_ctx(NULL);
    }
}

static void test_dlq(void)
{
    static const struct {
        const char *what;
        const char *payload;
        size_t len;
        int text; /* 1: kept as "original" text, 0: "original_base64" */
    } rows[] = {
        {"JSON text", "{\"phone\":\"bad\"}", 15, 1},
        {"text with quotes and unicode", "caf\xc3\xa9 \"<&>\" \xe2\x82\xac \xf0\x9f\x98\x80", 20,
         1},
        {"empty", "", 0, 1},
        {"invalid byte", "\xff\xfe{}", 4, 0},
        {"NUL inside", "{\"a\":\0}", 7, 0},
        {"truncated sequence", "ab\xc3", 3, 0},
        {"overlong NUL", "a\xc0\x80", 3, 0},
        {"UTF-16 surrogate", "a\xed\xa0\x80", 4, 0},
        {"above U+10FFFF", "a\xf5\x80\x80\x80", 5, 0},
        {"overlong slash", "\xe0\x80\xaf", 3, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        char *env = otp_dlq_envelope("invalid_phone", "phone must be E.164", "otp.requested", 3,
                                     987654321012LL, rows[i].payload, rows[i].len);
        json_t *o = env ? json_loads(env, 0, NULL) : NULL;
        json_t *src = json_object_get(o, "source");
        const char *orig = json_string_value(json_object_get(o, "original"));
        const char *b64 = json_string_value(json_object_get(o, "original_base64"));
        int64_t at;

        unit_ctx("dlq %s", rows[i].what);
        if (!CHECK(o != NULL)) {
            free(env);
            continue;
        }
        CHECK_EQ_STR(json_string_value(json_object_get(o, "reason")), "invalid_phone");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "error")), "phone must be E.164");
        CHECK_EQ_STR(json_string_value(json_object_get(src, "topic")), "otp.requested");
        CHECK_EQ_INT(json_integer_value(json_object_get(src, "partition")), 3);
        CHECK_EQ_INT(json_integer_value(json_object_get(src, "offset")), 987654321012LL);
        CHECK_EQ_INT(otp_time_parse(json_string_value(json_object_get(o, "failed_at")), &at), 0);
        /* the original is always there, in exactly one form */
        CHECK((orig != NULL) != (b64 != NULL));
        if (rows[i].text) {
            CHECK(orig != NULL);
            if (orig) {
                CHECK_EQ_INT(json_string_length(json_object_get(o, "original")), rows[i].len);
                CHECK(memcmp(orig, rows[i].payload, rows[i].len) == 0);
            }
        } else if (CHECK(b64 != NULL)) {
            unsigned char bin[64];
            size_t bin_len = 0;
            CHECK_EQ_INT(sodium_base642bin(bin, sizeof(bin), b64, strlen(b64), NULL, &bin_len, NULL,
                                           sodium_base64_VARIANT_ORIGINAL),
                         0);
            CHECK_EQ_INT(bin_len, rows[i].len);
            CHECK(memcmp(bin, rows[i].payload, rows[i].len) == 0);
        }
        json_decref(o);
        free(env);
    }
    unit_ctx(NULL);
}

static int vparse(const char *body, size_t len, char rid[37], char code[11], char *err, size_t esz)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    if (len)
        memcpy(copy, body, len);
    rc = otp_verify_request_parse(copy, len, rid, code, err, esz);
    free(copy);
    return rc;
}

static void test_verify_parse(void)
{
    static const struct {
        const char *body, *rid, *code;
    } good[] = {
        {"{\"request_id\":\"" RID "\",\"code\":\"123456\"}", RID, "123456"},
        {"{\"code\":\"0000\",\"request_id\":\"" RID_UP "\"}", RID, "0000"},
        {" {\n \"request_id\" : \"" RID "\" , \"code\" : \"0123456789\" } ", RID, "0123456789"},
    };
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "\"" RID "\"",
        "null",
        "{}",
        "{\"code\":\"123456\"}",
        "{\"request_id\":\"" RID "\"}",
        "{\"request_id\":\"abc\",\"code\":\"123456\"}",
        "{\"request_id\":42,\"code\":\"123456\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"123\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"12345678901\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"12a456\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"12345 \"}",
        "{\"request_id\":\"" RID "\",\"code\":\"-12345\"}",
        "{\"request_id\":\"" RID "\",\"code\":123456}",
        "{\"request_id\":\"" RID "\",\"code\":null}",
        "{\"request_id\":\"" RID "\",\"code\":\"\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"123456\",\"user_id\":\"u\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"123456\",\"code\":\"654321\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"1234\\u00006\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\"}",
        "{\"request_id\":\"" RID "\",\"code\":\"123456\"} {}",
        "{\"request_id\":\"" RID "\",\"code\":\"123456\"",
    };
    char rid[37], code[11], err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        unit_ctx("verify good %zu", i);
        memset(rid, 'X', sizeof(rid));
        memset(code, 'X', sizeof(code));
        err[0] = '\0';
        if (CHECK_EQ_INT(vparse(good[i].body, strlen(good[i].body), rid, code, err, sizeof(err)),
                         0)) {
            CHECK_EQ_STR(rid, good[i].rid);
            CHECK_EQ_STR(code, good[i].code);
        } else {
            printf("    %s\n", err);
        }
    }
    CHECK(sizeof(bad) / sizeof(*bad) >= 8);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("verify bad %zu: %s", i, bad[i]);
        err[0] = '\0';
        CHECK_EQ_INT(vparse(bad[i], strlen(bad[i]), rid, code, err, sizeof(err)), -1);
        CHECK(err[0] != '\0');
    }
    /* a raw NUL byte inside the body */
    {
        static const char body[] = "{\"request_id\":\"" RID "\",\"code\":\"123456\"}\0";
        unit_ctx("verify raw NUL");
        CHECK_EQ_INT(vparse(body, sizeof(body), rid, code, err, sizeof(err)), -1);
    }
    unit_ctx(NULL);
}

static void test_locale_valid(void)
{
    static const struct {
        const char *s;
        int ok;
    } rows[] = {
        {"en", 1},
        {"en-US", 1},
        {"zh-Hant-TW", 1},
        {"es-419", 1},
        {"fil-PH", 1},
        {"de-CH-1996", 1},
        {"EN-us", 1},
        {"", 0},
        {"e", 0},
        {"english", 0},
        {"en-", 0},
        {"en--US", 0},
        {"en_US", 0},
        {"-US", 0},
        {"en-U", 0},
        {"en-abcdefghi", 0},
        {"en US", 0},
        {"en-US ", 0},
        {"1n-US", 0},
        {"en-ÜS", 0},
        {"en-abcdefgh-abcdefgh-abcdefgh-abcde", 1},  /* 35 characters: OTP_LOCALE_MAX */
        {"en-abcdefgh-abcdefgh-abcdefgh-abcdef", 0}, /* 36 */
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        unit_ctx("locale \"%s\"", rows[i].s);
        CHECK_EQ_INT(otp_locale_valid(rows[i].s), rows[i].ok);
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(otp_locale_valid(NULL), 0);
}

/* Redacts a copy of exactly strlen(in) bytes (ASan catches a read past it)
 * and compares with want. */
static void check_redact(const char *in, const char *want)
{
    size_t len = strlen(in), n = 0;
    char *copy = malloc(len ? len : 1), *out;

    memcpy(copy, in, len);
    out = otp_redact_numbers(copy, len, &n);
    if (CHECK(out != NULL)) {
        CHECK(n == strlen(want));
        if (!CHECK(strcmp(out, want) == 0))
            printf("  redact(%s) = %s, want %s\n", in, out, want);
    }
    free(out);
    free(copy);
}

static void test_redact(void)
{
    check_redact("{\"phone\":\"+14155552671\"}", "{\"phone\":\"+***********\"}");
    check_redact("123456 1234567", "123456 *******");
    check_redact("\\u0031\\u00324155552671", "************");
    check_redact("", "");
    /* Every run of 7 digits, wherever it is, a request id's included (as the
     * DLQ schema says). */
    check_redact("{\"request_id\":\"1234567a-1234-4123-8123-90123456789a\"}",
                 "{\"request_id\":\"*******a-1234-4123-8123-***********a\"}");
    check_redact("0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01");
}

int main(int argc, char **argv)
{
    (void)argc;
    if (otp_crypto_init() != 0) {
        printf("otp_crypto_init failed\n");
        return 1;
    }
    test_request_good();
    test_request_delivery_modes();
    test_request_bad();
    test_request_bounds();
    test_round_trip();
    test_dlq();
    test_redact();
    test_verify_parse();
    test_locale_valid();
    return unit_finish(argv[0]);
}
