/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_webhook.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_crypto.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_outbox.h"
#include "otp_time.h"

/* The caps of webhook_pending (otp_webhook_pending_caps) and what they dropped. */
static char cap_rows[24] = "10000", cap_bytes[24] = "67108864";
static atomic_llong pending_dropped;

void otp_webhook_pending_caps(long long rows, long long bytes)
{
    snprintf(cap_rows, sizeof(cap_rows), "%lld", rows);
    snprintf(cap_bytes, sizeof(cap_bytes), "%lld", bytes);
}

long long otp_webhook_pending_dropped(void)
{
    return atomic_load(&pending_dropped);
}

/* Keeps an event of a call not recorded yet, if the call can be ours: an
 * outgoing call to a number one of our challenges is calling right now
 * ('calling': the call request is under way, or its answer was lost), or an
 * event of our own flow (the heard marker, keypad digits, no key: signed, and
 * naming the request) for a request that is calling. It takes the next
 * number and the running byte total, and drops the oldest kept events beyond
 * the caps in the same statement. $1 call id, $2 body, $3 destination, $4
 * incoming, $5 max rows, $6 max bytes, $7 the call is recorded already
 * (ours), $8 the request our flow's event names (NULL for VoIPBin's call
 * events). Answers (kept, dropped). */
static const char keep_sql[] =
    "WITH total AS ("
    "  UPDATE webhook_pending_total SET n = n + 1, bytes = bytes + octet_length($2)"
    "   WHERE $7::boolean OR (NOT $4::boolean AND EXISTS ("
    "     SELECT 1 FROM challenges WHERE phone = $3 AND status = 'calling'))"
    "      OR EXISTS (SELECT 1 FROM challenges WHERE request_id = $8::uuid"
    "                    AND status = 'calling')"
    "  RETURNING n, bytes"
    "), ins AS ("
    "  INSERT INTO webhook_pending (call_id, body, n, upto)"
    "  SELECT $1, $2::jsonb, n, bytes FROM total RETURNING 1"
    "), old AS ("
    "  DELETE FROM webhook_pending w USING total"
    "   WHERE w.n <= total.n - $5::bigint OR w.upto <= total.bytes - $6::bigint RETURNING 1"
    ")"
    "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM old)";

/* One advisory lock per call id (OTP_CALL_LOCK). */
#define CALL_LOCK_SQL(fn) "SELECT " fn "(" OTP_CALL_LOCK ", hashtext($1))"

static void call_unlock(PGconn *db, const char *call_id)
{
    const char *p[1] = {call_id};
    PGresult *r;

    /* After a failed statement inside a transaction the unlock would fail too. */
    if (PQtransactionStatus(db) == PQTRANS_INERROR)
        otp_db_rollback(db);
    r = PQexecParams(db, CALL_LOCK_SQL("pg_advisory_unlock"), 1, NULL, p, NULL, NULL, 0);
    PQclear(r);
}

int otp_call_status_rank(const char *status)
{
    static const char *const order[] = {"dialing", "ringing", "progressing", "terminating",
                                        "hangup"};
    if (strcmp(status, "canceling") == 0)
        return 3;
    for (int i = 0; i < 5; i++)
        if (strcmp(status, order[i]) == 0)
            return i;
    return -1;
}

static int copy_str(json_t *o, const char *key, char *dst, size_t size, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= size)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* A call's timestamp as ms: RFC 3339, or the legacy "YYYY-MM-DD HH:MM:SS.ffffff"
 * (UTC, no zone); absent, null or the 9999 sentinel (never set) give 0. */
static int64_t call_time_ms(json_t *v)
{
    const char *s = json_string_value(v);
    char utc[48];
    int64_t ms;

    if (!s || strncmp(s, "9999", 4) == 0)
        return 0;
    if (otp_time_parse(s, &ms) == 0)
        return ms;
    if (strlen(s) + 2 > sizeof(utc))
        return 0;
    snprintf(utc, sizeof(utc), "%sZ", s);
    return otp_time_parse(utc, &ms) == 0 ? ms : 0;
}

