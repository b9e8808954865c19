/* SPDX-License-Identifier: Apache-2.0 */
#include "longpoll.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otp_db.h"
#include "otp_log.h"
#include "otp_time.h"

struct longpoll {
    char *db_url;
    int interval_ms;
    longpoll_read_fn read;
    void *cls;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    longpoll_wait_t *waiting; /* under mu */
    int stopping;             /* under mu */
    atomic_int n_waiting;
    PGconn *conn; /* the thread's own */
};

/* Reads w's state; 1 (answer now: body and status set) when it changed, the
 * deadline passed, the read failed, or the whole thing stops. */
static int settle(longpoll_t *lp, longpoll_wait_t *w, int64_t now, int stopping)
{
    char version[17] = "";
    unsigned status = 0;
    PGconn *conn = otp_db_kept(&lp->conn, lp->db_url, "otp-verifier-longpoll");
    char *body = lp->read(lp->cls, conn, w->request_id, w->service, &status, version);

    if (body && status == 200 && strcmp(version, w->version) == 0 && now < w->deadline_us &&
        !stopping) {
        free(body);
        return 0;
    }
    w->body = body; /* NULL: out of memory, answered 500 by the caller */
    w->status = status;
    return 1;
}

static void *run(void *arg)
{
    longpoll_t *lp = arg;

    pthread_mutex_lock(&lp->mu);
    for (;;) {
        longpoll_wait_t *batch, *keep = NULL, *next;
        int stopping;
        int64_t now;

        while (!lp->waiting && !lp->stopping)
            pthread_cond_wait(&lp->cv, &lp->mu); /* idle: no reads at all */
        if (!lp->waiting && lp->stopping)
            break;
        if (!lp->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)lp->interval_ms * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&lp->cv, &lp->mu, &ts);
        }
        batch = lp->waiting;
        lp->waiting = NULL;
        stopping = lp->stopping;
        pthread_mutex_unlock(&lp->mu);

        now = otp_monotonic_us();
        for (longpoll_wait_t *w = batch; w; w = next) {
            next = w->next;
            if (settle(lp, w, now, stopping)) {
                atomic_fetch_sub(&lp->n_waiting, 1);
                w->next = NULL;
                MHD_resume_connection(w->conn); /* w belongs to the connection again */
            } else {
                w->next = keep;
                keep = w;
            }
        }

        pthread_mutex_lock(&lp->mu);
        while (keep) {
            next = keep->next;
            keep->next = lp->waiting;
            lp->waiting = keep;
            keep = next;
        }
    }
    pthread_mutex_unlock(&lp->mu);
    PQfinish(lp->conn);
    lp->conn = NULL;
    return NULL;
}

longpoll_t *longpoll_new(const char *db_url, int interval_ms, longpoll_read_fn read, void *cls,
                         char *errstr, size_t errstr_size)
{
    longpoll_t *lp = calloc(1, sizeof(*lp));

    if (!lp || !(lp->db_url = strdup(db_url))) {
        snprintf(errstr, errstr_size, "long-poll: out of memory");
        goto fail;
    }
    lp->interval_ms = interval_ms;
    lp->read = read;
    lp->cls = cls;
    pthread_mutex_init(&lp->mu, NULL);
    pthread_cond_init(&lp->cv, NULL);
    if (pthread_create(&lp->thread, NULL, run, lp) != 0) {
        snprintf(errstr, errstr_size, "long-poll: cannot start its thread");
        pthread_mutex_destroy(&lp->mu);
        pthread_cond_destroy(&lp->cv);
        goto fail;
    }
    return lp;
fail:
    if (lp)
        free(lp->db_url);
    free(lp);
    return NULL;
}

int longpoll_add(longpoll_t *lp, longpoll_wait_t *w)
{
    int rc = -1;

    pthread_mutex_lock(&lp->mu);
    if (!lp->stopping) {
        /* Suspended under the lock: the thread cannot resume it before. */
        MHD_suspend_connection(w->conn);
        w->next = lp->waiting;
        lp->waiting = w;
        atomic_fetch_add(&lp->n_waiting, 1);
        pthread_cond_signal(&lp->cv);
        rc = 0;
    }
    pthread_mutex_unlock(&lp->mu);
    return rc;
}

int longpoll_waiting(longpoll_t *lp)
{
    return lp ? atomic_load(&lp->n_waiting) : 0;
}

void longpoll_stop(longpoll_t *lp)
{
    int joined;

    if (!lp)
        return;
    pthread_mutex_lock(&lp->mu);
    joined = lp->stopping;
    lp->stopping = 1;
    pthread_cond_signal(&lp->cv);
    pthread_mutex_unlock(&lp->mu);
    if (!joined)
        pthread_join(lp->thread, NULL);
}

void longpoll_destroy(longpoll_t *lp)
{
    if (!lp)
        return;
    longpoll_stop(lp);
    pthread_mutex_destroy(&lp->mu);
    pthread_cond_destroy(&lp->cv);
    free(lp->db_url);
    free(lp);
}
