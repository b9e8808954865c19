/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/api.c: OTP_API_KEY_HASHES as the verifier reads it at start (none is
 * fine: keys then come from PostgreSQL). A bad
 * list stops the program with the setting named; a good one is kept in lower
 * case (the request's key hash is compared in lower-case hex). The CORS
 * allowlist (OTP_CORS_ORIGINS) matches origins exactly. */
#include <stdio.h>
#include <string.h>

#include "../../verifier/api.h"
#include "unit.h"

#define H1 "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#define H2 "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752"

static int load(api_t *a, const char *list, char *err, size_t errsz)
{
    memset(a, 0, sizeof(*a));
    err[0] = '\0';
    return api_load_key_hashes(a, list, err, errsz);
}

int main(int argc, char **argv)
{
    static api_t a;
    char err[256], many[(API_MAX_KEYS + 1) * 65 + 1] = "";
    static const char *const bad[] = {
        H1 "0",                                                             /* 65 characters */
        "9f86d081884c7d659a2f",                                             /* too short */
        "zz86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", /* not hex */
        H1 ",,",                                                            /* an empty entry */
        H1 " ",                                                             /* a space */
    };

    (void)argc;
    /* None: the keys come from PostgreSQL (otp-admin key create). */
    CHECK_EQ_INT(load(&a, "", err, sizeof(err)), 0);
    CHECK_EQ_INT(a.n_api_keys, 0);
    CHECK_EQ_INT(load(&a, H1, err, sizeof(err)), 0);
    CHECK_EQ_INT(a.n_api_keys, 1);
    CHECK_EQ_STR(a.api_key_hashes[0], H1);
    /* Two, the second in upper case: kept in lower case. */
    CHECK_EQ_INT(load(&a, H1 "," H2, err, sizeof(err)), 0);
    CHECK_EQ_INT(a.n_api_keys, 2);
    CHECK_EQ_STR(a.api_key_hashes[1],
                 "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unit_ctx("\"%s\"", bad[i]);
        CHECK_EQ_INT(load(&a, bad[i], err, sizeof(err)), -1);
        CHECK(strstr(err, "OTP_API_KEY_HASHES") != NULL);
    }
    unit_ctx(NULL);
    /* Exactly API_MAX_KEYS is accepted; one more is refused. */
    for (int i = 0; i < API_MAX_KEYS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%s", i ? "," : "", H1);
    CHECK_EQ_INT(load(&a, many, err, sizeof(err)), 0);
    CHECK_EQ_INT(a.n_api_keys, API_MAX_KEYS);
    snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%s", H1);
    CHECK_EQ_INT(load(&a, many, err, sizeof(err)), -1);
    CHECK(strstr(err, "OTP_API_KEY_HASHES") != NULL);

    /* OTP_CORS_ORIGINS: exact entries, spaces around commas ignored; no
     * prefix, suffix, wildcard or empty match. */
    {
        const char *list = "https://app.example, http://127.0.0.1:8080 ,https://b.example";
        CHECK_EQ_INT(api_origin_allowed(list, "https://app.example"), 1);
        CHECK_EQ_INT(api_origin_allowed(list, "http://127.0.0.1:8080"), 1);
        CHECK_EQ_INT(api_origin_allowed(list, "https://b.example"), 1);
        CHECK_EQ_INT(api_origin_allowed(list, "https://app.example.evil"), 0);
        CHECK_EQ_INT(api_origin_allowed(list, "https://app.exampl"), 0);
        CHECK_EQ_INT(api_origin_allowed(list, "http://127.0.0.1:808"), 0);
        CHECK_EQ_INT(api_origin_allowed(list, ""), 0);
        CHECK_EQ_INT(api_origin_allowed(list, NULL), 0);
        CHECK_EQ_INT(api_origin_allowed("", "https://app.example"), 0);
        CHECK_EQ_INT(api_origin_allowed("*", "https://app.example"), 0);
        CHECK_EQ_INT(api_origin_allowed(",,", ""), 0);
    }
    return unit_finish(argv[0]);
}
