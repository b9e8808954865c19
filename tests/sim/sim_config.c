/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { CF_STR, CF_DBL, CF_INT, CF_BOOL } cf_type;

typedef struct cf_row {
    const char *name; /* flag name; env is SIM_ + upper-cased name with '-' → '_' */
    cf_type type;
    size_t off;
    const char *def;
    const char *help;
} cf_row;

#define ROW(n, t, f, d, h)                                                                         \
    {                                                                                              \
        n, t, offsetof(sim_config, f), d, h                                                        \
    }

/* Why one table: --help, env names and defaults cannot drift apart. */
static const cf_row rows[] = {
    ROW("listen", CF_STR, listen, "127.0.0.1:0", "address:port to listen on (port 0 = a free one)"),
    ROW("port-file", CF_STR, port_file, "", "write the chosen port to this file once listening"),
    ROW("access-key", CF_STR, access_key, "vb_SIMxSIMxSIMxSIMxSIMxSIMxSIMxSIMx",
        "the customer's access key, accepted as ?accesskey="),
    ROW("webhook-secret", CF_STR, webhook_secret, "c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0",
        "customer webhook_secret (HMAC-SHA256 key of X-VoIPBIN-Signature)"),
    ROW("webhook-uri", CF_STR, webhook_uri, "", "customer webhook_uri (empty = no deliveries)"),
    ROW("webhook-method", CF_STR, webhook_method, "POST", "customer webhook_method"),
    ROW("numbers", CF_STR, numbers, "",
        "numbers the customer owns, comma separated (valid `source`); empty = any E.164 source"),
    ROW("whitelist", CF_STR, whitelist, "",
        "outbound destination_whitelist (us,gb,... or all); empty refuses every PSTN call, as the "
        "real default"),
    ROW("rate", CF_DBL, rate, "16.7", "per-customer rate limit, requests/s"),
    ROW("burst", CF_DBL, burst, "33", "per-customer rate limit burst"),
    ROW("time-scale", CF_DBL, time_scale, "1.0",
        "multiplies every simulated duration (0.05 = 20x faster)"),
    ROW("error-mode", CF_STR, error_mode, "real",
        "real: 500 INTERNAL when no destination is placed; documented: 400/402"),
    ROW("audio-dir", CF_STR, audio_dir, "",
        "render every talk to WAV with espeak-ng into this directory"),
    ROW("max-calls", CF_INT, max_calls, "50000",
        "ended calls/messages kept; the oldest ended are dropped"),
    ROW("username", CF_STR, username, "sim", "POST /auth/login username"),
    ROW("password", CF_STR, password, "sim", "POST /auth/login password"),
    ROW("balance", CF_DBL, balance, "100", "account balance; 0 = calls and messages not placed"),
    ROW("identity", CF_STR, identity, "verified",
        "identity_verification_status (anything but verified → 403 on tel calls)"),
    ROW("http-threads", CF_INT, http_threads, "2", "HTTP server threads"),
    ROW("webhook-workers", CF_INT, webhook_workers, "4", "webhook delivery threads"),
    ROW("ssrf-guard", CF_BOOL, ssrf_guard, "0",
        "refuse loopback/private webhook targets (real service)"),
    ROW("verbose", CF_BOOL, verbose, "0", "log every request to stderr"),
};
#define NROWS (sizeof rows / sizeof rows[0])

