/* SPDX-License-Identifier: Apache-2.0 */
/* otp_config: required settings, integer bounds, sample secrets, _FILE secrets.
 * Runs with a cleaned environment: every OTP_* and KAFKA_* variable is removed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otp_config.h"
#include "unit.h"

extern char **environ;

#define GOOD_KEY "3f1c9a7be2d4058617fa3c2e9b0d4a6581c7e2f39a0b4d6c8e1f2a3b4c5d6e7f"
#define SAMPLE_KEY "0000000000000000000000000000000000000000000000000000000000000000"

static void clear_env(void)
{
    for (;;) {
        char name[256];
        int found = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "OTP_", 4) == 0 || strncmp(*e, "KAFKA_", 6) == 0) {
                snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
                found = 1;
                break;
            }
        }
        if (!found)
            return;
        unsetenv(name);
    }
}

static void verifier_env(void)
{
    clear_env();
    setenv("OTP_HASH_KEY", GOOD_KEY, 1);
    setenv("OTP_WEBHOOK_SECRET", "b1f0c3d2e5a4", 1);
    setenv("OTP_API_KEY_HASHES", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           1);
}

static void worker_env(void)
{
    clear_env();
    setenv("OTP_HASH_KEY", GOOD_KEY, 1);
    setenv("OTP_VOIPBIN_ACCESS_KEY", "vb_live_8f2a1c", 1);
    setenv("OTP_CALLER_ID", "+14155550100", 1);
}

/* Loads; expects failure with a message holding want1 and (unless NULL) want2. */
static void expect_refused(unsigned prog, const char *what, const char *want1, const char *want2)
{
    char err[512] = "";
    int ok;

    unit_ctx("%s", what);
    CHECK_EQ_INT(otp_config_load(prog, err, sizeof(err)), -1);
    ok = CHECK(strstr(err, want1) != NULL);

    ok &= CHECK(!want2 || strstr(err, want2) != NULL);
    if (!ok)
        printf("    errstr: %s\n", err);
    unit_ctx(NULL);
}

static void expect_ok(unsigned prog, const char *what)
{
    char err[512] = "";

    unit_ctx("%s", what);
    if (!CHECK_EQ_INT(otp_config_load(prog, err, sizeof(err)), 0))
        printf("    errstr: %s\n", err);
    unit_ctx(NULL);
}

static void test_required(void)
{
    static const char *const verifier_required[] = {"OTP_HASH_KEY", "OTP_WEBHOOK_SECRET", NULL};
    static const char *const worker_required[] = {"OTP_HASH_KEY", "OTP_VOIPBIN_ACCESS_KEY",
                                                  "OTP_CALLER_ID"};
    char what[128];

    verifier_env();
    expect_ok(OTP_PROG_VERIFIER, "verifier, all required set");
    worker_env();
    expect_ok(OTP_PROG_WORKER, "worker, all required set");

    clear_env();
    expect_refused(OTP_PROG_VERIFIER, "verifier, nothing set", "OTP_HASH_KEY", "required");
    /* API keys may all come from PostgreSQL (otp-admin key create). */
    verifier_env();
    unsetenv("OTP_API_KEY_HASHES");
    expect_ok(OTP_PROG_VERIFIER, "verifier without OTP_API_KEY_HASHES");
    verifier_env();
    setenv("OTP_API_KEY_HASHES", "", 1);
    expect_ok(OTP_PROG_VERIFIER, "verifier with empty OTP_API_KEY_HASHES");

    for (size_t i = 0; i < 3; i++) {
        if (verifier_required[i]) {
            verifier_env();
            unsetenv(verifier_required[i]);
            snprintf(what, sizeof(what), "verifier without %s", verifier_required[i]);
            expect_refused(OTP_PROG_VERIFIER, what, verifier_required[i], "required");
            verifier_env();
            setenv(verifier_required[i], "", 1);
            snprintf(what, sizeof(what), "verifier with empty %s", verifier_required[i]);
            expect_refused(OTP_PROG_VERIFIER, what, verifier_required[i], "required");
        }
        worker_env();
        unsetenv(worker_required[i]);
        snprintf(what, sizeof(what), "worker without %s", worker_required[i]);
        expect_refused(OTP_PROG_WORKER, what, worker_required[i], "required");
    }

    /* a setting another program needs is not required here */
    verifier_env();
    expect_ok(OTP_PROG_VERIFIER, "verifier needs no OTP_CALLER_ID");
    clear_env();
    expect_ok(OTP_PROG_PRODUCER, "producer needs no secret");
}

