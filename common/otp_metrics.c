/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { COUNTER, GAUGE, HISTOGRAM } metric_type_t;

/* Bucket bounds in seconds, each list ending with a negative sentinel. */
static const double NOBUCKETS[] = {-1};
static const double FAST[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, -1};
static const double MEDIUM[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, -1};
static const double SLOW[] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, -1};

#define MAX_BUCKETS 16

typedef struct {
    const char *name;
    metric_type_t type;
    const char *label;
    const double *buckets;
    unsigned programs;
    const char *help;
} metric_def_t;

static const metric_def_t defs[OTP_M__COUNT] = {
#define OTP_METRIC_DEF(id, name, type, label, buckets, programs, help)                             \
    {name, type, label, buckets, programs, help},
    OTP_METRICS(OTP_METRIC_DEF)
#undef OTP_METRIC_DEF
};

typedef struct {
    char label[48];
    atomic_llong value;               /* counter or gauge; histograms: the count */
    atomic_llong sum_us;              /* histograms: sum of observations, microseconds */
    atomic_llong bucket[MAX_BUCKETS]; /* histograms: observations in (bound[i-1], bound[i]] */
} series_t;

typedef struct {
    atomic_int n; /* series in use; a series is complete before n counts it */
    series_t s[OTP_METRIC_MAX_SERIES];
} family_t;

static family_t families[OTP_M__COUNT];
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;
static char build_program[32] = "otp", build_version[32] = "0";

void otp_metrics_init(const char *program, const char *version)
{
    snprintf(build_program, sizeof(build_program), "%s", program);
    snprintf(build_version, sizeof(build_version), "%s", version);
    otp_metric_set(OTP_M_BUILD_INFO, NULL, 1);
}

