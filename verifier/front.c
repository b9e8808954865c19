/* SPDX-License-Identifier: Apache-2.0 */
#include "front.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otp_kafka.h"
#include "otp_log.h"

struct front {
    rd_kafka_t *rk;
    char *topic;
    int timeout_ms;
    pthread_t poller;
    atomic_int running;
    /* One lock and condition for every waiter: a report is rare next to
     * the work of a request, and each waiter checks its own flag. */
    pthread_mutex_t lock;
    pthread_cond_t done;
};

/* One publish waiting for its report. Freed by the waiter, or by the report
 * when the waiter gave up first (abandoned). */
typedef struct waiter {
    int done, abandoned;
    rd_kafka_resp_err_t err;
} waiter_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    front_t *f = opaque;
    waiter_t *w = m->_private;

    (void)rk;
    pthread_mutex_lock(&f->lock);
    if (w->abandoned) {
        free(w);
    } else {
        w->done = 1;
        w->err = m->err;
        pthread_cond_broadcast(&f->done);
    }
    pthread_mutex_unlock(&f->lock);
}

static void *poll_loop(void *arg)
{
    front_t *f = arg;

    while (atomic_load(&f->running))
        rd_kafka_poll(f->rk, 100);
    return NULL;
}

front_t *front_new(const char *topic, int timeout_ms, char *errstr, size_t errstr_size)
{
    front_t *f = calloc(1, sizeof(*f));
    rd_kafka_conf_t *conf = NULL;
    char ms[24];

    if (!f || !(f->topic = strdup(topic))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto fail;
    }
    f->timeout_ms = timeout_ms;
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
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->done, NULL);
    atomic_store(&f->running, 1);
    if (pthread_create(&f->poller, NULL, poll_loop, f) != 0) {
        snprintf(errstr, errstr_size, "cannot start the delivery report thread");
        pthread_mutex_destroy(&f->lock);
        pthread_cond_destroy(&f->done);
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

int front_publish(front_t *f, const char *key, const char *value, size_t len, char *errstr,
                  size_t errstr_size)
{
    waiter_t *w = calloc(1, sizeof(*w));
    rd_kafka_resp_err_t err;
    struct timespec deadline;
    int rc = -1;

    if (!w) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    err = rd_kafka_producev(
        f->rk, RD_KAFKA_V_TOPIC(f->topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("otp.source", "http", -1), RD_KAFKA_V_OPAQUE(w), RD_KAFKA_V_END);
    if (err) {
        snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(err));
        free(w);
        return -1;
    }
    /* The report comes within message.timeout.ms; the margin covers the poll. */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += f->timeout_ms / 1000 + 2;
    deadline.tv_nsec += (long)(f->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (!w->done && pthread_cond_timedwait(&f->done, &f->lock, &deadline) != ETIMEDOUT)
        ;
    if (!w->done) {
        w->abandoned = 1; /* the report frees it */
        snprintf(errstr, errstr_size, "no delivery report in time");
    } else {
        if (w->err)
            snprintf(errstr, errstr_size, "%s", rd_kafka_err2str(w->err));
        rc = w->err ? -1 : 0;
        free(w);
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

void front_destroy(front_t *f)
{
    if (!f)
        return;
    if (rd_kafka_flush(f->rk, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        otp_warn("front_door_flush_timeout", "in_flight=%d", rd_kafka_outq_len(f->rk));
    atomic_store(&f->running, 0);
    pthread_join(f->poller, NULL);
    rd_kafka_destroy(f->rk);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->done);
    free(f->topic);
    free(f);
}
