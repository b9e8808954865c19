/* SPDX-License-Identifier: Apache-2.0 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 8192 /* a power of two */
#define PROBE 8    /* slots an id may use; the least recently seen one is replaced */
#define ID_MAX 64

typedef struct bucket {
    char id[ID_MAX + 1];
    double tokens;
    int64_t seen_us; /* last refill; 0 = free */
} bucket_t;

struct ratelimit {
    double rate; /* tokens per microsecond */
    double burst;
    pthread_mutex_t lock;
    bucket_t slots[SLOTS];
};

ratelimit_t *ratelimit_new(int per_second)
{
    ratelimit_t *rl = per_second >= 1 ? calloc(1, sizeof(*rl)) : NULL;

    if (!rl)
        return NULL;
    rl->rate = per_second / 1e6;
    rl->burst = per_second;
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void ratelimit_destroy(ratelimit_t *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

/* FNV-1a: spreads ids over the table; not a secret. */
static uint64_t hash(const char *id, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return h;
}

int ratelimit_take(ratelimit_t *rl, const char *id, int64_t now_us)
{
    size_t n = strnlen(id, ID_MAX);
    uint64_t h = hash(id, n);
    bucket_t *b = NULL, *oldest = NULL;
    int wait = 0;

    if (!rl)
        return 0;
    pthread_mutex_lock(&rl->lock);
    for (int i = 0; i < PROBE && !b; i++) {
        bucket_t *s = &rl->slots[(h + (uint64_t)i) & (SLOTS - 1)];
        if (s->seen_us && strncmp(s->id, id, n) == 0 && s->id[n] == '\0')
            b = s;
        else if (!oldest || s->seen_us < oldest->seen_us)
            oldest = s;
    }
    if (!b) {
        b = oldest;
        memcpy(b->id, id, n);
        b->id[n] = '\0';
        b->tokens = rl->burst;
        b->seen_us = now_us;
    }
    if (now_us > b->seen_us) {
        b->tokens += (double)(now_us - b->seen_us) * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
    }
    b->seen_us = now_us > b->seen_us ? now_us : b->seen_us;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        double us = (1.0 - b->tokens) / rl->rate;
        wait = (int)(us / 1e6) + 1;
    }
    pthread_mutex_unlock(&rl->lock);
    return wait;
}
