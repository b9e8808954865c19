/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_time.h"
#include "worker.h"

#define RELAY_VACUUM_EVERY 20000
/* How often a worker that does not relay tries to take the relay over. */
#define WORKER_IDLE_MS 10000
/* The relay's poll of an empty outbox backs off from MIN to MAX. */
#define RELAY_POLL_MIN_MS 50
#define RELAY_POLL_MAX_MS 2000
#define RELAY_LOCK "727275" /* pg_advisory_lock key: one relay at a time, for its session */
#define STR_(x) #x
#define STR(x) STR_(x)
#define RELAY_BATCH_S STR(RELAY_BATCH)
/* CloudEvents attributes of every status event: ce_type is the prefix and
 * the event's type (net.voipbin.otp.call_status.delivered). */
#define RELAY_CE_TYPE_PREFIX "net.voipbin.otp.call_status."
#define RELAY_CE_SOURCE "/otp/call_status"

#define AT_SQL "to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The event as consumers see it: envelope, challenge context (phone masked,
 * never a code or hash), then the attributes of the change. `seq` is the
 * request's counter (outbox_seq) plus the event's place among the request's
 * events in this batch (sql/011_relay_numbers_events.sql, sql/012): sending a batch again after a
 * failure gives it the same numbers, since the counters move only when the
 * acknowledged batch is deleted. Each event finds its counter and its
 * challenge by one primary-key probe (a subquery, and a lateral one that
 * OFFSET 0 keeps from becoming a join): as joins, the planner hashed the
 * whole of outbox_seq and challenges for every batch, a read that grew with
 * every request ever relayed. */
static const char select_sql[] =
    "WITH b AS ("
    "  SELECT o.*, coalesce((SELECT q.n FROM outbox_seq q WHERE q.request_id = o.request_id), 0)"
    "         + row_number() OVER (PARTITION BY o.request_id ORDER BY o.id) AS seq"
    "    FROM (SELECT * FROM outbox ORDER BY id LIMIT " RELAY_BATCH_S ") o"
    ")"
    "SELECT o.id, o.request_id::text,"
    "  (jsonb_build_object('event_id', o.event_id, 'schema_version', 1, 'type', o.type,"
    "     'request_id', o.request_id, 'seq', o.seq, 'at', " AT_SQL ")"
    "   || CASE WHEN c.request_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object("
    "        'service', c.service, 'user_id', c.user_id, 'purpose', c.purpose,"
    "        'phone', c.phone_masked, 'country', c.country, 'locale', c.locale) END"
    "   || CASE WHEN c.api_key_id IS NULL THEN '{}'::jsonb"
    "           ELSE jsonb_build_object('api_key_id', c.api_key_id) END"
    "   || CASE WHEN c.metadata IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('metadata', "
    "c.metadata) END"
    "   || o.attrs)::text,"
    "  o.type,"
    "  CASE WHEN o.type = 'call_requested' AND o.attrs->>'attempt' = '1'"
    "       THEN extract(epoch FROM o.created_at - c.requested_at) END,"
    "  o.event_id::text, " AT_SQL ","
    "  coalesce(c.service, o.attrs->>'service', 'default')"
    "  FROM b o LEFT JOIN LATERAL ("
    "    SELECT c.request_id, c.service, c.user_id, c.purpose, c.phone_masked, c.country,"
    "           c.locale, c.api_key_id, c.metadata, c.requested_at"
    "      FROM challenges c WHERE c.request_id = o.request_id OFFSET 0) c ON true"
    " ORDER BY o.id";

/* Deletes the acknowledged events and moves each request's counter past them,
 * in one statement. The counters are rows of their own (sql/012): the relay
 * never writes a challenge row that a claim or a verify holds. */
