/* SPDX-License-Identifier: Apache-2.0 */
/* voipbin-sim: a local simulator of the VoIPBin REST API for tests, benchmarks and the demo.
 * main only wires the modules together; see README.md for the behaviour. */
#include <curl/curl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim.h"
#include "sim_http.h"

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f))
        return -1;
    return rename(tmp, path); /* readers never see a half-written port */
}

static void host_of(const char *listen, char *out, size_t n)
{
    const char *colon = strrchr(listen, ':');
    size_t l = colon ? (size_t)(colon - listen) : strlen(listen);

    if (l >= n)
        l = n - 1;
    memcpy(out, listen, l);
    out[l] = '\0';
    if (!strcmp(out, "0.0.0.0") || !*out)
        snprintf(out, n, "127.0.0.1");
}

int main(int argc, char **argv)
{
    sim_config cfg;
    sim_t sim;
    sim_http *http = NULL;
    sigset_t sigs;
    char err[256], host[128];
    int port = 0, sig = 0, rc = 1;

    /* Signals are taken synchronously by main (sigwait): every thread inherits this mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    switch (sim_config_load(&cfg, argc, argv, err, sizeof err)) {
    case 0:
        break;
    case 1:
        sim_config_free(&cfg);
        return 0;
    default:
        fprintf(stderr, "voipbin-sim: %s\n", err);
        sim_config_free(&cfg);
        return 2;
    }
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "voipbin-sim: library init failed\n");
        return 1;
    }
    json_object_seed(0);
    if (sim_state_init(&sim, &cfg, err, sizeof err)) {
        fprintf(stderr, "voipbin-sim: %s\n", err);
        return 2;
    }
    if (sim_sched_start(&sim.sched) || sim_wh_start(sim.wh) ||
        (sim.audio && sim_audio_start(sim.audio))) {
        fprintf(stderr, "voipbin-sim: cannot start threads\n");
        goto out;
    }
    http = sim_http_start(&sim, &port, err, sizeof err);
    if (!http) {
        fprintf(stderr, "voipbin-sim: %s\n", err);
        goto out;
    }
    if (*cfg.port_file && write_port_file(cfg.port_file, port)) {
        fprintf(stderr, "voipbin-sim: cannot write %s\n", cfg.port_file);
        goto out;
    }
    if (!*cfg.whitelist)
        fprintf(
            stderr,
            "voipbin-sim: outbound destination_whitelist is empty: every PSTN call will be refused "
            "(pass --whitelist us,gb,... or all)\n");
    host_of(cfg.listen, host, sizeof host);
    printf("voipbin-sim listening on http://%s:%d\n", host, port);
    fflush(stdout);

    while (sigwait(&sigs, &sig) == 0 && sig != SIGTERM && sig != SIGINT)
        ;
    rc = 0;
out:
    sim_http_stop(http);
    sim_wh_destroy(sim.wh);
    sim_audio_destroy(sim.audio);
    sim_sched_stop(&sim.sched);
    sim_state_free(&sim);
    sim_config_free(&cfg);
    curl_global_cleanup();
    return rc;
}
