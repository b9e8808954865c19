/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: otp_request_parse on arbitrary bytes, and what must hold
 * when it accepts them (valid fields, a JSON round trip) or refuses them (a
 * known reason), plus the DLQ envelope of the same bytes. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_event.h"
#include "otp_phone.h"

static const char *const reasons[] = {
    "empty",
    "too_large",
    "invalid_json",
    "not_an_object",
    "missing_request_id",
    "invalid_request_id",
    "unknown_field",
    "unsupported_schema_version",
    "missing_user_id",
    "invalid_user_id",
    "missing_phone",
    "invalid_phone",
    "invalid_locale",
    "invalid_purpose",
    "missing_requested_at",
    "invalid_requested_at",
    "invalid_ttl",
    "invalid_code_length",
    "invalid_delivery",
    "invalid_metadata",
    "metadata_too_large",
    "invalid_resend_of",
    "invalid_keypad_code",
};

/* 1000-01-01 .. 9999-12-31: the times otp_time_format writes in a form
 * otp_time_parse reads back. Outside it (years 0-999, or pushed past 9999 by
 * an offset) the round trip is a known failure: tests/unit/test_time.c. */
#define MIN_FORMATTABLE_MS (-30610224000000LL)
#define MAX_FORMATTABLE_MS 253402300799999LL

static int same(const otp_request_t *a, const otp_request_t *b)
{
    return strcmp(a->request_id, b->request_id) == 0 && strcmp(a->user_id, b->user_id) == 0 &&
           strcmp(a->phone, b->phone) == 0 && strcmp(a->locale, b->locale) == 0 &&
           strcmp(a->purpose, b->purpose) == 0 && a->requested_at_ms == b->requested_at_ms &&
           a->ttl_seconds == b->ttl_seconds && a->code_length == b->code_length &&
           a->delivery.gate == b->delivery.gate && a->delivery.amd == b->delivery.amd &&
           a->delivery.sms_fallback == b->delivery.sms_fallback &&
           a->delivery.sms == b->delivery.sms && a->delivery.keypad == b->delivery.keypad &&
           strcmp(a->metadata, b->metadata) == 0 && strcmp(a->resend_of, b->resend_of) == 0 &&
           strcmp(a->keypad_code_sealed, b->keypad_code_sealed) == 0;
}

static void check_accepted(const otp_request_t *r)
{
    otp_request_t again;
    char reason[64], err[256];
    char *json;
    int resend = r->resend_of[0] != 0;

    /* a resend may leave user_id and phone to the request it resends */
    if (!otp_uuid_valid(r->request_id) || (resend && !otp_uuid_valid(r->resend_of)) ||
        (!resend && (!r->user_id[0] || !r->phone[0])) ||
        (r->phone[0] && !otp_phone_is_e164(r->phone)) || !r->purpose[0] ||
        (r->delivery.sms != 0 && r->delivery.sms != 1) ||
        (r->delivery.keypad != 0 && r->delivery.keypad != 1) ||
        r->delivery.keypad != (r->keypad_code_sealed[0] != 0) ||
        (r->delivery.keypad && r->delivery.sms) || (r->locale[0] && !otp_locale_valid(r->locale)) ||
        (r->ttl_seconds && (r->ttl_seconds < 60 || r->ttl_seconds > 600)) ||
        (r->code_length && (r->code_length < OTP_CODE_MIN || r->code_length > OTP_CODE_MAX)) ||
        r->delivery.gate < -1 || r->delivery.gate > 1 || r->delivery.amd < -1 ||
        r->delivery.amd > 1 || r->delivery.sms_fallback < -1 || r->delivery.sms_fallback > 1 ||
        strlen(r->metadata) > OTP_METADATA_MAX)
        abort();
    for (const char *p = r->request_id; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            abort();
    for (const char *p = r->resend_of; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            abort();

    if (r->requested_at_ms < MIN_FORMATTABLE_MS || r->requested_at_ms > MAX_FORMATTABLE_MS)
        return;
    json = otp_request_to_json(r);
    if (!json)
        abort();
    if (otp_request_parse(json, strlen(json), &again, reason, sizeof(reason), err, sizeof(err)) !=
            0 ||
        !same(r, &again))
        abort();
    free(json);
}

static void check_refused(const otp_request_t *r, const char *reason, const char *err)
{
    int known = 0;

    for (size_t i = 0; i < sizeof(reasons) / sizeof(*reasons); i++)
        known |= strcmp(reason, reasons[i]) == 0;
    if (!known || !err[0])
        abort();
    if (r->request_id[0] && !otp_uuid_valid(r->request_id))
        abort();
}

static void check_dlq(const uint8_t *data, size_t size)
{
    char *env = otp_dlq_envelope("invalid_json", "fuzz", "otp.requested", 0, 1, data, size);
    json_t *o, *orig, *b64;

    if (!env)
        abort();
    o = json_loads(env, 0, NULL);
    if (!o)
        abort();
    orig = json_object_get(o, "original");
    b64 = json_object_get(o, "original_base64");
    /* the original bytes are always kept, in exactly one form */
    if ((orig == NULL) == (b64 == NULL))
        abort();
    if (orig &&
        (json_string_length(orig) != size || memcmp(json_string_value(orig), data, size) != 0))
        abort();
    json_decref(o);
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    otp_request_t r;
    char reason[64], err[256];

    reason[0] = err[0] = '\0';
    if (otp_request_parse((const char *)data, size, &r, reason, sizeof(reason), err, sizeof(err)) ==
        0)
        check_accepted(&r);
    else
        check_refused(&r, reason, err);
    if (size <= 4096)
        check_dlq(data, size);
    return 0;
}
