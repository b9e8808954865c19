/* SPDX-License-Identifier: Apache-2.0 */
/* Codes, keyed hashes and the other cryptography, all from libsodium.
 * Call otp_crypto_init() once before any other function (it is sodium_init). */
#ifndef OTP_CRYPTO_H
#define OTP_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define OTP_CODE_MIN 4
#define OTP_CODE_MAX 10
#define OTP_HASH_BYTES 32
#define OTP_KEY_BYTES 32
#define OTP_MAX_KEYS 8

int otp_crypto_init(void) __attribute__((warn_unused_result));

/* Frees a malloc'd block after wiping all of it (its usable size): for
 * buffers that held a code in plain form. NULL is a no-op. */
void otp_free_wiped(void *p);

/* From now on jansson frees through otp_free_wiped, so the copies of a code
 * that a JSON document holds (the call's SSML, the request body json_dumps
 * builds, a parsed verify request) do not linger in freed memory. json_dumps
 * results may still be released with free(). Call once, before any json_t
 * exists. */
void otp_json_wipe_freed(void);

/* Writes `len` (4..10) uniform random decimal digits and a NUL into out
 * (out_size > len). Each digit is randombytes_uniform(10): no modulo bias. */
int otp_code_generate(char *out, size_t out_size, int len) __attribute__((warn_unused_result));

/* The hash keys: the current one (new hashes) and retired ones (still verify). */
typedef struct otp_keyring {
    int current_id;
    int n;
    struct {
        int id;
        unsigned char key[OTP_KEY_BYTES];
    } keys[OTP_MAX_KEYS];
} otp_keyring_t;

/* Builds a keyring from the current key (64 hex chars) and id, and a list of
 * retired keys "id:hex,id:hex" (may be empty). -1 with errstr on bad input. */
int otp_keyring_load(otp_keyring_t *kr, int current_id, const char *current_hex,
                     const char *previous, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Wipes the keys. */
void otp_keyring_clear(otp_keyring_t *kr);

/* Keyed BLAKE2b-256 of the code bound to its challenge:
 * H(key_id's key, "otp-code-v1" 0 request_id 0 code). -1 if key_id is unknown. */
int otp_code_hash(const otp_keyring_t *kr, int key_id, const char *request_id, const char *code,
                  unsigned char out[OTP_HASH_BYTES]) __attribute__((warn_unused_result));

/* Checks `code` against a stored hash in constant time. 1 match, 0 no match
 * (also for an unknown key id or a wrong-length hash). The work is the same
 * whatever the outcome. */
int otp_code_check(const otp_keyring_t *kr, int key_id, const char *request_id, const char *code,
                   const unsigned char *stored, size_t stored_len);

/* Checks a VoIPBin X-VoIPBIN-Signature header ("sha256=<hex>") against
 * HMAC-SHA256(secret, body), in constant time. 1 valid, 0 not. */
int otp_webhook_signature_ok(const char *secret, const char *body, size_t body_len,
                             const char *header);

/* Hex of HMAC-SHA256(secret, body) into out (65 bytes). */
void otp_hmac_sha256_hex(const char *secret, const void *body, size_t body_len, char out[65]);

/* The OTP-Signature header value of an app webhook (otp-hooks):
 * "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>", as the receivers in
 * examples/ check it. Returns its length, or -1 when out is too small
 * (OTP_HOOK_SIGNATURE_MAX is always enough). */
#define OTP_HOOK_SIGNATURE_MAX 96
int otp_hook_signature(const char *secret, long long t, const void *body, size_t body_len,
                       char *out, size_t out_size);

/* Random version 4 UUID, lower-case, into out (37 bytes). */
void otp_uuid_v4(char out[37]);

/* A name-based UUID (RFC 9562 version 8, variant 10): the first 16 bytes of
 * BLAKE2b(ns, 0x00, name), lower-case, into out (37 bytes). The same ns and
 * name always give the same id, so a tool run twice publishes the same
 * request_id and ingest's idempotency drops the second. Not a secret. */
void otp_uuid_derive(const char *ns, const void *name, size_t name_len, char out[37]);

/* 1 if s is a canonical UUID (8-4-4-4-12 hex). */
int otp_uuid_valid(const char *s);

/* SHA-256 hex of s into out (65 bytes): how API keys are stored. */
void otp_sha256_hex(const char *s, char out[65]);

#endif
