/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_event.h"

#include <ctype.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_phone.h"
#include "otp_time.h"

static int fail(char *reason, size_t rsz, char *errstr, size_t esz, const char *r, const char *fmt,
                ...) __attribute__((format(printf, 6, 7)));

static void redact_in_place(char *s);

static int fail(char *reason, size_t rsz, char *errstr, size_t esz, const char *r, const char *fmt,
                ...)
{
    va_list ap;
    snprintf(reason, rsz, "%s", r);
    va_start(ap, fmt);
    vsnprintf(errstr, esz, fmt, ap);
    va_end(ap);
    /* The words go to logs, the DLQ and the status topic: a quoted token
     * (jansson's "near '+1555...'", a field name) must not carry a number. */
    redact_in_place(errstr);
    return -1;
}

int otp_locale_valid(const char *s)
{
    size_t i = 0, n;

    if (!s)
        return 0;
    for (n = 0; isalpha((unsigned char)s[n]); n++)
        ;
    if (n < 2 || n > 3)
        return 0;
    i = n;
    while (s[i] == '-') {
        i++;
        for (n = 0; isalnum((unsigned char)s[i + n]); n++)
            ;
        if (n < 2 || n > 8)
            return 0;
        i += n;
    }
    return s[i] == '\0' && i <= OTP_LOCALE_MAX;
}

/* Printable text without control characters, 1..max bytes. */
static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static int purpose_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OTP_PURPOSE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && !strchr("_.-", s[i]))
            return 0;
    return 1;
}

/* A field name fit to quote back in an error: printable ASCII only, at most
 * 64 characters (a cut never splits a UTF-8 character, nothing forges a line). */
static const char *safe_name(const char *name, char out[72])
{
    size_t n = 0;
    for (; *name && n < 64; name++)
        out[n++] = (*name >= 0x20 && *name < 0x7f && *name != '"' && *name != '\\') ? *name : '?';
    if (*name)
        out[n++] = '~';
    out[n] = '\0';
    return out;
}

static const char *const known_fields[] = {
    "request_id",         "user_id",     "phone",    "locale",   "purpose",        "requested_at",
    "ttl_seconds",        "code_length", "delivery", "metadata", "schema_version", "resend_of",
    "keypad_code_sealed",
};

/* A JSON bool, or absent (-1). -2 for any other type. */
static int opt_bool(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return -1;
    if (!json_is_boolean(v))
        return -2;
    return json_is_true(v);
}

/* An optional string that must be one of two words: 1 when it is `second`,
 * 0 when it is `first` or absent, -1 for anything else. */
static int opt_word(json_t *obj, const char *key, const char *first, const char *second)
{
    json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_string(v))
        return -1;
    if (strcmp(json_string_value(v), second) == 0)
        return 1;
    return strcmp(json_string_value(v), first) == 0 ? 0 : -1;
}

