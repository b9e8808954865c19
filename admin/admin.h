/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin's subcommands. Each takes its own argv (argv[0] is the
 * subcommand's name), runs after otp_config_load and returns the exit status:
 * 0 ok, 1 a finding or a refusal, 2 a usage, database or broker error. */
#ifndef ADMIN_ADMIN_H
#define ADMIN_ADMIN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

extern const char admin_usage[];

int admin_audit(int argc, char **argv);
int admin_purge(int argc, char **argv);
int admin_dlq(int argc, char **argv);
int admin_status(int argc, char **argv);
int admin_resend(int argc, char **argv);
int admin_service(int argc, char **argv);
int admin_key(int argc, char **argv);
int admin_cancel(int argc, char **argv);
int admin_webhooks(int argc, char **argv);

/* An RFC 3339 time or epoch milliseconds into *ms. 0 ok, -1 not a time. */
int admin_parse_time(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/* Called for each message of the topic stamped at or after from_ms. Return
 * 0 to go on, -1 to stop with an error. */
typedef int (*admin_topic_cb)(const rd_kafka_message_t *m, void *ctx);

/* Reads every partition of topic from its beginning to its end as of the
 * call, filtering by message timestamp (right on any broker). 0 ok, -1 with
 * errstr. */
int admin_read_topic(const char *topic, int64_t from_ms, admin_topic_cb cb, void *ctx, char *errstr,
                     size_t errstr_size) __attribute__((warn_unused_result));

/* One produced message's fate, filled by admin_on_delivery (the producer's
 * dr_msg_cb) through the message opaque. */
typedef struct admin_dr {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} admin_dr_t;

void admin_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);

#endif
