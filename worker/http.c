/* SPDX-License-Identifier: Apache-2.0 */
/* The worker's admin endpoints: /healthz (the main loop turns), /readyz
 * (database, broker, partitions) and /metrics (common/otp_metrics.h). One
 * HTTP thread, which owns its own database connection. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_config.h"
#include "otp_db.h"
#include "otp_http.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_time.h"
#include "worker.h"

/* The main loop polls at least every 200 ms; silence this long means stuck. */
#define ALIVE_MAX_SILENCE_MS 30000

static PGconn *admin_db; /* HTTP thread only */

static PGconn *db(void)
{
    char err[256];

    if (!admin_db) {
        admin_db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-worker-admin", err,
                                  sizeof(err));
        if (!admin_db)
            otp_warn("admin_db_connect_failed", "error=\"%s\"", err);
    } else if (otp_db_ensure(admin_db) != 0) {
        return NULL;
    }
    return admin_db;
}

static int db_reachable(void)
{
    PGconn *c = db();
    PGresult *r = c ? PQexec(c, "SELECT 1") : NULL;
    int ok = r && PQresultStatus(r) == PGRES_TUPLES_OK;

    PQclear(r);
    return ok;
}

/* A metadata request answered within a second: some broker is reachable. */
static int broker_reachable(worker_t *w)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(w->consumer, 0, NULL, &md, 1000);

    if (md)
        rd_kafka_metadata_destroy(md);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Partitions assigned, and the messages on them not consumed yet (high
 * watermark as last fetched minus the position; unknown positions count 0). */
static int assignment(worker_t *w, long long *lag)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    int n;

    *lag = 0;
    if (rd_kafka_assignment(w->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return 0;
    n = parts->cnt;
    if (rd_kafka_position(w->consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo = -1, hi = -1;
            if (p->offset < 0 ||
                rd_kafka_get_watermark_offsets(w->consumer, p->topic, p->partition, &lo, &hi) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < p->offset)
                continue;
            *lag += hi - p->offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}

static long long outbox_backlog(void)
{
    PGconn *c = db();
    PGresult *r =
        c ? otp_db_query(c, "outbox_backlog", "SELECT count(*) FROM outbox", 0, NULL) : NULL;
    long long n = r ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;

    PQclear(r);
    return n;
}

/* The counters the pipeline keeps in worker_metrics_t, as metric families. */
#define COUNTER(id, label, field) OTP_METRIC_COUNTER(worker_metrics_t, field, id, label)
static const otp_metric_counter_t counters[] = {
    COUNTER(OTP_M_WORKER_CONSUMED, NULL, consumed),
    COUNTER(OTP_M_WORKER_REQUESTS, "accepted", accepted),
    COUNTER(OTP_M_WORKER_REQUESTS, "duplicate", duplicates),
    COUNTER(OTP_M_WORKER_REQUESTS, "dlq", dlq),
    COUNTER(OTP_M_WORKER_REQUESTS, "expired_on_arrival", expired_on_arrival),
    COUNTER(OTP_M_WORKER_REQUESTS, "blocked", blocked),
    COUNTER(OTP_M_WORKER_REQUESTS, "rate_limited", rate_limited),
    COUNTER(OTP_M_WORKER_REQUESTS, "failed", calls_failed),
    COUNTER(OTP_M_WORKER_CALLS, "placed", calls_placed),
    COUNTER(OTP_M_WORKER_CALLS, "adopted", calls_adopted),
    COUNTER(OTP_M_WORKER_CALLS, "retried", calls_retried),
    COUNTER(OTP_M_WORKER_RELAY_ERRORS, NULL, relay_errors),
    COUNTER(OTP_M_WORKER_DB_ERRORS, NULL, db_errors),
    COUNTER(OTP_M_WORKER_IN_FLIGHT, NULL, in_flight),
};
#undef COUNTER

static otp_mhd_result metrics(worker_t *w, struct MHD_Connection *c)
{
    long long lag;
    int parts = assignment(w, &lag);

    otp_metric_set_counters(counters, sizeof(counters) / sizeof(counters[0]), &w->m);
    otp_metric_set(OTP_M_WORKER_CIRCUIT_OPEN, NULL, atomic_load(&w->m.circuit_open));
    otp_metric_set(OTP_M_WORKER_PARTITIONS, NULL, parts);
    otp_metric_set(OTP_M_WORKER_CONSUMER_LAG, NULL, lag);
    otp_metric_set(OTP_M_WORKER_OUTBOX_BACKLOG, NULL, outbox_backlog());
    return otp_http_reply_metrics(c, OTP_PROG_WORKER);
}

static otp_mhd_result handle(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    worker_t *w = cls;
    char body[256];

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return otp_http_error(c, 405, "method_not_allowed", "only GET is served here");
    if (strcmp(url, "/healthz") == 0) {
        int64_t silent = otp_monotonic_ms() - atomic_load(&w->alive_ms);
        int ok = silent < ALIVE_MAX_SILENCE_MS;
        snprintf(body, sizeof(body), "{\"status\":\"%s\",\"loop_silent_ms\":%lld}",
                 ok ? "ok" : "stuck", (long long)silent);
        return otp_http_reply(c, ok ? 200 : 503, "application/json", body);
    }
    if (strcmp(url, "/readyz") == 0) {
        long long lag;
        int dbok = db_reachable(), kok = broker_reachable(w), parts = assignment(w, &lag);
        int ok = dbok && kok && parts > 0;
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"database\":%s,\"kafka\":%s,\"partitions\":%d}",
                 ok ? "ok" : "not_ready", dbok ? "true" : "false", kok ? "true" : "false", parts);
        return otp_http_reply(c, ok ? 200 : 503, "application/json", body);
    }
    if (strcmp(url, "/metrics") == 0)
        return metrics(w, c);
    return otp_http_error(c, 404, "not_found", "GET /healthz, /readyz or /metrics");
}

void *worker_http_start(worker_t *w, const char *listen, char *errstr, size_t errstr_size)
{
    return otp_http_start("OTP_WORKER_LISTEN", listen, 1, handle, w, NULL, errstr, errstr_size);
}

void worker_http_stop(void *h)
{
    if (h)
        MHD_stop_daemon(h);
    PQfinish(admin_db);
    admin_db = NULL;
}