int otp_request_parse(const char *buf, size_t len, otp_request_t *out, char *reason, size_t rsz,
                      char *errstr, size_t esz)
{
    json_error_t jerr;
    json_t *root = NULL, *v;
    const char *key;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->delivery.gate = out->delivery.amd = out->delivery.sms_fallback = -1;
    if (len == 0)
        return fail(reason, rsz, errstr, esz, "empty", "the message is empty");
    if (len > OTP_EVENT_MAX_BYTES)
        return fail(reason, rsz, errstr, esz, "too_large", "the message is %zu bytes; at most %d",
                    len, OTP_EVENT_MAX_BYTES);
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(reason, rsz, errstr, esz, "invalid_json", "not JSON: %s (at byte %d)",
                    jerr.text, jerr.position);
    if (!json_is_object(root)) {
        fail(reason, rsz, errstr, esz, "not_an_object", "the message must be a JSON object");
        goto out;
    }

    /* request_id first, so later rejections can name the request. */
    v = json_object_get(root, "request_id");
    if (!v) {
        fail(reason, rsz, errstr, esz, "missing_request_id", "request_id is required");
        goto out;
    }
    if (!json_is_string(v) || !otp_uuid_valid(json_string_value(v))) {
        fail(reason, rsz, errstr, esz, "invalid_request_id", "request_id must be a UUID string");
        goto out;
    }
    for (int i = 0; i < 36; i++)
        out->request_id[i] = (char)tolower((unsigned char)json_string_value(v)[i]);

    json_object_foreach(root, key, v)
    {
        int known = 0;
        for (size_t i = 0; i < sizeof(known_fields) / sizeof(*known_fields); i++)
            known |= strcmp(key, known_fields[i]) == 0;
        if (!known) {
            char shown[72];
            fail(reason, rsz, errstr, esz, "unknown_field", "unexpected field \"%s\"",
                 safe_name(key, shown));
            goto out;
        }
    }

    v = json_object_get(root, "schema_version");
    if (v && (!json_is_integer(v) || json_integer_value(v) != 1)) {
        fail(reason, rsz, errstr, esz, "unsupported_schema_version", "schema_version must be 1");
        goto out;
    }

    v = json_object_get(root, "resend_of");
    if (v) {
        if (!json_is_string(v) || !otp_uuid_valid(json_string_value(v))) {
            fail(reason, rsz, errstr, esz, "invalid_resend_of", "resend_of must be a request UUID");
            goto out;
        }
        for (int i = 0; i < 36; i++)
            out->resend_of[i] = (char)tolower((unsigned char)json_string_value(v)[i]);
    }

    v = json_object_get(root, "user_id");
    if (!v && out->resend_of[0]) {
        /* taken from the request being resent */
    } else if (!v) {
        fail(reason, rsz, errstr, esz, "missing_user_id", "user_id is required");
        goto out;
    }
    if (v && (!json_is_string(v) || !text_ok(json_string_value(v), OTP_USER_ID_MAX))) {
        fail(reason, rsz, errstr, esz, "invalid_user_id",
             "user_id must be a string of 1-%d printable characters", OTP_USER_ID_MAX);
        goto out;
    }
    if (v)
        snprintf(out->user_id, sizeof(out->user_id), "%s", json_string_value(v));

    v = json_object_get(root, "phone");
    if (!v && out->resend_of[0]) {
        /* taken from the request being resent */
    } else if (!v) {
        fail(reason, rsz, errstr, esz, "missing_phone", "phone is required");
        goto out;
    }
    if (v && (!json_is_string(v) || !otp_phone_is_e164(json_string_value(v)))) {
        fail(reason, rsz, errstr, esz, "invalid_phone",
             "phone must be E.164: '+', then 7-15 digits, not starting with 0");
        goto out;
    }
    if (v)
        snprintf(out->phone, sizeof(out->phone), "%s", json_string_value(v));

    v = json_object_get(root, "locale");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || !otp_locale_valid(json_string_value(v))) {
            fail(reason, rsz, errstr, esz, "invalid_locale",
                 "locale must be a BCP-47 tag such as en-US");
            goto out;
        }
        snprintf(out->locale, sizeof(out->locale), "%s", json_string_value(v));
    }

    v = json_object_get(root, "purpose");
    if (v) {
        if (!json_is_string(v) || !purpose_ok(json_string_value(v))) {
            fail(reason, rsz, errstr, esz, "invalid_purpose",
                 "purpose must be 1-%d of a-z 0-9 _ . -", OTP_PURPOSE_MAX);
            goto out;
        }
        snprintf(out->purpose, sizeof(out->purpose), "%s", json_string_value(v));
    } else {
        snprintf(out->purpose, sizeof(out->purpose), "login");
    }

    v = json_object_get(root, "requested_at");
    if (!v) {
        fail(reason, rsz, errstr, esz, "missing_requested_at", "requested_at is required");
        goto out;
    }
    if (!json_is_string(v) || otp_time_parse(json_string_value(v), &out->requested_at_ms) != 0) {
        fail(reason, rsz, errstr, esz, "invalid_requested_at",
             "requested_at must be an RFC 3339 time such as 2026-01-15T09:30:00Z");
        goto out;
    }

    v = json_object_get(root, "ttl_seconds");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < 60 || json_integer_value(v) > 600) {
            fail(reason, rsz, errstr, esz, "invalid_ttl",
                 "ttl_seconds must be a whole number 60-600");
            goto out;
        }
        out->ttl_seconds = (int)json_integer_value(v);
    }

    v = json_object_get(root, "code_length");
    if (v) {
        if (!json_is_integer(v) || json_integer_value(v) < OTP_CODE_MIN ||
            json_integer_value(v) > OTP_CODE_MAX) {
            fail(reason, rsz, errstr, esz, "invalid_code_length",
                 "code_length must be a whole number %d-%d", OTP_CODE_MIN, OTP_CODE_MAX);
            goto out;
        }
        out->code_length = (int)json_integer_value(v);
    }

    v = json_object_get(root, "delivery");
    if (v) {
        const char *dk;
        json_t *dv;
        if (!json_is_object(v)) {
            fail(reason, rsz, errstr, esz, "invalid_delivery", "delivery must be an object");
            goto out;
        }
        json_object_foreach(v, dk, dv)
        {
            (void)dv;
            if (strcmp(dk, "gate") && strcmp(dk, "amd") && strcmp(dk, "sms_fallback") &&
                strcmp(dk, "channel") && strcmp(dk, "mode")) {
                char shown[72];
                fail(reason, rsz, errstr, esz, "invalid_delivery",
                     "delivery has an unexpected field \"%s\"", safe_name(dk, shown));
                goto out;
            }
        }
        out->delivery.gate = opt_bool(v, "gate");
        out->delivery.amd = opt_bool(v, "amd");
        out->delivery.sms_fallback = opt_bool(v, "sms_fallback");
        if (out->delivery.gate == -2 || out->delivery.amd == -2 ||
            out->delivery.sms_fallback == -2) {
            fail(reason, rsz, errstr, esz, "invalid_delivery",
                 "delivery.gate, .amd and .sms_fallback must be true or false");
            goto out;
        }
        out->delivery.sms = opt_word(v, "channel", "voice", "sms");
        if (out->delivery.sms < 0) {
            fail(reason, rsz, errstr, esz, "invalid_delivery",
                 "delivery.channel must be voice or sms");
            goto out;
        }
        out->delivery.keypad = opt_word(v, "mode", "speak", "keypad");
        if (out->delivery.keypad < 0) {
            fail(reason, rsz, errstr, esz, "invalid_delivery",
                 "delivery.mode must be speak or keypad");
            goto out;
        }
    }

    v = json_object_get(root, "keypad_code_sealed");
    if (v && (!json_is_string(v) || json_string_length(v) == 0 ||
              json_string_length(v) >= sizeof(out->keypad_code_sealed))) {
        fail(reason, rsz, errstr, esz, "invalid_keypad_code",
             "keypad_code_sealed must be base64 of a sealed box, under %zu characters",
             sizeof(out->keypad_code_sealed));
        goto out;
    }
    if (v)
        snprintf(out->keypad_code_sealed, sizeof(out->keypad_code_sealed), "%s",
                 json_string_value(v));
    if (out->delivery.keypad != !!out->keypad_code_sealed[0]) {
        fail(reason, rsz, errstr, esz, "invalid_keypad_code",
             "delivery.mode keypad and keypad_code_sealed go together");
        goto out;
    }
    if (out->delivery.keypad && out->delivery.sms) {
        fail(reason, rsz, errstr, esz, "invalid_delivery", "keypad mode needs the voice channel");
        goto out;
    }

    v = json_object_get(root, "metadata");
    if (v && !json_is_null(v)) {
        char *s;
        if (!json_is_object(v)) {
            fail(reason, rsz, errstr, esz, "invalid_metadata", "metadata must be an object");
            goto out;
        }
        s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s || strlen(s) > OTP_METADATA_MAX) {
            free(s);
            fail(reason, rsz, errstr, esz, "metadata_too_large",
                 "metadata must be at most %d bytes as compact JSON", OTP_METADATA_MAX);
            goto out;
        }
        snprintf(out->metadata, sizeof(out->metadata), "%s", s);
        free(s);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

