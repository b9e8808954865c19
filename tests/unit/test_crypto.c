/* SPDX-License-Identifier: Apache-2.0 */
/* otp_crypto: code generation (uniformity), keyed hashes and their keyring,
 * webhook signatures, UUIDs. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "unit.h"

#define DRAWS 1000000
#define CODE_LEN 6

/* Chi-square critical values at p = 0.001 (the upper 0.1% point), from the
 * chi-square distribution for these degrees of freedom:
 *   df = 54 (6 positions x (10 - 1))     -> 91.872
 *   df = 99 (100 first-two-digit pairs - 1) -> 148.230 */
#define CHI2_CRIT_DF54 91.872
#define CHI2_CRIT_DF99 148.230

static double chi2(const long *counts, int cells, long total)
{
    double expected = (double)total / cells, sum = 0;

    for (int i = 0; i < cells; i++) {
        double d = (double)counts[i] - expected;
        sum += d * d / expected;
    }
    return sum;
}

/* The sum over positions of each position's chi-square (6 independent df=9
 * statistics: df = 54), and the chi-square over the first two digits (df = 99). */
static void digit_stats(long pos[CODE_LEN][10], long pairs[100], double *s_pos, double *s_pair)
{
    *s_pos = 0;
    for (int p = 0; p < CODE_LEN; p++)
        *s_pos += chi2(pos[p], 10, DRAWS);
    *s_pair = chi2(pairs, 100, DRAWS);
}

static void test_code_uniform(void)
{
    static long pos[CODE_LEN][10], pairs[100];
    char code[CODE_LEN + 1];
    double s_pos, s_pair;
    int bad = 0;

    for (long i = 0; i < DRAWS; i++) {
        if (otp_code_generate(code, sizeof(code), CODE_LEN) != 0 || strlen(code) != CODE_LEN) {
            bad++;
            continue;
        }
        for (int p = 0; p < CODE_LEN; p++) {
            if (code[p] < '0' || code[p] > '9') {
                bad++;
                break;
            }
            pos[p][code[p] - '0']++;
        }
        if (code[0] >= '0' && code[0] <= '9' && code[1] >= '0' && code[1] <= '9')
            pairs[(code[0] - '0') * 10 + (code[1] - '0')]++;
    }
    CHECK_EQ_INT(bad, 0);
    digit_stats(pos, pairs, &s_pos, &s_pair);
    printf("code uniformity: chi2(per position, df=54) = %.2f (< %.3f), "
           "chi2(first pair, df=99) = %.2f (< %.3f)\n",
           s_pos, CHI2_CRIT_DF54, s_pair, CHI2_CRIT_DF99);
    CHECK(s_pos < CHI2_CRIT_DF54);
    CHECK(s_pair < CHI2_CRIT_DF99);
}

/* The same statistics catch the classic mistake (random byte % 10), so the
 * test above is able to fail. */
static void test_chi2_has_power(void)
{
    static long pos[CODE_LEN][10], pairs[100];
    double s_pos, s_pair;

    for (long i = 0; i < DRAWS; i++) {
        int d[CODE_LEN];
        for (int p = 0; p < CODE_LEN; p++) {
            d[p] = (int)((randombytes_random() & 0xff) % 10);
            pos[p][d[p]]++;
        }
        pairs[d[0] * 10 + d[1]]++;
    }
    digit_stats(pos, pairs, &s_pos, &s_pair);
    CHECK(s_pos > CHI2_CRIT_DF54);
}

