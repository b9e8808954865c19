/* SPDX-License-Identifier: Apache-2.0 */
/* The transactional outbox: a status change and its event are written in the
 * same transaction; the worker's relay publishes them to otp.call_status. */
#ifndef OTP_OUTBOX_H
#define OTP_OUTBOX_H

#include <jansson.h>
#include <libpq-fe.h>

/* Adds one event (type from the otp.call_status schema) for request_id with
 * extra attributes (may be NULL). attrs is stolen, whatever the result: a
 * json_t * argument always is, here, in voipbin_client.h and in
 * worker/challenge.h. Must run inside
 * the caller's transaction. 0 ok, -1 on a database error. */
int otp_outbox_add(PGconn *db, const char *request_id, const char *type, json_t *attrs)
    __attribute__((warn_unused_result));

#endif
