/* SPDX-License-Identifier: Apache-2.0 */
/* verifier/ratelimit.c: the per-key and per-address token buckets. */
#include <stdio.h>

#include "../../verifier/ratelimit.h"
#include "unit.h"

#define SEC 1000000LL

int main(int argc, char **argv)
{
    ratelimit_t *rl = ratelimit_new(5);
    int64_t t = 1000 * SEC;
    char id[32];

    (void)argc;
    (void)argv;
    CHECK(rl != NULL);
    /* A burst of 5, then refused with the seconds to wait. */
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(ratelimit_take(rl, "key-a", t), 0);
    CHECK_EQ_INT(ratelimit_take(rl, "key-a", t), 1);
    /* Another id has a bucket of its own. */
    CHECK_EQ_INT(ratelimit_take(rl, "key-b", t), 0);
    /* 5 per second: after 0.2 s one more, then none. */
    CHECK_EQ_INT(ratelimit_take(rl, "key-a", t + SEC / 5), 0);
    CHECK(ratelimit_take(rl, "key-a", t + SEC / 5) >= 1);
    /* A full second refills the whole burst, never more. */
    t += 10 * SEC;
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(ratelimit_take(rl, "key-a", t), 0);
    CHECK_EQ_INT(ratelimit_take(rl, "key-a", t), 1);
    /* Ids past the table's size take the slots of the least recently seen:
     * the memory stays bounded and every new id starts with a full bucket. */
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "addr-%d", i);
        CHECK_EQ_INT(ratelimit_take(rl, id, t + i), 0);
    }
    /* A prefix is not the same id. */
    CHECK_EQ_INT(ratelimit_take(rl, "key", t), 0);
    ratelimit_destroy(rl);
    /* Under 1 per second: no limiter, everything allowed. */
    CHECK(ratelimit_new(0) == NULL);
    CHECK_EQ_INT(ratelimit_take(NULL, "x", t), 0);
    ratelimit_destroy(NULL);
    return unit_finish(argv[0]);
}
