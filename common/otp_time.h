/* SPDX-License-Identifier: Apache-2.0 */
/* Wall-clock helpers: milliseconds since the epoch and RFC 3339 text. */
#ifndef OTP_TIME_H
#define OTP_TIME_H

#include <stddef.h>
#include <stdint.h>

int64_t otp_now_ms(void);       /* CLOCK_REALTIME */
int64_t otp_monotonic_ms(void); /* CLOCK_MONOTONIC */
int64_t otp_monotonic_us(void); /* CLOCK_MONOTONIC, microseconds (latency metrics) */

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)" (also a space for T,
 * as VoIPBin's legacy format). -1 if it is not one. */
int otp_time_parse(const char *s, int64_t *ms_out);

/* Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least 25 bytes). */
void otp_time_format(int64_t ms, char *out, size_t out_size);

#endif
