/* SPDX-License-Identifier: Apache-2.0 */
/* The verification rules, over PostgreSQL (see shared/reference/otp-security.md):
 * one statement per batch of checks counts each attempt, compares the keyed hash over its
 * full width, and consumes the code or locks the challenge, with its events;
 * the answer comes only after that statement's transaction commits. */
#ifndef OTP_VERIFY_H
#define OTP_VERIFY_H

#include <stdatomic.h>
#include <stddef.h>

#include "otp_crypto.h"

typedef enum {
    VERIFY_OK,        /* the code was right and is now used up */
    VERIFY_INCORRECT, /* wrong code; attempts_left says how many remain (0 = now locked) */
    VERIFY_REJECTED,  /* unknown, expired, locked, already used, superseded, or the user is
                         over the hourly cap of wrong codes: one answer */
    VERIFY_ERROR,     /* database trouble: try again */
} verify_result_t;

/* The checks' database threads, one connection each (VERIFY_MAX_CONNECTIONS
 * at most). A check is handed over and answered later, after its commit: a
 * database thread runs every check that queued while its last commit was on
 * its way as one transaction (group commit), so HTTP threads never wait on
 * the database for a check. NULL with errstr if the threads cannot start. */
#define VERIFY_MAX_CONNECTIONS 64
typedef struct verify_pool verify_pool_t;
/* What the threads count, for /metrics: transactions of one check, of
 * several, and batches split into single checks; checks deferred. */
typedef struct verify_stats {
    atomic_llong alone, batch, split;
    atomic_llong deferred; /* checks run by a later statement of their batch */
} verify_stats_t;
verify_pool_t *verify_pool_new(const char *db_url, int connections, verify_stats_t *stats,
                               char *errstr, size_t errstr_size);
/* Refuses new checks and returns when every check started is done. */
void verify_pool_close(verify_pool_t *p);
/* Closes, then stops the threads; NULL-safe. */
void verify_pool_destroy(verify_pool_t *p);

/* One check of a code, owned by the caller until done() is called. */
typedef struct verify_check {
    verify_result_t res; /* the answer, set before done() */
    int attempts_left;   /* for VERIFY_INCORRECT */
    /* Whose challenge it was, for VERIFY_OK and VERIFY_INCORRECT. */
    char service[33], user_id[129], purpose[65];
    /* The rest is the pool's. */
    char request_id[37];
    char only_service[33];           /* "" = any service (a keypad webhook) */
    char key_id[40];                 /* the API key that asked, "" = none */
    char call_id[37];                /* keypad: the call the digits were keyed into; "" otherwise */
    int nkeys;                       /* candidates: one per key of the keyring */
    char ids[OTP_MAX_KEYS * 12 + 3]; /* "1,2": their key ids */
    char hashes[OTP_MAX_KEYS * (2 * OTP_HASH_BYTES + 1) + 3]; /* "hex,hex" */
    char cap[12];
    void (*done)(void *arg);
    void *arg;
    unsigned long seq; /* arrival order */
    struct verify_check *next;
} verify_check_t;

/* Starts the check of `code` for the challenge request_id (a valid UUID) of
 * `service` (NULL: any; a challenge of another service answers as unknown),
 * asked with the API key key_id (NULL: none; written on the events).
 * call_id NULL: a code read by a call or a text (POST /v1/verify; a keypad
 * challenge is then refused like an unknown one); else the call id (a valid
 * UUID) of a keypad webhook: only a keypad challenge whose current, live call
 * it is accepts the digits. The candidate hashes are made here, on the
 * caller's thread, and `code`
 * is not kept. 0: done(arg) is called from a database thread once the
 * check's transaction has committed (or failed: res VERIFY_ERROR); chk must
 * stay in place until then and is not touched after. -1: not started (the
 * pool is closing), done is never called. A user with max_failed_per_hour
 * wrong codes in the last hour is rejected outright, even with the right
 * code. Thread-safe. */
int verify_start(verify_pool_t *p, verify_check_t *chk, const otp_keyring_t *keys,
                 const char *request_id, const char *call_id, const char *code, const char *service,
                 const char *key_id, int max_failed_per_hour, void (*done)(void *arg), void *arg)
    __attribute__((warn_unused_result));

#endif
