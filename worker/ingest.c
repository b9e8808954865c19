#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "limits.h"
#include "otp_db.h"
#include "otp_event.h"
#include "otp_log.h"
#include "otp_outbox.h"
#include "otp_phone.h"
#include "otp_time.h"
#include "worker.h"

#define BATCH_MAX 500

/* One statement per request: insert (idempotent on request_id), supersede the
 * user's older active challenge for the same purpose, and write the events. */
static const char insert_sql[] =
    "WITH ins AS ("
    "  INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, country, locale,"
    "    code_length, max_attempts, max_call_attempts, options, metadata, requested_at, expires_at,"
    "    status, next_attempt_at, code_hash, key_id)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14, $15,"
    "    CASE WHEN $15 = 'pending' THEN now() END, decode($18, 'hex'), $19::smallint)"
    "  ON CONFLICT (request_id) DO NOTHING"
    "  RETURNING request_id, status"
    "), sup AS ("
    "  UPDATE challenges c SET status = 'superseded', next_attempt_at = NULL, updated_at = now()"
    "    FROM ins"
    "   WHERE ins.status = 'pending' AND c.user_id = $2 AND c.purpose = $3"
    "     AND c.request_id <> ins.request_id AND c.requested_at <= $13::timestamptz"
    "     AND c.status IN ('pending', 'calling', 'call_requested', 'ringing', 'answered',"
    "                      'delivered', 'no_answer', 'busy', 'voicemail', 'call_failed', 'no_input',"
    "                      'failed', 'sms_sent')"
    "  RETURNING c.request_id"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT request_id, 'accepted', $16::jsonb FROM ins WHERE status = 'pending'"
    "  UNION ALL"
    "  SELECT request_id, status, $17::jsonb FROM ins WHERE status <> 'pending'"
    "  UNION ALL"
    "  SELECT request_id, 'superseded', jsonb_build_object('by', $1::text) FROM sup"
    ")"
    "SELECT status FROM ins";

typedef struct batch_item {
    rd_kafka_message_t *msg;
    int valid;
    otp_request_t req;
    char reason[48];
    char error[200];
} batch_item_t;

static int resolve_flag(int requested, int deflt)
{
    return requested < 0 ? deflt : requested;
}

/* Resend: fills the number, user, purpose (and locale, unless the new request
 * names one) from the request being resent. 0 ok, 1 unknown, -1 error. */
static int resolve_resend(worker_t *w, otp_request_t *req)
{
    const char *p[1] = {req->resend_of};
    PGresult *r = otp_db_query(w->db, "resend_lookup",
                               "SELECT phone, user_id, purpose, locale FROM challenges WHERE request_id = $1",
                               1, p);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    snprintf(req->phone, sizeof(req->phone), "%s", PQgetvalue(r, 0, 0));
    if (!req->user_id[0])
        snprintf(req->user_id, sizeof(req->user_id), "%s", PQgetvalue(r, 0, 1));
    snprintf(req->purpose, sizeof(req->purpose), "%s", PQgetvalue(r, 0, 2));
    if (!req->locale[0])
        snprintf(req->locale, sizeof(req->locale), "%s", PQgetvalue(r, 0, 3));
    PQclear(r);
    return 0;
}

/* Keypad mode: opens the sealed code (the only place it is plain) and hashes
 * it. 0 ok (hash_hex, *code_len set), -1 with reason/error. */
