/* SPDX-License-Identifier: Apache-2.0 */
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
#include "otp_phonenumber.h"
#include "otp_retention.h"
#include "otp_time.h"
#include "worker.h"

#define BATCH_MAX 500

/* A producer's clock may run this far ahead of the worker's; a request dated
 * later is refused (requested_at_in_future), never given a longer life. */
#define FUTURE_SKEW_MS 60000

/* One statement per request: insert (idempotent on request_id), supersede the
 * user's active challenge for the same purpose in the same service (user_id
 * is each service's own namespace) accepted before this one (every row
 * already there was: acceptance order, never the producer's requested_at),
 * and write the events. */
static const char insert_sql[] =
    "WITH ins AS ("
    "  INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, country, locale,"
    "    code_length, max_attempts, max_call_attempts, options, metadata, requested_at, expires_at,"
    "    status, next_attempt_at, code_hash, key_id, reason, service, api_key_id, phone_hash)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13, $14, $15,"
    "    CASE WHEN $15 = 'pending' THEN now() END, decode($18, 'hex'), $19::smallint,"
    "    CASE WHEN $15 <> 'pending' THEN $17::jsonb->>'reason' END, $20, $21, decode($22, 'hex'))"
    "  ON CONFLICT (request_id) DO NOTHING"
    "  RETURNING request_id, status"
    "), sup AS ("
    "  UPDATE challenges c SET status = 'superseded', next_attempt_at = NULL, updated_at = now()"
    "    FROM ins"
    "   WHERE ins.status = 'pending' AND c.service = $20 AND c.user_id = $2 AND c.purpose = $3"
    "     AND c.request_id <> ins.request_id"
    "     AND c.status IN ('pending', 'calling', 'call_requested', 'ringing', 'answered',"
    "                      'delivered', 'no_answer', 'busy', 'voicemail', 'call_failed', "
    "'no_input', 'unheard',"
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

/* The exact bytes of a bad message, once per source offset (a replayed
 * batch finds its row again), its "rejected" event and its DLQ copy the first
 * time only. */
static const char dead_letter_sql[] =
    "WITH dl AS ("
    "  INSERT INTO dead_letters (reason, error, topic, kpartition, koffset, payload, request_id,"
    "    service)"
    "  VALUES ($1, $2, $3, $4, $5, $6, $7::uuid, $9)"
    "  ON CONFLICT (topic, kpartition, koffset) DO UPDATE SET reason = excluded.reason"
    "  RETURNING id, xmax = 0 AS fresh"
    "), ob AS ("
    "  INSERT INTO outbox (request_id, type, attrs)"
    "  SELECT $7::uuid, 'rejected', $8::jsonb FROM dl WHERE fresh AND $7 IS NOT NULL"
    ")"
    "SELECT id, fresh FROM dl";

typedef struct batch_item {
    rd_kafka_message_t *msg;
    int valid;
    otp_request_t req;
    /* The service whose topic it came on ("" when none), and its policy. */
    char service[OTP_SERVICE_MAX + 1];
    const otp_policy_t *pol;
    /* The keys of its budgets: "service:number", "service:user", "service:country". */
    char kphone[OTP_SERVICE_MAX + 20], kuser[OTP_SERVICE_MAX + OTP_USER_ID_MAX + 2];
    char kcountry[OTP_SERVICE_MAX + 6];
    /* The front door's otp.api_key_id header: the API key that sent it ("" none). */
    char api_key_id[40];
    char reason[48];
    char error[200];
    /* Decided before the write. */
    const char *country, *locale;
    const char *status;  /* pending, expired, blocked or rate_limited */
    const char *refusal; /* why, when not pending */
    char hash_hex[65];   /* keypad mode: the app's code, hashed */
    otp_pn_info_t pn;    /* libphonenumber's one look at the number: valid, region, type */
    int keypad_len;
    /* Learnt from the write. */
    int is_new;
    long long dead_letter_id;
} batch_item_t;

