/* SPDX-License-Identifier: Apache-2.0 */
/* The dispatch thread's own state: its connection (in tx), the VoIPBin
 * client and the batch being written. Nothing here is touched by another
 * thread; what it tells the others goes through worker_t's atomics. */
#ifndef OTP_WORKER_DISPATCH_H
#define OTP_WORKER_DISPATCH_H

#include "challenge.h"
#include "voipbin_client.h"
#include "worker.h"

typedef struct dispatch {
    worker_t *w;       /* settings, keys, voice (read-only), metrics (atomic) */
    challenge_tx_t tx; /* the connection and the open batch */
    vb_client_t *vb;
    int64_t fallback_next_ms; /* monotonic: the next look for due fallback offers */
    int64_t hangup_next_ms;   /* monotonic: the next look for calls to hang up */
} dispatch_t;

/* Claims due challenges (up to the free in-flight slots and the request
 * tokens) and starts calls, retries, expiries and look-ups. Returns the number
 * of rows claimed, -1 on error; *asked is how many it could have taken (fewer
 * claimed = nothing more is due now). */
int dispatch_run(dispatch_t *d, int *asked);

#endif