static int open_keypad_code(worker_t *w, const otp_request_t *req, char hash_hex[65], int *code_len,
                            char *reason, size_t rsz, char *error, size_t esz)
{
    unsigned char sealed[192], code[OTP_CODE_MAX + crypto_box_SEALBYTES + 1];
    unsigned char hash[OTP_HASH_BYTES];
    size_t sealed_len = 0, n;
    int rc = -1;

    if (!w->cfg.keypad_enabled) {
        snprintf(reason, rsz, "keypad_disabled");
        snprintf(error, esz, "keypad mode is not set up on this worker (OTP_KEYPAD_SECRET_KEY)");
        return -1;
    }
    if (sodium_base642bin(sealed, sizeof(sealed), req->keypad_code_sealed,
                          strlen(req->keypad_code_sealed), NULL, &sealed_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        sealed_len <= crypto_box_SEALBYTES || sealed_len - crypto_box_SEALBYTES > OTP_CODE_MAX ||
        crypto_box_seal_open(code, sealed, sealed_len, w->cfg.keypad_pk, w->cfg.keypad_sk) != 0) {
        snprintf(reason, rsz, "invalid_keypad_code");
        snprintf(error, esz, "keypad_code_sealed does not open with the workers' key");
        goto out;
    }
    n = sealed_len - crypto_box_SEALBYTES;
    code[n] = '\0';
    if (n < OTP_CODE_MIN || strspn((char *)code, "0123456789") != n) {
        snprintf(reason, rsz, "invalid_keypad_code");
        snprintf(error, esz, "the sealed code must be %d-%d digits", OTP_CODE_MIN, OTP_CODE_MAX);
        goto out;
    }
    if (otp_code_hash(&w->keys, w->keys.current_id, req->request_id, (char *)code, hash) != 0)
        goto out;
    sodium_bin2hex(hash_hex, 65, hash, sizeof(hash));
    *code_len = (int)n;
    rc = 0;
out:
    sodium_memzero(code, sizeof(code));
    return rc;
}

/* Writes one valid request. 1 new, 0 duplicate, -1 error. hash_hex: the
 * keypad code's hash, or NULL. */
static int store_request(worker_t *w, const otp_request_t *req, int64_t now_ms, const char *hash_hex,
                         int keypad_len)
{
    char masked[OTP_PHONE_MAX + 4], code_len[8], max_att[8], max_calls[8], req_at[40], exp_at[40];
    char options[192], key_id[8];
    const char *country = otp_phone_country(req->phone);
    const char *locale = otp_voice_pick(w->voice, req->locale, country, w->cfg.default_locale);
    int ttl = req->ttl_seconds ? req->ttl_seconds : w->cfg.ttl_s;
    int64_t expires_ms = req->requested_at_ms + (int64_t)ttl * 1000;
    int too_old = now_ms + w->cfg.min_remaining_ms > expires_ms;
    const char *status = "pending";
    char reason[48] = "", other_js[128];
    json_t *accepted;
    char *accepted_js;
    PGresult *r;
    int rc;

    if (too_old) {
        status = "expired";
        snprintf(reason, sizeof(reason), "too_old_on_arrival");
    } else {
        int db_error = 0;
        const char *verdict = limits_check(w->db, &w->limits, req->phone, country, req->user_id,
                                           w->global_accepted, reason, sizeof(reason), &db_error);
        if (db_error)
            return -1;
        if (verdict)
            status = verdict;
    }
    snprintf(other_js, sizeof(other_js), "{\"reason\":\"%s\"}", reason);

    otp_phone_mask(req->phone, masked, sizeof(masked));
    snprintf(code_len, sizeof(code_len), "%d",
             keypad_len ? keypad_len : req->code_length ? req->code_length : w->cfg.code_length);
    snprintf(key_id, sizeof(key_id), "%d", w->keys.current_id);
    snprintf(max_att, sizeof(max_att), "%d", w->cfg.max_attempts);
    snprintf(max_calls, sizeof(max_calls), "%d", w->cfg.max_call_attempts);
    otp_time_format(req->requested_at_ms, req_at, sizeof(req_at));
    otp_time_format(expires_ms, exp_at, sizeof(exp_at));
    snprintf(options, sizeof(options),
             "{\"gate\":%s,\"amd\":%s,\"sms_fallback\":%s,\"channel\":\"%s\",\"keypad\":%s}",
             resolve_flag(req->delivery.gate, w->cfg.gate_default) ? "true" : "false",
             resolve_flag(req->delivery.amd, w->cfg.amd_default) ? "true" : "false",
             resolve_flag(req->delivery.sms_fallback, w->cfg.sms_fallback_default) ? "true" : "false",
             req->delivery.sms ? "sms" : "voice", req->delivery.keypad ? "true" : "false");
    accepted = json_pack("{s:s, s:s, s:i, s:s}", "locale", locale, "requested_locale",
                         req->locale[0] ? req->locale : "", "code_length",
                         req->code_length ? req->code_length : w->cfg.code_length, "expires_at", exp_at);
    accepted_js = json_dumps(accepted, JSON_COMPACT);
    json_decref(accepted);
    {
        const char *p[19] = {req->request_id, req->user_id, req->purpose, req->phone, masked,
                             country, locale, code_len, max_att, max_calls, options,
                             req->metadata[0] ? req->metadata : NULL, req_at, exp_at,
                             status, accepted_js, other_js, hash_hex, hash_hex ? key_id : NULL};
        r = otp_db_query(w->db, "ingest_insert", insert_sql, 19, p);
    }
    free(accepted_js);
    if (!r)
        return -1;
    rc = PQntuples(r) > 0;
    if (rc && too_old) {
        atomic_fetch_add(&w->m.expired_on_arrival, 1);
        otp_info("request_expired", "request_id=%s phone=%s reason=too_old_on_arrival",
                 req->request_id, masked);
    } else if (rc && strcmp(status, "pending") != 0) {
        atomic_fetch_add(strcmp(status, "blocked") == 0 ? &w->m.blocked : &w->m.rate_limited, 1);
        if (strcmp(reason, "global_hourly_cap") == 0 && !atomic_exchange(&w->m.circuit_open, 1))
            otp_warn("circuit_open", "reason=global_hourly_cap limit=%d accepted_last_hour=%ld",
                     w->limits.global_hour, w->global_accepted);
        otp_info("request_refused", "request_id=%s phone=%s decision=%s reason=%s", req->request_id,
                 masked, status, reason);
    } else if (rc) {
        w->global_accepted++;
        otp_info("request_accepted", "request_id=%s phone=%s locale=%s", req->request_id, masked,
                 locale);
    }
    PQclear(r);
    return rc;
}

/* Keeps the exact bytes in dead_letters (same transaction as the batch) and
 * sends the masked copy to the DLQ with the row's id. */
static int send_to_dlq(worker_t *w, batch_item_t *it, delivery_tracker_t *t)
{
    rd_kafka_message_t *m = it->msg;
    size_t red_len = 0;
    char *red = otp_redact_numbers(m->payload, m->len, &red_len);
    char *env = NULL, part[12], off[24];
    const char *p[6] = {it->reason, it->error, rd_kafka_topic_name(m->rkt), part, off, NULL};
    int lens[6] = {0, 0, 0, 0, 0, (int)m->len};
    int fmts[6] = {0, 0, 0, 0, 0, 1};
    rd_kafka_resp_err_t err;
    PGresult *r;
    json_t *o;

    if (!red)
        return -1;
    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    p[5] = m->payload ? m->payload : "";
    r = PQexecParams(w->db,
                     "INSERT INTO dead_letters (reason, error, topic, kpartition, koffset, payload)"
                     " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                     6, NULL, p, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        otp_error("db_error", "what=dead_letter error=\"%.*s\"",
                  (int)strcspn(PQresultErrorMessage(r), "\n"), PQresultErrorMessage(r));
        PQclear(r);
        free(red);
        return -1;
    }
    env = otp_dlq_envelope(it->reason, it->error, rd_kafka_topic_name(m->rkt), m->partition,
                           m->offset, red, red_len);
    free(red);
    o = env ? json_loads(env, 0, NULL) : NULL;
    free(env);
    env = NULL;
    if (o) {
        json_object_set_new(o, "dead_letter_id", json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)));
        env = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    PQclear(r);
    if (!env)
        return -1;
    err = rd_kafka_producev(w->producer, RD_KAFKA_V_TOPIC(w->cfg.topic_dlq),
                            RD_KAFKA_V_VALUE(env, strlen(env)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                            RD_KAFKA_V_HEADER("dlq.reason", it->reason, -1),
                            RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (err) {
        free(env);
        otp_error("dlq_produce_failed", "error=\"%s\"", rd_kafka_err2str(err));
        return -1;
    }
    t->pending++;
    return 0;
}

/* Hands a failed batch back: the next poll starts again at its first offsets. */
static void rewind_batch(worker_t *w, batch_item_t *items, int n)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);
    rd_kafka_error_t *err;

    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = items[i].msg;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(m->rkt), m->partition)->offset =
                m->offset;
        else if (m->offset < p->offset)
            p->offset = m->offset;
    }
    err = rd_kafka_seek_partitions(w->consumer, parts, 5000);
    if (err) {
        otp_error("ingest_rewind_failed", "error=\"%s\"", rd_kafka_error_string(err));
        rd_kafka_error_destroy(err);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

static void store_offsets(worker_t *w, batch_item_t *items, int n)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);

    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = items[i].msg;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(m->rkt), m->partition);
        if (m->offset + 1 > p->offset)
            p->offset = m->offset + 1;
    }
    rd_kafka_offsets_store(w->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

int ingest_poll(worker_t *w, int timeout_ms)
{
    static batch_item_t items[BATCH_MAX];
    /* Static: a report that arrives after a timed-out wait must not land on a
     * dead stack frame. Pending counts carry over; failures are per batch. */
    static delivery_tracker_t dlq;
    int n = 0, rc = -1;
    int64_t now_ms;

    while (n < BATCH_MAX) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->consumer, n == 0 ? timeout_ms : 0);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                otp_warn("consume_error", "error=\"%s\"", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        memset(&items[n], 0, sizeof(items[n]));
        items[n].msg = m;
        items[n].valid = otp_request_parse(m->payload, m->len, &items[n].req, items[n].reason,
                                           sizeof(items[n].reason), items[n].error,
                                           sizeof(items[n].error)) == 0;
        n++;
    }
    if (n == 0)
        return 0;
    dlq.failed = 0;
    atomic_fetch_add(&w->m.consumed, n);
    now_ms = otp_now_ms();

    if (otp_db_ensure(w->db) != 0 || otp_db_begin(w->db) != 0)
        goto fail;
    /* One global count per batch; the batch's own acceptances are added as they happen. */
    w->global_accepted = limits_global_count(w->db);
    if (w->global_accepted < 0)
        goto fail_tx;
    if (w->limits.global_hour && w->global_accepted < w->limits.global_hour &&
        atomic_exchange(&w->m.circuit_open, 0))
        otp_info("circuit_closed", "accepted_last_hour=%ld", w->global_accepted);
    for (int i = 0; i < n; i++) {
        batch_item_t *it = &items[i];
        char hash_hex[65];
        int keypad_len = 0;

        if (it->valid && it->req.resend_of[0]) {
            int rr = resolve_resend(w, &it->req);
            if (rr < 0)
                goto fail_tx;
            if (rr == 1) {
                it->valid = 0;
                snprintf(it->reason, sizeof(it->reason), "unknown_resend_of");
                snprintf(it->error, sizeof(it->error), "resend_of names no known request");
            }
        }
        if (it->valid && it->req.delivery.keypad &&
            open_keypad_code(w, &it->req, hash_hex, &keypad_len, it->reason, sizeof(it->reason),
                             it->error, sizeof(it->error)) != 0)
            it->valid = 0;
        if (it->valid) {
            int s = store_request(w, &it->req, now_ms, keypad_len ? hash_hex : NULL, keypad_len);
            sodium_memzero(hash_hex, sizeof(hash_hex));
            if (s < 0)
                goto fail_tx;
            atomic_fetch_add(s ? &w->m.accepted : &w->m.duplicates, 1);
            continue;
        }
        otp_warn("request_rejected", "request_id=%s reason=%s error=\"%s\" partition=%d offset=%lld",
                 it->req.request_id[0] ? it->req.request_id : "-", it->reason, it->error,
                 (int)it->msg->partition, (long long)it->msg->offset);
        if (it->req.request_id[0] &&
            otp_outbox_add(w->db, it->req.request_id, "rejected",
                           json_pack("{s:s, s:s}", "reason", it->reason, "error", it->error)))
            goto fail_tx;
        if (send_to_dlq(w, it, &dlq) != 0)
            goto fail_tx;
        atomic_fetch_add(&w->m.dlq, 1);
    }
    /* The DLQ copies must be on the broker before the offsets move past them. */
    if (dlq.pending && delivery_wait(w->producer, &dlq, 15000) != 0) {
        otp_error("dlq_delivery_failed", "error=\"%s\"", rd_kafka_err2str(dlq.last_err));
        goto fail_tx;
    }
    if (otp_db_commit(w->db) != 0)
        goto fail;
    store_offsets(w, items, n);
    rc = n;
    goto out;
fail_tx:
    otp_db_rollback(w->db);
fail:
    atomic_fetch_add(&w->m.db_errors, 1);
    rewind_batch(w, items, n);
out:
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(items[i].msg);
    return rc;
}
