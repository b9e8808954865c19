/* SPDX-License-Identifier: Apache-2.0 */
/* Cancelling a request (the user signed in another way, closed the page):
 * the challenge ends 'cancelled' with its event, so no check passes and no
 * call is placed any more; a call that may still be reading the code is
 * queued to be hung up (migration 020's trigger; the worker sends it). One
 * statement. Used by the verifier (POST /v1/requests/{id}/cancel) and by
 * otp-admin cancel. Any thread, its own connection. */
#ifndef OTP_CANCEL_H
#define OTP_CANCEL_H

#include <libpq-fe.h>
#include <stddef.h>

typedef enum {
    OTP_CANCEL_DONE,      /* cancelled now */
    OTP_CANCEL_ALREADY,   /* was cancelled before: nothing changed */
    OTP_CANCEL_FINAL,     /* already over (verified, expired, ...): status says which */
    OTP_CANCEL_NOT_FOUND, /* no such challenge */
    OTP_CANCEL_ERROR,     /* database error */
} otp_cancel_t;

typedef struct otp_cancel_result {
    char status[24];  /* the status before (FINAL: the one it keeps) */
    char call_id[37]; /* the call being hung up, "" if none was live */
} otp_cancel_result_t;

/* request_id must be a UUID; by names who asked ("api", "admin"); service
 * (NULL: any) limits it to one service's requests, another's answering
 * OTP_CANCEL_NOT_FOUND; api_key_id (NULL: none) goes on the event. */
otp_cancel_t otp_cancel_request(PGconn *db, const char *request_id, const char *by,
                                const char *service, const char *api_key_id,
                                otp_cancel_result_t *out);

#endif
