/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_sched.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_util.h"

static int before(const sim_timer *a, const sim_timer *b)
{
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void place(sim_sched *s, size_t i, sim_timer *t)
{
    s->heap[i] = t;
    t->idx = i;
}

static void sift_up(sim_sched *s, size_t i)
{
    sim_timer *t = s->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(t, s->heap[p]))
            break;
        place(s, i, s->heap[p]);
        i = p;
    }
    place(s, i, t);
}

static void sift_down(sim_sched *s, size_t i)
{
    sim_timer *t = s->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_timer *best = t;
        if (l < s->n && before(s->heap[l], best)) {
            m = l;
            best = s->heap[l];
        }
        if (r < s->n && before(s->heap[r], best))
            m = r;
        if (m == i)
            break;
        place(s, i, s->heap[m]);
        i = m;
    }
    place(s, i, t);
}

static void heap_remove(sim_sched *s, sim_timer *t)
{
    size_t i = t->idx;
    sim_timer *last = s->heap[--s->n];

    if (i == s->n)
        return;
    place(s, i, last);
    sift_down(s, i);
    sift_up(s, last->idx);
}

static void owner_unlink(sim_timer *t)
{
    if (!t->owner)
        return;
    if (t->oprev)
        t->oprev->onext = t->onext;
    else
        t->owner->head = t->onext;
    if (t->onext)
        t->onext->oprev = t->oprev;
    t->owner = NULL;
}

int sim_sched_init(sim_sched *s, pthread_mutex_t *lock)
{
    pthread_condattr_t ca;

    memset(s, 0, sizeof *s);
    s->lock = lock;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->cap = 1024;
    s->heap = malloc(s->cap * sizeof *s->heap);
    return s->heap ? 0 : -1;
}

static void *run(void *arg)
{
    sim_sched *s = arg;
    unsigned batch = 0;

    pthread_mutex_lock(s->lock);
    while (s->running) {
        sim_timer *t;
        int64_t now;

        if (!s->n) {
            pthread_cond_wait(&s->cond, s->lock);
            continue;
        }
        now = sim_mono_ns();
        t = s->heap[0];
        if (t->due_ns > now) {
            struct timespec ts = {(time_t)(t->due_ns / 1000000000), (long)(t->due_ns % 1000000000)};
            pthread_cond_timedwait(&s->cond, s->lock, &ts);
            continue;
        }
        heap_remove(s, t);
        owner_unlink(t);
        t->fn(t->obj, t->kind, t->arg);
        free(t);
        /* Why: under load the heap is never empty; let HTTP threads take the lock now and then. */
        if (++batch % 64 == 0) {
            pthread_mutex_unlock(s->lock);
            pthread_mutex_lock(s->lock);
        }
    }
    pthread_mutex_unlock(s->lock);
    return NULL;
}

int sim_sched_start(sim_sched *s)
{
    s->running = 1;
    if (pthread_create(&s->thread, NULL, run, s)) {
        s->running = 0;
        return -1;
    }
    s->started = 1;
    return 0;
}

void sim_sched_stop(sim_sched *s)
{
    size_t i;

    pthread_mutex_lock(s->lock);
    s->running = 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    s->started = 0;
    for (i = 0; i < s->n; i++) {
        owner_unlink(s->heap[i]); /* owners may still cancel later: leave them no dangling list */
        free(s->heap[i]);
    }
    s->n = 0;
    free(s->heap);
    s->heap = NULL;
    pthread_cond_destroy(&s->cond);
}

int sim_sched_add(sim_sched *s, sim_tlist *owner, int64_t delay_ns, sim_timer_fn fn, void *obj,
                  int kind, int64_t arg)
{
    sim_timer *t;

    if (s->n == s->cap) {
        sim_timer **h = realloc(s->heap, 2 * s->cap * sizeof *h);
        if (!h)
            return -1;
        s->heap = h;
        s->cap *= 2;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    if (delay_ns < 0)
        delay_ns = 0;
    t->due_ns = sim_mono_ns() + delay_ns;
    t->seq = s->seq++;
    t->fn = fn;
    t->obj = obj;
    t->kind = kind;
    t->arg = arg;
    if (owner) {
        t->owner = owner;
        t->onext = owner->head;
        if (owner->head)
            owner->head->oprev = t;
        owner->head = t;
    }
    s->heap[s->n] = t;
    t->idx = s->n++;
    sift_up(s, t->idx);
    if (s->heap[0] == t)
        pthread_cond_signal(&s->cond);
    return 0;
}

void sim_sched_cancel_all(sim_sched *s, sim_tlist *owner)
{
    while (owner->head) {
        sim_timer *t = owner->head;
        owner_unlink(t);
        heap_remove(s, t);
        free(t);
    }
}

size_t sim_sched_pending(const sim_sched *s)
{
    return s->n;
}