static void test_integers(void)
{
    static const struct {
        unsigned prog;
        const char *name, *value, *range;
    } rows[] = {
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "0", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "32768", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "-1", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "abc", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "12x", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "1.5", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY_ID", "99999999999999999999999", "1 to 32767"},
        {OTP_PROG_VERIFIER, "OTP_MAX_BODY_BYTES", "255", "256 to 65536"},
        {OTP_PROG_VERIFIER, "OTP_MAX_BODY_BYTES", "65537", "256 to 65536"},
        {OTP_PROG_VERIFIER, "OTP_VERIFIER_THREADS", "0", "1 to 256"},
        {OTP_PROG_VERIFIER, "OTP_VERIFIER_DB_CONNECTIONS", "0", "1 to 64"},
        {OTP_PROG_WORKER, "OTP_TTL_SECONDS", "601", "60 to 600"},
        {OTP_PROG_WORKER, "OTP_TTL_SECONDS", "59", "60 to 600"},
        {OTP_PROG_WORKER, "OTP_CODE_LENGTH", "3", "4 to 10"},
        {OTP_PROG_WORKER, "OTP_CODE_LENGTH", "11", "4 to 10"},
        {OTP_PROG_WORKER, "OTP_MAX_ATTEMPTS", "0", "1 to 10"},
        {OTP_PROG_WORKER, "OTP_RETRY_CAP_MS", "3600001", "10 to 3600000"},
        {OTP_PROG_WORKER, "OTP_DEMO_MODE", "2", "0 to 1"},
    };
    char what[160];

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        if (rows[i].prog == OTP_PROG_WORKER)
            worker_env();
        else
            verifier_env();
        setenv(rows[i].name, rows[i].value, 1);
        snprintf(what, sizeof(what), "%s=\"%s\"", rows[i].name, rows[i].value);
        expect_refused(rows[i].prog, what, rows[i].name, rows[i].range);
    }

    /* the bounds themselves are fine, and the values are read back */
    worker_env();
    setenv("OTP_TTL_SECONDS", "600", 1);
    setenv("OTP_CODE_LENGTH", "4", 1);
    setenv("OTP_HASH_KEY_ID", "32767", 1);
    expect_ok(OTP_PROG_WORKER, "worker at the bounds");
    CHECK_EQ_INT(otp_config_int("OTP_TTL_SECONDS"), 600);
    CHECK_EQ_INT(otp_config_int("OTP_CODE_LENGTH"), 4);
    CHECK_EQ_INT(otp_config_int("OTP_HASH_KEY_ID"), 32767);
    /* defaults */
    worker_env();
    expect_ok(OTP_PROG_WORKER, "worker defaults");
    CHECK_EQ_INT(otp_config_int("OTP_TTL_SECONDS"), 300);
    CHECK_EQ_INT(otp_config_int("OTP_CODE_LENGTH"), 6);
    CHECK_EQ_STR(otp_config_str("OTP_DEFAULT_LOCALE"), "en-US");
    CHECK_EQ_STR(otp_config_str("OTP_CALLER_ID"), "+14155550100");
    CHECK_EQ_INT(otp_config_bool("OTP_DEMO_MODE"), 0);
    CHECK(otp_config_str("OTP_NO_SUCH_SETTING") == NULL);

    /* another program's setting is not checked */
    verifier_env();
    setenv("OTP_TTL_SECONDS", "9999", 1);
    expect_ok(OTP_PROG_VERIFIER, "verifier ignores OTP_TTL_SECONDS");

    worker_env();
    setenv("OTP_LOG_LEVEL", "verbose", 1);
    expect_refused(OTP_PROG_WORKER, "OTP_LOG_LEVEL=verbose", "OTP_LOG_LEVEL", "verbose");
    worker_env();
    setenv("OTP_LOG_LEVEL", "debug", 1);
    expect_ok(OTP_PROG_WORKER, "OTP_LOG_LEVEL=debug");
    worker_env();
    setenv("OTP_LOG_FORMAT", "xml", 1);
    expect_refused(OTP_PROG_WORKER, "OTP_LOG_FORMAT=xml", "OTP_LOG_FORMAT", "logfmt or json");
    worker_env();
    setenv("OTP_LOG_FORMAT", "json", 1);
    expect_ok(OTP_PROG_WORKER, "OTP_LOG_FORMAT=json");
}