char *otp_request_to_json(const otp_request_t *req)
{
    char at[40];
    json_t *o = json_object();
    char *s;

    otp_time_format(req->requested_at_ms, at, sizeof(at));
    json_object_set_new(o, "request_id", json_string(req->request_id));
    if (req->user_id[0])
        json_object_set_new(o, "user_id", json_string(req->user_id));
    if (req->phone[0])
        json_object_set_new(o, "phone", json_string(req->phone));
    if (req->locale[0])
        json_object_set_new(o, "locale", json_string(req->locale));
    json_object_set_new(o, "purpose", json_string(req->purpose[0] ? req->purpose : "login"));
    json_object_set_new(o, "requested_at", json_string(at));
    if (req->ttl_seconds)
        json_object_set_new(o, "ttl_seconds", json_integer(req->ttl_seconds));
    if (req->code_length)
        json_object_set_new(o, "code_length", json_integer(req->code_length));
    if (req->resend_of[0])
        json_object_set_new(o, "resend_of", json_string(req->resend_of));
    if (req->keypad_code_sealed[0])
        json_object_set_new(o, "keypad_code_sealed", json_string(req->keypad_code_sealed));
    if (req->delivery.gate >= 0 || req->delivery.amd >= 0 || req->delivery.sms_fallback >= 0 ||
        req->delivery.sms || req->delivery.keypad) {
        json_t *d = json_object();
        if (req->delivery.sms)
            json_object_set_new(d, "channel", json_string("sms"));
        if (req->delivery.keypad)
            json_object_set_new(d, "mode", json_string("keypad"));
        if (req->delivery.gate >= 0)
            json_object_set_new(d, "gate", json_boolean(req->delivery.gate));
        if (req->delivery.amd >= 0)
            json_object_set_new(d, "amd", json_boolean(req->delivery.amd));
        if (req->delivery.sms_fallback >= 0)
            json_object_set_new(d, "sms_fallback", json_boolean(req->delivery.sms_fallback));
        json_object_set_new(o, "delivery", d);
    }
    if (req->metadata[0]) {
        json_t *m = json_loads(req->metadata, 0, NULL);
        if (m)
            json_object_set_new(o, "metadata", m);
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

json_t *otp_dlq_envelope_new(const char *reason, const char *error, const char *topic,
                             int32_t partition, int64_t offset, const void *payload,
                             size_t payload_len)
{
    json_t *o = json_object();
    json_t *src = json_object();
    json_t *text;
    char at[40];

    if (!o || !src) {
        json_decref(o);
        json_decref(src);
        return NULL;
    }

    otp_time_format(otp_now_ms(), at, sizeof(at));
    json_object_set_new(o, "reason", json_string(reason));
    json_object_set_new(o, "error", json_string(error));
    json_object_set_new(o, "failed_at", json_string(at));
    json_object_set_new(src, "topic", json_string(topic));
    json_object_set_new(src, "partition", json_integer(partition));
    json_object_set_new(src, "offset", json_integer(offset));
    json_object_set_new(o, "source", src);
    /* jansson refuses invalid UTF-8 (overlong forms, surrogates); a NUL would
     * become \u0000, which many consumers reject: both go as base64. */
    text =
        payload_len && !memchr(payload, 0, payload_len) ? json_stringn(payload, payload_len) : NULL;
    if (text) {
        json_object_set_new(o, "original", text);
    } else if (payload_len) {
        size_t b64_len = sodium_base64_encoded_len(payload_len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(b64_len);
        if (b64) {
            sodium_bin2base64(b64, b64_len, payload, payload_len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(o, "original_base64", json_string(b64));
            free(b64);
        }
    } else {
        json_object_set_new(o, "original", json_string(""));
    }
    return o;
}

char *otp_dlq_envelope(const char *reason, const char *error, const char *topic, int32_t partition,
                       int64_t offset, const void *payload, size_t payload_len)
{
    json_t *o = otp_dlq_envelope_new(reason, error, topic, partition, offset, payload, payload_len);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return s;
}

int otp_verify_request_parse(const char *body, size_t len, char request_id[37], char code[11],
                             char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = NULL, *v;
    const char *key, *s;
    size_t n;
    int rc = -1;

    if (len == 0) {
        snprintf(errstr, errstr_size,
                 "the body is empty; send {\"request_id\": ..., \"code\": ...}");
        return -1;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "the body must be a JSON object%s%s", root ? "" : ": ",
                 root ? "" : jerr.text);
        redact_in_place(errstr);
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "request_id") != 0 && strcmp(key, "code") != 0) {
            char shown[72];
            snprintf(errstr, errstr_size, "unexpected field \"%s\"", safe_name(key, shown));
            goto out;
        }
    }
    s = json_string_value(json_object_get(root, "request_id"));
    if (!s || !otp_uuid_valid(s)) {
        snprintf(errstr, errstr_size, "request_id must be a UUID string");
        goto out;
    }
    for (int i = 0; i < 36; i++)
        request_id[i] = (char)tolower((unsigned char)s[i]);
    request_id[36] = '\0';
    s = json_string_value(json_object_get(root, "code"));
    n = s ? strlen(s) : 0;
    if (!s || n < OTP_CODE_MIN || n > OTP_CODE_MAX || strspn(s, "0123456789") != n) {
        snprintf(errstr, errstr_size, "code must be a string of %d to %d digits", OTP_CODE_MIN,
                 OTP_CODE_MAX);
        goto out;
    }
    memcpy(code, s, n + 1);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Length of the digit-like token at p: a digit (1) or a \uXXXX escape (6); 0 otherwise. */
static size_t digit_token(const char *p, const char *end)
{
    if (p < end && *p >= '0' && *p <= '9')
        return 1;
    if (end - p >= 6 && p[0] == '\\' && p[1] == 'u' && isxdigit((unsigned char)p[2]) &&
        isxdigit((unsigned char)p[3]) && isxdigit((unsigned char)p[4]) &&
        isxdigit((unsigned char)p[5]))
        return 6;
    return 0;
}

char *otp_redact_numbers(const void *payload, size_t len, size_t *out_len)
{
    const char *in = payload, *end = in + len;
    char *out = malloc(len + 1);
    size_t n = 0;

    if (!out)
        return NULL;
    while (in < end) {
        const char *q = in;
        size_t tokens = 0, k;
        while ((k = digit_token(q, end)) > 0) {
            q += k;
            tokens++;
        }
        if (tokens >= 7) {
            /* A phone-length run: one '*' per digit or escape. */
            for (size_t i = 0; i < tokens; i++)
                out[n++] = '*';
            in = q;
        } else if (tokens > 0) {
            memcpy(out + n, in, (size_t)(q - in));
            n += (size_t)(q - in);
            in = q;
        } else {
            out[n++] = *in++;
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

static void redact_in_place(char *s)
{
    size_t n = 0;
    char *red = otp_redact_numbers(s, strlen(s), &n);
    if (red) {
        memcpy(s, red, n + 1); /* never longer than the input */
        free(red);
    }
}
