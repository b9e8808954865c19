/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_cancel.h"

#include <stdio.h>
#include <string.h>

#include "otp_db.h"

/* Cancellable: anything a code may still be checked against, or a call may
 * still be placed for. $1 request id, $2 who asked, $3 the asking key's
 * service (NULL: any; another service's request is not found), $4 the key's
 * id (NULL: none). The statuses of a call
 * that may still be live tell the event which call is being hung up. */
static const char cancel_sql[] =
    "WITH c AS ("
    "  SELECT request_id, status, call_id, expires_at <= now() AS over FROM challenges"
    "   WHERE request_id = $1::uuid AND ($3::text IS NULL OR service = $3::text) FOR UPDATE"
    "), u AS ("
    "  UPDATE challenges ch SET status = 'cancelled', next_attempt_at = NULL, fallback_at = NULL,"
    "         lease_owner = NULL, reason = 'cancelled_by_' || $2, updated_at = now()"
    "    FROM c WHERE ch.request_id = c.request_id AND NOT c.over"
    "     AND c.status IN ('pending', 'calling', 'call_requested', 'ringing', 'answered',"
    "                      'delivered', 'unheard', 'no_answer', 'busy', 'voicemail',"
    "                      'call_failed', 'no_input', 'failed', 'sms_sent')"
    "  RETURNING ch.request_id,"
    "    CASE WHEN c.status IN ('call_requested', 'ringing', 'answered', 'delivered')"
    "          AND NOT EXISTS (SELECT 1 FROM calls k"
    "                           WHERE k.call_id = c.call_id AND k.status = 'hangup')"
    "         THEN c.call_id::text END AS live_call"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'cancelled', jsonb_build_object('by', $2::text)"
    "         || CASE WHEN $4::text IS NULL THEN '{}'"
    "                 ELSE jsonb_build_object('api_key_id', $4::text) END"
    "         || CASE WHEN live_call IS NOT NULL"
    "                 THEN jsonb_build_object('call_id', live_call) ELSE '{}' END FROM u"
    ")"
    "SELECT c.status, c.over, (SELECT count(*) FROM u),"
    "       coalesce((SELECT live_call FROM u), '') FROM c";

otp_cancel_t otp_cancel_request(PGconn *db, const char *request_id, const char *by,
                                const char *service, const char *api_key_id,
                                otp_cancel_result_t *out)
{
    const char *p[4] = {request_id, by, service, api_key_id};
    PGresult *r;
    otp_cancel_t rc;

    memset(out, 0, sizeof(*out));
    if (otp_db_begin(db) != 0)
        return OTP_CANCEL_ERROR;
    r = otp_db_query(db, "cancel", cancel_sql, 4, p);
    if (!r) {
        otp_db_rollback(db);
        return OTP_CANCEL_ERROR;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return otp_db_commit(db) ? OTP_CANCEL_ERROR : OTP_CANCEL_NOT_FOUND;
    }
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(r, 0, 0));
    snprintf(out->call_id, sizeof(out->call_id), "%s", PQgetvalue(r, 0, 3));
    if (strcmp(PQgetvalue(r, 0, 2), "1") == 0)
        rc = OTP_CANCEL_DONE;
    else if (strcmp(out->status, "cancelled") == 0)
        rc = OTP_CANCEL_ALREADY;
    else {
        rc = OTP_CANCEL_FINAL;
        if (PQgetvalue(r, 0, 1)[0] == 't' && strcmp(out->status, "verified") != 0 &&
            strcmp(out->status, "locked") != 0)
            snprintf(out->status, sizeof(out->status), "expired");
    }
    PQclear(r);
    /* The event and the hang-up's queue entry become visible together. */
    if ((rc == OTP_CANCEL_DONE && otp_db_exec(db, "notify", "NOTIFY otp_outbox", 0, NULL) != 0) ||
        otp_db_commit(db) != 0) {
        otp_db_rollback(db);
        return OTP_CANCEL_ERROR;
    }
    return rc;
}
