#include <stdio.h>
#include <string.h>

#include "otp_http.h"
#include "worker.h"

static otp_mhd_result handle(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload_data,
                             size_t *upload_data_size, void **con_cls)
{
    worker_t *w = cls;
    char body[4096];
    worker_metrics_t *m = &w->m;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, "GET") != 0)
        return otp_http_error(c, 405, "method_not_allowed", "only GET is served here");
    if (strcmp(url, "/healthz") == 0) {
        int ok = atomic_load(&m->db_ok);
        snprintf(body, sizeof(body), "{\"status\":\"%s\",\"database\":%s,\"kafka\":%s}",
                 ok ? "ok" : "degraded", ok ? "true" : "false",
                 atomic_load(&m->kafka_ok) ? "true" : "false");
        return otp_http_reply(c, ok ? 200 : 503, "application/json", body);
    }
    if (strcmp(url, "/metrics") == 0) {
        snprintf(body, sizeof(body),
                 "# TYPE otp_worker_messages_consumed_total counter\n"
                 "otp_worker_messages_consumed_total %lld\n"
                 "# TYPE otp_worker_requests_accepted_total counter\n"
                 "otp_worker_requests_accepted_total %lld\n"
                 "# TYPE otp_worker_requests_duplicate_total counter\n"
                 "otp_worker_requests_duplicate_total %lld\n"
                 "# TYPE otp_worker_requests_dlq_total counter\n"
                 "otp_worker_requests_dlq_total %lld\n"
                 "# TYPE otp_worker_requests_expired_on_arrival_total counter\n"
                 "otp_worker_requests_expired_on_arrival_total %lld\n"
                 "# TYPE otp_worker_calls_placed_total counter\n"
                 "otp_worker_calls_placed_total %lld\n"
                 "# TYPE otp_worker_calls_adopted_total counter\n"
                 "otp_worker_calls_adopted_total %lld\n"
                 "# TYPE otp_worker_calls_retried_total counter\n"
                 "otp_worker_calls_retried_total %lld\n"
                 "# TYPE otp_worker_requests_failed_total counter\n"
                 "otp_worker_requests_failed_total %lld\n"
                 "# TYPE otp_worker_calls_in_flight gauge\n"
                 "otp_worker_calls_in_flight %lld\n"
                 "# TYPE otp_worker_status_events_relayed_total counter\n"
                 "otp_worker_status_events_relayed_total %lld\n"
                 "# TYPE otp_worker_relay_errors_total counter\n"
                 "otp_worker_relay_errors_total %lld\n"
                 "# TYPE otp_worker_db_errors_total counter\n"
                 "otp_worker_db_errors_total %lld\n"
                 "# TYPE otp_worker_requests_blocked_total counter\n"
                 "otp_worker_requests_blocked_total %lld\n"
                 "# TYPE otp_worker_requests_rate_limited_total counter\n"
                 "otp_worker_requests_rate_limited_total %lld\n"
                 "# HELP otp_worker_circuit_open 1 while the global hourly cap refuses new requests\n"
                 "# TYPE otp_worker_circuit_open gauge\n"
                 "otp_worker_circuit_open %d\n",
                 (long long)m->consumed, (long long)m->accepted, (long long)m->duplicates,
                 (long long)m->dlq, (long long)m->expired_on_arrival, (long long)m->calls_placed,
                 (long long)m->calls_adopted, (long long)m->calls_retried,
                 (long long)m->calls_failed, (long long)m->in_flight, (long long)m->relayed,
                 (long long)m->relay_errors, (long long)m->db_errors, (long long)m->blocked,
                 (long long)m->rate_limited, (int)m->circuit_open);
        return otp_http_reply(c, 200, "text/plain; version=0.0.4", body);
    }
    return otp_http_error(c, 404, "not_found", "GET /healthz or /metrics");
}

void *worker_http_start(worker_t *w, const char *listen, char *errstr, size_t errstr_size)
{
    return otp_http_start("OTP_WORKER_LISTEN", listen, 1, handle, w, NULL, errstr, errstr_size);
}

void worker_http_stop(void *h)
{
    if (h)
        MHD_stop_daemon(h);
}