int otp_call_event_parse(const char *body, size_t len, otp_call_event_t *ev, char *errstr,
                         size_t errstr_size)
{
    json_error_t jerr;
    json_t *root, *data;
    int rc = -1;

    memset(ev, 0, sizeof(*ev));
    if (len == 0 || len > OTP_WEBHOOK_MAX_BYTES) {
        snprintf(errstr, errstr_size, "body must be 1 to %d bytes", OTP_WEBHOOK_MAX_BYTES);
        return -1;
    }
    root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "not JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object(root) || copy_str(root, "type", ev->type, sizeof(ev->type), 1)) {
        snprintf(errstr, errstr_size, "expected an object with a string \"type\"");
        goto out;
    }
    data = json_object_get(root, "data");
    if (!json_is_object(data)) {
        snprintf(errstr, errstr_size, "expected an object \"data\"");
        goto out;
    }
    if (strcmp(ev->type, "otp_keypad") == 0) {
        const char *d;
        size_t n = 0;
        if (copy_str(data, "id", ev->call_id, sizeof(ev->call_id), 1) ||
            !otp_uuid_valid(ev->call_id) ||
            copy_str(data, "request_id", ev->request_id, sizeof(ev->request_id), 1) ||
            !otp_uuid_valid(ev->request_id) || !json_is_string(json_object_get(data, "digits"))) {
            snprintf(errstr, errstr_size,
                     "otp_keypad needs data.id, data.request_id and data.digits");
            goto out;
        }
        /* Keep the digits; '#' ends the entry and is not part of the code. */
        for (d = json_string_value(json_object_get(data, "digits"));
             *d && n < sizeof(ev->digits) - 1; d++)
            if (*d >= '0' && *d <= '9')
                ev->digits[n++] = *d;
        ev->digits[n] = '\0';
        ev->keypad = 1;
        snprintf(ev->status, sizeof(ev->status), "keypad");
        rc = 0;
        goto out;
    }
    if (strcmp(ev->type, "otp_heard") == 0) {
        if (copy_str(data, "id", ev->call_id, sizeof(ev->call_id), 1) ||
            !otp_uuid_valid(ev->call_id) ||
            copy_str(data, "request_id", ev->request_id, sizeof(ev->request_id), 1) ||
            !otp_uuid_valid(ev->request_id)) {
            snprintf(errstr, errstr_size, "otp_heard needs data.id and data.request_id UUIDs");
            goto out;
        }
        ev->heard = 1;
        snprintf(ev->status, sizeof(ev->status), "heard");
        rc = 0;
        goto out;
    }
    if (strcmp(ev->type, "otp_no_input") == 0) {
        if (copy_str(data, "id", ev->call_id, sizeof(ev->call_id), 1) ||
            !otp_uuid_valid(ev->call_id) ||
            copy_str(data, "request_id", ev->request_id, sizeof(ev->request_id), 1) ||
            !otp_uuid_valid(ev->request_id)) {
            snprintf(errstr, errstr_size, "otp_no_input needs data.id and data.request_id UUIDs");
            goto out;
        }
        ev->no_input = 1;
        snprintf(ev->status, sizeof(ev->status), "no_input");
        rc = 0;
        goto out;
    }
    if (strncmp(ev->type, "call_", 5) != 0) {
        rc = 1; /* message_*, activeflow_*, ...: not ours to apply */
        goto out;
    }
    if (copy_str(data, "id", ev->call_id, sizeof(ev->call_id), 1) || !otp_uuid_valid(ev->call_id)) {
        snprintf(errstr, errstr_size, "data.id must be a call UUID");
        goto out;
    }
    if (copy_str(data, "status", ev->status, sizeof(ev->status), 1) ||
        otp_call_status_rank(ev->status) < 0) {
        snprintf(errstr, errstr_size, "data.status must be a call status");
        goto out;
    }
    {
        json_t *dst = json_object_get(data, "destination");
        json_t *dir = json_object_get(data, "direction");
        if (dst && copy_str(dst, "target", ev->destination, sizeof(ev->destination), 0)) {
            snprintf(errstr, errstr_size, "data.destination.target must be a short string");
            goto out;
        }
        ev->incoming = json_is_string(dir) && strcmp(json_string_value(dir), "incoming") == 0;
    }
    if (copy_str(data, "hangup_by", ev->hangup_by, sizeof(ev->hangup_by), 0) ||
        copy_str(data, "hangup_reason", ev->hangup_reason, sizeof(ev->hangup_reason), 0)) {
        snprintf(errstr, errstr_size,
                 "data.hangup_by and data.hangup_reason must be short strings");
        goto out;
    }
    {
        json_t *tp = json_object_get(data, "tm_progressing");
        /* Absent, null or the legacy 9999 sentinel all mean "not answered". */
        ev->progressed = json_is_string(tp) && strncmp(json_string_value(tp), "9999", 4) != 0;
        ev->progressing_ms = call_time_ms(tp);
        ev->hangup_ms = call_time_ms(json_object_get(data, "tm_hangup"));
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

const char *otp_heard_rule_name(otp_heard_rule_t rule)
{
    return rule == OTP_HEARD_MARKER ? "marker" : rule == OTP_HEARD_TIMING ? "timing" : "answer";
}

/* What the call row says about "heard" (webhook_lookup's columns 6-9). */
typedef struct heard_info {
    otp_heard_rule_t rule;
    int heard; /* the marker came */
    int64_t code_start_ms, code_end_ms;
} heard_info_t;

/* The challenge-level outcome of a hangup; NULL when there is none to add
 * (the marker already said "delivered"). *attrs gets the heard facts. */
static const char *hangup_outcome(const otp_call_event_t *ev, int answered, const heard_info_t *h,
                                  json_t *attrs)
{
    const char *reason = ev->hangup_reason;
    int64_t talked = ev->progressing_ms && ev->hangup_ms >= ev->progressing_ms
                         ? ev->hangup_ms - ev->progressing_ms
                         : -1;

    if (strcmp(reason, "amd") == 0)
        return "voicemail";
    if (!answered) {
        if (strcmp(reason, "busy") == 0)
            return "busy";
        if (strcmp(reason, "failed") == 0 || strcmp(reason, "cancel") == 0)
            return "call_failed";
        return "no_answer"; /* noanswer, dialout, timeout, normal before answer */
    }
    if (h->rule == OTP_HEARD_ANSWER)
        return "delivered";
    if (h->rule == OTP_HEARD_MARKER && h->heard)
        return NULL;
    json_object_set_new(attrs, "rule", json_string(otp_heard_rule_name(h->rule)));
    if (talked >= 0)
        json_object_set_new(attrs, "talked_ms", json_integer(talked));
    if (h->rule == OTP_HEARD_TIMING) {
        json_object_set_new(attrs, "needed_ms", json_integer(h->code_end_ms));
        json_object_set_new(attrs, "margin_ms", json_integer(OTP_HEARD_MARGIN_MS));
        if (talked >= h->code_end_ms + OTP_HEARD_MARGIN_MS)
            return "delivered";
    }
    /* Left before the end of the first reading; how far it got, by the
     * call's length against the speaking model. */
    json_object_set_new(attrs, "progress",
                        json_string(talked < 0                  ? "unknown"
                                    : talked < h->code_start_ms ? "before_code"
                                                                : "during_code"));
    return "unheard";
}

static json_t *call_attrs(const otp_call_event_t *ev)
{
    json_t *a = json_pack("{s:s}", "call_id", ev->call_id);
    if (ev->hangup_by[0])
        json_object_set_new(a, "hangup_by", json_string(ev->hangup_by));
    if (ev->hangup_reason[0])
        json_object_set_new(a, "hangup_reason", json_string(ev->hangup_reason));
    return a;
}

/* The gate heard no key: the code was not read. Wins over an "answered" or
 * "delivered" that the unordered call webhooks may already have recorded. */
static int apply_no_input(PGconn *db, const otp_call_event_t *ev)
{
    const char *p[2] = {ev->request_id, ev->call_id};
    PGresult *r;
    int changed;

    if (otp_db_begin(db) != 0)
        return -1;
    r = otp_db_query(
        db, "no_input",
        "UPDATE challenges SET status = 'no_input', next_attempt_at = now(), updated_at = now()"
        " WHERE request_id = $1 AND call_id = $2::uuid"
        "   AND status IN ('call_requested', 'ringing', 'answered', 'delivered')",
        2, p);
    if (!r)
        goto fail;
    changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (changed &&
        otp_outbox_add(db, ev->request_id, "no_input", json_pack("{s:s}", "call_id", ev->call_id)))
        goto fail;
    return otp_db_commit(db) ? -1 : 0;
fail:
    otp_db_rollback(db);
    return -1;
}

/* The marker: the first reading of the code ended with the callee on the
 * line. The call is heard; a challenge waiting on it (or already counted
 * unheard by a hangup that overtook the marker, before its retry started)
 * is delivered. Inside event_apply's transaction. 0 ok, -1 db error. */
static int apply_heard(PGconn *db, const otp_call_event_t *ev, int current, const char *ch_status,
                       int was_answered)
{
    const char *p[2] = {ev->call_id, ev->request_id};
    PGresult *r;
    int changed;

    /* The marker also proves the answer: a call_ringing or call_progressing
     * overtaken by it (or lost) then changes nothing, never an "answered"
     * after "delivered". */
    if (otp_db_exec(db, "heard_call",
                    "UPDATE calls SET heard = true, heard_at = now(), answered = true,"
                    " status = CASE WHEN status_rank < 2 THEN 'progressing' ELSE status END,"
                    " status_rank = greatest(status_rank, 2), updated_at = now()"
                    " WHERE call_id = $1",
                    1, p))
        return -1;
    /* Verified during the first reading: the call still read the code to its
     * end, which the stream says (the state stays verified). */
    if (current && strcmp(ch_status, "verified") == 0)
        return otp_outbox_add(db, ev->request_id, "delivered",
                              json_pack("{s:s, s:s}", "call_id", ev->call_id, "rule", "marker"))
                   ? -1
                   : 0;
    if (!current ||
        !(strcmp(ch_status, "call_requested") == 0 || strcmp(ch_status, "ringing") == 0 ||
          strcmp(ch_status, "answered") == 0 || strcmp(ch_status, "unheard") == 0))
        return 0;
    r = otp_db_query(db, "heard_challenge",
                     "UPDATE challenges SET status = 'delivered', next_attempt_at = NULL,"
                     " updated_at = now() WHERE request_id = $2 AND call_id = $1::uuid"
                     "   AND status IN ('call_requested', 'ringing', 'answered', 'unheard')",
                     2, p);
    if (!r)
        return -1;
    changed = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (changed && !was_answered &&
        otp_outbox_add(db, ev->request_id, "answered", json_pack("{s:s}", "call_id", ev->call_id)))
        return -1;
    if (changed &&
        otp_outbox_add(db, ev->request_id, "delivered",
                       json_pack("{s:s, s:s}", "call_id", ev->call_id, "rule", "marker")))
        return -1;
    return 0;
}

/* Applies one event; *kept_left (when not NULL) says whether events kept
 * earlier for this (known) call are still waiting in webhook_pending. */
static int event_apply(PGconn *db, const otp_call_event_t *ev, const char *raw_body, int *kept_left)
{
    const char *p[6];
    char rank_s[8], answered_s[2];
    PGresult *r = NULL;
    int rank = otp_call_status_rank(ev->status);
    int old_rank, was_answered, current, active, answered;
    char request_id[37], ch_status[32];
    heard_info_t h;

    /* A long-lived connection (the verifier keeps one per thread) may have
     * been cut by a database restart: reconnect, else every later event
     * fails and VoIPBin gives up on it after its retries. */
    if (otp_db_ensure(db) != 0)
        return -1;
    if (ev->no_input)
        return apply_no_input(db, ev);
    if (rank < 0 && !ev->heard)
        return 0;
    if (otp_db_begin(db) != 0)
        return -1;
    p[0] = ev->call_id;
    /* Decide "apply now" or "keep for later" under the call's lock, which
     * otp_call_apply_pending also holds while it reads the kept events: else
     * an event kept just after the worker looked would never be applied. */
    if (otp_db_exec(db, "webhook_call_lock", CALL_LOCK_SQL("pg_advisory_xact_lock"), 1, p))
        goto fail;
    r = otp_db_query(db, "webhook_lookup",
                     "SELECT c.request_id, c.status_rank, c.answered, ch.status,"
                     "       ch.call_id IS NOT DISTINCT FROM c.call_id,"
                     "       ch.status = 'calling' AND ch.call_id IS DISTINCT FROM c.call_id"
                     "         AND c.attempt >= ch.call_attempts,"
                     "       coalesce(c.heard_rule, 'answer'), c.heard,"
                     "       coalesce(c.code_start_ms, 0), coalesce(c.code_end_ms, 0)"
                     "  FROM calls c JOIN challenges ch USING (request_id)"
                     " WHERE c.call_id = $1 FOR UPDATE OF c, ch",
                     1, p);
    if (!r)
        goto fail;
    /* No call row yet, or the worker has written the call row but not yet
     * moved its challenge on to it: keep the event until it has. */
    if (PQntuples(r) == 0 || PQgetvalue(r, 0, 5)[0] == 't') {
        /* The worker's own call row is there, only not moved on to: ours. */
        const char *kp[8] = {ev->call_id,
                             raw_body,
                             ev->destination,
                             ev->incoming ? "t" : "f",
                             cap_rows,
                             cap_bytes,
                             PQntuples(r) > 0 ? "t" : "f",
                             ev->request_id[0] ? ev->request_id : NULL};
        int kept;
        long long dropped;

        PQclear(r);
        r = otp_db_query(db, "webhook_keep", keep_sql, 8, kp);
        if (!r)
            goto fail;
        kept = PQgetvalue(r, 0, 0)[0] != '0';
        dropped = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        PQclear(r);
        r = NULL; /* the fail: path clears it again */
        if (otp_db_commit(db))
            goto fail;
        atomic_fetch_add(&pending_dropped, dropped);
        if (dropped)
            otp_warn("webhook_pending_dropped", "events=%lld max_rows=%s max_bytes=%s", dropped,
                     cap_rows, cap_bytes);
        return kept ? 1 : 2;
    }
    snprintf(request_id, sizeof(request_id), "%s", PQgetvalue(r, 0, 0));
    old_rank = (int)strtol(PQgetvalue(r, 0, 1), NULL, 10);
    was_answered = PQgetvalue(r, 0, 2)[0] == 't';
    snprintf(ch_status, sizeof(ch_status), "%s", PQgetvalue(r, 0, 3));
    current = PQgetvalue(r, 0, 4)[0] == 't';
    h.rule = strcmp(PQgetvalue(r, 0, 6), "marker") == 0   ? OTP_HEARD_MARKER
             : strcmp(PQgetvalue(r, 0, 6), "timing") == 0 ? OTP_HEARD_TIMING
                                                          : OTP_HEARD_ANSWER;
    h.heard = PQgetvalue(r, 0, 7)[0] == 't';
    h.code_start_ms = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
    h.code_end_ms = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
    PQclear(r);
    r = NULL;
    if (kept_left) {
        r = otp_db_query(db, "webhook_kept_left",
                         "SELECT EXISTS (SELECT 1 FROM webhook_pending WHERE call_id = $1)", 1, p);
        if (!r)
            goto fail;
        *kept_left = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        r = NULL;
    }

    if (ev->heard) {
        int rc = h.heard || strcmp(ev->request_id, request_id) != 0
                     ? 0
                     : apply_heard(db, ev, current, ch_status, was_answered);
        if (rc != 0)
            goto fail;
        return otp_db_commit(db) ? -1 : 0;
    }
    if (rank <= old_rank) {
        /* A duplicate or an event overtaken by a later one: nothing moves back. */
        return otp_db_commit(db) ? -1 : 0;
    }
    answered = was_answered || ev->progressed || rank == 2;
    snprintf(rank_s, sizeof(rank_s), "%d", rank);
    snprintf(answered_s, sizeof(answered_s), "%d", answered);
    p[1] = ev->status;
    p[2] = rank_s;
    p[3] = answered_s;
    p[4] = ev->hangup_by[0] ? ev->hangup_by : NULL;
    p[5] = ev->hangup_reason[0] ? ev->hangup_reason : NULL;
    if (otp_db_exec(
            db, "webhook_call",
            "UPDATE calls SET status = $2, status_rank = $3, answered = $4::int::boolean,"
            " hangup_by = coalesce($5, hangup_by), hangup_reason = coalesce($6, hangup_reason),"
            " updated_at = now() WHERE call_id = $1",
            6, p))
        goto fail;

    if (current) {
        /* Only a challenge still waiting on this call changes status. */
        active = strcmp(ch_status, "call_requested") == 0 || strcmp(ch_status, "ringing") == 0 ||
                 strcmp(ch_status, "answered") == 0;
        const char *new_status = NULL;
        const char *rp[3] = {request_id, NULL, "0"};

        if (rank == 1 && old_rank < 1) {
            if (otp_outbox_add(db, request_id, "ringing", call_attrs(ev)))
                goto fail;
            if (strcmp(ch_status, "call_requested") == 0)
                new_status = "ringing";
        }
        if (answered && !was_answered) {
            if (otp_outbox_add(db, request_id, "answered", call_attrs(ev)))
                goto fail;
            new_status = "answered";
        }
        if (rank == 4 &&
            (strcmp(ch_status, "superseded") == 0 || strcmp(ch_status, "cancelled") == 0)) {
            /* A call of a request no longer in force: its end, as it happens. */
            if (otp_outbox_add(db, request_id, "call_ended", call_attrs(ev)))
                goto fail;
        } else if (rank == 4) {
            json_t *attrs = call_attrs(ev);
            const char *outcome = hangup_outcome(ev, answered, &h, attrs);
            /* After the gate's no_input, an unheard end says nothing new. */
            if (outcome && (active || strcmp(outcome, "unheard") != 0)) {
                if (otp_outbox_add(db, request_id, outcome, attrs))
                    goto fail;
                new_status = outcome;
                /* The marker is sent by the call's flow on its own (VoIPBin's
                 * webhook_send does not wait), so it can come after the hang-up
                 * it preceded: the next call waits for it a while, and a marker
                 * that comes meanwhile makes the request delivered instead. */
                if (strcmp(outcome, "unheard") == 0 && h.rule == OTP_HEARD_MARKER)
                    rp[2] = OTP_HEARD_GRACE_S;
            } else {
                json_decref(attrs);
            }
        }
        if (new_status && active) {
            rp[1] = new_status;
            /* delivered: nothing more to do; other outcomes: the dispatcher
             * decides whether to call again, at once (unheard by the marker
             * rule: once the marker's grace has passed). */
            if (otp_db_exec(
                    db, "webhook_challenge",
                    "UPDATE challenges SET status = $2, updated_at = now(),"
                    " next_attempt_at = CASE WHEN $2 IN ('ringing','answered') THEN next_attempt_at"
                    "                        WHEN $2 = 'delivered' THEN NULL"
                    "                        ELSE now() + make_interval(secs => $3::int) END"
                    " WHERE request_id = $1",
                    3, rp))
                goto fail;
        }
    }
    return otp_db_commit(db) ? -1 : 0;
fail:
    PQclear(r);
    otp_db_rollback(db);
    return -1;
}

int otp_call_event_apply(PGconn *db, const otp_call_event_t *ev, const char *raw_body)
{
    int kept_left = 0;
    int rc = event_apply(db, ev, raw_body, &kept_left);

    /* The call is known, yet events kept for it are still waiting: the worker
     * that recorded the call died between its commit and applying them. The
     * call's later events pick them up (they change nothing a later status
     * has not already, and leave webhook_pending clean). */
    if (rc == 0 && kept_left && otp_call_apply_pending(db, ev->call_id) != 0)
        return -1;
    return rc;
}

int otp_call_apply_pending(PGconn *db, const char *call_id)
{
    const char *p[1] = {call_id};
    PGresult *r;
    int rc = 0;

    /* Session lock (the events below apply in their own transactions): a
     * webhook that is deciding to keep an event for this call finishes first,
     * so its row is visible to the SELECT. */
    if (otp_db_exec(db, "webhook_pending_lock", CALL_LOCK_SQL("pg_advisory_lock"), 1, p))
        return -1;
    r = otp_db_query(db, "webhook_pending",
                     "SELECT id, body::text FROM webhook_pending WHERE call_id = $1 ORDER BY id", 1,
                     p);
    if (!r) {
        call_unlock(db, call_id);
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        otp_call_event_t ev;
        char err[128];
        const char *body = PQgetvalue(r, i, 1);
        const char *dp[1] = {PQgetvalue(r, i, 0)};

        if (otp_call_event_parse(body, strlen(body), &ev, err, sizeof(err)) == 0 &&
            event_apply(db, &ev, body, NULL) < 0) {
            rc = -1;
            break;
        }
        if (otp_db_exec(db, "webhook_pending_done", "DELETE FROM webhook_pending WHERE id = $1", 1,
                        dp)) {
            rc = -1;
            break;
        }
    }
    PQclear(r);
    call_unlock(db, call_id);
    return rc;
}
