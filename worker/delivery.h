/* SPDX-License-Identifier: Apache-2.0 */
/* Tracks the broker's acknowledgements for a group of produced messages: the
 * producer's dr_msg_cb finds the tracker in the message opaque. One thread
 * produces into a tracker and waits on it; the report may be served by any
 * thread that polls the same producer (the worker's main and relay threads
 * share one), hence the atomics. */
#ifndef OTP_DELIVERY_H
#define OTP_DELIVERY_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>

typedef struct delivery_tracker {
    atomic_int pending; /* produced, not yet acknowledged or failed */
    atomic_int failed;
    atomic_int last_err; /* rd_kafka_resp_err_t */
} delivery_tracker_t;

/* The producer's delivery report callback (rd_kafka_conf_set_dr_msg_cb). */
void delivery_report(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/* Serves delivery reports until nothing is pending or timeout_ms passes
 * (another thread polling the producer may serve them: this one then sees
 * the count fall within a few ms). 0 when every message was acknowledged,
 * -1 otherwise. */
int delivery_wait(rd_kafka_t *producer, delivery_tracker_t *t, int timeout_ms);

#endif
