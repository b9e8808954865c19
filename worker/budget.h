/* SPDX-License-Identifier: Apache-2.0 */
/* The VoIPBin request budget shared by every worker: a token bucket in
 * PostgreSQL (rate_budget, row 'voipbin': tokens and when they were last
 * counted), refilled at OTP_VOIPBIN_RATE up to OTP_VOIPBIN_BURST. A request
 * to VoIPBin is paid for before it is sent; the claim statement
 * (challenge_claim) takes its rows' tokens in the same statement. rate and
 * burst are the settings as SQL numbers ("16.500", "33"). */
#ifndef OTP_WORKER_BUDGET_H
#define OTP_WORKER_BUDGET_H

#include <libpq-fe.h>
#include <stdint.h>

/* Takes up to `want` tokens; how many were granted (0 when empty), -1 on error. */
int budget_take(PGconn *db, const char *rate, const char *burst, int want);

/* Takes n tokens whether or not they are there (the bucket may go below 0:
 * requests already sent must be paid for); a negative n refunds. 0 ok, -1 error. */
int budget_charge(PGconn *db, int n) __attribute__((warn_unused_result));

/* Milliseconds until the bucket holds a whole token (0 = it does now), -1 on error. */
int64_t budget_wait_ms(PGconn *db, const char *rate, const char *burst);

#endif
