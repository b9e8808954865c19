/* SPDX-License-Identifier: Apache-2.0 */
/* sim_config: the simulator's settings, one table from which flags, env and --help come. */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stddef.h>

typedef struct sim_config {
    char *listen;         /* host:port, port 0 = pick a free one */
    char *port_file;      /* written with the port once listening */
    char *access_key;     /* the customer's access key (?accesskey=) */
    char *webhook_secret; /* customer webhook_secret (HMAC key) */
    char *webhook_uri;    /* customer webhook_uri at start and after reset */
    char *webhook_method; /* customer webhook_method */
    char *numbers;        /* owned numbers, comma separated: the valid `source` targets */
    char *whitelist;   /* outbound destination_whitelist: "us,gb" or "all"; empty = all refused */
    double rate;       /* per-customer requests/s */
    double burst;      /* per-customer bucket size */
    double time_scale; /* multiplies every simulated duration */
    char *error_mode;  /* "real" (500 when nothing placed) or "documented" (400/402) */
    char *audio_dir;   /* render every talk to a WAV there (espeak-ng) */
    long max_calls;    /* ended calls (and messages) kept before the oldest are dropped */
    char *username;    /* POST /auth/login */
    char *password;
    double balance; /* account balance; 0 makes every call "not placed" */
    char *identity; /* identity_verification_status */
    long http_threads;
    long webhook_workers;
    int ssrf_guard; /* refuse loopback/private webhook targets like the real service */
    int verbose;    /* one log line per request */
} sim_config;

/* Fills cfg from defaults, then SIM_* env, then argv. Returns 0, 1 when --help was printed,
 * -1 on a bad flag (message in err). Strings in cfg are heap-owned; free with sim_config_free. */
int sim_config_load(sim_config *cfg, int argc, char **argv, char *err, size_t errlen);
void sim_config_free(sim_config *cfg);

#endif
