/* librdkafka configuration: every KAFKA_X_Y environment variable becomes the
 * property x.y (KAFKA_BOOTSTRAP_SERVERS → bootstrap.servers), as kcat's -X. */
#ifndef OTP_KAFKA_H
#define OTP_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A new conf with the pass-through properties applied (bootstrap.servers
 * defaults to localhost:9092). NULL with errstr naming the bad variable. */
rd_kafka_conf_t *otp_kafka_conf_new(char *errstr, size_t errstr_size);

/* Sets one property; on failure writes "name: librdkafka's words" to errstr. */
int otp_kafka_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                  size_t errstr_size) __attribute__((warn_unused_result));

#endif
