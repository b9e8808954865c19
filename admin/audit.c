/* SPDX-License-Identifier: Apache-2.0 */
#include "audit.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* One event as read: what the audit needs of it. */
typedef struct audit_event {
    char request_id[37];
    char event_id[37];
    char type[24];
    long long seq;
    int64_t ts_ms;
    size_t order; /* position in the read */
} audit_event_t;

struct audit {
    audit_event_t *ev;
    size_t n, cap;
    long not_events; /* values that were not status events */
};

/* The types after which nothing more happens to a request. */
static const char *const final_types[] = {"verified", "locked",  "expired",      "superseded",
                                          "rejected", "blocked", "rate_limited", "failed"};

static int is_final(const char *type)
{
    for (size_t i = 0; i < sizeof(final_types) / sizeof(final_types[0]); i++)
        if (strcmp(type, final_types[i]) == 0)
            return 1;
    return 0;
}

audit_t *audit_new(void)
{
    return calloc(1, sizeof(audit_t));
}

void audit_destroy(audit_t *a)
{
    if (!a)
        return;
    free(a->ev);
    free(a);
}

static int copy_str(char *dst, size_t size, json_t *v)
{
    const char *s = json_string_value(v);

    if (!s || strlen(s) >= size)
        return -1;
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

int audit_add(audit_t *a, const char *value, size_t len, int64_t ts_ms)
{
    json_t *root = json_loadb(value, len, 0, NULL);
    audit_event_t e;
    int rc = 1;

    memset(&e, 0, sizeof(e));
    if (!root ||
        copy_str(e.request_id, sizeof(e.request_id), json_object_get(root, "request_id")) ||
        copy_str(e.event_id, sizeof(e.event_id), json_object_get(root, "event_id")) ||
        copy_str(e.type, sizeof(e.type), json_object_get(root, "type")) ||
        !json_is_integer(json_object_get(root, "seq"))) {
        a->not_events++;
        goto out;
    }
    e.seq = (long long)json_integer_value(json_object_get(root, "seq"));
    e.ts_ms = ts_ms;
    e.order = a->n;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        audit_event_t *ev = realloc(a->ev, cap * sizeof(*ev));
        if (!ev) {
            rc = -1;
            goto out;
        }
        a->ev = ev;
        a->cap = cap;
    }
    a->ev[a->n++] = e;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* By request, then in the order read. */
static int by_request(const void *x, const void *y)
{
    const audit_event_t *a = x, *b = y;
    int c = strcmp(a->request_id, b->request_id);

    if (c)
        return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int by_seq(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;

    return a < b ? -1 : a > b;
}

/* Checks the events ev[0..n) of one request; prints a line when something
 * is wrong and returns 1, else 0. seqs has room for n numbers. */
static int check_request(const audit_event_t *ev, size_t n, long long *seqs, int64_t settle_ms,
                         FILE *out, long *partial)
{
    size_t ns = 0, missing = 0;
    long long high = 0;
    int final = 0, out_of_order = 0, conflict = 0, bad;
    char gaps[256] = "";
    size_t gl = 0;

    for (size_t i = 0; i < n; i++) {
        int dup = 0;

        for (size_t j = 0; j < i; j++) {
            if (strcmp(ev[j].event_id, ev[i].event_id) == 0) {
                dup = 1; /* delivered twice: at least once is the contract */
                break;
            }
            if (ev[j].seq == ev[i].seq)
                conflict = 1; /* two different events with one number */
        }
        if (dup)
            continue;
        if (ev[i].seq < high)
            out_of_order = 1;
        if (ev[i].seq > high)
            high = ev[i].seq;
        final |= is_final(ev[i].type);
        seqs[ns++] = ev[i].seq;
    }
    qsort(seqs, ns, sizeof(*seqs), by_seq);
    if (seqs[0] > 1)
        (*partial)++;
    for (size_t i = 1; i < ns; i++)
        for (long long s = seqs[i - 1] + 1; s < seqs[i]; s++) {
            int w = 0;

            missing++;
            if (gl + 24 < sizeof(gaps))
                w = snprintf(gaps + gl, sizeof(gaps) - gl, "%s%lld", gl ? "," : "", s);
            else if (gl + 4 < sizeof(gaps) && gaps[gl - 1] != '.')
                w = snprintf(gaps + gl, sizeof(gaps) - gl, ",...");
            gl += (size_t)(w > 0 ? w : 0);
        }
    if (!final && ev[n - 1].ts_ms > settle_ms)
        final = -1; /* still in flight */
    bad = missing || !final || out_of_order || conflict;
    if (bad)
        fprintf(out,
                "request_id=%s events=%zu first_seq=%lld last_seq=%lld missing=%zu%s%s"
                " final=%s out_of_order=%s duplicate_seq=%s\n",
                ev[0].request_id, ns, seqs[0], high, missing, missing ? " missing_seq=" : "", gaps,
                final == 1 ? "yes"
                : final    ? "in_flight"
                           : "no",
                out_of_order ? "yes" : "no", conflict ? "yes" : "no");
    return bad;
}

long audit_report(audit_t *a, int64_t settle_before_ms, FILE *out)
{
    long bad = 0, requests = 0, partial = 0;
    long long *seqs = NULL;
    size_t i = 0;

    if (a->n) {
        qsort(a->ev, a->n, sizeof(*a->ev), by_request);
        seqs = malloc(a->n * sizeof(*seqs));
        if (!seqs) {
            fprintf(out, "audit: out of memory\n");
            return -1;
        }
    }
    while (i < a->n) {
        size_t j = i + 1;

        while (j < a->n && strcmp(a->ev[j].request_id, a->ev[i].request_id) == 0)
            j++;
        requests++;
        bad += check_request(a->ev + i, j - i, seqs, settle_before_ms, out, &partial);
        i = j;
    }
    fprintf(out,
            "audit: events=%zu requests=%ld with_problems=%ld began_before_window=%ld "
            "not_status_events=%ld\n",
            a->n, requests, bad, partial, a->not_events);
    free(seqs);
    return bad;
}
