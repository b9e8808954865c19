/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_index.h"

#include <stdlib.h>
#include <string.h>

#include "sim_util.h"

static size_t hash_id(const char *s)
{
    size_t h = 1469598103934665603ULL;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

int sim_index_init(sim_index *ix)
{
    memset(ix, 0, sizeof *ix);
    ix->nbuckets = 1024;
    ix->buckets = calloc(ix->nbuckets, sizeof *ix->buckets);
    return ix->buckets ? 0 : -1;
}

void sim_index_free(sim_index *ix)
{
    free(ix->buckets);
    memset(ix, 0, sizeof *ix);
}

static void grow(sim_index *ix)
{
    size_t n = ix->nbuckets * 2, i;
    sim_entry **b = calloc(n, sizeof *b);

    if (!b)
        return; /* keep the longer chains */
    for (i = 0; i < ix->nbuckets; i++) {
        sim_entry *e = ix->buckets[i];
        while (e) {
            sim_entry *nx = e->hnext;
            size_t k = hash_id(e->id) & (n - 1);
            e->hnext = b[k];
            b[k] = e;
            e = nx;
        }
    }
    free(ix->buckets);
    ix->buckets = b;
    ix->nbuckets = n;
}

int sim_index_add(sim_index *ix, sim_entry *e)
{
    size_t k;
    int64_t now = sim_now_us();

    if (ix->count + 1 > ix->nbuckets)
        grow(ix);
    /* Why strictly increasing: the page token is a tm_create, and "earlier than the token"
     * must not skip a sibling created in the same microsecond. */
    e->tm_create_us = now > ix->last_us ? now : ix->last_us + 1;
    ix->last_us = e->tm_create_us;
    k = hash_id(e->id) & (ix->nbuckets - 1);
    e->hnext = ix->buckets[k];
    ix->buckets[k] = e;
    e->next = NULL;
    e->prev = ix->tail;
    if (ix->tail)
        ix->tail->next = e;
    else
        ix->head = e;
    ix->tail = e;
    ix->count++;
    return 0;
}

sim_entry *sim_index_find(const sim_index *ix, const char *id)
{
    sim_entry *e;

    if (!ix->buckets || !id)
        return NULL;
    for (e = ix->buckets[hash_id(id) & (ix->nbuckets - 1)]; e; e = e->hnext)
        if (!strcmp(e->id, id))
            return e;
    return NULL;
}

void sim_index_del(sim_index *ix, sim_entry *e)
{
    sim_entry **pp = &ix->buckets[hash_id(e->id) & (ix->nbuckets - 1)];

    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (!*pp)
        return;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        ix->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ix->tail = e->prev;
    e->prev = e->next = e->hnext = NULL;
    ix->count--;
}