static int set_value(sim_config *cfg, const cf_row *r, const char *v, char *err, size_t errlen)
{
    char *base = (char *)cfg + r->off;
    char *end = NULL;

    errno = 0;
    switch (r->type) {
    case CF_STR: {
        char *copy = strdup(v);
        if (!copy) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        free(*(char **)base);
        *(char **)base = copy;
        return 0;
    }
    case CF_DBL: {
        double d = strtod(v, &end);
        if (errno || end == v || *end || d < 0) {
            snprintf(err, errlen, "--%s: not a non-negative number: %s", r->name, v);
            return -1;
        }
        *(double *)base = d;
        return 0;
    }
    case CF_INT: {
        long l = strtol(v, &end, 10);
        if (errno || end == v || *end || l < 0) {
            snprintf(err, errlen, "--%s: not a non-negative integer: %s", r->name, v);
            return -1;
        }
        *(long *)base = l;
        return 0;
    }
    case CF_BOOL:
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            *(int *)base = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
                 !*v)
            *(int *)base = 0;
        else {
            snprintf(err, errlen, "--%s: not a boolean: %s", r->name, v);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void env_name(const char *flag, char *out, size_t n)
{
    size_t i = 0, j;

    i = (size_t)snprintf(out, n, "SIM_");
    for (j = 0; flag[j] && i + 1 < n; j++, i++)
        out[i] = flag[j] == '-' ? '_'
                                : (char)(flag[j] >= 'a' && flag[j] <= 'z' ? flag[j] - 32 : flag[j]);
    out[i] = '\0';
}

static void usage(void)
{
    size_t i;
    char env[64];

    printf("usage: voipbin-sim [--flag value]...\n"
           "A local simulator of the VoIPBin REST API (see tests/sim/README.md).\n\n");
    for (i = 0; i < NROWS; i++) {
        env_name(rows[i].name, env, sizeof env);
        printf("  --%-16s %-22s default \"%s\"\n      %s\n", rows[i].name, env, rows[i].def,
               rows[i].help);
    }
}

int sim_config_load(sim_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    size_t i;
    int a;
    char env[64];

    memset(cfg, 0, sizeof *cfg);
    for (i = 0; i < NROWS; i++) {
        const char *v = rows[i].def;
        env_name(rows[i].name, env, sizeof env);
        if (getenv(env))
            v = getenv(env);
        if (set_value(cfg, &rows[i], v, err, errlen))
            return -1;
    }
    for (a = 1; a < argc; a++) {
        const char *arg = argv[a], *val = NULL, *eq;
        size_t nlen;
        const cf_row *r = NULL;

        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            usage();
            return 1;
        }
        if (strncmp(arg, "--", 2)) {
            snprintf(err, errlen, "unexpected argument: %s", arg);
            return -1;
        }
        arg += 2;
        eq = strchr(arg, '=');
        nlen = eq ? (size_t)(eq - arg) : strlen(arg);
        for (i = 0; i < NROWS; i++)
            if (strlen(rows[i].name) == nlen && !strncmp(rows[i].name, arg, nlen))
                r = &rows[i];
        if (!r) {
            snprintf(err, errlen, "unknown flag: --%.*s (see --help)", (int)nlen, arg);
            return -1;
        }
        if (eq)
            val = eq + 1;
        else if (r->type == CF_BOOL)
            val = "1";
        else if (a + 1 < argc)
            val = argv[++a];
        else {
            snprintf(err, errlen, "--%s needs a value", r->name);
            return -1;
        }
        if (set_value(cfg, r, val, err, errlen))
            return -1;
    }
    if (strcmp(cfg->error_mode, "real") && strcmp(cfg->error_mode, "documented")) {
        snprintf(err, errlen, "--error-mode must be real or documented");
        return -1;
    }
    if (cfg->time_scale <= 0) {
        snprintf(err, errlen, "--time-scale must be > 0");
        return -1;
    }
    if (cfg->http_threads < 1)
        cfg->http_threads = 1;
    if (cfg->webhook_workers < 1)
        cfg->webhook_workers = 1;
    return 0;
}

void sim_config_free(sim_config *cfg)
{
    size_t i;

    if (!cfg)
        return;
    for (i = 0; i < NROWS; i++)
        if (rows[i].type == CF_STR) {
            char **p = (char **)((char *)cfg + rows[i].off);
            free(*p);
            *p = NULL;
        }
}
