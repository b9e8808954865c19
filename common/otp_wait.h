/* SPDX-License-Identifier: Apache-2.0 */
/* Waiting at start for a server that is not up yet (PostgreSQL, Kafka):
 * retries a probe with a logged, bounded backoff (0.5 s doubling to 10 s)
 * instead of exiting at the first refusal. */
#ifndef OTP_WAIT_H
#define OTP_WAIT_H

#include <signal.h>
#include <stddef.h>

/* 0 when the server answered; -1 with the reason in errstr. */
typedef int(otp_probe_fn)(void *arg, char *errstr, size_t errstr_size);

/* Runs probe until it succeeds, timeout_s seconds have passed (0 = one try)
 * or *running turns 0 (NULL = never); the last try falls on the deadline. Each failure is logged as
 * event=waiting_for service=<service> attempt=N retry_in_ms=M error="...".
 * Returns 0, or -1 with the last reason in errstr. Main thread, at start. */
int otp_wait_for(const char *service, otp_probe_fn *probe, void *arg, int timeout_s,
                 volatile sig_atomic_t *running, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The pause before attempt n+1 (n >= 1): 500 ms doubling, at most 10 s. */
long otp_wait_delay_ms(int attempt);

#endif
