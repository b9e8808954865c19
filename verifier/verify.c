#include "verify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_db.h"
#include "otp_log.h"

/* One statement, one round trip, one commit per check (autocommit). In order:
 *   k    the caller's candidate hashes, one per key id of the keyring;
 *   c    the challenge, locked, if a code may still be checked for it; `ok`
 *        compares the stored hash with the candidate of the row's key id by
 *        XOR over all 256 bits (no early exit);
 *   capped the user is at the hourly cap already, by a plain read: a user
 *        flooding wrong codes over many challenges then takes no row lock and
 *        writes nothing, instead of queueing every request (and the HTTP
 *        thread serving it) behind the user's row;
 *   f    otherwise a wrong code is counted against the cap, only while the
 *        user is under it (the upsert's row lock makes the test and the
 *        count one step, whatever other challenges the user is checking);
 *   upd  the attempt is counted, and the code consumed or the challenge
 *        locked, in the same row change; a right code is taken only while
 *        the user is under the cap (capped, the same count);
 *   ob   the events, in the same transaction.
 * No row back: unknown, expired, locked, used, superseded or over the cap,
 * all read-only and alike. The answer is sent after the commit, so the
 * attempt is always counted before anyone learns the outcome. */
#define NOT_FINAL "ch.status NOT IN ('verified', 'locked', 'expired', 'superseded')"
#define RECENT(col) col " > now() - interval '1 hour'"

/* Laid out as SQL, not by clang-format. */
// clang-format off
static const char verify_sql[] =
    "WITH k AS ("
    "  SELECT * FROM unnest($2::int[], $3::text[]) AS k(key_id, h)"
    "), c AS ("
    "  SELECT ch.request_id, ch.user_id,"
    "    coalesce(bit_count(('x' || encode(ch.code_hash, 'hex'))::bit(256)"
    "                       # ('x' || k.h)::bit(256)) = 0, false) AS ok"
    "    FROM challenges ch LEFT JOIN k ON k.key_id = ch.key_id"
    "   WHERE ch.request_id = $1 AND ch.code_hash IS NOT NULL AND ch.expires_at > now()"
    "     AND ch.attempts < ch.max_attempts AND " NOT_FINAL " FOR UPDATE OF ch"
    "), capped AS ("
    "  SELECT count(*) >= $4::int AS yes FROM c, verify_user_failures u, unnest(u.at) x"
    "   WHERE u.user_id = c.user_id AND " RECENT("x")
    "), f AS ("
    "  INSERT INTO verify_user_failures AS u (user_id, at)"
    "  SELECT user_id, ARRAY[now()] FROM c, capped WHERE NOT ok AND NOT capped.yes"
    "  ON CONFLICT (user_id) DO UPDATE"
    "     SET at = array(SELECT t FROM unnest(u.at) t WHERE " RECENT("t") " ORDER BY t) || now()"
    "   WHERE (SELECT count(*) FROM unnest(u.at) t WHERE " RECENT("t") ") < $4::int"
    "  RETURNING 1"
    "), upd AS ("
    "  UPDATE challenges t SET attempts = t.attempts + 1, updated_at = now(),"
    "     status = CASE WHEN c.ok THEN 'verified'"
    "                   WHEN t.attempts + 1 >= t.max_attempts THEN 'locked' ELSE t.status END,"
    "     verified_at = CASE WHEN c.ok THEN now() ELSE t.verified_at END,"
    "     next_attempt_at = CASE WHEN c.ok OR t.attempts + 1 >= t.max_attempts THEN NULL"
    "                            ELSE t.next_attempt_at END"
    "    FROM c, capped"
    "   WHERE t.request_id = c.request_id"
    "     AND CASE WHEN c.ok THEN NOT capped.yes ELSE EXISTS (SELECT 1 FROM f) END"
    "  RETURNING t.request_id, c.ok, t.attempts, t.max_attempts, t.phone_masked"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'verified', jsonb_build_object('attempts', attempts) FROM upd WHERE ok"
    "  UNION ALL"
    "  SELECT request_id, 'verify_failed', jsonb_build_object('attempts', attempts,"
    "         'attempts_left', max_attempts - attempts) FROM upd WHERE NOT ok"
    "  UNION ALL"
    "  SELECT request_id, 'locked', jsonb_build_object('attempts', attempts)"
    "    FROM upd WHERE NOT ok AND attempts >= max_attempts"
    ")"
    "SELECT ok, attempts, max_attempts, phone_masked FROM upd";
// clang-format on

/* "{1,2}" and "{hex,hex}": the candidate hash of `code` under every key of
 * the keyring, so the row's own key id picks one. The same work on every
 * path, whether or not the challenge exists. */
static int candidates(const otp_keyring_t *keys, const char *request_id, const char *code,
                      char *ids, size_t ids_size, char *hashes, size_t hashes_size)
{
    size_t ni = 0, nh = 0;

    ids[ni++] = '{';
    hashes[nh++] = '{';
    for (int i = 0; i < keys->n; i++) {
        unsigned char h[OTP_HASH_BYTES];
        int w;

        if (otp_code_hash(keys, keys->keys[i].id, request_id, code, h) != 0)
            return -1;
        w = snprintf(ids + ni, ids_size - ni, "%s%d", i ? "," : "", keys->keys[i].id);
        if (w < 0 || (size_t)w >= ids_size - ni || nh + 2 * OTP_HASH_BYTES + 3 > hashes_size)
            return -1;
        ni += (size_t)w;
        if (i)
            hashes[nh++] = ',';
        sodium_bin2hex(hashes + nh, hashes_size - nh, h, sizeof(h));
        nh += 2 * OTP_HASH_BYTES;
        sodium_memzero(h, sizeof(h));
    }
    if (ni + 2 > ids_size)
        return -1;
    ids[ni++] = '}';
    ids[ni] = '\0';
    hashes[nh++] = '}';
    hashes[nh] = '\0';
    return 0;
}

verify_result_t verify_code(PGconn *db, const otp_keyring_t *keys, const char *request_id,
                            const char *code, int max_failed_per_hour, int *attempts_left)
{
    char ids[OTP_MAX_KEYS * 12 + 3], hashes[OTP_MAX_KEYS * (2 * OTP_HASH_BYTES + 1) + 3], cap[12];
    const char *p[4] = {request_id, ids, hashes, cap};
    verify_result_t res = VERIFY_ERROR;
    int attempts, max_attempts;
    PGresult *r = NULL;

    if (candidates(keys, request_id, code, ids, sizeof(ids), hashes, sizeof(hashes)) != 0)
        goto out;
    snprintf(cap, sizeof(cap), "%d", max_failed_per_hour);
    if (otp_db_ensure(db) != 0)
        goto out;
    r = otp_db_query_prepared(db, "verify", verify_sql, 4, p);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        res = VERIFY_REJECTED;
        goto out;
    }
    attempts = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
    max_attempts = (int)strtol(PQgetvalue(r, 0, 2), NULL, 10);
    if (PQgetvalue(r, 0, 0)[0] == 't') {
        otp_info("verified", "request_id=%s phone=%s attempts=%d", request_id, PQgetvalue(r, 0, 3),
                 attempts);
        res = VERIFY_OK;
        goto out;
    }
    *attempts_left = max_attempts - attempts;
    otp_info("verify_failed", "request_id=%s phone=%s attempts_left=%d", request_id,
             PQgetvalue(r, 0, 3), *attempts_left);
    res = VERIFY_INCORRECT;
out:
    sodium_memzero(hashes, sizeof(hashes));
    PQclear(r);
    return res;
}
