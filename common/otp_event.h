/* SPDX-License-Identifier: Apache-2.0 */
/* The two topics' messages: parsing and checking otp.requested, building the
 * DLQ envelope. Schemas: schema/otp.requested.schema.json and
 * schema/otp.call_status.schema.json. */
#ifndef OTP_EVENT_H
#define OTP_EVENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define OTP_EVENT_MAX_BYTES 8192
#define OTP_USER_ID_MAX 128
#define OTP_PURPOSE_MAX 64
#define OTP_LOCALE_MAX 35
#define OTP_METADATA_MAX 1024

/* Call delivery options a request may ask for. -1 = operator default. */
typedef struct otp_delivery {
    int gate;         /* "press any key to hear your code" */
    int amd;          /* answering-machine detection, machine → hang up */
    int sms_fallback; /* SMS after the last failed call */
    int sms;          /* channel "sms": send the code by SMS, no call (0 = voice) */
    int keypad;       /* mode "keypad": the callee keys in the code the app shows */
} otp_delivery_t;

typedef struct otp_request {
    char request_id[37];
    char user_id[OTP_USER_ID_MAX + 1];
    char phone[18];
    char locale[OTP_LOCALE_MAX + 1]; /* "" when absent */
    char purpose[OTP_PURPOSE_MAX + 1];
    int64_t requested_at_ms;
    int ttl_seconds; /* 0 = operator default */
    int code_length; /* 0 = operator default */
    otp_delivery_t delivery;
    char metadata[OTP_METADATA_MAX + 1]; /* compact JSON object, "" when absent */
    /* Resend: a new request for the same number, user and purpose as this one
     * (phone and user_id may then be left out: the worker takes them from it). */
    char resend_of[37];
    /* Keypad mode: the code the app shows, sealed (libsodium crypto_box_seal) to
     * the workers' public key, base64: never in plain form on Kafka. */
    char keypad_code_sealed[256];
} otp_request_t;

/* Parses and checks one otp.requested message. Returns 0, or -1 with a short
 * machine-readable reason (e.g. "invalid_phone") in reason and a sentence for
 * people in errstr. On -1, out->request_id is filled when the message had a
 * valid one (so the rejection can be reported on the status topic). Never
 * reads past len; the input need not be NUL-terminated. Thread-safe. */
int otp_request_parse(const char *buf, size_t len, otp_request_t *out, char *reason,
                      size_t reason_size, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Serialises a request as otp.requested JSON. Returns a malloc'd string the
 * caller frees, or NULL on allocation failure. */
char *otp_request_to_json(const otp_request_t *req);

/* The message sent to the DLQ: reason, error, where it came from, and the
 * original bytes (as text when they are UTF-8, else base64). A new reference
 * the caller owns (json_decref), NULL when memory ran out. */
json_t *otp_dlq_envelope_new(const char *reason, const char *error, const char *topic,
                             int32_t partition, int64_t offset, const void *payload,
                             size_t payload_len);
/* The same, as compact JSON text. Caller frees. */
char *otp_dlq_envelope(const char *reason, const char *error, const char *topic, int32_t partition,
                       int64_t offset, const void *payload, size_t payload_len);

/* Parses a verify request body: exactly {"request_id": UUID, "code": "4-10
 * digits"}. 0 ok, -1 with errstr (a 400 for the client). Thread-safe. */
int otp_verify_request_parse(const char *body, size_t len, char request_id[37], char code[11],
                             char *errstr, size_t errstr_size) __attribute__((warn_unused_result));

/* A copy of a raw message with every run of 7 or more digits masked ('*'),
 * counting a JSON escape such as \u0030 as a digit, whether or not the
 * message parses: what may go to a topic other than otp.requested. The
 * caller frees it; *out_len is its length. NULL on allocation failure. */
char *otp_redact_numbers(const void *payload, size_t len, size_t *out_len);

/* 1 if s looks like a BCP-47 tag: 2-3 letters, then -subtags of 2-8 alnum. */
int otp_locale_valid(const char *s);

#endif
