/* SPDX-License-Identifier: Apache-2.0 */
/* Retention: deletes what is older than OTP_RETENTION_DAYS (challenges with
 * their calls and event counters, dead letters, pending webhooks), drops
 * wrong-code records older than the cap's hour, and replaces the number of a
 * challenge that can no longer call or text by a keyed hash of it. One purge
 * at a time across all processes (advisory lock); small batches, each its own
 * transaction, so that no lock is held for long. */
#ifndef OTP_RETENTION_H
#define OTP_RETENTION_H

#include <libpq-fe.h>
#include <signal.h>

typedef struct otp_retention_stats {
    long scrubbed; /* numbers replaced by their hash */
    long challenges, calls, dead_letters, webhook_pending, outbox_seq, verify_user_failures;
} otp_retention_stats_t;

/* Runs one purge on db. hash_key_hex is OTP_HASH_KEY (the number's hash is
 * HMAC-SHA256("phone:" + key, E.164)); batch rows per statement; stops early
 * when *running becomes 0 (may be NULL). 0 done, 1 another purge holds the
 * lock (nothing done), -1 on a database error (what was done stays done).
 * Any thread with its own connection. */
int otp_retention_purge(PGconn *db, const char *hash_key_hex, int days, int batch,
                        volatile sig_atomic_t *running, otp_retention_stats_t *st)
    __attribute__((warn_unused_result));

/* The keyed hash of a number, as stored in challenges.phone_hash (hex, 65 bytes). */
void otp_retention_phone_hash(const char *hash_key_hex, const char *phone, char out[65]);

#endif
