/* SPDX-License-Identifier: Apache-2.0 */
/* Tracks the broker's acknowledgements for a group of produced messages: the
 * producer's dr_msg_cb finds the tracker in the message opaque. One thread. */
#ifndef OTP_DELIVERY_H
#define OTP_DELIVERY_H

#include <librdkafka/rdkafka.h>

typedef struct delivery_tracker {
    int pending; /* produced, not yet acknowledged or failed */
    int failed;
    rd_kafka_resp_err_t last_err;
} delivery_tracker_t;

/* The producer's delivery report callback (rd_kafka_conf_set_dr_msg_cb). */
void delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/* Serves delivery reports until nothing is pending or timeout_ms passes.
 * 0 when every message was acknowledged, -1 otherwise. */
int delivery_wait(rd_kafka_t *producer, delivery_tracker_t *t, int timeout_ms);

#endif
