/* SPDX-License-Identifier: Apache-2.0 */
/* The challenge SQL of the dispatch thread: the claim, every state change of
 * a claimed row with its outbox event, the call records and the look-up
 * book-keeping. Changes go into one open transaction (a "batch") that
 * challenge_commit makes durable at once: one WAL flush per claim batch and
 * per round of finished calls, never per row. A change applies only while the
 * row is still this worker's (status 'calling', lease_owner = worker id).
 *
 * Ownership: a challenge_tx_t belongs to one thread (the dispatcher) with its
 * connection. A json_t * argument is stolen (released whatever the result),
 * as in otp_outbox.h and voipbin_client.h. */
#ifndef OTP_WORKER_CHALLENGE_H
#define OTP_WORKER_CHALLENGE_H

#include <jansson.h>
#include <libpq-fe.h>

#include "policy.h"
#include "worker.h"

/* A placed (or adopted) call waiting to be recorded. */
typedef struct challenge_record {
    claimed_t row;
    char call_id[37];
    int attempt, adopted;
    int applied;  /* its row changed: webhooks kept for it are applied after the commit */
    char rule[8]; /* how it counts as heard: marker, timing, answer */
    otp_voice_heard_t times; /* the first reading's start and end after the answer */
} challenge_record_t;

typedef struct challenge_tx {
    PGconn *db;
    const char *worker_id;
    worker_metrics_t *m;
    int call_status_timeout_s;
    int fallback_after_s;        /* OTP_FALLBACK_AFTER_SECONDS */
    challenge_record_t *records; /* queued, then (after flush) the applied ones */
    int n_records, cap_records, n_committed;
    int events; /* the open batch wrote events: NOTIFY otp_outbox at its commit */
} challenge_tx_t;

/* The result of a change to a claimed row. */
typedef enum {
    HELD_CHANGED, /* changed, its event written */
    HELD_LOST,    /* no longer ours (a webhook, the verifier or another worker moved it) */
    HELD_ERROR,   /* database error: the batch will roll back */
} held_t;

/* Claims up to `limit` due rows and pays one token each from the VoIPBin
 * budget (budget.h), in one statement of a new batch; rows lease_s seconds.
 * Returns the number claimed (rows in *out, to free; a claim of none leaves
 * no batch open), -1 on error. */
int challenge_claim(challenge_tx_t *tx, int limit, int lease_s, const char *rate, const char *burst,
                    claimed_t **out) __attribute__((warn_unused_result));

/* Writes the queued call records, notifies the relay if events were written,
 * and commits the batch (if one is open). 0 ok, -1 rolled back: nothing of the
 * batch is durable. */
int challenge_commit(challenge_tx_t *tx) __attribute__((warn_unused_result));

/* Final states. challenge_fail also offers the app an SMS resend
 * ("fallback_available") unless the request was an SMS. */
held_t challenge_fail(challenge_tx_t *tx, const claimed_t *row, const char *cause, json_t *attrs);
held_t challenge_expire(challenge_tx_t *tx, const claimed_t *row, const char *reason);
held_t challenge_sms_sent(challenge_tx_t *tx, const claimed_t *row, const char *message_id,
                          int fallback);

/* Another try after a.delay_ms. ambiguous: the row stays 'calling' so that the
 * next claim first looks for the call VoIPBin may have made. */
held_t challenge_retry(challenge_tx_t *tx, const claimed_t *row, const after_t *a,
                       const char *cause, int ambiguous);

/* Before a send: the fresh code's hash (hex) replaces the old one; a call
 * counts as attempt `attempt` (0 = an SMS, which counts no call). */
held_t challenge_store_code(challenge_tx_t *tx, const claimed_t *row, const char *hash_hex,
                            int key_id, int attempt);
/* A keypad call (the app's code, its hash unchanged) counts as `attempt`. */
held_t challenge_start_keypad(challenge_tx_t *tx, const claimed_t *row, int attempt);

/* challenge_store_code for n plain calls (attempt = call_attempts + 1) in one
 * round trip; held[i] says which rows are still ours. 0 ok, -1 error. */
int challenge_store_codes(challenge_tx_t *tx, const claimed_t *rows, int n, char (*hash_hex)[65],
                          int key_id, held_t *held) __attribute__((warn_unused_result));

/* Queues the record of a placed (adopted: found after the fact) call: the
 * call row (with rule and times: how it counts as heard), status
 * call_requested and its event, written at the commit. */
void challenge_record(challenge_tx_t *tx, const claimed_t *row, const char *call_id, int attempt,
                      int adopted, const char *rule, const otp_voice_heard_t *times);

/* Fallback by time: every request whose offer time (OTP_FALLBACK_AFTER_SECONDS
 * = after_s after its first call) has come gets "fallback_available" once if
 * no call has been heard by then; the time is cleared either way. Outside any
 * batch (its own statement). Returns the offers made, -1 on error. */
int challenge_offer_fallbacks(challenge_tx_t *tx, int after_s);

/* After a commit: applies webhooks that arrived for the recorded calls before
 * their records (otp_webhook.c keeps them). */
void challenge_apply_recorded(challenge_tx_t *tx);

/* A commit failed: forget the records that would have been applied. */
void challenge_forget(challenge_tx_t *tx);

/* After a look-up (outside any batch): the row still waiting on its call is
 * due again in again_s (never past expiry), or ends 'expired'. */
typedef enum { LOOK_AGAIN, LOOK_EXPIRED, LOOK_MOVED_ON, LOOK_ERROR } look_t;
look_t challenge_look_again(challenge_tx_t *tx, const claimed_t *row, int again_s);

/* Hands claimed look-ups back unasked: due now again. 0 ok, -1 error. */
int challenge_release(challenge_tx_t *tx, const claimed_t *rows, int n)
    __attribute__((warn_unused_result));

/* Milliseconds until the earliest scheduled row, fallback offer or hang-up is due (0 = one is due
 * now), INT64_MAX when none is scheduled, -1 on error. */
int64_t challenge_next_due_ms(challenge_tx_t *tx);

void challenge_tx_free(challenge_tx_t *tx);

#endif