static void test_sample_secrets(void)
{
    static const struct {
        unsigned prog;
        const char *name, *value;
    } rows[] = {
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY", SAMPLE_KEY},
        {OTP_PROG_VERIFIER, "OTP_HASH_KEY",
         "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
        {OTP_PROG_VERIFIER, "OTP_WEBHOOK_SECRET", "demo-webhook-secret"},
        {OTP_PROG_VERIFIER, "OTP_WEBHOOK_SECRET", "changeme"},
        {OTP_PROG_VERIFIER, "OTP_WEBHOOK_SECRET", "secret"},
        {OTP_PROG_WORKER, "OTP_VOIPBIN_ACCESS_KEY", "vb_demo_access_key_not_secret"},
        {OTP_PROG_WORKER, "OTP_VOIPBIN_ACCESS_KEY", "test"},
    };
    char what[160];

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        if (rows[i].prog == OTP_PROG_WORKER)
            worker_env();
        else
            verifier_env();
        setenv(rows[i].name, rows[i].value, 1);
        snprintf(what, sizeof(what), "sample %s=%s", rows[i].name, rows[i].value);
        expect_refused(rows[i].prog, what, rows[i].name, "sample");
        setenv("OTP_DEMO_MODE", "0", 1);
        expect_refused(rows[i].prog, what, rows[i].name, "sample");
        setenv("OTP_DEMO_MODE", "1", 1);
        snprintf(what, sizeof(what), "sample %s=%s in demo mode", rows[i].name, rows[i].value);
        expect_ok(rows[i].prog, what);
        CHECK_EQ_INT(otp_config_demo_mode(), 1);
    }
    clear_env();
    CHECK_EQ_INT(otp_config_demo_mode(), 0);
}

static void test_secret_files(void)
{
    char path[] = "/tmp/otp-unit-secret-XXXXXX";
    int fd = mkstemp(path);
    FILE *f;

    if (!CHECK(fd >= 0))
        return;
    f = fdopen(fd, "w");
    fputs(GOOD_KEY "\n", f);
    fclose(f);

    verifier_env();
    unsetenv("OTP_HASH_KEY");
    setenv("OTP_HASH_KEY_FILE", path, 1);
    expect_ok(OTP_PROG_VERIFIER, "OTP_HASH_KEY_FILE");
    CHECK_EQ_STR(otp_config_str("OTP_HASH_KEY"), GOOD_KEY); /* trailing newline dropped */

    /* the variable itself wins over the file */
    setenv("OTP_HASH_KEY", "4f1c9a7be2d4058617fa3c2e9b0d4a6581c7e2f39a0b4d6c8e1f2a3b4c5d6e7f", 1);
    expect_ok(OTP_PROG_VERIFIER, "OTP_HASH_KEY and OTP_HASH_KEY_FILE");
    CHECK_EQ_STR(otp_config_str("OTP_HASH_KEY"),
                 "4f1c9a7be2d4058617fa3c2e9b0d4a6581c7e2f39a0b4d6c8e1f2a3b4c5d6e7f");

    /* a sample secret in the file is refused too */
    f = fopen(path, "w");
    fputs(SAMPLE_KEY "\r\n", f);
    fclose(f);
    unsetenv("OTP_HASH_KEY");
    expect_refused(OTP_PROG_VERIFIER, "sample in OTP_HASH_KEY_FILE", "OTP_HASH_KEY", "sample");

    unlink(path);
    expect_refused(OTP_PROG_VERIFIER, "missing OTP_HASH_KEY_FILE", "OTP_HASH_KEY_FILE", path);
    clear_env();
}

int main(int argc, char **argv)
{
    (void)argc;
    test_required();
    test_integers();
    test_sample_secrets();
    test_secret_files();
    return unit_finish(argv[0]);
}
