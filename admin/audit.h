/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin audit: checks that a stretch of otp.call_status is complete.
 * Events are added one by one in the order they were read (per partition,
 * which is per request); audit_report then says, per request, which sequence
 * numbers are missing, whether a final event came, and whether events came
 * out of order. No network here: a unit test can feed it. */
#ifndef ADMIN_AUDIT_H
#define ADMIN_AUDIT_H

#include <stdint.h>
#include <stdio.h>

typedef struct audit audit_t;

/* A new, empty audit; NULL when out of memory. audit_destroy is NULL-safe. */
audit_t *audit_new(void);
void audit_destroy(audit_t *a);

/* Adds one event read from the topic (its JSON value, its Kafka timestamp in
 * ms). 0 ok; 1 when the value is not a status event (counted, reported);
 * -1 out of memory. */
int audit_add(audit_t *a, const char *value, size_t len, int64_t ts_ms)
    __attribute__((warn_unused_result));

/* Writes one line per request with a problem, then a summary line, to out.
 * A request whose last event is newer than settle_before_ms is still in
 * flight: not having a final event yet is not a problem. Requests whose
 * first event read is not seq 1 began before the stretch: their earlier
 * numbers are not asked for. Returns the number of requests with a problem. */
long audit_report(audit_t *a, int64_t settle_before_ms, FILE *out);

#endif