/* Label values keep [A-Za-z0-9_.-]; anything else becomes '_' (no escaping needed). */
static void clean_label(const char *in, char out[48])
{
    size_t n = 0;
    for (; in && *in && n < 47; in++) {
        char c = *in;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
}

static series_t *series_for(otp_metric_id_t id, const char *label)
{
    family_t *f;
    char want[48];
    int n;

    if ((unsigned)id >= OTP_M__COUNT)
        return NULL;
    f = &families[id];
    clean_label(defs[id].label ? (label && *label ? label : "none") : "", want);
    n = atomic_load(&f->n);
    for (int i = 0; i < n; i++)
        if (strcmp(f->s[i].label, want) == 0)
            return &f->s[i];
    pthread_mutex_lock(&add_lock);
    n = atomic_load(&f->n);
    for (int i = 0; i < n; i++) {
        if (strcmp(f->s[i].label, want) == 0) {
            pthread_mutex_unlock(&add_lock);
            return &f->s[i];
        }
    }
    /* The last slot is kept for "other". */
    if (n >= OTP_METRIC_MAX_SERIES - 1) {
        series_t *other = NULL;
        for (int i = 0; i < n; i++)
            if (strcmp(f->s[i].label, "other") == 0)
                other = &f->s[i];
        if (!other && n < OTP_METRIC_MAX_SERIES) {
            other = &f->s[n];
            snprintf(other->label, sizeof(other->label), "other");
            atomic_store(&f->n, n + 1);
        }
        pthread_mutex_unlock(&add_lock);
        return other;
    }
    memcpy(f->s[n].label, want, sizeof(want));
    atomic_store(&f->n, n + 1);
    pthread_mutex_unlock(&add_lock);
    return &f->s[n];
}

void otp_metric_add(otp_metric_id_t id, const char *label, long long n)
{
    series_t *s = series_for(id, label);
    if (s)
        atomic_fetch_add(&s->value, n);
}

void otp_metric_set_counters(const otp_metric_counter_t *t, size_t n, const void *base)
{
    for (size_t i = 0; i < n; i++)
        otp_metric_set(t[i].id, t[i].label,
                       atomic_load((const atomic_llong *)((const char *)base + t[i].offset)));
}

void otp_metric_set(otp_metric_id_t id, const char *label, long long v)
{
    series_t *s = series_for(id, label);
    if (s)
        atomic_store(&s->value, v);
}

void otp_metric_observe(otp_metric_id_t id, const char *label, double seconds)
{
    series_t *s;
    int b = 0;

    if ((unsigned)id >= OTP_M__COUNT || defs[id].type != HISTOGRAM)
        return;
    s = series_for(id, label);
    if (!s)
        return;
    if (seconds < 0)
        seconds = 0;
    while (defs[id].buckets[b] >= 0 && seconds > defs[id].buckets[b])
        b++;
    /* b may be the +Inf bucket (index of the sentinel). */
    atomic_fetch_add(&s->bucket[b], 1);
    atomic_fetch_add(&s->sum_us, (long long)(seconds * 1e6));
    atomic_fetch_add(&s->value, 1);
}

void otp_metrics_reset(void)
{
    memset(families, 0, sizeof(families));
}

typedef struct {
    char *p;
    size_t n, cap;
    int failed;
} out_t;

static void emit(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(out_t *o, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (o->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        r = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (r < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)r < o->cap - o->n) {
            o->n += (size_t)r;
            return;
        }
        {
            size_t cap = o->cap * 2 + (size_t)r;
            char *np = realloc(o->p, cap);
            if (!np) {
                o->failed = 1;
                return;
            }
            o->p = np;
            o->cap = cap;
        }
    }
}

/* {label="value"} or "" for an unlabelled family; `extra` is appended (le="..."). */
static void labels(char *out, size_t size, const metric_def_t *d, const series_t *s,
                   const char *extra)
{
    if (d->label && extra)
        snprintf(out, size, "{%s=\"%s\",%s}", d->label, s->label, extra);
    else if (d->label)
        snprintf(out, size, "{%s=\"%s\"}", d->label, s->label);
    else if (extra)
        snprintf(out, size, "{%s}", extra);
    else
        out[0] = '\0';
}

char *otp_metrics_render(unsigned programs)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    out_t o = {malloc(8192), 0, 8192, 0};

    if (!o.p)
        return NULL;
    o.p[0] = '\0';
    for (int id = 0; id < OTP_M__COUNT; id++) {
        const metric_def_t *d = &defs[id];
        family_t *f = &families[id];
        int n = atomic_load(&f->n);

        if (!(d->programs & programs))
            continue;
        emit(&o, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, type_names[d->type]);
        if (id == OTP_M_BUILD_INFO) {
            emit(&o, "%s{program=\"%s\",version=\"%s\"} 1\n", d->name, build_program,
                 build_version);
            continue;
        }
        /* An unlabelled counter or gauge shows 0 before its first update. */
        if (n == 0 && !d->label && d->type != HISTOGRAM) {
            emit(&o, "%s 0\n", d->name);
            continue;
        }
        if (n == 0 && !d->label)
            n = series_for((otp_metric_id_t)id, NULL) ? 1 : 0;
        for (int i = 0; i < n; i++) {
            const series_t *s = &f->s[i];
            char lb[160];
            if (d->type != HISTOGRAM) {
                labels(lb, sizeof(lb), d, s, NULL);
                emit(&o, "%s%s %lld\n", d->name, lb, (long long)atomic_load(&s->value));
                continue;
            }
            {
                long long cum = 0, count = atomic_load(&s->value);
                int b = 0;
                for (; d->buckets[b] >= 0; b++) {
                    char le[40];
                    cum += atomic_load(&s->bucket[b]);
                    snprintf(le, sizeof(le), "le=\"%g\"", d->buckets[b]);
                    labels(lb, sizeof(lb), d, s, le);
                    emit(&o, "%s_bucket%s %lld\n", d->name, lb, cum);
                }
                cum += atomic_load(&s->bucket[b]);
                /* Updates race the scrape: the +Inf bucket and _count say the same. */
                if (count < cum)
                    count = cum;
                labels(lb, sizeof(lb), d, s, "le=\"+Inf\"");
                emit(&o, "%s_bucket%s %lld\n", d->name, lb, count);
                labels(lb, sizeof(lb), d, s, NULL);
                emit(&o, "%s_sum%s %.6f\n", d->name, lb, (double)atomic_load(&s->sum_us) / 1e6);
                emit(&o, "%s_count%s %lld\n", d->name, lb, count);
            }
        }
    }
    if (o.failed) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
