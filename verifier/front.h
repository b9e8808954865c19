/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP front door's way onto Kafka: POST /v1/requests publishes an
 * otp.requested event with librdkafka's idempotent producer and answers only
 * once the broker acknowledged it (the delivery report), without holding an
 * HTTP thread meanwhile (the connection is suspended and the report resumes
 * it), so a 202 means the
 * request is on the topic and a 503 that it may not be: a client sends it
 * again with the same request_id, and ingest's idempotency on request_id
 * makes that one request. */
#ifndef OTP_VERIFIER_FRONT_H
#define OTP_VERIFIER_FRONT_H

#include <stddef.h>

typedef struct front front_t;

/* Called once per publish from the delivery report thread: err 0 when the
 * broker acknowledged it, else librdkafka's error (timeouts included). */
typedef void front_done_fn(void *arg, int err);

/* The words for a done() err. */
const char *front_err_str(int err);

/* A producer for topic (settings from KAFKA_*), with a thread serving its
 * delivery reports, which calls done. timeout_ms bounds each publish
 * (message.timeout.ms). NULL with errstr. Call from main. */
front_t *front_new(const char *topic, int timeout_ms, front_done_fn *done, char *errstr,
                   size_t errstr_size);

/* Starts publishing value (copied) keyed by key to topic (NULL: the one given
 * to front_new), with the id of the API key that sent it (header
 * otp.api_key_id, for audit); done(arg, err) follows within timeout_ms (+ a poll). 0
 * started; -1 not (errstr says why), done is then never called. Thread-safe:
 * any HTTP thread. */
int front_publish(front_t *f, const char *topic, const char *key, const char *value, size_t len,
                  const char *api_key_id, void *arg, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Waits until every publish started has had its done() (at most timeout_ms
 * plus the margin), then calls done() no more: after this, an arg may be
 * gone. Call from main at shutdown, before the HTTP daemon stops. */
void front_drain(front_t *f);

/* Flushes what is left (up to 5 s), stops the thread. NULL-safe. */
void front_destroy(front_t *f);

#endif
