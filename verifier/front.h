/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP front door's way onto Kafka: POST /v1/requests publishes an
 * otp.requested event with librdkafka's idempotent producer and answers only
 * once the broker acknowledged it (the delivery report), so a 202 means the
 * request is on the topic and a 503 that it may not be: a client sends it
 * again with the same request_id, and ingest's idempotency on request_id
 * makes that one request. */
#ifndef OTP_VERIFIER_FRONT_H
#define OTP_VERIFIER_FRONT_H

#include <stddef.h>

typedef struct front front_t;

/* A producer for topic (settings from KAFKA_*), with a thread serving its
 * delivery reports. timeout_ms bounds each publish (message.timeout.ms).
 * NULL with errstr. Call from main. */
front_t *front_new(const char *topic, int timeout_ms, char *errstr, size_t errstr_size);

/* Publishes value keyed by key and waits for the broker's acknowledgement.
 * 0 delivered; -1 not (errstr says why). Thread-safe: any HTTP thread. */
int front_publish(front_t *f, const char *key, const char *value, size_t len, char *errstr,
                  size_t errstr_size) __attribute__((warn_unused_result));

/* Flushes what is in flight (up to 5 s), stops the thread. NULL-safe. */
void front_destroy(front_t *f);

#endif
