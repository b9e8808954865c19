/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static const char *log_program = "otp";
static otp_log_level_t log_min = OTP_LOG_INFO;
static otp_log_format_t log_format = OTP_LOG_LOGFMT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"logfmt", "json"};

void otp_log_init(const char *program, otp_log_level_t min_level, otp_log_format_t format)
{
    log_program = program;
    log_min = min_level;
    log_format = format;
}

int otp_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

int otp_log_format_parse(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(s, format_names[i]) == 0)
            return i;
    return -1;
}

/* A bounded appender: writes stop at the end of the buffer (one byte is kept
 * for the newline), the length keeps counting what fitted. */
typedef struct {
    char *p;
    size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s, size_t len)
{
    if (b->n + len > b->cap)
        len = b->cap - b->n;
    memcpy(b->p + b->n, s, len);
    b->n += len;
}

static void puts_(buf_t *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void put_json_str(buf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, s + i, 1);
        }
    }
}

static int is_bare(const char *v, size_t len)
{
    size_t i = v[0] == '-';

    if ((len == 4 && memcmp(v, "true", 4) == 0) || (len == 5 && memcmp(v, "false", 5) == 0))
        return 1;
    if (i >= len || len - i > 15 || (v[i] == '0' && len - i > 1))
        return 0;
    for (; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return 0;
    return 1;
}

/* logfmt fields → JSON members. A key runs to '='; a value is "quoted" (with
 * \" and \\ escapes) or runs to the next space. A word that is not a field
 * goes under "msg". A member that does not fit is left out whole, with
 * "truncated":true, so the line stays one valid JSON object. */
static void put_fields_json(buf_t *b, const char *f)
{
    char member[2 * LINE_MAX_BYTES];

    while (*f) {
        const char *key, *val;
        size_t klen, vlen;
        int quoted = 0;
        char unq[LINE_MAX_BYTES];
        size_t un = 0;
        buf_t m = {member, 0, sizeof(member)};

        while (*f == ' ')
            f++;
        if (!*f)
            break;
        key = f;
        klen = strcspn(f, "= ");
        if (f[klen] != '=' || klen == 0) {
            key = "msg";
            klen = 3;
            val = f;
            vlen = strcspn(f, " ");
            f += vlen;
            quoted = 1;
        } else if (f[klen + 1] == '"') {
            f += klen + 2;
            quoted = 1;
            while (*f && *f != '"' && un < sizeof(unq)) {
                if (*f == '\\' && (f[1] == '"' || f[1] == '\\'))
                    f++;
                unq[un++] = *f++;
            }
            if (*f == '"')
                f++;
            val = unq;
            vlen = un;
        } else {
            f += klen + 1;
            val = f;
            vlen = strcspn(f, " ");
            f += vlen;
        }
        puts_(&m, ",\"");
        put_json_str(&m, key, klen);
        puts_(&m, "\":");
        if (!quoted && vlen > 0 && is_bare(val, vlen)) {
            put(&m, val, vlen);
        } else {
            puts_(&m, "\"");
            put_json_str(&m, val, vlen);
            puts_(&m, "\"");
        }
        /* Room for the member, ",\"truncated\":true" and the closing brace. */
        if (m.n == m.cap || b->n + m.n + 18 > b->cap) {
            puts_(b, ",\"truncated\":true");
            return;
        }
        put(b, member, m.n);
    }
}

size_t otp_log_format_line(char *out, size_t out_size, otp_log_level_t level, const char *event,
                           const char *fields)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    size_t n;
    buf_t b = {out, 0, out_size > 0 ? out_size - 1 : 0};

    if (out_size == 0)
        return 0;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
    if (log_format == OTP_LOG_JSON) {
        puts_(&b, "{\"ts\":\"");
        puts_(&b, ts);
        puts_(&b, "\",\"level\":\"");
        puts_(&b, level_names[level]);
        puts_(&b, "\",\"prog\":\"");
        put_json_str(&b, log_program, strlen(log_program));
        puts_(&b, "\",\"event\":\"");
        put_json_str(&b, event, strlen(event));
        puts_(&b, "\"");
        put_fields_json(&b, fields);
        puts_(&b, "}");
    } else {
        puts_(&b, ts);
        puts_(&b, " level=");
        puts_(&b, level_names[level]);
        puts_(&b, " prog=");
        puts_(&b, log_program);
        puts_(&b, " event=");
        puts_(&b, event);
        puts_(&b, " ");
        puts_(&b, fields);
        /* One event, one line: a newline or other control byte inside a value
         * (a hostile field name, say) must not start a forged line. */
        for (size_t i = 0; i < b.n; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                out[i] = '?';
    }
    out[b.n++] = '\n';
    return b.n;
}

void otp_log(otp_log_level_t level, const char *event, const char *fmt, ...)
{
    char fields[LINE_MAX_BYTES], line[LINE_MAX_BYTES + 512];
    size_t n;
    va_list ap;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof(fields), fmt, ap);
    va_end(ap);
    n = otp_log_format_line(line, sizeof(line), level, event, fields);
    /* One write(2) keeps concurrent lines whole. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