static const char delete_sql[] =
    "WITH d AS ("
    "  DELETE FROM outbox WHERE id = ANY($1::bigint[]) RETURNING request_id"
    "), r AS ("
    "  SELECT request_id, count(*)::int AS n FROM d GROUP BY request_id"
    ")"
    "INSERT INTO outbox_seq AS q (request_id, n)"
    "SELECT request_id, n FROM r ORDER BY request_id"
    "    ON CONFLICT (request_id) DO UPDATE SET n = q.n + excluded.n, updated_at = now()";

int relay_lead(relay_t *rl)
{
    worker_t *w = rl->w;
    PGresult *r;
    int got;

    if (rl->session != 0 && rl->session == PQbackendPID(rl->db))
        return 1;
    rl->session = 0;
    r = otp_db_query(rl->db, "relay_lock", "SELECT pg_try_advisory_lock(" RELAY_LOCK ")", 0, NULL);
    if (!r)
        return -1;
    got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (got) {
        rl->session = PQbackendPID(rl->db);
        otp_info("relay_leader", "worker_id=%s", w->cfg.worker_id);
    }
    return got;
}

/* Metrics of the first n rows of a batch the broker acknowledged: events by
 * type, and the time from request to first call. */
static void count_relayed(PGresult *r, int n)
{
    for (int i = 0; i < n; i++) {
        otp_metric_add(OTP_M_WORKER_STATUS_EVENTS, PQgetvalue(r, i, 3), 1);
        if (!PQgetisnull(r, i, 4))
            otp_metric_observe(OTP_M_WORKER_REQUEST_TO_CALL, NULL,
                               strtod(PQgetvalue(r, i, 4), NULL));
    }
}

int relay_run(relay_t *rl)
{
    worker_t *w = rl->w;
    delivery_tracker_t *t = &rl->acks;
    PGresult *r = NULL;
    char *ids = NULL;
    size_t ids_len = 0;
    int n = 0, rc = -1;

    if (relay_lead(rl) != 1)
        return 0; /* another worker is relaying */
    r = otp_db_query(rl->db, "relay_select", select_sql, 0, NULL);
    if (!r)
        goto out;
    n = PQntuples(r);
    if (n == 0) {
        rc = 0;
        goto out;
    }
    atomic_store(&t->failed, 0);
    ids = malloc((size_t)n * 21 + 3);
    if (!ids)
        goto out;
    ids[ids_len++] = '{';
    for (int i = 0; i < n; i++) {
        const char *key = PQgetvalue(r, i, 1);
        const char *val = PQgetvalue(r, i, 2);
        const char *type = PQgetvalue(r, i, 3);
        const char *service = PQgetvalue(r, i, 7);
        char ce_type[64], topic[256];
        rd_kafka_resp_err_t err;

        snprintf(ce_type, sizeof(ce_type), "%s%s", RELAY_CE_TYPE_PREFIX, type);
        /* One topic per request's service, so every event of a request goes
         * to one topic, in order. */
        if (!w->cfg.status_topic_per_service ||
            otp_services_topic(w->cfg.topic_status, service, topic, sizeof(topic)) != 0)
            snprintf(topic, sizeof(topic), "%s", w->cfg.topic_status);
        /* CloudEvents Kafka protocol binding, binary mode: the attributes as
         * ce_ headers, the event (the data) as the value. */
        err = rd_kafka_producev(
            rl->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)val, (size_t)PQgetlength(r, i, 2)),
            RD_KAFKA_V_HEADER("ce_specversion", "1.0", 3),
            RD_KAFKA_V_HEADER("ce_id", PQgetvalue(r, i, 5), PQgetlength(r, i, 5)),
            RD_KAFKA_V_HEADER("ce_type", ce_type, -1),
            RD_KAFKA_V_HEADER("ce_source", RELAY_CE_SOURCE, sizeof(RELAY_CE_SOURCE) - 1),
            RD_KAFKA_V_HEADER("ce_time", PQgetvalue(r, i, 6), PQgetlength(r, i, 6)),
            RD_KAFKA_V_HEADER("ce_subject", key, -1),
            RD_KAFKA_V_HEADER("content-type", "application/json", 16),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rl->producer, 100);
            i--;
            continue;
        }
        if (err) {
            otp_error("relay_produce_failed", "error=\"%s\"", rd_kafka_err2str(err));
            n = i;
            break;
        }
        atomic_fetch_add(&t->pending, 1);
        ids_len += (size_t)snprintf(ids + ids_len, 22, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
    }
    ids[ids_len++] = '}';
    ids[ids_len] = '\0';
    /* Delete only what the broker acknowledged; on any failure keep the whole
     * batch and send it again (consumers drop duplicates by event_id). */
    if (delivery_wait(rl->producer, t, 10000) != 0) {
        atomic_fetch_add(&w->m.relay_errors, 1);
        atomic_store(&w->m.kafka_ok, 0);
        otp_warn("relay_delivery_failed", "events=%d error=\"%s\"", n,
                 rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&t->last_err)));
        goto out;
    }
    atomic_store(&w->m.kafka_ok, 1);
    if (n > 0) {
        const char *p[1] = {ids};
        if (otp_db_exec(rl->db, "relay_delete", delete_sql, 1, p))
            goto out;
        count_relayed(r, n);
        rl->deleted += n;
    }
    /* The outbox is a queue: every event is a dead row once relayed, and
     * autovacuum looks at most once a minute. Between its passes the heap
     * grew to 27 MiB for under 1,000 live rows at 100,000 requests, and the
     * batch read and delete (seq scans of a table the planner rightly thinks
     * small) read all of it. The relay vacuums what it deleted: a few ms
     * each RELAY_VACUUM_EVERY events (a WARNING, no error, if the worker's
     * role does not own the table). */
    if (rl->deleted >= RELAY_VACUUM_EVERY) {
        rl->deleted = 0;
        if (otp_db_exec(rl->db, "relay_vacuum", "VACUUM outbox", 0, NULL) != 0)
            otp_warn("relay_vacuum_failed", "table=outbox");
    }
    rc = n;
    atomic_fetch_add(&w->m.relayed, rc);
