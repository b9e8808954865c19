#include "otp_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_program = "otp";
static otp_log_level_t log_min = OTP_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void otp_log_init(const char *program, otp_log_level_t min_level)
{
    log_program = program;
    log_min = min_level;
}

int otp_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void otp_log(otp_log_level_t level, const char *event, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    if (level < log_min)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ level=%s prog=%s event=%s ",
                 ts.tv_nsec / 1000000, level_names[level], log_program, event);
    if (r > 0)
        n += (size_t)r;
    if (n < sizeof(line)) {
        va_start(ap, fmt);
        r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        va_end(ap);
        if (r > 0)
            n += (size_t)r;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    /* One event, one line: a newline or other control byte inside a value
     * (a hostile field name, say) must not start a forged line. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[n++] = '\n';
    /* One write(2) keeps concurrent lines whole. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}
