/* SPDX-License-Identifier: Apache-2.0 */
/* The status topic(s) into hook_deliveries: one statement a batch, then the
 * offsets. The statement keeps only the events of services that have a
 * webhook_url (a join with services, no cache to go stale) and adds nothing
 * for an event already there (the relay may publish one twice). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_services.h"
#include "otp_time.h"

#define CONSUME_BATCH 500
/* The statistics are brought up to date once this many rows, and a tenth of
 * the table, were written since they were last (sql/046). */
#define ANALYZE_AFTER_ROWS 1000

/* A row that is not the first undelivered event of its request (an earlier
 * one waits in the table, or comes in this batch) is written due at
 * 'infinity': the senders' claim never walks over it, and the sender that
 * finishes the event before it makes it due (sender.c). */
static const char insert_sql[] =
    "WITH x AS ("
    "  SELECT x.*, min(x.seq) OVER (PARTITION BY x.request_id) AS first_seq"
    "    FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[])"
    "         WITH ORDINALITY AS x(service, request_id, seq, event_id, type, body, n)"
    "    JOIN services s ON s.name = x.service AND s.webhook_url IS NOT NULL)"
    "INSERT INTO hook_deliveries (service, request_id, seq, event_id, type, body, next_try_at)"
    " SELECT x.service, x.request_id, x.seq, x.event_id, x.type, x.body,"
    "        CASE WHEN x.seq > x.first_seq OR EXISTS ("
    "               SELECT 1 FROM hook_deliveries e"
    "                WHERE e.request_id = x.request_id AND e.seq < x.seq"
    "                  AND e.delivered_at IS NULL AND e.gave_up_at IS NULL)"
    "             THEN 'infinity'::timestamptz ELSE now() END"
    "   FROM x ORDER BY x.n"
    " ON CONFLICT DO NOTHING";

void hooks_event_service(const char *base_topic, const char *topic, const char *event_service,
                         char *out)
{
    char from_topic[OTP_SERVICE_MAX + 1];

    if (otp_services_topic_service(base_topic, topic, from_topic) &&
        strcmp(topic, base_topic) != 0) {
        snprintf(out, OTP_SERVICE_MAX + 1, "%s", from_topic);
        return;
    }
    if (event_service && otp_service_name_ok(event_service))
        snprintf(out, OTP_SERVICE_MAX + 1, "%s", event_service);
    else
        snprintf(out, OTP_SERVICE_MAX + 1, "%s", OTP_SERVICE_DEFAULT);
}

static int uuid_ok(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
            return 0;
    }
    return 1;
}

typedef struct row {
    char service[OTP_SERVICE_MAX + 1];
    char seq[24];
    const char *request_id, *event_id, *type;
} row_t;

/* Reads one event into r (strings borrowed from *doc). 1 to write, 0 skip. */
static int parse(hooks_t *h, const rd_kafka_message_t *m, json_t **doc, row_t *r)
{
    json_error_t jerr;
    json_t *seq, *svc;
    const char *at;
    int64_t at_ms;

    *doc = json_loadb(m->payload, m->len, 0, &jerr);
    if (!*doc || !json_is_object(*doc))
        goto invalid;
    r->request_id = json_string_value(json_object_get(*doc, "request_id"));
    r->event_id = json_string_value(json_object_get(*doc, "event_id"));
    r->type = json_string_value(json_object_get(*doc, "type"));
    seq = json_object_get(*doc, "seq");
    svc = json_object_get(*doc, "service");
    if (!uuid_ok(r->request_id) || !uuid_ok(r->event_id) || !r->type || !json_is_integer(seq))
        goto invalid;
    snprintf(r->seq, sizeof(r->seq), "%lld", (long long)json_integer_value(seq));
    hooks_event_service(h->cfg.topic_status, rd_kafka_topic_name(m->rkt), json_string_value(svc),
                        r->service);
    /* A new group starts at the beginning of the topic: events older than the
     * give-up window would only be given up, so they are not sent at all. */
    at = json_string_value(json_object_get(*doc, "at"));
    if (at && otp_time_parse(at, &at_ms) == 0 &&
        otp_now_ms() - at_ms > (int64_t)h->cfg.give_up_s * 1000) {
        atomic_fetch_add(&h->m.too_old, 1);
        return 0;
    }
    return 1;
invalid:
    atomic_fetch_add(&h->m.invalid, 1);
    otp_warn("hook_event_invalid", "topic=%s partition=%d offset=%lld", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset);
    return 0;
}

/* The partitions of the batch at (store) past its last or (rewind) at its
 * first message. */
static rd_kafka_topic_partition_list_t *positions(rd_kafka_message_t **msgs, int n, int rewind)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(8);

    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        int64_t want = rewind ? m->offset : m->offset + 1;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(parts, rd_kafka_topic_name(m->rkt), m->partition);
        if (!p) {
            p = rd_kafka_topic_partition_list_add(parts, rd_kafka_topic_name(m->rkt), m->partition);
            p->offset = want;
        } else if (rewind ? want < p->offset : want > p->offset) {
            p->offset = want;
        }
    }
    return parts;
}

