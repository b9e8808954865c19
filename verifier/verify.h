/* The verification rules, over PostgreSQL (see shared/reference/otp-security.md):
 * one statement per check counts the attempt, compares the keyed hash over its
 * full width, and consumes the code or locks the challenge, with its events,
 * in one transaction; the answer comes only after that commit. */
#ifndef OTP_VERIFY_H
#define OTP_VERIFY_H

#include <libpq-fe.h>

#include "otp_crypto.h"

typedef enum {
    VERIFY_OK,        /* the code was right and is now used up */
    VERIFY_INCORRECT, /* wrong code; attempts_left says how many remain (0 = now locked) */
    VERIFY_REJECTED,  /* unknown, expired, locked, already used, superseded, or the user is
                         over the hourly cap of wrong codes: one answer */
    VERIFY_ERROR,     /* database trouble: try again */
} verify_result_t;

/* Checks `code` for the challenge request_id (a valid UUID). A user with
 * max_failed_per_hour wrong codes in the last hour is rejected outright, even
 * with the right code. Thread-safe with one PGconn per thread (autocommit).
 * attempts_left is set for VERIFY_INCORRECT. */
verify_result_t verify_code(PGconn *db, const otp_keyring_t *keys, const char *request_id,
                            const char *code, int max_failed_per_hour, int *attempts_left)
    __attribute__((warn_unused_result));

#endif
