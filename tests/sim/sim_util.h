/* SPDX-License-Identifier: Apache-2.0 */
/* sim_util: clocks, timestamps, ids, phone numbers and a growable buffer. Thread-safe. */
#ifndef SIM_UTIL_H
#define SIM_UTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_NIL_UUID "00000000-0000-0000-0000-000000000000"
#define SIM_TIME_LEN 48

int64_t sim_now_us(void);  /* wall clock, µs since the epoch */
int64_t sim_mono_ns(void); /* monotonic clock, ns */

/* RFC 3339 UTC with trailing fractional zeros trimmed, as Go's time.Time marshals. */
void sim_fmt_time(int64_t us, char out[SIM_TIME_LEN]);
/* sim_fmt_time as a JSON string; JSON null for 0 (unset). */
json_t *sim_time_json(int64_t us);
/* Always six fractional digits: the page-token format. */
void sim_fmt_time6(int64_t us, char out[SIM_TIME_LEN]);
/* Parses RFC 3339 or "YYYY-MM-DD HH:MM:SS.ffffff"; returns 0 on success. */
int sim_parse_time(const char *s, int64_t *us);

void sim_uuid(char out[37]);
int sim_is_uuid(const char *s);
/* "req_" + 26 base32 chars, like the gateway. */
void sim_request_id(char out[31]);
/* 1–64 chars of [A-Za-z0-9_-]: a client X-Request-Id the gateway would echo. */
int sim_request_id_safe(const char *s);

/* ^\+[0-9]{7,15}$ */
int sim_is_e164(const char *s);
/* Lowercase ISO 3166 alpha-2 of an E.164 number by calling code, or NULL. */
const char *sim_country_of(const char *e164);

/* Random double in [0,1). */
double sim_rand01(void);

typedef struct sim_buf {
    char *p;
    size_t len, cap;
} sim_buf;

/* Appends and keeps p NUL-terminated; returns -1 on allocation failure. */
int sim_buf_add(sim_buf *b, const void *data, size_t n);
int sim_buf_adds(sim_buf *b, const char *s);
/* Returns the string and leaves b empty; caller frees. Never NULL on success. */
char *sim_buf_take(sim_buf *b);
void sim_buf_free(sim_buf *b);

/* strdup that treats NULL as "". */
char *sim_strdup(const char *s);
/* Bounded copy that always terminates. */
void sim_strlcpy(char *dst, const char *src, size_t n);

#endif