static int write_batch(hooks_t *h, PGconn *db, rd_kafka_message_t **msgs, int n, long *written)
{
    otp_pgarray_t a[6] = {{0}};
    json_t **docs = calloc((size_t)n, sizeof(*docs));
    const char *p[6];
    PGresult *r = NULL;
    int rows = 0, rc = -1;

    if (!docs)
        return -1;
    for (int i = 0; i < n; i++) {
        row_t row;
        if (!parse(h, msgs[i], &docs[i], &row))
            continue;
        otp_pgarray_add(&a[0], row.service);
        otp_pgarray_add(&a[1], row.request_id);
        otp_pgarray_add(&a[2], row.seq);
        otp_pgarray_add(&a[3], row.event_id);
        otp_pgarray_add(&a[4], row.type);
        /* The exact bytes: they are what the receiver's signature covers.
         * jansson checked them (UTF-8, no NUL), so they are valid text. */
        {
            char *body = strndup(msgs[i]->payload, msgs[i]->len);
            if (!body)
                goto out;
            otp_pgarray_add(&a[5], body);
            free(body);
        }
        rows++;
    }
    *written = rows;
    if (rows == 0) {
        rc = 0;
        goto out;
    }
    for (int k = 0; k < 6; k++)
        if (!(p[k] = otp_pgarray_str(&a[k])))
            goto out;
    r = otp_db_query(db, "hooks_insert", insert_sql, 6, p);
    if (!r)
        goto out;
    *written = strtol(PQcmdTuples(r), NULL, 10);
    rc = 0;
out:
    PQclear(r);
    for (int k = 0; k < 6; k++)
        otp_pgarray_free(&a[k]);
    for (int i = 0; i < n; i++)
        json_decref(docs[i]);
    free(docs);
    return rc;
}

/* Rows written since the statistics were made, and the rows they count. */
static long since_analyze, analyzed_rows = -1; /* main thread only */

/* ANALYZE through otp_hooks_analyze() when the table grew by a tenth (the
 * senders' plans depend on it: sql/046). A failure is logged and the next
 * batch tries again; it costs the batch nothing. */
static void keep_statistics(hooks_t *h, PGconn *db, long written)
{
    PGresult *r;

    since_analyze += written;
    if (since_analyze < ANALYZE_AFTER_ROWS ||
        (analyzed_rows > 0 && since_analyze < analyzed_rows / 10))
        return;
    r = otp_db_query(db, "hooks_analyze", "SELECT otp_hooks_analyze()", 0, NULL);
    if (!r) {
        atomic_fetch_add(&h->m.db_errors, 1);
        return;
    }
    analyzed_rows = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    since_analyze = 0;
    PQclear(r);
    otp_debug("hooks_analyzed", "rows=%ld", analyzed_rows);
}

int hooks_consume_poll(hooks_t *h, PGconn **db, int timeout_ms)
{
    static rd_kafka_message_t *msgs[CONSUME_BATCH]; /* main thread only */
    rd_kafka_topic_partition_list_t *parts;
    long before, written = 0;
    int n = 0, rc;

    while (n < CONSUME_BATCH) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(h->consumer, n == 0 ? timeout_ms : 0);
        if (!m)
            break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                otp_warn("consume_error", "error=\"%s\"", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        msgs[n++] = m;
    }
    if (n == 0)
        return 0;
    before = atomic_load(&h->m.too_old) + atomic_load(&h->m.invalid);
    if (!otp_db_kept(db, h->cfg.db_url, "otp-hooks") || PQstatus(*db) != CONNECTION_OK ||
        write_batch(h, *db, msgs, n, &written) != 0) {
        rd_kafka_error_t *err;
        atomic_fetch_add(&h->m.db_errors, 1);
        parts = positions(msgs, n, 1);
        err = rd_kafka_seek_partitions(h->consumer, parts, 5000);
        if (err) {
            otp_error("hooks_rewind_failed", "error=\"%s\"", rd_kafka_error_string(err));
            rd_kafka_error_destroy(err);
        }
        rc = -1;
    } else {
        /* Durable now (one autocommitted statement): the offsets may go. A
         * partition revoked meanwhile refuses the store; its next owner reads
         * the batch again and the insert adds nothing twice. */
        long dropped = atomic_load(&h->m.too_old) + atomic_load(&h->m.invalid) - before;
        long skipped = n - dropped - written;
        atomic_fetch_add(&h->m.queued, written);
        keep_statistics(h, *db, written);
        atomic_fetch_add(&h->m.skipped, skipped > 0 ? skipped : 0);
        parts = positions(msgs, n, 0);
        if (rd_kafka_offsets_store(h->consumer, parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
            otp_warn("offsets_store_failed", "partitions=%d", parts->cnt);
        rc = n;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    for (int i = 0; i < n; i++)
        rd_kafka_message_destroy(msgs[i]);
    return rc;
}
