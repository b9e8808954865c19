/* SPDX-License-Identifier: Apache-2.0 */
/* otp-hooks' admin endpoints: /healthz (both loops turn), /readyz (database,
 * broker, partitions) and /metrics (common/otp_metrics.h). One HTTP thread,
 * with its own database connection. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "otp_db.h"
#include "otp_http.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_time.h"

/* Both loops turn at least once a second; silence this long means stuck. */
#define ALIVE_MAX_SILENCE_MS 30000

static PGconn *admin_db; /* HTTP thread only */

static PGconn *db(hooks_t *h)
{
    PGconn *c = otp_db_kept(&admin_db, h->cfg.db_url, "otp-hooks-admin");
    return c && PQstatus(c) == CONNECTION_OK ? c : NULL;
}

/* Seconds since the oldest event still to deliver was read; 0 when none,
 * -1 when the database did not answer. */
static long long oldest_undelivered(hooks_t *h)
{
    PGconn *c = db(h);
    PGresult *r = c ? otp_db_query(c, "hooks_oldest",
                                   "SELECT coalesce(extract(epoch FROM now() - min(created_at)),"
                                   " 0)::bigint FROM hook_deliveries"
                                   " WHERE delivered_at IS NULL AND gave_up_at IS NULL",
                                   0, NULL)
                    : NULL;
    long long n = r ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;

    PQclear(r);
    return n;
}

static int partitions(hooks_t *h)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    int n = 0;

    if (rd_kafka_assignment(h->consumer, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR && parts)
        n = parts->cnt;
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    return n;
}

#define COUNTER(id, label, field) OTP_METRIC_COUNTER(hooks_metrics_t, field, id, label)
static const otp_metric_counter_t counters[] = {
    COUNTER(OTP_M_HOOKS_EVENTS, "queued", queued),
    COUNTER(OTP_M_HOOKS_EVENTS, "skipped", skipped),
    COUNTER(OTP_M_HOOKS_EVENTS, "too_old", too_old),
    COUNTER(OTP_M_HOOKS_EVENTS, "invalid", invalid),
    COUNTER(OTP_M_HOOKS_DELIVERIES, "delivered", delivered),
    COUNTER(OTP_M_HOOKS_DELIVERIES, "retry", retried),
    COUNTER(OTP_M_HOOKS_DELIVERIES, "gave_up", gave_up),
    COUNTER(OTP_M_HOOKS_FAILURES, "4xx", f_4xx),
    COUNTER(OTP_M_HOOKS_FAILURES, "429", f_429),
    COUNTER(OTP_M_HOOKS_FAILURES, "5xx", f_5xx),
    COUNTER(OTP_M_HOOKS_FAILURES, "3xx", f_3xx),
    COUNTER(OTP_M_HOOKS_FAILURES, "timeout", f_timeout),
    COUNTER(OTP_M_HOOKS_FAILURES, "transport", f_transport),
    COUNTER(OTP_M_HOOKS_IN_FLIGHT, NULL, in_flight),
    COUNTER(OTP_M_HOOKS_DB_ERRORS, NULL, db_errors),
};
#undef COUNTER

static otp_mhd_result handle(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    hooks_t *h = cls;
    char body[256];

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return otp_http_error(c, 405, "method_not_allowed", "only GET is served here");
    if (strcmp(url, "/healthz") == 0) {
        int64_t now = otp_monotonic_ms();
        int64_t silent = now - atomic_load(&h->alive_ms);
        int64_t sender = now - atomic_load(&h->sender_alive_ms);
        int ok = silent < ALIVE_MAX_SILENCE_MS && sender < ALIVE_MAX_SILENCE_MS;
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"loop_silent_ms\":%lld,\"sender_silent_ms\":%lld}",
                 ok ? "ok" : "stuck", (long long)silent, (long long)sender);
        return otp_http_reply(c, ok ? 200 : 503, "application/json", body);
    }
    if (strcmp(url, "/readyz") == 0) {
        const struct rd_kafka_metadata *md = NULL;
        int kok = rd_kafka_metadata(h->consumer, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR;
        int dbok = oldest_undelivered(h) >= 0, parts = partitions(h);
        int ok = dbok && kok && parts > 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"database\":%s,\"kafka\":%s,\"partitions\":%d}",
                 ok ? "ok" : "not_ready", dbok ? "true" : "false", kok ? "true" : "false", parts);
        return otp_http_reply(c, ok ? 200 : 503, "application/json", body);
    }
    if (strcmp(url, "/metrics") == 0) {
        otp_metric_set_counters(counters, sizeof(counters) / sizeof(counters[0]), &h->m);
        otp_metric_set(OTP_M_HOOKS_OLDEST, NULL, oldest_undelivered(h));
        return otp_http_reply_metrics(c, OTP_PROG_HOOKS);
    }
    return otp_http_error(c, 404, "not_found", "GET /healthz, /readyz or /metrics");
}

void *hooks_http_start(hooks_t *h, const char *listen, char *errstr, size_t errstr_size)
{
    return otp_http_start("OTP_HOOKS_LISTEN", listen, 1, handle, h, NULL, errstr, errstr_size);
}

void hooks_http_stop(void *daemon)
{
    if (daemon)
        MHD_stop_daemon(daemon);
    PQfinish(admin_db);
    admin_db = NULL;
}
