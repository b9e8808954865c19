/* SPDX-License-Identifier: Apache-2.0 */
/* One logger for every program: one line per event, UTC timestamp, as logfmt
 * (key=value) or JSON (OTP_LOG_FORMAT). Lines never hold a code, a hash of a
 * code, a secret or a full phone number: callers pass masked phones
 * (otp_phone_mask) and never pass codes. */
#ifndef OTP_LOG_H
#define OTP_LOG_H

#include <stddef.h>

typedef enum {
    OTP_LOG_DEBUG = 0,
    OTP_LOG_INFO,
    OTP_LOG_WARN,
    OTP_LOG_ERROR,
} otp_log_level_t;

typedef enum {
    OTP_LOG_LOGFMT = 0, /* 2026-01-15T09:30:00.000Z level=info prog=p event=e k=v ... */
    OTP_LOG_JSON,       /* {"ts":"...","level":"info","prog":"p","event":"e","k":"v",...} */
} otp_log_format_t;

/* Sets the program name printed on every line, the lowest level written and
 * the line format. Call once from main before any thread starts. */
void otp_log_init(const char *program, otp_log_level_t min_level, otp_log_format_t format);

/* Parses "debug", "info", "warn" or "error"; -1 on anything else. */
int otp_log_level_parse(const char *s);

/* Parses "logfmt" or "json"; -1 on anything else. */
int otp_log_format_parse(const char *s);

/* Writes one event to stderr in one write, so lines from several threads
 * never interleave. `fmt` holds the fields as logfmt: key=value or
 * key="quoted value"; in JSON format each becomes a member (whole numbers
 * and true/false stay bare, the rest are strings). Thread-safe. */
void otp_log(otp_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one line (with its newline) into out, as otp_log would write it;
 * returns its length. For tests. Thread-safe. */
size_t otp_log_format_line(char *out, size_t out_size, otp_log_level_t level, const char *event,
                           const char *fields);

#define otp_debug(ev, ...) otp_log(OTP_LOG_DEBUG, ev, __VA_ARGS__)
#define otp_info(ev, ...) otp_log(OTP_LOG_INFO, ev, __VA_ARGS__)
#define otp_warn(ev, ...) otp_log(OTP_LOG_WARN, ev, __VA_ARGS__)
#define otp_error(ev, ...) otp_log(OTP_LOG_ERROR, ev, __VA_ARGS__)

#endif
