/* SPDX-License-Identifier: Apache-2.0 */
/* otp_metrics: the exposition of counters, labelled series, histograms, the
 * label bound, and that every family has HELP and TYPE. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_metrics.h"
#include "unit.h"

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

static void test_counters_and_labels(void)
{
    char *out;

    otp_metrics_reset();
    otp_metrics_init("otp-worker", "1.2.3");
    otp_metric_add(OTP_M_WORKER_REQUESTS, "accepted", 2);
    otp_metric_add(OTP_M_WORKER_REQUESTS, "accepted", 1);
    otp_metric_add(OTP_M_WORKER_REQUESTS, "dlq", 1);
    otp_metric_set(OTP_M_WORKER_IN_FLIGHT, NULL, 7);
    otp_metric_add(OTP_M_WORKER_DLQ, "bad\"label\n{x}", 1);
    out = otp_metrics_render(OTP_PROG_WORKER);
    if (!CHECK(out != NULL))
        return;
    CHECK(has_line(out, "otp_build_info{program=\"otp-worker\",version=\"1.2.3\"} 1"));
    CHECK(has_line(out, "otp_worker_requests_total{outcome=\"accepted\"} 3"));
    CHECK(has_line(out, "otp_worker_requests_total{outcome=\"dlq\"} 1"));
    CHECK(has_line(out, "otp_worker_calls_in_flight 7"));
    /* Unlabelled families show 0 before their first update. */
    CHECK(has_line(out, "otp_worker_relay_errors_total 0"));
    /* A label value never breaks the line or the quoting. */
    CHECK(has_line(out, "otp_worker_dlq_messages_total{reason=\"bad_label__x_\"} 1"));
    /* The verifier's families are not on the worker's page. */
    CHECK(strstr(out, "otp_verifier_") == NULL);
    /* Every family: one HELP and one TYPE. */
    CHECK_EQ_INT(count_lines(out, "# HELP "), count_lines(out, "# TYPE "));
    CHECK(count_lines(out, "# HELP ") >= 15);
    free(out);
}

static void test_histogram(void)
{
    char *out;

    otp_metrics_reset();
    otp_metric_observe(OTP_M_VERIFIER_VERIFY_LATENCY, NULL, 0.0005);
    otp_metric_observe(OTP_M_VERIFIER_VERIFY_LATENCY, NULL, 0.003);
    otp_metric_observe(OTP_M_VERIFIER_VERIFY_LATENCY, NULL, 99);
    /* observe on a counter is ignored */
    otp_metric_observe(OTP_M_VERIFIER_DB_ERRORS, NULL, 1);
    out = otp_metrics_render(OTP_PROG_VERIFIER);
    if (!CHECK(out != NULL))
        return;
    CHECK(has_line(out, "# TYPE otp_verifier_verify_duration_seconds histogram"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_bucket{le=\"0.001\"} 1"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_bucket{le=\"0.0025\"} 1"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_bucket{le=\"0.005\"} 2"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_bucket{le=\"2.5\"} 2"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_bucket{le=\"+Inf\"} 3"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_count 3"));
    CHECK(has_line(out, "otp_verifier_verify_duration_seconds_sum 99.003500"));
    CHECK(has_line(out, "otp_verifier_db_errors_total 0"));
    free(out);

    otp_metrics_reset();
    otp_metric_observe(OTP_M_VOIPBIN_REQUEST, "create_call", 0.3);
    out = otp_metrics_render(OTP_PROG_WORKER);
    if (CHECK(out != NULL)) {
        CHECK(has_line(
            out, "otp_voipbin_request_duration_seconds_bucket{op=\"create_call\",le=\"0.25\"} 0"));
        CHECK(has_line(
            out, "otp_voipbin_request_duration_seconds_bucket{op=\"create_call\",le=\"0.5\"} 1"));
        CHECK(has_line(out, "otp_voipbin_request_duration_seconds_count{op=\"create_call\"} 1"));
        /* An unlabelled histogram without observations still has its buckets. */
        CHECK(has_line(out, "otp_worker_request_to_call_seconds_count 0"));
    }
    free(out);
}

/* A flood of label values ends in "other": the page stays bounded. */
static void test_label_bound(void)
{
    char label[32], *out;

    otp_metrics_reset();
    for (int i = 0; i < 500; i++) {
        snprintf(label, sizeof(label), "reason_%d", i);
        otp_metric_add(OTP_M_WORKER_DLQ, label, 1);
    }
    out = otp_metrics_render(OTP_PROG_WORKER);
    if (!CHECK(out != NULL))
        return;
    CHECK_EQ_INT(count_lines(out, "otp_worker_dlq_messages_total{"), OTP_METRIC_MAX_SERIES);
    CHECK(has_line(out, "otp_worker_dlq_messages_total{reason=\"reason_0\"} 1"));
    {
        char want[96];
        snprintf(want, sizeof(want), "otp_worker_dlq_messages_total{reason=\"other\"} %d",
                 500 - (OTP_METRIC_MAX_SERIES - 1));
        CHECK(has_line(out, want));
    }
    free(out);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_counters_and_labels();
    test_histogram();
    test_label_bound();
    return unit_finish(argv[0]);
}
