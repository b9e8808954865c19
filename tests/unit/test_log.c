/* SPDX-License-Identifier: Apache-2.0 */
/* otp_log: logfmt and JSON lines, escaping, truncation, and librdkafka's log
 * lines routed through it (otp_kafka_log). */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otp_kafka.h"
#include "otp_log.h"
#include "unit.h"

/* Parses one JSON line; NULL (and a failed check) if it is not one object. */
static json_t *parse_line(const char *line, size_t len)
{
    json_error_t e;
    json_t *o;

    CHECK(len > 0 && line[len - 1] == '\n');
    CHECK(memchr(line, '\n', len) == line + len - 1);
    o = json_loadb(line, len, 0, &e);
    if (!CHECK(json_is_object(o))) {
        printf("  line: %.*s  error: %s\n", (int)len, line, e.text);
        json_decref(o);
        return NULL;
    }
    return o;
}

static void test_logfmt(void)
{
    char line[4096];
    size_t n;

    otp_log_init("test-prog", OTP_LOG_DEBUG, OTP_LOG_LOGFMT);
    n = otp_log_format_line(line, sizeof(line), OTP_LOG_WARN, "thing_done", "a=1 b=\"x y\"");
    line[n] = '\0';
    CHECK(n > 24 && line[4] == '-' && line[10] == 'T' && line[23] == 'Z');
    CHECK(strstr(line, " level=warn prog=test-prog event=thing_done a=1 b=\"x y\"\n") != NULL);
    /* A newline inside a value cannot start a forged line. */
    n = otp_log_format_line(line, sizeof(line), OTP_LOG_INFO, "e", "v=\"a\nlevel=error\"");
    line[n] = '\0';
    CHECK(strchr(line, '\n') == line + n - 1);
}

static void test_json(void)
{
    char line[4096];
    size_t n;
    json_t *o;

    otp_log_init("test-prog", OTP_LOG_DEBUG, OTP_LOG_JSON);
    n = otp_log_format_line(line, sizeof(line), OTP_LOG_ERROR, "db_failed",
                            "attempt=3 ok=true quoted=\"5\" error=\"server said \\\"no\\\"\" "
                            "ctl=\"a\tb\" big=12345678901234567890 neg=-4 lead=007 word");
    o = parse_line(line, n);
    if (o) {
        CHECK_EQ_STR(json_string_value(json_object_get(o, "level")), "error");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "prog")), "test-prog");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "event")), "db_failed");
        CHECK(json_string_length(json_object_get(o, "ts")) == 24);
        CHECK_EQ_INT(json_integer_value(json_object_get(o, "attempt")), 3);
        CHECK(json_is_true(json_object_get(o, "ok")));
        CHECK_EQ_STR(json_string_value(json_object_get(o, "quoted")), "5");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "error")), "server said \"no\"");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "ctl")), "a\tb");
        /* Too long for an exact double, or not a plain number: kept as text. */
        CHECK_EQ_STR(json_string_value(json_object_get(o, "big")), "12345678901234567890");
        CHECK_EQ_INT(json_integer_value(json_object_get(o, "neg")), -4);
        CHECK_EQ_STR(json_string_value(json_object_get(o, "lead")), "007");
        CHECK_EQ_STR(json_string_value(json_object_get(o, "msg")), "word");
        CHECK(json_object_get(o, "truncated") == NULL);
    }
    json_decref(o);
}

static void test_json_truncated(void)
{
    char fields[2000], line[1024];
    size_t n;
    json_t *o;

    otp_log_init("test-prog", OTP_LOG_DEBUG, OTP_LOG_JSON);
    memset(fields, 'x', sizeof(fields));
    memcpy(fields, "a=1 long=\"", 10);
    fields[sizeof(fields) - 2] = '"';
    fields[sizeof(fields) - 1] = '\0';
    n = otp_log_format_line(line, sizeof(line), OTP_LOG_INFO, "e", fields);
    CHECK(n <= sizeof(line));
    o = parse_line(line, n);
    if (o) {
        CHECK_EQ_INT(json_integer_value(json_object_get(o, "a")), 1);
        CHECK(json_object_get(o, "long") == NULL);
        CHECK(json_is_true(json_object_get(o, "truncated")));
    }
    json_decref(o);
}

/* librdkafka's callback: the level maps to ours, the line is ours, JSON when asked. */
static void test_kafka_log_routed(void)
{
    int fds[2], saved;
    char buf[4096];
    ssize_t n;
    json_t *o;

    if (!CHECK(pipe(fds) == 0))
        return;
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    otp_log_init("test-prog", OTP_LOG_INFO, OTP_LOG_JSON);
    otp_kafka_log(NULL, 3, "FAIL",
                  "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: \"refused\"");
    otp_kafka_log(NULL, 7, "BROKER", "debug line that the level filter drops");
    otp_kafka_log(NULL, 4, "WARN", "a warning");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    if (!CHECK(n > 0))
        return;
    buf[n] = '\0';
    CHECK(strstr(buf, "%3|") == NULL);
    CHECK(strstr(buf, "debug line") == NULL);
    {
        char *nl = strchr(buf, '\n');
        if (!CHECK(nl != NULL))
            return;
        o = parse_line(buf, (size_t)(nl - buf + 1));
        if (o) {
            CHECK_EQ_STR(json_string_value(json_object_get(o, "event")), "kafka_log");
            CHECK_EQ_STR(json_string_value(json_object_get(o, "level")), "error");
            CHECK_EQ_STR(json_string_value(json_object_get(o, "facility")), "FAIL");
            CHECK(strstr(json_string_value(json_object_get(o, "message")), "Connect to") != NULL);
        }
        json_decref(o);
        o = parse_line(nl + 1, strlen(nl + 1));
        if (o)
            CHECK_EQ_STR(json_string_value(json_object_get(o, "level")), "warn");
        json_decref(o);
    }
}

static void test_parse(void)
{
    CHECK_EQ_INT(otp_log_format_parse("logfmt"), OTP_LOG_LOGFMT);
    CHECK_EQ_INT(otp_log_format_parse("json"), OTP_LOG_JSON);
    CHECK_EQ_INT(otp_log_format_parse("JSON"), -1);
    CHECK_EQ_INT(otp_log_format_parse(""), -1);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_logfmt();
    test_json();
    test_json_truncated();
    test_kafka_log_routed();
    test_parse();
    return unit_finish(argv[0]);
}
