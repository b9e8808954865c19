/* SPDX-License-Identifier: Apache-2.0 */
/* vb_classify: how each VoIPBin outcome may be retried. */
#include <stdio.h>

#include "unit.h"
#include "voipbin_client.h"

static const char *name(vb_class_t c)
{
    switch (c) {
    case VB_OK:
        return "VB_OK";
    case VB_RETRY_SAFE:
        return "VB_RETRY_SAFE";
    case VB_AMBIGUOUS:
        return "VB_AMBIGUOUS";
    case VB_PERMANENT:
        return "VB_PERMANENT";
    }
    return "?";
}

int main(int argc, char **argv)
{
    static const struct {
        long status;
        int transport_error, sent;
        vb_class_t want;
    } rows[] = {
        {200, 0, 1, VB_OK},         {201, 0, 1, VB_OK},
        {429, 0, 1, VB_RETRY_SAFE}, /* rate limited: not placed */
        {503, 0, 1, VB_RETRY_SAFE}, /* unavailable: not placed */
        {500, 0, 1, VB_AMBIGUOUS},  /* may have been placed */
        {502, 0, 1, VB_AMBIGUOUS},  {504, 0, 1, VB_AMBIGUOUS},
        {408, 0, 1, VB_AMBIGUOUS},  {400, 0, 1, VB_PERMANENT},
        {401, 0, 1, VB_PERMANENT},  {402, 0, 1, VB_PERMANENT},
        {403, 0, 1, VB_PERMANENT},  {404, 0, 1, VB_PERMANENT},
        {0, 1, 0, VB_RETRY_SAFE}, /* transport error before the request was sent */
        {0, 1, 1, VB_AMBIGUOUS},  /* transport error after it was sent (a timeout) */
        {0, 0, 0, VB_RETRY_SAFE},
    };

    (void)argc;
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        vb_class_t got = vb_classify(rows[i].status, rows[i].transport_error, rows[i].sent);
        unit_ctx("status %ld transport_error %d sent %d", rows[i].status, rows[i].transport_error,
                 rows[i].sent);
        CHECK_EQ_STR(name(got), name(rows[i].want));
    }
    unit_ctx(NULL);
    return unit_finish(argv[0]);
}
