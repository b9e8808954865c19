/* SPDX-License-Identifier: Apache-2.0 */
/* kbroker: a local Kafka protocol broker on librdkafka's mock cluster, for tests and the demo.
 *
 * The mock cluster listens on real TCP ports on 127.0.0.1 and serves any Kafka client in any
 * process (produce, fetch, consumer groups, offset commits, idempotent producers). kbroker adds
 * topic creation from a spec string and a one-line text command language for fault injection.
 *
 * @locality: a kbroker_t is used from one thread (the mock cluster runs its own threads inside).
 */
#ifndef KBROKER_H
#define KBROKER_H

#include <stddef.h>

#define KBROKER_TOPIC_NAME_MAX 249 /* Kafka's own limit */
#define KBROKER_TOPICS_MAX 64
#define KBROKER_BROKERS_MAX 32

#define KBROKER_DEFAULT_TOPICS "otp.requested:6,otp.call_status:6,otp.requested.dlq:1"

typedef struct kbroker_topic {
    char name[KBROKER_TOPIC_NAME_MAX + 1];
    int partitions;
} kbroker_topic_t;

typedef struct kbroker kbroker_t;

/* Parses "name:partitions,name:partitions,..." into out[0..max). A missing ":partitions" means 1.
 * Returns the number of topics (>= 1), or -1 with the reason in errstr. */
int kbroker_parse_topics(const char *spec, kbroker_topic_t *out, size_t max, char *errstr,
                         size_t errstr_size) __attribute__((warn_unused_result));

/* Starts a mock cluster of broker_cnt brokers (ids 1..broker_cnt) and creates the topics.
 * props is a NULL-terminated list of "key=value" librdkafka properties for the internal handle
 * (e.g. "debug=mock"), or NULL. Returns NULL with the reason in errstr.
 * The caller owns the result; free it with kbroker_destroy(). */
kbroker_t *kbroker_new(int broker_cnt, const kbroker_topic_t *topics, size_t topic_cnt,
                       const char *const *props, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* "127.0.0.1:PORT,127.0.0.1:PORT,...": owned by kb, valid until kbroker_destroy(). */
const char *kbroker_bootstraps(const kbroker_t *kb);

/* Runs one command line and writes the answer ("ok ..." or "error ...", no newline) to reply.
 * Commands:
 *   down <broker_id>                     broker closes its connections and refuses new ones
 *   up <broker_id>                       undo down
 *   rtt <broker_id> <ms>                 delay every response of that broker
 *   error <api_key> <error_code> <count> the next <count> requests of that API fail with the code
 *   topic <name> <partitions>            create a topic
 *   clear                                forget pushed errors, set every broker up and rtt 0
 *   bootstrap                            answer "ok <bootstrap servers>"
 *   help                                 list the commands
 * Returns 0 for "ok", -1 for "error". */
int kbroker_command(kbroker_t *kb, const char *line, char *reply, size_t reply_size);

/* Stops the cluster and frees everything. NULL-safe. */
void kbroker_destroy(kbroker_t *kb);

#endif
