/* SPDX-License-Identifier: Apache-2.0 */
#include "delivery.h"

#include <string.h>

#include "otp_config.h"
#include "otp_metrics.h"
#include "otp_time.h"

/* A dead letter the broker acknowledged counts under its dlq.reason header. */
static void count_dead_letter(const rd_kafka_message_t *msg)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t size = 0;
    char reason[48] = "unknown";

    if (msg->err || !msg->rkt ||
        strcmp(rd_kafka_topic_name(msg->rkt), otp_config_str("OTP_TOPIC_DLQ")) != 0)
        return;
    if (rd_kafka_message_headers(msg, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "dlq.reason", &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        val && size > 0 && size < sizeof(reason)) {
        memcpy(reason, val, size);
        reason[size] = '\0';
    }
    otp_metric_add(OTP_M_WORKER_DLQ, reason, 1);
}

void delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    delivery_tracker_t *t = msg->_private;
    (void)rk;
    (void)opaque;
    count_dead_letter(msg);
    if (!t)
        return;
    if (msg->err) {
        atomic_store(&t->last_err, (int)msg->err);
        atomic_fetch_add(&t->failed, 1);
    }
    atomic_fetch_sub(&t->pending, 1);
}

int delivery_wait(rd_kafka_t *producer, delivery_tracker_t *t, int timeout_ms)
{
    int64_t deadline = otp_monotonic_ms() + timeout_ms;

    while (atomic_load(&t->pending) > 0 && otp_monotonic_ms() < deadline)
        rd_kafka_poll(producer, 5);
    return atomic_load(&t->pending) == 0 && atomic_load(&t->failed) == 0 ? 0 : -1;
}
