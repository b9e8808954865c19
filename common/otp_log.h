/* One logger for every program: one line per event, key=value, UTC timestamp.
 * Lines never hold a code, a hash of a code, a secret or a full phone number:
 * callers pass masked phones (otp_phone_mask) and never pass codes. */
#ifndef OTP_LOG_H
#define OTP_LOG_H

typedef enum {
    OTP_LOG_DEBUG = 0,
    OTP_LOG_INFO,
    OTP_LOG_WARN,
    OTP_LOG_ERROR,
} otp_log_level_t;

/* Sets the program name printed on every line and the lowest level written.
 * Call once from main before any thread starts. */
void otp_log_init(const char *program, otp_log_level_t min_level);

/* Parses "debug", "info", "warn" or "error"; -1 on anything else. */
int otp_log_level_parse(const char *s);

/* Writes `<ts> level=<l> prog=<p> event=<event> <fields>` to stderr in one
 * write, so lines from several threads never interleave. `fmt` holds the
 * key=value fields. Thread-safe. */
void otp_log(otp_log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define otp_debug(ev, ...) otp_log(OTP_LOG_DEBUG, ev, __VA_ARGS__)
#define otp_info(ev, ...)  otp_log(OTP_LOG_INFO, ev, __VA_ARGS__)
#define otp_warn(ev, ...)  otp_log(OTP_LOG_WARN, ev, __VA_ARGS__)
#define otp_error(ev, ...) otp_log(OTP_LOG_ERROR, ev, __VA_ARGS__)

#endif
