#include "sim_auth.h"
#include "sim_util.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JWT_LIFETIME_US (7LL * 24 * 3600 * 1000000) /* TokenExpiration: 7 days */

static int b64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    if (sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > outlen)
        return -1;
    sodium_bin2base64(out, outlen, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

static void jwt_mac(const sim_t *s, const char *data, size_t n, unsigned char mac[32])
{
    crypto_auth_hmacsha256_state st;

    crypto_auth_hmacsha256_init(&st, s->jwt_key, sizeof s->jwt_key);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)data, n);
    crypto_auth_hmacsha256_final(&st, mac);
}

static char *jwt_issue(const sim_t *s, const char *username)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char exp[SIM_TIME_LEN], h64[64], p64[1024], m64[64], *payload, *out = NULL;
    unsigned char mac[32];
    json_t *claims;
    sim_buf b = {0};

    sim_fmt_time(sim_now_us() + JWT_LIFETIME_US, exp);
    claims = json_pack("{s:s, s:s, s:s, s:s}", "customer_id", s->customer_id, "username", username,
                       "type", "agent", "expire", exp);
    payload = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!payload || b64url((const unsigned char *)hdr, strlen(hdr), h64, sizeof h64) ||
        b64url((const unsigned char *)payload, strlen(payload), p64, sizeof p64))
        goto out;
    sim_buf_adds(&b, h64);
    sim_buf_adds(&b, ".");
    sim_buf_adds(&b, p64);
    jwt_mac(s, b.p, b.len, mac);
    if (b64url(mac, sizeof mac, m64, sizeof m64))
        goto out;
    sim_buf_adds(&b, ".");
    sim_buf_adds(&b, m64);
    out = sim_buf_take(&b);
out:
    sim_buf_free(&b);
    free(payload);
    return out;
}

/* A token is only ever parsed as a JWT: an access key here fails, as at the real gateway. */
static int jwt_valid(const sim_t *s, const char *tok)
{
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    unsigned char mac[32], got[64], pl[1024];
    size_t got_len = 0, pl_len = 0;
    json_t *claims;
    json_error_t je;
    int64_t exp;
    int ok;

    if (!d1 || !d2 || strchr(d2 + 1, '.'))
        return 0;
    jwt_mac(s, tok, (size_t)(d2 - tok), mac);
    if (sodium_base642bin(got, sizeof got, d2 + 1, strlen(d2 + 1), NULL, &got_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        got_len != sizeof mac || sodium_memcmp(got, mac, sizeof mac))
        return 0;
    if (sodium_base642bin(pl, sizeof pl - 1, d1 + 1, (size_t)(d2 - d1 - 1), NULL, &pl_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return 0;
    claims = json_loadb((const char *)pl, pl_len, 0, &je);
    ok = claims && !sim_parse_time(json_string_value(json_object_get(claims, "expire")), &exp) &&
         exp > sim_now_us();
    json_decref(claims);
    return ok;
}

static int key_valid(const sim_t *s, const char *key)
{
    size_t n = strlen(key);

    return n && n == strlen(s->cfg->access_key) && !sodium_memcmp(key, s->cfg->access_key, n);
}

sim_auth_result sim_auth_check(sim_t *s, const sim_req *q)
{
    const char *v, *auth;

    if ((v = sim_req_cookie(q, "token")) || (v = sim_req_arg(q, "token")))
        return jwt_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    auth = sim_req_header(q, "Authorization");
    if (auth && !strncasecmp(auth, "Bearer ", 7)) {
        v = auth + 7;
        while (*v == ' ')
            v++;
        return *v && jwt_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    }
    if ((v = sim_req_cookie(q, "accesskey")) || (v = sim_req_arg(q, "accesskey")))
        return key_valid(s, v) ? SIM_AUTH_OK : SIM_AUTH_INVALID;
    return SIM_AUTH_MISSING;
}

void sim_auth_login(sim_t *s, const sim_req *q, sim_resp *r)
{
    json_error_t je;
    json_t *body = json_loadb(q->body ? q->body : "", q->body_len, 0, &je);
    const char *u = json_string_value(json_object_get(body, "username"));
    const char *p = json_string_value(json_object_get(body, "password"));
    char *tok;

    r->status = 400; /* bare 400, no envelope: the legacy /auth handlers */
    if (!u || !p || !*u || !*p || strcmp(u, s->cfg->username) || strcmp(p, s->cfg->password))
        goto out;
    tok = jwt_issue(s, u);
    if (tok) {
        sim_resp_json(r, 200, json_pack("{s:s, s:s}", "username", u, "token", tok));
        free(tok);
    }
out:
    json_decref(body);
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
