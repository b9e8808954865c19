/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t sim_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sim_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fmt_base(int64_t us, char *out, size_t n, int *frac)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;

    *frac = (int)(us % 1000000);
    gmtime_r(&s, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
}

void sim_fmt_time(int64_t us, char out[SIM_TIME_LEN])
{
    char base[32], f[8];
    int frac, i;

    fmt_base(us, base, sizeof base, &frac);
    if (!frac) {
        snprintf(out, SIM_TIME_LEN, "%sZ", base);
        return;
    }
    snprintf(f, sizeof f, "%06d", frac);
    for (i = 5; i > 0 && f[i] == '0'; i--)
        f[i] = '\0';
    snprintf(out, SIM_TIME_LEN, "%s.%sZ", base, f);
}

json_t *sim_time_json(int64_t us)
{
    char t[SIM_TIME_LEN];

    if (!us)
        return json_null();
    sim_fmt_time(us, t);
    return json_string(t);
}

void sim_fmt_time6(int64_t us, char out[SIM_TIME_LEN])
{
    char base[32];
    int frac;

    fmt_base(us, base, sizeof base, &frac);
    snprintf(out, SIM_TIME_LEN, "%s.%06dZ", base, frac);
}

int sim_parse_time(const char *s, int64_t *us)
{
    struct tm tm;
    int y, mo, d, h, mi, sec, n = 0;
    char sep;
    int64_t frac = 0, scale = 100000;
    time_t t;

    if (!s || sscanf(s, "%4d-%2d-%2d%c%2d:%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &sec, &n) != 7)
        return -1;
    if (sep != 'T' && sep != ' ' && sep != 't')
        return -1;
    s += n;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            frac += (*s - '0') * scale;
            scale /= 10;
            s++;
        }
    }
    if (*s && strcmp(s, "Z") && strcmp(s, "z") && strcmp(s, "+00:00"))
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *us = (int64_t)t * 1000000 + frac;
    return 0;
}

void sim_uuid(char out[37])
{
    unsigned char b[16];

    randombytes_buf(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int sim_is_uuid(const char *s)
{
    int i;

    if (!s || strlen(s) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

void sim_request_id(char out[31])
{
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char r[26];
    int i;

    randombytes_buf(r, sizeof r);
    memcpy(out, "req_", 4);
    for (i = 0; i < 26; i++)
        out[4 + i] = b32[r[i] & 31];
    out[30] = '\0';
}

int sim_request_id_safe(const char *s)
{
    size_t i, n;

    if (!s)
        return 0;
    n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int sim_is_e164(const char *s)
{
    size_t i, n;

    if (!s || s[0] != '+')
        return 0;
    n = strlen(s + 1);
    if (n < 7 || n > 15)
        return 0;
    for (i = 1; i <= n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Calling code → country, longest prefix wins. Enough for whitelist tests, not a numbering
 * plan. */
static const struct {
    const char *prefix, *cc;
} countries[] = {
    {"1", "us"},    {"1204", "ca"}, {"1236", "ca"}, {"1250", "ca"}, {"1289", "ca"}, {"1306", "ca"},
    {"1343", "ca"}, {"1365", "ca"}, {"1403", "ca"}, {"1416", "ca"}, {"1418", "ca"}, {"1431", "ca"},
    {"1437", "ca"}, {"1438", "ca"}, {"1450", "ca"}, {"1506", "ca"}, {"1514", "ca"}, {"1519", "ca"},
    {"1548", "ca"}, {"1579", "ca"}, {"1581", "ca"}, {"1587", "ca"}, {"1604", "ca"}, {"1613", "ca"},
    {"1639", "ca"}, {"1647", "ca"}, {"1705", "ca"}, {"1709", "ca"}, {"1778", "ca"}, {"1780", "ca"},
    {"1782", "ca"}, {"1807", "ca"}, {"1819", "ca"}, {"1825", "ca"}, {"1867", "ca"}, {"1873", "ca"},
    {"1902", "ca"}, {"1905", "ca"}, {"20", "eg"},   {"212", "ma"},  {"234", "ng"},  {"254", "ke"},
    {"27", "za"},   {"30", "gr"},   {"31", "nl"},   {"32", "be"},   {"33", "fr"},   {"34", "es"},
    {"351", "pt"},  {"353", "ie"},  {"358", "fi"},  {"36", "hu"},   {"380", "ua"},  {"39", "it"},
    {"40", "ro"},   {"41", "ch"},   {"420", "cz"},  {"43", "at"},   {"44", "gb"},   {"45", "dk"},
    {"46", "se"},   {"47", "no"},   {"48", "pl"},   {"49", "de"},   {"51", "pe"},   {"52", "mx"},
    {"54", "ar"},   {"55", "br"},   {"56", "cl"},   {"57", "co"},   {"60", "my"},   {"61", "au"},
    {"62", "id"},   {"63", "ph"},   {"64", "nz"},   {"65", "sg"},   {"66", "th"},   {"7", "ru"},
    {"81", "jp"},   {"82", "kr"},   {"84", "vn"},   {"852", "hk"},  {"86", "cn"},   {"880", "bd"},
    {"886", "tw"},  {"90", "tr"},   {"91", "in"},   {"92", "pk"},   {"966", "sa"},  {"971", "ae"},
    {"972", "il"},
};

const char *sim_country_of(const char *e164)
{
    size_t i, best = 0;
    const char *cc = NULL;

    if (!sim_is_e164(e164))
        return NULL;
    for (i = 0; i < sizeof countries / sizeof countries[0]; i++) {
        size_t n = strlen(countries[i].prefix);
        if (n > best && !strncmp(e164 + 1, countries[i].prefix, n)) {
            best = n;
            cc = countries[i].cc;
        }
    }
    return cc;
}

double sim_rand01(void)
{
    return randombytes_uniform(1000000) / 1000000.0;
}

int sim_buf_add(sim_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int sim_buf_adds(sim_buf *b, const char *s)
{
    return sim_buf_add(b, s, strlen(s));
}

char *sim_buf_take(sim_buf *b)
{
    char *p;

    if (!b->p && sim_buf_add(b, "", 0))
        return NULL;
    p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void sim_buf_free(sim_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *sim_strdup(const char *s)
{
    return strdup(s ? s : "");
}

void sim_strlcpy(char *dst, const char *src, size_t n)
{
    size_t l;

    if (!n)
        return;
    l = src ? strlen(src) : 0;
    if (l >= n)
        l = n - 1;
    if (l)
        memcpy(dst, src, l);
    dst[l] = '\0';
}
