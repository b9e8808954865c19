/* SPDX-License-Identifier: Apache-2.0 */
/* sim_sched: one thread, one timed queue (a binary heap). Every simulated delay in the
 * simulator — ringing, answering, talk, sleep, key presses, SMS receipts, injected latency —
 * is a timer here, so calls progress without a thread per call.
 *
 * Locking: the heap is guarded by the simulator lock passed to sim_sched_init. Add and cancel
 * with that lock held; callbacks run with it held. */
#ifndef SIM_SCHED_H
#define SIM_SCHED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*sim_timer_fn)(void *obj, int kind, int64_t arg);

typedef struct sim_timer sim_timer;

/* The timers one owner (a call, a message) has pending, so they can all be cancelled. */
typedef struct sim_tlist {
    sim_timer *head;
} sim_tlist;

struct sim_timer {
    int64_t due_ns;
    uint64_t seq; /* FIFO among equal due times */
    size_t idx;   /* position in the heap */
    sim_timer_fn fn;
    void *obj;
    int kind;
    int64_t arg;
    sim_tlist *owner;
    sim_timer *onext, *oprev;
};

typedef struct sim_sched {
    pthread_mutex_t *lock;
    pthread_cond_t cond;
    sim_timer **heap;
    size_t n, cap;
    uint64_t seq;
    int running, started;
    pthread_t thread;
} sim_sched;

int sim_sched_init(sim_sched *s, pthread_mutex_t *lock);
int sim_sched_start(sim_sched *s);
/* Stops and joins the thread; pending timers are freed without running. Lock NOT held. */
void sim_sched_stop(sim_sched *s);

/* Runs fn(obj, kind, arg) after delay_ns. owner may be NULL. Lock held. */
int sim_sched_add(sim_sched *s, sim_tlist *owner, int64_t delay_ns, sim_timer_fn fn, void *obj,
                  int kind, int64_t arg);
/* Cancels every pending timer of owner. Lock held. */
void sim_sched_cancel_all(sim_sched *s, sim_tlist *owner);
size_t sim_sched_pending(const sim_sched *s);

#endif
