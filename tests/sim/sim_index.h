/* SPDX-License-Identifier: Apache-2.0 */
/* sim_index: resources by id (hash) and by creation order (list), for calls, messages, flows.
 * Not locked: the caller holds the simulator lock. */
#ifndef SIM_INDEX_H
#define SIM_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* Embedded first in every indexed resource, so a sim_entry * is the resource. */
typedef struct sim_entry {
    char id[37];
    int64_t tm_create_us; /* strictly increasing within one index: the page token order */
    struct sim_entry *hnext;
    struct sim_entry *prev, *next; /* creation order: head = oldest */
} sim_entry;

typedef struct sim_index {
    sim_entry **buckets;
    size_t nbuckets, count;
    sim_entry *head, *tail;
    int64_t last_us; /* last tm_create handed out */
} sim_index;

int sim_index_init(sim_index *ix);
/* Frees the table only; entries belong to their owners. */
void sim_index_free(sim_index *ix);
/* Sets e->tm_create_us to a fresh, strictly increasing time and links e as newest. */
int sim_index_add(sim_index *ix, sim_entry *e);
sim_entry *sim_index_find(const sim_index *ix, const char *id);
void sim_index_del(sim_index *ix, sim_entry *e);

#endif
