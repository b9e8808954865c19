/* SPDX-License-Identifier: Apache-2.0 */
/* Ending calls that read a dead code: the call of a request superseded (a
 * resend, a newer request of the user) or cancelled while it may still be
 * talking. Migration 020's trigger (and the call record of a request left
 * while its call was being placed) queues them in call_hangups; the
 * dispatcher sends POST /v1.0/calls/{id}/hangup for each, one token of the
 * shared VoIPBin budget per try, retried with backoff, and records the end
 * ("call_hung_up", or "call_hangup_failed" once it gives up: the call's own
 * webhooks then record its end as it happens, "call_ended"). Dispatch
 * thread only. */
#ifndef OTP_WORKER_HANGUP_H
#define OTP_WORKER_HANGUP_H

#include "dispatch.h"

/* Tries before giving up on one call's hang-up. */
#define HANGUP_MAX_TRIES 6

/* Sends the due hang-ups (synchronously, bounded to about
 * DISPATCH_LOOKUP_ROUND_MS a round), outside any batch: a round is skipped
 * while the dispatcher's batch is open. Returns the hang-ups tried, -1 on a
 * database error. */
int hangup_run(dispatch_t *d);

#endif