static int resolve_flag(int requested, int deflt)
{
    return requested < 0 ? deflt : requested;
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

/* The otp.api_key_id header the front door sets (the id of the API key that
 * sent the request, for audit; as trustworthy as the topic's ACL), or "". */
static void api_key_id(const rd_kafka_message_t *m, char *out, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t n = 0;

    out[0] = '\0';
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, "otp.api_key_id", &val, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        !val || n == 0 || n >= size)
        return;
    memcpy(out, val, n);
    out[n] = '\0';
    if (strspn(out, "abcdefghijklmnopqrstuvwxyz0123456789_-") != n)
        out[0] = '\0';
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
            rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(m->rkt), m->partition)
                ->offset = m->offset;
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
    /* A partition revoked meanwhile refuses the store: its next owner reads
     * the batch again, and every write of it is idempotent. */
    if (rd_kafka_offsets_store(w->consumer, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        otp_warn("offsets_store_failed", "partitions=%d", parts->cnt);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* Resends: fills the number, user, purpose (and locale, unless the new
 * request names one) from the request being resent, found earlier in the
 * batch or in one lookup for the whole batch. -1 on a database error. */
static int resolve_resends(intake_t *in, batch_item_t *items, int n)
{
    otp_pgarray_t ids = {0};
    const char *p[1];
    PGresult *r = NULL;
    int rc = -1;

    for (int i = 0; i < n; i++)
        if (items[i].valid && items[i].req.resend_of[0])
            otp_pgarray_add(&ids, items[i].req.resend_of);
    if (ids.n == 0)
        return 0;
    p[0] = otp_pgarray_str(&ids);
    if (!p[0])
        goto out;
    r = otp_db_query(in->db, "resend_lookup",
                     "SELECT request_id::text, phone, user_id, purpose, locale, service"
                     "  FROM challenges"
                     " WHERE request_id = ANY($1::uuid[])",
                     1, p);
    if (!r)
        goto out;
    for (int i = 0; i < n; i++) {
        otp_request_t *req = &items[i].req;
        const char *phone = NULL, *user = NULL, *purpose = NULL, *locale = NULL;
        int purged = 0;

        if (!items[i].valid || !req->resend_of[0])
            continue;
        /* Only a request of the same service: another service's answers as unknown. */
        for (int j = i - 1; j >= 0 && !phone; j--) {
            if (items[j].valid && strcmp(items[j].req.request_id, req->resend_of) == 0 &&
                strcmp(items[j].service, items[i].service) == 0) {
                phone = items[j].req.phone;
                user = items[j].req.user_id;
                purpose = items[j].req.purpose;
                locale = items[j].locale;
            }
        }
        for (int k = 0; k < PQntuples(r) && !phone; k++) {
            if (strcmp(PQgetvalue(r, k, 5), items[i].service) != 0)
                continue;
            if (strcmp(PQgetvalue(r, k, 0), req->resend_of) == 0 && PQgetisnull(r, k, 1)) {
                /* The purge replaced the number by its hash: give it again. */
                purged = 1;
            } else if (strcmp(PQgetvalue(r, k, 0), req->resend_of) == 0) {
                phone = PQgetvalue(r, k, 1);
                user = PQgetvalue(r, k, 2);
                purpose = PQgetvalue(r, k, 3);
                locale = PQgetvalue(r, k, 4);
            }
        }
        if (!phone) {
            items[i].valid = 0;
            snprintf(items[i].reason, sizeof(items[i].reason), "%s",
                     purged ? "resend_of_purged" : "unknown_resend_of");
            snprintf(items[i].error, sizeof(items[i].error), "%s",
                     purged ? "the number of resend_of is no longer kept: send the phone"
                            : "resend_of names no known request");
            continue;
        }
        snprintf(req->phone, sizeof(req->phone), "%s", phone);
        if (!req->user_id[0])
            snprintf(req->user_id, sizeof(req->user_id), "%s", user);
        snprintf(req->purpose, sizeof(req->purpose), "%s", purpose);
        if (!req->locale[0])
            snprintf(req->locale, sizeof(req->locale), "%s", locale);
    }
    rc = 0;
out:
    PQclear(r);
    otp_pgarray_free(&ids);
    return rc;
}

/* The request against its service: the service exists and is enabled, and
 * allows what the request asks (code length, life, channels). 0 ok (it->pol
 * set), -1 with it->reason and it->error. */
static int check_service(batch_item_t *it, const otp_svc_set_t *set)
{
    const otp_request_t *req = &it->req;
    const otp_delivery_t *d = &req->delivery;
    const otp_policy_t *p = otp_svc_find(set, it->service);
    const char *channel = NULL;

    if (!p) {
        snprintf(it->reason, sizeof(it->reason), "unknown_service");
        snprintf(it->error, sizeof(it->error),
                 "no service named %s (otp-admin service create makes one)", it->service);
        return -1;
    }
    if (p->disabled) {
        snprintf(it->reason, sizeof(it->reason), "service_disabled");
        snprintf(it->error, sizeof(it->error), "service %s is disabled", it->service);
        return -1;
    }
    if (req->code_length && !d->keypad && req->code_length < p->min_code_length) {
        snprintf(it->reason, sizeof(it->reason), "code_length_below_minimum");
        snprintf(it->error, sizeof(it->error),
                 "code_length %d is below service %s's minimum of %d digits", req->code_length,
                 it->service, p->min_code_length);
        return -1;
    }
    if (req->ttl_seconds > p->max_ttl_s) {
        snprintf(it->reason, sizeof(it->reason), "ttl_above_maximum");
        snprintf(it->error, sizeof(it->error), "ttl_seconds %d is above service %s's maximum of %d",
                 req->ttl_seconds, it->service, p->max_ttl_s);
        return -1;
    }
    if (d->sms && !(p->channels & OTP_CH_SMS))
        channel = "sms";
    else if (d->keypad && !(p->channels & OTP_CH_KEYPAD))
        channel = "keypad";
    else if (!d->sms && !d->keypad && !(p->channels & OTP_CH_VOICE))
        channel = "voice";
    else if (d->gate == 1 && !(p->channels & OTP_CH_GATE))
        channel = "gate";
    else if (d->amd == 1 && !(p->channels & OTP_CH_AMD))
        channel = "amd";
    else if (d->sms_fallback == 1 && !(p->channels & OTP_CH_SMS))
        channel = "sms_fallback";
    if (channel) {
        snprintf(it->reason, sizeof(it->reason), "channel_not_allowed");
        snprintf(it->error, sizeof(it->error), "service %s does not allow %s", it->service,
                 channel);
        return -1;
    }
    it->pol = p;
    return 0;
}

/* The decision for one valid request, in batch order: too old, blocked, over
 * a budget, or pending (counted in the ledger for the requests after it). */
static void decide(intake_t *in, batch_item_t *it, int64_t now_ms)
{
    worker_t *w = in->w;
    const otp_request_t *req = &it->req;
    int ttl = req->ttl_seconds ? req->ttl_seconds : it->pol->ttl_s;
    limits_counts_t counts;
    limits_verdict_t v;

    it->status = "pending";
    it->refusal = "";
    if (now_ms + w->cfg.policy.min_remaining_ms > req->requested_at_ms + (int64_t)ttl * 1000) {
        it->status = "expired";
        it->refusal = "too_old_on_arrival";
        return;
    }
    limits_ledger_counts(in->ledger, it->kphone, it->kuser, it->kcountry, &counts);
    v = limits_decide(&w->limits, it->pol, req->phone, &it->pn, it->country, &counts, &it->refusal);
    if (v != LIMITS_ALLOW) {
        it->status = limits_verdict_name(v);
        return;
    }
    limits_ledger_add(in->ledger, it->kphone, it->kuser, it->kcountry, 0);
}

/* Compact JSON text of o (a reference is stolen); NULL when memory ran out. */
static char *dump_json(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return s;
}

/* Sends the insert of one valid request (pipeline mode). The code's life
 * starts now, by the worker's clock: requested_at only refuses stale requests. */
static int send_insert(intake_t *in, const batch_item_t *it, int64_t now_ms)
{
    worker_t *w = in->w;
    const otp_request_t *req = &it->req;
    char masked[OTP_PHONE_MAX + 4], code_len[8], max_att[8], max_calls[8], req_at[40], exp_at[40];
    char key_id[8], phone_hash[65];
    const otp_policy_t *pol = it->pol;
    int ttl = req->ttl_seconds ? req->ttl_seconds : pol->ttl_s;
    int64_t expires_ms = now_ms + (int64_t)ttl * 1000;
    const char *hash_hex = it->keypad_len ? it->hash_hex : NULL;
    char *accepted_js, *refused_js, *options_js;
    int rc = -1;

    otp_phone_mask(req->phone, masked, sizeof(masked));
    snprintf(code_len, sizeof(code_len), "%d",
             it->keypad_len     ? it->keypad_len
             : req->code_length ? req->code_length
                                : pol->code_length);
    snprintf(key_id, sizeof(key_id), "%d", w->keys.current_id);
    snprintf(max_att, sizeof(max_att), "%d", pol->max_attempts);
    snprintf(max_calls, sizeof(max_calls), "%d", pol->max_call_attempts);
    otp_time_format(req->requested_at_ms, req_at, sizeof(req_at));
    otp_time_format(expires_ms, exp_at, sizeof(exp_at));
    /* The number's budget key (budget_counts), for the calls and texts after
     * the first one (sql/032_budget_calls.sql). */
    otp_retention_phone_hash(w->limits.hash_key, req->phone, phone_hash);
    /* The delivery options as the dispatcher reads them back (typed, by name). */
    /* A deployment default the service does not allow is off (a request
     * that asks for it is refused before: check_service). */
    options_js = dump_json(json_pack(
        "{s:b, s:b, s:b, s:s, s:b}", "gate",
        resolve_flag(req->delivery.gate, w->cfg.gate_default) && (pol->channels & OTP_CH_GATE),
        "amd", resolve_flag(req->delivery.amd, w->cfg.amd_default) && (pol->channels & OTP_CH_AMD),
        "sms_fallback",
        resolve_flag(req->delivery.sms_fallback, w->cfg.sms_fallback_default) &&
            (pol->channels & OTP_CH_SMS),
        "channel", req->delivery.sms ? "sms" : "voice", "keypad", req->delivery.keypad));
    accepted_js = dump_json(
        json_pack("{s:s, s:s, s:i, s:s}", "locale", it->locale, "requested_locale",
                  req->locale[0] ? req->locale : "", "code_length",
                  req->code_length ? req->code_length : pol->code_length, "expires_at", exp_at));
    refused_js = dump_json(json_pack("{s:s}", "reason", it->refusal));
    if (options_js && accepted_js && refused_js) {
        const char *p[22] = {req->request_id,
                             req->user_id,
                             req->purpose,
                             req->phone,
                             masked,
                             it->country,
                             it->locale,
                             code_len,
                             max_att,
                             max_calls,
                             options_js,
                             req->metadata[0] ? req->metadata : NULL,
                             req_at,
                             exp_at,
                             it->status,
                             accepted_js,
                             refused_js,
                             hash_hex,
                             hash_hex ? key_id : NULL,
                             it->service,
                             it->api_key_id[0] ? it->api_key_id : NULL,
                             phone_hash};
        rc = otp_db_pipe_send_prepared(in->db, "ingest_insert", 22, p, NULL, NULL);
    }
    free(options_js);
    free(accepted_js);
    free(refused_js);
    return rc;
}

/* Sends the dead letter of one bad message (pipeline mode). */
static int send_dead_letter(intake_t *in, const batch_item_t *it)
{
    rd_kafka_message_t *m = it->msg;
    char part[12], off[24];
    char *attrs_js =
        dump_json(json_pack("{s:s, s:s, s:s}", "reason", it->reason, "error", it->error, "service",
                            it->service[0] ? it->service : OTP_SERVICE_DEFAULT));
    const char *p[9] = {it->reason,
                        it->error,
                        rd_kafka_topic_name(m->rkt),
                        part,
                        off,
                        m->payload ? m->payload : "",
                        it->req.request_id[0] ? it->req.request_id : NULL,
                        attrs_js,
                        it->service[0] ? it->service : NULL};
    int lens[9] = {0, 0, 0, 0, 0, (int)m->len, 0, 0, 0};
    int fmts[9] = {0, 0, 0, 0, 0, 1, 0, 0, 0};
    int rc = -1;

    snprintf(part, sizeof(part), "%d", (int)m->partition);
    snprintf(off, sizeof(off), "%lld", (long long)m->offset);
    if (attrs_js)
        rc = otp_db_pipe_send_prepared(in->db, "ingest_dead_letter", 9, p, lens, fmts);
    free(attrs_js);
    return rc;
}

/* Sends the masked copy of a bad message to the DLQ, naming its dead letter. */
static int produce_dlq(worker_t *w, const batch_item_t *it, delivery_tracker_t *t)
{
    rd_kafka_message_t *m = it->msg;
    size_t red_len = 0;
    char *red = otp_redact_numbers(m->payload, m->len, &red_len);
    char *env = NULL;
    rd_kafka_resp_err_t err;
    json_t *o;

    if (!red)
        return -1;
    o = otp_dlq_envelope_new(it->reason, it->error, rd_kafka_topic_name(m->rkt), m->partition,
                             m->offset, red, red_len);
    free(red);
    if (o) {
        json_object_set_new(o, "dead_letter_id", json_integer(it->dead_letter_id));
        env = json_dumps(o, JSON_COMPACT);
        json_decref(o);
    }
    if (!env)
        return -1;
    err = rd_kafka_producev(
        w->producer, RD_KAFKA_V_TOPIC(w->cfg.topic_dlq), RD_KAFKA_V_VALUE(env, strlen(env)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_HEADER("dlq.reason", it->reason, -1),
        RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    if (err) {
        free(env);
        otp_error("dlq_produce_failed", "error=\"%s\"", rd_kafka_err2str(err));
        return -1;
    }
    atomic_fetch_add(&t->pending, 1);
    return 0;
}

/* Logs and counts the outcome of each message of a committed batch. */
static void report_batch(worker_t *w, const batch_item_t *items, int n)
{
    for (int i = 0; i < n; i++) {
        const batch_item_t *it = &items[i];
        char masked[OTP_PHONE_MAX + 4];

        if (!it->valid) {
            otp_warn("request_rejected",
                     "request_id=%s service=%s reason=%s error=\"%s\" topic=%s partition=%d "
                     "offset=%lld",
                     it->req.request_id[0] ? it->req.request_id : "-",
                     it->service[0] ? it->service : "-", it->reason, it->error,
                     rd_kafka_topic_name(it->msg->rkt), (int)it->msg->partition,
                     (long long)it->msg->offset);
            atomic_fetch_add(&w->m.dlq, 1);
            continue;
        }
        atomic_fetch_add(it->is_new ? &w->m.accepted : &w->m.duplicates, 1);
        if (!it->is_new)
            continue;
        otp_phone_mask(it->req.phone, masked, sizeof(masked));
        if (strcmp(it->status, "expired") == 0) {
            atomic_fetch_add(&w->m.expired_on_arrival, 1);
            otp_info("request_expired", "request_id=%s phone=%s reason=%s", it->req.request_id,
                     masked, it->refusal);
        } else if (strcmp(it->status, "pending") != 0) {
            atomic_fetch_add(
                strcmp(it->status, "blocked") == 0 ? &w->m.blocked : &w->m.rate_limited, 1);
            if (strcmp(it->refusal, "global_hourly_cap") == 0 &&
                !atomic_exchange(&w->m.circuit_open, 1))
                otp_warn("circuit_open", "reason=global_hourly_cap limit=%d",
                         w->limits.global_hour);
            otp_info("request_refused", "request_id=%s service=%s phone=%s decision=%s reason=%s",
                     it->req.request_id, it->service, masked, it->status, it->refusal);
        } else {
            otp_info("request_accepted", "request_id=%s service=%s key_id=%s phone=%s locale=%s",
                     it->req.request_id, it->service, it->api_key_id[0] ? it->api_key_id : "-",
                     masked, it->locale);
        }
    }
}

/* Makes a parsed batch durable: one read of the budgets (and of resent
 * requests), one pipeline that writes every request and dead letter inside
 * one transaction, then the DLQ copies, then one pipeline that adds the
 * batch to the budgets and commits. -1 when nothing of it is committed. */
static int write_batch(intake_t *in, batch_item_t *items, int n, delivery_tracker_t *dlq,
                       const otp_svc_set_t *set)
{
    worker_t *w = in->w;
    PGresult *res[BATCH_MAX + 1], *fin[3] = {NULL, NULL, NULL};
    int64_t now_ms = otp_now_ms();
    int n_dlq_sent = 0, stored, nfin = 0, rc = -1, in_tx = 0;

    memset(res, 0, sizeof(res));
    if (resolve_resends(in, items, n) != 0)
        return -1;
    limits_ledger_reset(in->ledger);
    for (int i = 0; i < n; i++) {
        batch_item_t *it = &items[i];
        if (it->valid && check_service(it, set) != 0)
            it->valid = 0;
        if (it->valid && it->req.requested_at_ms > now_ms + FUTURE_SKEW_MS) {
            it->valid = 0;
            snprintf(it->reason, sizeof(it->reason), "requested_at_in_future");
            snprintf(it->error, sizeof(it->error),
                     "requested_at is more than %d s ahead of the worker's clock",
                     FUTURE_SKEW_MS / 1000);
        }
        if (it->valid && it->req.delivery.keypad &&
            open_keypad_code(w, &it->req, it->hash_hex, &it->keypad_len, it->reason,
                             sizeof(it->reason), it->error, sizeof(it->error)) != 0)
            it->valid = 0;
        if (it->valid && otp_pn_lookup(it->req.phone, &it->pn) != 0) {
            /* E.164 in form, yet no number (libphonenumber): never dialled. */
            it->valid = 0;
            snprintf(it->reason, sizeof(it->reason), "invalid_phone");
            snprintf(it->error, sizeof(it->error),
                     "phone is not a valid number (wrong length or unassigned range)");
        }
        if (!it->valid)
            continue;
        it->country = otp_phone_country_of(&it->pn);
        it->locale = otp_voice_pick(w->voice, it->req.locale, it->country, it->pol->default_locale);
        snprintf(it->kphone, sizeof(it->kphone), "%s:%s", it->service, it->req.phone);
        snprintf(it->kuser, sizeof(it->kuser), "%s:%s", it->service, it->req.user_id);
        snprintf(it->kcountry, sizeof(it->kcountry), "%s:%s", it->service, it->country);
        if (limits_ledger_want(in->ledger, it->pol, it->kphone, it->kuser, it->kcountry) != 0)
            return -1;
    }
    if (limits_ledger_load(in->ledger, in->db) != 0)
        return -1;
    if (w->limits.global_hour && limits_ledger_global(in->ledger) < w->limits.global_hour &&
        atomic_exchange(&w->m.circuit_open, 0))
        otp_info("circuit_closed", "accepted_last_hour=%ld", limits_ledger_global(in->ledger));
    for (int i = 0; i < n; i++)
        if (items[i].valid)
            decide(in, &items[i], now_ms);

    if (otp_db_prepare(in->db, "ingest_insert", insert_sql, 22) != 0 ||
        otp_db_prepare(in->db, "ingest_dead_letter", dead_letter_sql, 9) != 0 ||
        otp_db_pipe_open(in->db) != 0)
        return -1;
    stored = otp_db_pipe_send(in->db, "BEGIN", 0, NULL, NULL, NULL);
    for (int i = 0; i < n && stored == 0; i++)
        stored =
            items[i].valid ? send_insert(in, &items[i], now_ms) : send_dead_letter(in, &items[i]);
    if (otp_db_pipe_close(in->db, "ingest_write", res, n + 1) != 0 || stored != 0)
        goto out;
    in_tx = 1;
    for (int i = 0; i < n; i++) {
        batch_item_t *it = &items[i];
        PGresult *r = res[i + 1];
        if (!it->valid) {
            it->dead_letter_id = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
            /* A message read again (after a rebalance or a failed batch) whose
             * dead letter was committed before is on the DLQ already. */
            if (PQntuples(r) && PQgetvalue(r, 0, 1)[0] == 't') {
                if (produce_dlq(w, it, dlq) != 0)
                    goto out;
                n_dlq_sent++;
            }
            continue;
        }
        it->is_new = PQntuples(r) > 0;
        if (!it->is_new && strcmp(it->status, "pending") == 0)
            limits_ledger_add(in->ledger, it->kphone, it->kuser, it->kcountry, 1);
    }
    /* The DLQ copies must be on the broker before the offsets move past them. */
    if (n_dlq_sent && delivery_wait(w->producer, dlq, 15000) != 0) {
        otp_error("dlq_delivery_failed", "error=\"%s\"",
                  rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&dlq->last_err)));
        goto out;
    }
    if (otp_db_pipe_open(in->db) != 0)
        goto out;
    /* The counters, a word to the relay (one per batch), the commit. */
    stored = limits_ledger_send_store(in->ledger, in->db);
    nfin = stored == 1 ? 3 : 2;
    if (stored >= 0)
        stored = otp_db_pipe_send(in->db, "NOTIFY otp_outbox", 0, NULL, NULL, NULL);
    if (stored == 0)
        stored = otp_db_pipe_send(in->db, "COMMIT", 0, NULL, NULL, NULL);
    if (otp_db_pipe_close(in->db, "ingest_commit", fin, nfin) != 0 || stored != 0)
        goto out;
    in_tx = 0;
    report_batch(w, items, n);
    rc = 0;
out:
    for (int i = 0; i <= n; i++)
        PQclear(res[i]);
    for (int i = 0; i < 3; i++)
        PQclear(fin[i]);
    for (int i = 0; i < n; i++)
        sodium_memzero(items[i].hash_hex, sizeof(items[i].hash_hex));
    if (rc != 0 && (in_tx || PQtransactionStatus(in->db) != PQTRANS_IDLE))
        otp_db_rollback(in->db);
    return rc;
}

int ingest_poll(intake_t *in, int timeout_ms)
{
    worker_t *w = in->w;
    static batch_item_t items[BATCH_MAX]; /* main thread only */
    const otp_svc_set_t *set;
    int n = 0, rc = -1, written;

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
        items[n].valid =
            otp_request_parse(m->payload, m->len, &items[n].req, items[n].reason,
                              sizeof(items[n].reason), items[n].error, sizeof(items[n].error)) == 0;
        api_key_id(m, items[n].api_key_id, sizeof(items[n].api_key_id));
        /* Who asks is the topic (under the broker's ACLs), never the payload. */
        if (!otp_services_topic_service(w->cfg.topic_requests, rd_kafka_topic_name(m->rkt),
                                        items[n].service) &&
            items[n].valid) {
            items[n].valid = 0;
            snprintf(items[n].reason, sizeof(items[n].reason), "unknown_service");
            snprintf(items[n].error, sizeof(items[n].error),
                     "the topic names no service (%s.<service>)", w->cfg.topic_requests);
        }
        n++;
    }
    if (n == 0)
        return 0;
    atomic_store(&in->dlq_acks.failed, 0);
    atomic_fetch_add(&w->m.consumed, n);

    set = otp_services_acquire(w->services);
    written = otp_db_ensure(in->db) == 0 && write_batch(in, items, n, &in->dlq_acks, set) == 0;
    otp_services_release(set);
    if (!written) {
        atomic_fetch_add(&w->m.db_errors, 1);
        rewind_batch(w, items, n);
    } else {
        store_offsets(w, items, n);
        rc = n;
    }
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(items[i].msg);
    return rc;
}