static void test_code_lengths(void)
{
    char buf[32];

    for (int len = OTP_CODE_MIN; len <= OTP_CODE_MAX; len++) {
        unit_ctx("len %d", len);
        memset(buf, 'x', sizeof(buf));
        CHECK_EQ_INT(otp_code_generate(buf, sizeof(buf), len), 0);
        CHECK_EQ_INT(strlen(buf), len);
        CHECK_EQ_INT(strspn(buf, "0123456789"), len);
        /* exactly len + 1 bytes is enough */
        CHECK_EQ_INT(otp_code_generate(buf, (size_t)len + 1, len), 0);
        /* one byte short is refused */
        CHECK_EQ_INT(otp_code_generate(buf, (size_t)len, len), -1);
    }
    unit_ctx(NULL);
    CHECK_EQ_INT(4, OTP_CODE_MIN);
    CHECK_EQ_INT(10, OTP_CODE_MAX);
    CHECK_EQ_INT(otp_code_generate(buf, sizeof(buf), 3), -1);
    CHECK_EQ_INT(otp_code_generate(buf, sizeof(buf), 11), -1);
    CHECK_EQ_INT(otp_code_generate(buf, sizeof(buf), 0), -1);
    CHECK_EQ_INT(otp_code_generate(buf, sizeof(buf), -6), -1);
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "f0e0d0c0b0a090807060504030201000f1e1d1c1b1a191817161514131211101"
#define KEY_C "AABBCCDDEEFF00112233445566778899aabbccddeeff00112233445566778899"
#define RID1 "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01"
#define RID2 "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d02"

static void test_keyed_hash(void)
{
    otp_keyring_t kr, kr2;
    char err[256];
    unsigned char h[OTP_HASH_BYTES], h2[OTP_HASH_BYTES];

    if (!CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, "", err, sizeof(err)), 0) ||
        !CHECK_EQ_INT(otp_keyring_load(&kr2, 1, KEY_B, "", err, sizeof(err)), 0))
        return;
    CHECK_EQ_INT(otp_code_hash(&kr, 1, RID1, "123456", h), 0);

    /* same inputs, same hash */
    CHECK_EQ_INT(otp_code_hash(&kr, 1, RID1, "123456", h2), 0);
    CHECK(memcmp(h, h2, sizeof(h)) == 0);
    /* another key (same id) */
    CHECK_EQ_INT(otp_code_hash(&kr2, 1, RID1, "123456", h2), 0);
    CHECK(memcmp(h, h2, sizeof(h)) != 0);
    /* another request */
    CHECK_EQ_INT(otp_code_hash(&kr, 1, RID2, "123456", h2), 0);
    CHECK(memcmp(h, h2, sizeof(h)) != 0);
    /* another code, one digit apart */
    CHECK_EQ_INT(otp_code_hash(&kr, 1, RID1, "123457", h2), 0);
    CHECK(memcmp(h, h2, sizeof(h)) != 0);
    /* the boundary between request_id and code is part of the input */
    CHECK_EQ_INT(otp_code_hash(&kr, 1, "ab", "1234", h), 0);
    CHECK_EQ_INT(otp_code_hash(&kr, 1, "ab1", "234", h2), 0);
    CHECK(memcmp(h, h2, sizeof(h)) != 0);
    /* not a plain unkeyed hash of the code */
    {
        unsigned char plain[OTP_HASH_BYTES];
        crypto_generichash(plain, sizeof(plain), (const unsigned char *)"123456", 6, NULL, 0);
        CHECK_EQ_INT(otp_code_hash(&kr, 1, RID1, "123456", h), 0);
        CHECK(memcmp(h, plain, sizeof(h)) != 0);
    }
    /* unknown key id */
    CHECK_EQ_INT(otp_code_hash(&kr, 2, RID1, "123456", h2), -1);

    /* otp_code_check */
    CHECK_EQ_INT(otp_code_hash(&kr, 1, RID1, "123456", h), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", h, sizeof(h)), 1);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123457", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "12345", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID2, "123456", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 2, RID1, "123456", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr2, 1, RID1, "123456", h, sizeof(h)), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", h, sizeof(h) - 1), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", h, 0), 0);
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", NULL, sizeof(h)), 0);
    {
        unsigned char longer[OTP_HASH_BYTES + 1];
        memcpy(longer, h, sizeof(h));
        longer[OTP_HASH_BYTES] = 0;
        CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", longer, sizeof(longer)), 0);
    }
    /* an all-zero stored hash never matches, even for an unknown key id */
    {
        unsigned char zero[OTP_HASH_BYTES] = {0};
        CHECK_EQ_INT(otp_code_check(&kr, 9, RID1, "123456", zero, sizeof(zero)), 0);
    }
    /* a tampered stored hash */
    h[OTP_HASH_BYTES - 1] ^= 1;
    CHECK_EQ_INT(otp_code_check(&kr, 1, RID1, "123456", h, sizeof(h)), 0);

    otp_keyring_clear(&kr);
    CHECK_EQ_INT(kr.n, 0);
    otp_keyring_clear(&kr2);
}

/* Builds "id:hex,id:hex,..." for ids first..first+n-1. */
static void key_list(char *out, size_t size, int first, int n)
{
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, size - len, "%s%d:%s", i ? "," : "", first + i, KEY_B);
}

