/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_auth.h"
#include "sim_extras.h"
#include "sim_util.h"

#include <math.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

static int key_valid(const sim_t *s, const char *key)
{
    size_t n = strlen(key);

    return n && n == strlen(s->cfg->access_key) && !sodium_memcmp(key, s->cfg->access_key, n);
}

sim_auth_result sim_auth_check(sim_t *s, const sim_req *q)
{
    const char *v, *auth;

    if ((v = sim_req_cookie(q, "token")) || (v = sim_req_arg(q, "token")))
        return sim_extras_jwt_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    auth = sim_req_header(q, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        v = auth + 7;
        while (*v == ' ')
            v++;
        return *v && sim_extras_jwt_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    }
    if ((v = sim_req_cookie(q, "accesskey")) || (v = sim_req_arg(q, "accesskey")))
        return key_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    return SIM_AUTH_MISSING;
}

void sim_ratelimit_set(sim_t *s, double rate, double burst)
{
    s->rl.rate = rate;
    s->rl.burst = burst;
    s->rl.tokens = burst;
    s->rl.last_ns = sim_mono_ns();
}

int sim_ratelimit_take(sim_t *s, int *retry_after_s)
{
    int64_t now = sim_mono_ns();
    sim_ratelimit *rl = &s->rl;

    rl->tokens += rl->rate * (double)(now - rl->last_ns) / 1e9;
    if (rl->tokens > rl->burst)
        rl->tokens = rl->burst;
    rl->last_ns = now;
    if (rl->tokens >= 1.0) {
        rl->tokens -= 1.0;
        return 1;
    }
    *retry_after_s = rl->rate > 0 ? (int)ceil((1.0 - rl->tokens) / rl->rate) : 60;
    if (*retry_after_s < 1)
        *retry_after_s = 1;
    return 0;
}