out:
    PQclear(r);
    free(ids);
    return rc;
}

void *relay_thread(void *arg)
{
    relay_t *rl = arg;
    int listen_session = 0, relay_poll = RELAY_POLL_MIN_MS;
    int64_t relay_at = 0;

    for (;;) {
        int64_t now = otp_monotonic_ms();
        int stopping = atomic_load(&rl->stop), n;

        rd_kafka_poll(rl->producer, 0);
        if (otp_db_ensure(rl->db) != 0 ||
            otp_db_listen(rl->db, "otp_outbox", &listen_session) != 0) {
            if (stopping)
                break;
            usleep(200000);
            continue;
        }
        /* The relay runs when a worker says it wrote events, and polls,
         * backing off while the outbox stays empty (the verifier's events
         * come without a word, so they wait at most RELAY_POLL_MAX_MS). The
         * other workers try for the relay now and then, in case its worker
         * died. */
        if (!stopping && now < relay_at) {
            int64_t wait = relay_at - now;
            if (otp_db_wait_notify(rl->db, wait > 50 ? 50 : (int)wait) == 1)
                relay_at = 0;
            continue;
        }
        n = relay_run(rl);
        if (stopping) {
            if (n < 0)
                otp_warn("relay_at_stop_failed", "the outbox is relayed by the next worker");
            if (n < RELAY_BATCH)
                break;
            continue;
        }
        if (n < 0) {
            relay_at = now + 1000;
        } else if (rl->session == 0) {
            relay_at = now + WORKER_IDLE_MS;
        } else if (n > 0) {
            relay_poll = RELAY_POLL_MIN_MS;
            relay_at = now + (n >= RELAY_BATCH ? 0 : relay_poll);
        } else {
            relay_poll = relay_poll * 2 > RELAY_POLL_MAX_MS ? RELAY_POLL_MAX_MS : relay_poll * 2;
            relay_at = now + relay_poll;
        }
    }
    return NULL;
}