static void test_keyring_parse(void)
{
    otp_keyring_t kr;
    char err[256], list[1024];
    static const char *const bad_current[] = {
        "",
        "00",
        KEY_A "00",                                                         /* 66 chars */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",  /* 63 */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g", /* non-hex */
        "000102030405060708090a0b0c0d0e0f 01112131415161718191a1b1c1d1e1f", /* space */
    };
    struct {
        const char *previous;
        const char *err_has; /* what the message must mention */
    } bad_prev[] = {
        {"2:" KEY_B "x", "key 2"},
        {"2:" KEY_B "0", "key 2"},
        {"2:zze0d0c0b0a090807060504030201000f1e1d1c1b1a191817161514131211101", "key 2"},
        {"2:", "key 2"},
        {"2", "OTP_HASH_KEYS_PREVIOUS"},
        {":" KEY_B, "OTP_HASH_KEYS_PREVIOUS"},
        {"x:" KEY_B, "OTP_HASH_KEYS_PREVIOUS"},
        {"0:" KEY_B, "OTP_HASH_KEYS_PREVIOUS"},
        {"-3:" KEY_B, "OTP_HASH_KEYS_PREVIOUS"},
        {"32768:" KEY_B, "OTP_HASH_KEYS_PREVIOUS"},
        {"2:" KEY_B ",,3:" KEY_C, "OTP_HASH_KEYS_PREVIOUS"},
        {"2:" KEY_B ";3:" KEY_C, "key 2"},
        {"2:" KEY_B ",2:" KEY_C, "given twice"},
        {"1:" KEY_B, "given twice"}, /* the current key's id */
    };

    /* good: current only, and current + two retired keys (upper-case hex too) */
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, "", err, sizeof(err)), 0);
    CHECK_EQ_INT(kr.n, 1);
    CHECK_EQ_INT(kr.current_id, 1);
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, NULL, err, sizeof(err)), 0);
    CHECK_EQ_INT(kr.n, 1);
    CHECK_EQ_INT(otp_keyring_load(&kr, 3, KEY_A, "2:" KEY_B ",1:" KEY_C, err, sizeof(err)), 0);
    CHECK_EQ_INT(kr.n, 3);
    CHECK_EQ_INT(kr.current_id, 3);
    CHECK_EQ_INT(kr.keys[0].id, 3);
    CHECK_EQ_INT(kr.keys[1].id, 2);
    CHECK_EQ_INT(kr.keys[2].id, 1);
    CHECK_EQ_INT(kr.keys[2].key[0], 0xaa);
    CHECK_EQ_INT(kr.keys[2].key[31], 0x99);
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_C, "", err, sizeof(err)), 0);
    CHECK_EQ_INT(otp_keyring_load(&kr, 5, KEY_A, "32767:" KEY_B, err, sizeof(err)), 0);

    for (size_t i = 0; i < sizeof(bad_current) / sizeof(*bad_current); i++) {
        unit_ctx("current key #%zu", i);
        err[0] = '\0';
        CHECK_EQ_INT(otp_keyring_load(&kr, 1, bad_current[i], "", err, sizeof(err)), -1);
        CHECK(strstr(err, "OTP_HASH_KEY") != NULL);
    }
    unit_ctx(NULL);
    err[0] = '\0';
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, NULL, "", err, sizeof(err)), -1);
    CHECK(strstr(err, "OTP_HASH_KEY") != NULL);

    for (size_t i = 0; i < sizeof(bad_prev) / sizeof(*bad_prev); i++) {
        unit_ctx("previous \"%.24s...\"", bad_prev[i].previous);
        err[0] = '\0';
        CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, bad_prev[i].previous, err, sizeof(err)), -1);
        if (!CHECK(strstr(err, bad_prev[i].err_has) != NULL))
            printf("    errstr: %s\n", err);
    }
    unit_ctx(NULL);

    /* too many: the current key + OTP_MAX_KEYS - 1 retired ones fit, one more does not */
    key_list(list, sizeof(list), 2, OTP_MAX_KEYS - 1);
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, list, err, sizeof(err)), 0);
    CHECK_EQ_INT(kr.n, OTP_MAX_KEYS);
    key_list(list, sizeof(list), 2, OTP_MAX_KEYS);
    err[0] = '\0';
    CHECK_EQ_INT(otp_keyring_load(&kr, 1, KEY_A, list, err, sizeof(err)), -1);
    CHECK(strstr(err, "too many") != NULL);
    otp_keyring_clear(&kr);
}

/* A hash stored under key 1 still verifies after key 2 becomes current and
 * key 1 is retired to OTP_HASH_KEYS_PREVIOUS; new hashes use key 2. */
