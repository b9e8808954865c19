/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny test harness. CHECK* never abort and never vanish under NDEBUG: each
 * failure prints file:line and both sides, and the binary ends with
 * `return unit_finish(argv[0]);`, which prints `<name>: N passed, N failed`
 * (the line tests/unit/run.sh sums) and returns non-zero on any failure.
 * Single-threaded: call the checks from one thread. */
#ifndef UNIT_H
#define UNIT_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int unit_passed;
static int unit_failed;
/* Optional label printed with each failure (a table row, a locale file...). */
static char unit_context[256];

/* Sets the label printed with later failures; unit_ctx(NULL) clears it. */
static inline void unit_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void unit_ctx(const char *fmt, ...)
{
    va_list ap;

    unit_context[0] = '\0';
    if (!fmt)
        return;
    va_start(ap, fmt);
    vsnprintf(unit_context, sizeof(unit_context), fmt, ap);
    va_end(ap);
}

static inline void unit_where(const char *file, int line)
{
    if (unit_context[0])
        printf("%s:%d: FAIL [%s] ", file, line, unit_context);
    else
        printf("%s:%d: FAIL ", file, line);
}

static inline int unit_check(int ok, const char *file, int line, const char *expr)
{
    if (ok) {
        unit_passed++;
        return 1;
    }
    unit_failed++;
    unit_where(file, line);
    printf("CHECK(%s)\n", expr);
    return 0;
}

static inline int unit_check_int(long long a, long long b, const char *file, int line,
                                 const char *ea, const char *eb)
{
    if (a == b) {
        unit_passed++;
        return 1;
    }
    unit_failed++;
    unit_where(file, line);
    printf("CHECK_EQ_INT(%s, %s): %lld != %lld\n", ea, eb, a, b);
    return 0;
}

/* Prints s quoted, with control and non-ASCII bytes as \xNN, at most 300 bytes. */
static inline void unit_print_str(const char *s)
{
    size_t i;

    if (!s) {
        printf("NULL");
        return;
    }
    putchar('"');
    for (i = 0; s[i] && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    if (s[i])
        printf("...");
    putchar('"');
}

static inline int unit_check_str(const char *a, const char *b, const char *file, int line,
                                 const char *ea, const char *eb)
{
    if ((a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0)) {
        unit_passed++;
        return 1;
    }
    unit_failed++;
    unit_where(file, line);
    printf("CHECK_EQ_STR(%s, %s): ", ea, eb);
    unit_print_str(a);
    printf(" != ");
    unit_print_str(b);
    putchar('\n');
    return 0;
}

/* Each returns 1 when the check passed, so a test can skip what depends on it. */
#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b)                                                                         \
    unit_check_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_STR(a, b) unit_check_str((a), (b), __FILE__, __LINE__, #a, #b)

/* A row or case that cannot run here (say, a locale file that does not exist). */
static inline void unit_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void unit_skip(const char *fmt, ...)
{
    va_list ap;

    printf("SKIP ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

/* Prints the summary line; the exit status for main. */
static inline int unit_finish(const char *argv0)
{
    const char *name = argv0 ? strrchr(argv0, '/') : NULL;

    name = name ? name + 1 : (argv0 ? argv0 : "test");
    printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
    fflush(stdout);
    return unit_failed ? 1 : 0;
}

#endif
