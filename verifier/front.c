/* SPDX-License-Identifier: Apache-2.0 */
#include "front.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_kafka.h"
#include "otp_log.h"

struct front {
    rd_kafka_t *rk;
    char *topic;
    int timeout_ms;
    front_done_fn *done;
    pthread_t poller;
    atomic_int running;
    atomic_int drained; /* front_drain ran: done() is called no more */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    front_t *f = opaque;

    (void)rk;
    if (!atomic_load(&f->drained))
        f->done(m->_private, (int)m->err);
}

const char *front_err_str(int err)
{
    return rd_kafka_err2str((rd_kafka_resp_err_t)err);
}

static void *poll_loop(void *arg)
{
    front_t *f = arg;

    while (atomic_load(&f->running))
        rd_kafka_poll(f->rk, 100);
    return NULL;
}

front_t *front_new(const char *topic, int timeout_ms, front_done_fn *done, char *errstr,
                   size_t errstr_size)
{
    front_t *f = calloc(1, sizeof(*f));
    rd_kafka_conf_t *conf = NULL;
    char ms[24];

    if (!f || !(f->topic = strdup(topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    f->timeout_ms = timeout_ms;
    f->done = done;
    snprintf(ms, sizeof(ms), "%d", timeout_ms);
    conf = otp_kafka_conf_new(errstr, errstr_size);
    if (!conf || otp_kafka_set(conf, "enable.idempotence", "true", errstr, errstr_size) ||
        otp_kafka_set(conf, "message.timeout.ms", ms, errstr, errstr_size) ||
        otp_kafka_set(conf, "linger.ms", "1", errstr, errstr_size))
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, f);
    f->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!f->rk)
        goto fail;
    conf = NULL; /* owned by f->rk */
    atomic_store(&f->running, 1);
    if (pthread_create(&f->poller, NULL, poll_loop, f) != 0) {
        snprintf(errstr, errstr_size, "cannot start the delivery report thread");
        goto fail;
    }
    return f;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (f && f->rk)
        rd_kafka_destroy(f->rk);
    if (f)
        free(f->topic);
    free(f);
    return NULL;
}

int front_publish(front_t *f, const char *topic, const char *key, const char *value, size_t len,
                  const char *api_key_id, void *arg, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err = rd_kafka_producev(
        f->rk, RD_KAFKA_V_TOPIC(topic ? topic : f->topic),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((void *)value, len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("otp.source", "http", -1),
        RD_KAFKA_V_HEADER("otp.api_key_id", api_key_id, -1), RD_KAFKA_V_OPAQUE(arg),
        RD_KAFKA_V_END);

    if (err) {
        snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

void front_drain(front_t *f)
{
    /* Every message gets its report within message.timeout.ms; the margin
     * covers the poll. */
    if (rd_kafka_flush(f->rk, f->timeout_ms + 2000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        otp_warn("front_door_drain_timeout", "in_flight=%d", rd_kafka_outq_len(f->rk));
    atomic_store(&f->drained, 1);
}

void front_destroy(front_t *f)
{
    if (!f)
        return;
    atomic_store(&f->drained, 1); /* no done() now: its connections may be gone */
    if (rd_kafka_flush(f->rk, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        otp_warn("front_door_flush_timeout", "in_flight=%d", rd_kafka_outq_len(f->rk));
    atomic_store(&f->running, 0);
    pthread_join(f->poller, NULL);
    rd_kafka_destroy(f->rk);
    free(f->topic);
    free(f);
}