static void test_rotation(void)
{
    otp_keyring_t before, after, dropped;
    unsigned char old_h[OTP_HASH_BYTES], new_h[OTP_HASH_BYTES];
    char err[256];

    if (!CHECK_EQ_INT(otp_keyring_load(&before, 1, KEY_A, "", err, sizeof(err)), 0) ||
        !CHECK_EQ_INT(otp_keyring_load(&after, 2, KEY_B, "1:" KEY_A, err, sizeof(err)), 0) ||
        !CHECK_EQ_INT(otp_keyring_load(&dropped, 2, KEY_B, "", err, sizeof(err)), 0))
        return;
    CHECK_EQ_INT(otp_code_hash(&before, before.current_id, RID1, "482913", old_h), 0);
    CHECK_EQ_INT(otp_code_check(&after, 1, RID1, "482913", old_h, sizeof(old_h)), 1);
    CHECK_EQ_INT(otp_code_check(&after, 1, RID1, "482914", old_h, sizeof(old_h)), 0);
    /* the stored key id matters: the same row checked as key 2 fails */
    CHECK_EQ_INT(otp_code_check(&after, 2, RID1, "482913", old_h, sizeof(old_h)), 0);
    /* once key 1 is dropped from the ring, its rows no longer verify */
    CHECK_EQ_INT(otp_code_check(&dropped, 1, RID1, "482913", old_h, sizeof(old_h)), 0);
    /* new hashes under the new current key */
    CHECK_EQ_INT(otp_code_hash(&after, after.current_id, RID1, "482913", new_h), 0);
    CHECK(memcmp(old_h, new_h, sizeof(old_h)) != 0);
    CHECK_EQ_INT(otp_code_check(&after, 2, RID1, "482913", new_h, sizeof(new_h)), 1);
    CHECK_EQ_INT(otp_code_check(&dropped, 2, RID1, "482913", new_h, sizeof(new_h)), 1);
    CHECK_EQ_INT(otp_code_check(&before, 2, RID1, "482913", new_h, sizeof(new_h)), 0);
    otp_keyring_clear(&before);
    otp_keyring_clear(&after);
    otp_keyring_clear(&dropped);
}

/* RFC 4231 test case 2. */
#define RFC4231_KEY "Jefe"
#define RFC4231_DATA "what do ya want for nothing?"
#define RFC4231_MAC "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"

static void test_webhook_signature(void)
{
    const char *body = RFC4231_DATA;
    size_t len = strlen(body);
    char hex[65], hdr[128], upper[128];

    otp_hmac_sha256_hex(RFC4231_KEY, body, len, hex);
    CHECK_EQ_STR(hex, RFC4231_MAC);

    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256=" RFC4231_MAC), 1);

    /* upper-case hex (some proxies) is the same signature */
    snprintf(upper, sizeof(upper), "sha256=%s", RFC4231_MAC);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, upper), 1);

    /* wrong: one hex digit changed, other secret, other body, body one byte short */
    snprintf(hdr, sizeof(hdr), "sha256=%s", RFC4231_MAC);
    hdr[7 + 63] = hdr[7 + 63] == '3' ? '4' : '3';
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, hdr), 0);
    snprintf(hdr, sizeof(hdr), "sha256=%s", RFC4231_MAC);
    hdr[7] = '6';
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, hdr), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok("jefe", body, len, "sha256=" RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, "what do ya want for nothing!", len,
                                          "sha256=" RFC4231_MAC),
                 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len - 1, "sha256=" RFC4231_MAC), 0);

    /* missing or malformed headers */
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, NULL), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, ""), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256="), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "SHA256=" RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha1=" RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, " sha256=" RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256= " RFC4231_MAC), 0);
    /* short: 63 hex digits; long: 65 */
    snprintf(hdr, sizeof(hdr), "sha256=%.63s", RFC4231_MAC);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, hdr), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256=" RFC4231_MAC "0"), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256=" RFC4231_MAC " "), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(RFC4231_KEY, body, len, "sha256=" RFC4231_MAC "\n"), 0);
    /* no secret configured: nothing is valid */
    CHECK_EQ_INT(otp_webhook_signature_ok("", body, len, "sha256=" RFC4231_MAC), 0);
    CHECK_EQ_INT(otp_webhook_signature_ok(NULL, body, len, "sha256=" RFC4231_MAC), 0);

    /* a body with a NUL inside is signed over its full length */
    {
        static const char bin[] = {'{', '"', 'a', '"', ':', 0, '1', '}'};
        char h2[65], hdr2[80];
        otp_hmac_sha256_hex("s3cr3t", bin, sizeof(bin), h2);
        snprintf(hdr2, sizeof(hdr2), "sha256=%s", h2);
        CHECK_EQ_INT(otp_webhook_signature_ok("s3cr3t", bin, sizeof(bin), hdr2), 1);
        CHECK_EQ_INT(otp_webhook_signature_ok("s3cr3t", bin, 5, hdr2), 0);
    }
}

