#include "verify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_db.h"
#include "otp_log.h"
#include "otp_outbox.h"

#define NOT_FINAL "status NOT IN ('verified', 'locked', 'expired', 'superseded')"

/* The attempt is counted first, in its own statement; a user over the hourly
 * cap of wrong codes (across challenges) gets no attempt at all. */
static const char attempt_sql[] =
    "UPDATE challenges c SET attempts = attempts + 1, updated_at = now()"
    " WHERE request_id = $1 AND code_hash IS NOT NULL AND expires_at > now()"
    "   AND attempts < max_attempts AND " NOT_FINAL
    "   AND (SELECT count(*) FROM verify_failures f"
    "         WHERE f.user_id = c.user_id AND f.at > now() - interval '1 hour') < $2::int"
    " RETURNING encode(code_hash, 'hex'), key_id, attempts, max_attempts, phone_masked, user_id";

static const char consume_sql[] =
    "UPDATE challenges SET status = 'verified', verified_at = now(), next_attempt_at = NULL,"
    "       updated_at = now()"
    " WHERE request_id = $1 AND code_hash = decode($2, 'hex') AND expires_at > now() AND " NOT_FINAL;

static const char lock_sql[] =
    "UPDATE challenges SET status = 'locked', next_attempt_at = NULL, updated_at = now()"
    " WHERE request_id = $1 AND " NOT_FINAL;

/* In one transaction: runs sql (if any) and, when it changed the row (or
 * there is no sql), adds the event. 1 changed, 0 not, -1 error. */
static int change_tx(PGconn *db, const char *sql, int nparams, const char *const *params,
                     const char *type, json_t *attrs)
{
    PGresult *r;
    int changed = 1;

    if (otp_db_begin(db) != 0) {
        json_decref(attrs);
        return -1;
    }
    if (sql) {
        r = otp_db_query(db, type, sql, nparams, params);
        if (!r) {
            json_decref(attrs);
            goto fail;
        }
        changed = strcmp(PQcmdTuples(r), "1") == 0;
        PQclear(r);
    }
    if (changed) {
        if (otp_outbox_add(db, params[0], type, attrs))
            goto fail;
    } else {
        json_decref(attrs);
    }
    if (otp_db_commit(db) != 0)
        return -1;
    return changed;
fail:
    otp_db_rollback(db);
    return -1;
}

static verify_result_t verify_locked(PGconn *db, const otp_keyring_t *keys, const char *request_id,
                                     const char *code, const char *cap, int *attempts_left);

static const char user_lock_sql[] = "SELECT pg_advisory_lock(727276, hashtext(coalesce("
    "(SELECT user_id FROM challenges WHERE request_id = $1::uuid), $1::text)))";
static const char user_unlock_sql[] = "SELECT pg_advisory_unlock(727276, hashtext(coalesce("
    "(SELECT user_id FROM challenges WHERE request_id = $1::uuid), $1::text)))";

verify_result_t verify_code(PGconn *db, const otp_keyring_t *keys, const char *request_id,
                            const char *code, int max_failed_per_hour, int *attempts_left)
{
    char cap[12];
    const char *p[1] = {request_id};
    verify_result_t res;

    if (otp_db_ensure(db) != 0)
        return VERIFY_ERROR;
    snprintf(cap, sizeof(cap), "%d", max_failed_per_hour);
    /* One user's checks run one at a time (a session advisory lock on the
     * user, or on the request id when there is no such challenge, so every
     * path costs the same round trips): the hourly cap of wrong codes counts
     * a failure before the next check of that user reads the count. */
    if (otp_db_exec(db, "verify_lock", user_lock_sql, 1, p) != 0)
        return VERIFY_ERROR;
    res = verify_locked(db, keys, request_id, code, cap, attempts_left);
    if (otp_db_exec(db, "verify_unlock", user_unlock_sql, 1, p) != 0) {
        /* Do not keep a lock on a connection we cannot trust: start afresh. */
        PQreset(db);
    }
    return res;
}

static verify_result_t verify_locked(PGconn *db, const otp_keyring_t *keys, const char *request_id,
                                     const char *code, const char *cap, int *attempts_left)
{
    const char *p[2] = {request_id, cap};
    unsigned char stored[OTP_HASH_BYTES];
    char masked[32];
    size_t stored_len = 0;
    int key_id, attempts, max_attempts, match;
    PGresult *r;

    r = otp_db_query(db, "verify_attempt", attempt_sql, 2, p);
    if (!r)
        return VERIFY_ERROR;
    if (PQntuples(r) == 0) {
        PQclear(r);
        /* Do the compare's work anyway, so "no such challenge" costs the same. */
        (void)otp_code_check(keys, keys->current_id, request_id, code, NULL, 0);
        return VERIFY_REJECTED;
    }
    if (sodium_hex2bin(stored, sizeof(stored), PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0),
                       NULL, &stored_len, NULL) != 0)
        stored_len = 0;
    key_id = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
    attempts = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    max_attempts = (int)strtol(PQgetvalue(r, 0, 3), NULL, 10);
    snprintf(masked, sizeof(masked), "%s", PQgetvalue(r, 0, 4));
    p[1] = PQgetvalue(r, 0, 0);

    match = otp_code_check(keys, key_id, request_id, code, stored, stored_len);
    if (match) {
        /* The consume is one conditional update: of two right answers at once,
         * only one changes the row. The stored hash is part of the condition,
         * so a code replaced by a retried call meanwhile cannot be consumed. */
        int rc = change_tx(db, consume_sql, 2, p, "verified", json_pack("{s:i}", "attempts", attempts));
        PQclear(r);
        if (rc < 0)
            return VERIFY_ERROR;
        if (rc == 0)
            return VERIFY_REJECTED;
        otp_info("verified", "request_id=%s phone=%s attempts=%d", request_id, masked, attempts);
        return VERIFY_OK;
    }
    *attempts_left = max_attempts - attempts;
    {
        const char *fp[1] = {PQgetvalue(r, 0, 5)};
        if (otp_db_exec(db, "verify_failure_count", "INSERT INTO verify_failures (user_id) VALUES ($1)",
                        1, fp)) {
            PQclear(r);
            return VERIFY_ERROR;
        }
    }
    PQclear(r);
    if (change_tx(db, NULL, 1, p, "verify_failed",
                  json_pack("{s:i, s:i}", "attempts", attempts, "attempts_left", *attempts_left)) < 0)
        return VERIFY_ERROR;
    if (*attempts_left <= 0 &&
        change_tx(db, lock_sql, 1, p, "locked", json_pack("{s:i}", "attempts", attempts)) < 0)
        return VERIFY_ERROR;
    otp_info("verify_failed", "request_id=%s phone=%s attempts_left=%d", request_id, masked,
             *attempts_left);
    return VERIFY_INCORRECT;
}
