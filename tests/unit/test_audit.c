/* SPDX-License-Identifier: Apache-2.0 */
/* admin/audit.c: the completeness check of a stretch of otp.call_status,
 * fed events the way otp-admin reads them (per request in topic order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../admin/audit.h"
#include "unit.h"

#define R1 "11111111-1111-4111-8111-111111111111"
#define R2 "22222222-2222-4222-8222-222222222222"

static int add(audit_t *a, const char *rid, int seq, const char *type, const char *event_id,
               long long ts)
{
    char js[256];
    int n = snprintf(js, sizeof(js),
                     "{\"event_id\":\"%s\",\"type\":\"%s\",\"request_id\":\"%s\",\"seq\":%d}",
                     event_id, type, rid, seq);
    return audit_add(a, js, (size_t)n, ts);
}

/* The report as text, and the number of requests with a problem. */
static long report(audit_t *a, long long settle_before, char *out, size_t size)
{
    FILE *f = fmemopen(out, size, "w");
    long bad = audit_report(a, settle_before, f);

    fclose(f);
    return bad;
}

static void test_complete_with_duplicates(void)
{
    audit_t *a = audit_new();
    char out[2048];

    CHECK_EQ_INT(add(a, R1, 1, "accepted", "e1", 1000), 0);
    CHECK_EQ_INT(add(a, R2, 1, "accepted", "f1", 1000), 0);
    CHECK_EQ_INT(add(a, R1, 2, "call_requested", "e2", 1001), 0);
    CHECK_EQ_INT(add(a, R1, 2, "call_requested", "e2", 1002), 0); /* delivered twice */
    CHECK_EQ_INT(add(a, R1, 3, "verified", "e3", 1003), 0);
    CHECK_EQ_INT(add(a, R2, 2, "expired", "f2", 1004), 0);
    CHECK_EQ_INT(report(a, 5000, out, sizeof(out)), 0);
    CHECK(strstr(out, "requests=2 with_problems=0") != NULL);
    audit_destroy(a);
}

static void test_gap_order_final(void)
{
    audit_t *a = audit_new();
    char out[2048];

    /* R1: 1, 3, 2 (out of order, complete), then 5: 4 is missing. */
    CHECK_EQ_INT(add(a, R1, 1, "accepted", "e1", 1000), 0);
    CHECK_EQ_INT(add(a, R1, 3, "answered", "e3", 1001), 0);
    CHECK_EQ_INT(add(a, R1, 2, "call_requested", "e2", 1002), 0);
    CHECK_EQ_INT(add(a, R1, 5, "verified", "e5", 1003), 0);
    /* R2: no final event, quiet since 1000. */
    CHECK_EQ_INT(add(a, R2, 1, "accepted", "f1", 1000), 0);
    CHECK_EQ_INT(report(a, 5000, out, sizeof(out)), 2);
    CHECK(strstr(out, "request_id=" R1 " events=4 first_seq=1 last_seq=5 missing=1 "
                      "missing_seq=4 final=yes out_of_order=yes duplicate_seq=no") != NULL);
    CHECK(strstr(out, "request_id=" R2 " events=1 first_seq=1 last_seq=1 missing=0 final=no") !=
          NULL);
    audit_destroy(a);
}

static void test_in_flight_and_partial_and_junk(void)
{
    audit_t *a = audit_new();
    char out[2048];

    /* Began before the window (first seq 4), still in flight (newer than settle). */
    CHECK_EQ_INT(add(a, R1, 4, "ringing", "e4", 9000), 0);
    CHECK_EQ_INT(add(a, R1, 5, "answered", "e5", 9001), 0);
    CHECK_EQ_INT(audit_add(a, "not json", 8, 9000), 1);
    CHECK_EQ_INT(audit_add(a, "{\"type\":\"accepted\"}", 19, 9000), 1);
    CHECK_EQ_INT(report(a, 5000, out, sizeof(out)), 0);
    CHECK(strstr(out, "began_before_window=1 not_status_events=2") != NULL);
    /* Two different events with one number. */
    CHECK_EQ_INT(add(a, R2, 1, "accepted", "f1", 1000), 0);
    CHECK_EQ_INT(add(a, R2, 1, "ringing", "fX", 1001), 0);
    CHECK_EQ_INT(add(a, R2, 2, "verified", "f2", 1002), 0);
    CHECK_EQ_INT(report(a, 5000, out, sizeof(out)), 1);
    CHECK(strstr(out, "request_id=" R2) != NULL && strstr(out, "duplicate_seq=yes") != NULL);
    audit_destroy(a);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_complete_with_duplicates();
    test_gap_order_final();
    test_in_flight_and_partial_and_junk();
    audit_destroy(NULL);
    return unit_finish(argv[0]);
}