static void test_uuid_sha256(void)
{
    char u[37], v[37], h[65];

    for (int i = 0; i < 100; i++) {
        otp_uuid_v4(u);
        CHECK_EQ_INT(strlen(u), 36);
        CHECK(otp_uuid_valid(u));
        CHECK(u[14] == '4');
        CHECK(strchr("89ab", u[19]) != NULL);
    }
    otp_uuid_v4(v);
    CHECK(strcmp(u, v) != 0);
    CHECK(otp_uuid_valid("0B6E2A52-6D8E-4C8A-9F55-0A3E3F6C1D01"));
    CHECK(!otp_uuid_valid(NULL));
    CHECK(!otp_uuid_valid(""));
    CHECK(!otp_uuid_valid("0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d0"));
    CHECK(!otp_uuid_valid("0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d011"));
    CHECK(!otp_uuid_valid("0b6e2a52x6d8e-4c8a-9f55-0a3e3f6c1d01"));
    CHECK(!otp_uuid_valid("0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d0g"));
    CHECK(!otp_uuid_valid("{b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d0}"));

    /* Name-based: the same name, the same id; another name or namespace, another id. */
    otp_uuid_derive("otp-admin resend", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", 36, u);
    otp_uuid_derive("otp-admin resend", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", 36, v);
    CHECK_EQ_STR(u, v);
    CHECK(otp_uuid_valid(u));
    CHECK(u[14] == '8');
    CHECK(strchr("89ab", u[19]) != NULL);
    otp_uuid_derive("otp-admin resend", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d02", 36, v);
    CHECK(strcmp(u, v) != 0);
    otp_uuid_derive("otp-produce line", "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", 36, v);
    CHECK(strcmp(u, v) != 0);
    /* The separator: ("ab", "c") and ("a", "bc") differ. */
    otp_uuid_derive("ab", "c", 1, u);
    otp_uuid_derive("a", "bc", 2, v);
    CHECK(strcmp(u, v) != 0);

    /* FIPS 180-2 "abc" */
    otp_sha256_hex("abc", h);
    CHECK_EQ_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* The app webhook's OTP-Signature: HMAC-SHA256(secret, "<t>." + body), the
 * values computed by Python's hmac (what examples/python/webhook_receiver.py
 * checks). */
static void test_hook_signature(void)
{
    char out[OTP_HOOK_SIGNATURE_MAX], small[20];

    CHECK_EQ_INT(otp_hook_signature("whsec_test", 1700000000LL, "{\"seq\":1}", 9, out, sizeof(out)),
                 (long)strlen("t=1700000000,v1=") + 64);
    CHECK_EQ_STR(out, "t=1700000000,v1="
                      "926c3c48823e4dc937cdb0992313bcbbc472579d779ab54f0d4e09e4049838aa");
    /* an empty body signs "<t>." alone */
    CHECK(otp_hook_signature("whsec_test", 0, "", 0, out, sizeof(out)) > 0);
    CHECK_EQ_STR(out, "t=0,v1=a2fa7a43c6a1cf2e784eaf3327d65c65b3d2b790320ebed9aa5661bc42a8cccd");
    /* another time or secret, another signature */
    CHECK(otp_hook_signature("whsec_test", 1700000001LL, "{\"seq\":1}", 9, out, sizeof(out)) > 0);
    CHECK(strstr(out, "926c3c48") == NULL);
    CHECK(otp_hook_signature("whsec_tesT", 1700000000LL, "{\"seq\":1}", 9, out, sizeof(out)) > 0);
    CHECK(strstr(out, "926c3c48") == NULL);
    /* too small a buffer is refused */
    CHECK_EQ_INT(otp_hook_signature("whsec_test", 1, "x", 1, small, sizeof(small)), -1);
}

int main(int argc, char **argv)
{
    (void)argc;
    if (otp_crypto_init() != 0) {
        printf("otp_crypto_init failed\n");
        return 1;
    }
    test_code_lengths();
    test_code_uniform();
    test_chi2_has_power();
    test_keyed_hash();
    test_keyring_parse();
    test_rotation();
    test_webhook_signature();
    test_hook_signature();
    test_uuid_sha256();
    return unit_finish(argv[0]);
}
