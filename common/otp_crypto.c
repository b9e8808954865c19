/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_crypto.h"

#include <ctype.h>
#include <jansson.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hash_context[] = "otp-code-v1";

int otp_crypto_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

void otp_free_wiped(void *p)
{
    if (!p)
        return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

void otp_json_wipe_freed(void)
{
    json_set_alloc_funcs(malloc, otp_free_wiped);
}

int otp_code_generate(char *out, size_t out_size, int len)
{
    if (len < OTP_CODE_MIN || len > OTP_CODE_MAX || out_size <= (size_t)len)
        return -1;
    for (int i = 0; i < len; i++)
        out[i] = (char)('0' + randombytes_uniform(10));
    out[len] = '\0';
    return 0;
}

static int parse_key(const char *hex, size_t hex_len, unsigned char key[OTP_KEY_BYTES])
{
    size_t bin_len = 0;

    if (hex_len != OTP_KEY_BYTES * 2)
        return -1;
    if (sodium_hex2bin(key, OTP_KEY_BYTES, hex, hex_len, NULL, &bin_len, NULL) != 0 ||
        bin_len != OTP_KEY_BYTES)
        return -1;
    return 0;
}

int otp_keyring_load(otp_keyring_t *kr, int current_id, const char *current_hex,
                     const char *previous, char *errstr, size_t errstr_size)
{
    const char *p = previous;

    memset(kr, 0, sizeof(*kr));
    kr->current_id = current_id;
    if (!current_hex || parse_key(current_hex, strlen(current_hex), kr->keys[0].key) != 0) {
        snprintf(errstr, errstr_size, "OTP_HASH_KEY: expected 64 hex characters (32 random bytes)");
        return -1;
    }
    kr->keys[0].id = current_id;
    kr->n = 1;
    while (p && *p) {
        char *end;
        long id = strtol(p, &end, 10);
        const char *hex, *comma;

        if (end == p || *end != ':' || id < 1 || id > 32767) {
            snprintf(errstr, errstr_size, "OTP_HASH_KEYS_PREVIOUS: expected id:hex[,id:hex]");
            return -1;
        }
        hex = end + 1;
        comma = strchr(hex, ',');
        if (kr->n == OTP_MAX_KEYS ||
            parse_key(hex, comma ? (size_t)(comma - hex) : strlen(hex), kr->keys[kr->n].key)) {
            snprintf(errstr, errstr_size,
                     "OTP_HASH_KEYS_PREVIOUS: key %ld is not 64 hex characters (or too many keys)",
                     id);
            return -1;
        }
        for (int i = 0; i < kr->n; i++) {
            if (kr->keys[i].id == id) {
                snprintf(errstr, errstr_size, "OTP_HASH_KEYS_PREVIOUS: key id %ld given twice", id);
                return -1;
            }
        }
        kr->keys[kr->n++].id = (int)id;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

void otp_keyring_clear(otp_keyring_t *kr)
{
    sodium_memzero(kr, sizeof(*kr));
}

static const unsigned char *find_key(const otp_keyring_t *kr, int key_id)
{
    for (int i = 0; i < kr->n; i++)
        if (kr->keys[i].id == key_id)
            return kr->keys[i].key;
    return NULL;
}

static void hash_with(const unsigned char *key, const char *request_id, const char *code,
                      unsigned char out[OTP_HASH_BYTES])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, key, OTP_KEY_BYTES, OTP_HASH_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)hash_context, sizeof(hash_context));
    crypto_generichash_update(&st, (const unsigned char *)request_id, strlen(request_id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)code, strlen(code));
    crypto_generichash_final(&st, out, OTP_HASH_BYTES);
}

int otp_code_hash(const otp_keyring_t *kr, int key_id, const char *request_id, const char *code,
                  unsigned char out[OTP_HASH_BYTES])
{
    const unsigned char *key = find_key(kr, key_id);
    if (!key)
        return -1;
    hash_with(key, request_id, code, out);
    return 0;
}

int otp_code_check(const otp_keyring_t *kr, int key_id, const char *request_id, const char *code,
                   const unsigned char *stored, size_t stored_len)
{
    static const unsigned char zero_key[OTP_KEY_BYTES];
    const unsigned char *key = find_key(kr, key_id);
    unsigned char got[OTP_HASH_BYTES];
    unsigned char want[OTP_HASH_BYTES] = {0};
    int ok;

    /* Same work on every path: hash even when the key or the row is bad. */
    hash_with(key ? key : zero_key, request_id, code, got);
    if (stored && stored_len == OTP_HASH_BYTES)
        memcpy(want, stored, OTP_HASH_BYTES);
    ok = sodium_memcmp(got, want, OTP_HASH_BYTES) == 0;
    sodium_memzero(got, sizeof(got));
    return ok && key && stored && stored_len == OTP_HASH_BYTES;
}

void otp_hmac_sha256_hex(const char *secret, const void *body, size_t body_len, char out[65])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];

    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 65, mac, sizeof(mac));
}

int otp_hook_signature(const char *secret, long long t, const void *body, size_t body_len,
                       char *out, size_t out_size)
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24], hex[65];
    int n = snprintf(ts, sizeof(ts), "%lld.", t);

    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (size_t)n);
    crypto_auth_hmacsha256_update(&st, body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
    sodium_memzero(&st, sizeof(st));
    n = snprintf(out, out_size, "t=%lld,v1=%s", t, hex);
    return n < 0 || (size_t)n >= out_size ? -1 : n;
}

int otp_webhook_signature_ok(const char *secret, const char *body, size_t body_len,
                             const char *header)
{
    char want[65];
    char got[65];

    if (!secret || !*secret || !header || strncmp(header, "sha256=", 7) != 0 ||
        strlen(header + 7) != 64)
        return 0;
    /* Lower-case the received hex so "sha256=ABC..." from a proxy still matches. */
    for (int i = 0; i < 64; i++)
        got[i] = (char)tolower((unsigned char)header[7 + i]);
    got[64] = '\0';
    otp_hmac_sha256_hex(secret, body, body_len, want);
    return sodium_memcmp(want, got, 64) == 0;
}

static void uuid_format(const unsigned char b[16], char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void otp_uuid_v4(char out[37])
{
    unsigned char b[16];

    randombytes_buf(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

void otp_uuid_derive(const char *ns, const void *name, size_t name_len, char out[37])
{
    crypto_generichash_state st;
    unsigned char b[16], zero = 0;

    crypto_generichash_init(&st, NULL, 0, sizeof(b));
    crypto_generichash_update(&st, (const unsigned char *)ns, strlen(ns));
    crypto_generichash_update(&st, &zero, 1);
    crypto_generichash_update(&st, name, name_len);
    crypto_generichash_final(&st, b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x80);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

int otp_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

void otp_sha256_hex(const char *s, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(out, 65, h, sizeof(h));
}
