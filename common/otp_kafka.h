/* SPDX-License-Identifier: Apache-2.0 */
/* librdkafka configuration: every KAFKA_X_Y environment variable becomes the
 * property x.y (KAFKA_BOOTSTRAP_SERVERS → bootstrap.servers), as kcat's -X. */
#ifndef OTP_KAFKA_H
#define OTP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A new conf with the pass-through properties applied (bootstrap.servers
 * defaults to localhost:9092) and librdkafka's log lines routed through
 * otp_log (event=kafka_log). NULL with errstr naming the bad variable. */
rd_kafka_conf_t *otp_kafka_conf_new(char *errstr, size_t errstr_size);

/* Sets one property; on failure writes "name: librdkafka's words" to errstr. */
int otp_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                  size_t errstr_size) __attribute__((warn_unused_result));

/* The log callback otp_kafka_conf_new installs (rd_kafka_conf_set_log_cb):
 * syslog levels map to ours (0-3 error, 4 warn, 5-6 info, 7 debug). Called
 * from librdkafka's threads; otp_log is thread-safe. */
/* An otp_wait_for probe (otp_wait.h): 0 when some broker answers a metadata
 * request of the client arg (an rd_kafka_t *) within 2 s; else -1 with err
 * naming KAFKA_BOOTSTRAP_SERVERS. */
int otp_kafka_probe(void *arg, char *err, size_t errsz);

void otp_kafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *message);

#endif
