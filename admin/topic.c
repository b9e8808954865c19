/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "otp_kafka.h"
#include "otp_time.h"

int admin_read_topic(const char *topic, int64_t from_ms, admin_topic_cb cb, void *ctx, char *errstr,
                     size_t errstr_size)
{
    rd_kafka_conf_t *conf = otp_kafka_conf_new(errstr, errstr_size);
    rd_kafka_t *rk = NULL;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *high = NULL;
    int left = 0, rc = -1, np = 0;
    int64_t idle_since = otp_monotonic_ms();

    if (!conf || otp_kafka_set(conf, "group.id", "otp-admin-audit", errstr, errstr_size) ||
        otp_kafka_set(conf, "enable.auto.commit", "false", errstr, errstr_size) ||
        otp_kafka_set(conf, "enable.partition.eof", "true", errstr, errstr_size))
        goto out;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    if (!rk)
        goto out;
    conf = NULL; /* owned by rk */
    {
        rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, 10000);

        rd_kafka_topic_destroy(t);
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
            snprintf(errstr, errstr_size, "metadata of %s: %s", topic,
                     rd_kafka_err2str(err ? err : md->topics[0].err));
            goto out;
        }
    }
    np = md->topics[0].partition_cnt;
    high = calloc((size_t)np, sizeof(*high));
    parts = rd_kafka_topic_partition_list_new(np);
    if (!high || !parts)
        goto out;
    for (int i = 0; i < np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);

        if (err) {
            snprintf(errstr, errstr_size, "offsets of %s [%d]: %s", topic, (int)p,
                     rd_kafka_err2str(err));
            goto out;
        }
        high[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
            left++;
        }
    }
    if (rd_kafka_assign(rk, parts)) {
        snprintf(errstr, errstr_size, "cannot assign %s", topic);
        goto out;
    }
    /* The start is the beginning, filtered by timestamp: right on any broker. */
    while (left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        int idx = -1;

        if (!m) {
            if (otp_monotonic_ms() - idle_since > 30000) {
                snprintf(errstr, errstr_size, "no progress reading %s for 30 s", topic);
                goto out;
            }
            continue;
        }
        idle_since = otp_monotonic_ms();
        for (int i = 0; i < np; i++)
            if (md->topics[0].partitions[i].id == m->partition)
                idx = i;
        /* A partition is done at its end as of the start (high[idx] = -1
         * then), or at an end-of-partition (control records may hide the
         * last offsets). */
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (idx >= 0 && high[idx] >= 0) {
                high[idx] = -1;
                left--;
            }
        } else if (m->err) {
            fprintf(stderr, "otp-admin: %s\n", rd_kafka_message_errstr(m));
        } else if (idx >= 0 && m->offset < high[idx]) {
            int64_t ts = rd_kafka_message_timestamp(m, NULL);

            if (ts >= from_ms && cb(m, ctx) != 0) {
                rd_kafka_message_destroy(m);
                snprintf(errstr, errstr_size, "stopped reading %s", topic);
                goto out;
            }
            if (m->offset + 1 >= high[idx]) {
                high[idx] = -1;
                left--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rc = 0;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    free(high);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

void admin_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    admin_dr_t *d = m->_private;

    (void)rk;
    (void)opaque;
    d->done = 1;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}
