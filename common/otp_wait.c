/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_wait.h"

#include <stdio.h>
#include <unistd.h>

#include "otp_log.h"
#include "otp_time.h"

#define FIRST_MS 500
#define CAP_MS 10000

long otp_wait_delay_ms(int attempt)
{
    long d = FIRST_MS;

    for (int i = 1; i < attempt && d < CAP_MS; i++)
        d *= 2;
    return d < CAP_MS ? d : CAP_MS;
}

int otp_wait_for(const char *service, otp_probe_fn *probe, void *arg, int timeout_s,
                 volatile sig_atomic_t *running, char *errstr, size_t errstr_size)
{
    int64_t deadline = otp_monotonic_ms() + (int64_t)timeout_s * 1000;

    for (int attempt = 1;; attempt++) {
        long delay;

        if (probe(arg, errstr, errstr_size) == 0) {
            if (attempt > 1)
                otp_info("service_up", "service=%s attempts=%d", service, attempt);
            return 0;
        }
        delay = otp_wait_delay_ms(attempt);
        /* The last try falls on the deadline. */
        if (otp_monotonic_ms() + delay > deadline)
            delay = (long)(deadline - otp_monotonic_ms());
        if (delay <= 0 || (running && !*running)) {
            if (timeout_s > 0) {
                size_t n = 0;
                while (n < errstr_size && errstr[n])
                    n++;
                snprintf(errstr + n, errstr_size - n, " (gave up after %d attempts, %d s)", attempt,
                         timeout_s);
            }
            return -1;
        }
        otp_warn("waiting_for", "service=%s attempt=%d retry_in_ms=%ld error=\"%s\"", service,
                 attempt, delay, errstr);
        for (long slept = 0; slept < delay && (!running || *running); slept += 100)
            usleep(100000);
    }
}
