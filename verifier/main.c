/* SPDX-License-Identifier: Apache-2.0 */
/* otp-verifier: the HTTP API over PostgreSQL (see api.h). */
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_service.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_tls.h"
#include "otp_version.h"
#include "otp_webhook.h"

static volatile sig_atomic_t running = 1, reload_tls = 0;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload_tls = 1;
    else
        running = 0;
}

/* HTTPS on a listener when its certificate setting is set: the pair loaded
 * now (a bad file stops the start, naming the setting). *cb is the daemon's
 * certificate callback, NULL for plain HTTP. 0 ok, -1 with err. */
static int tls_setup(otp_tls_slot_t slot, const char *cert_setting, const char *key_setting,
                     void **cb, char *err, size_t errsz)
{
    const char *cert = otp_config_str(cert_setting), *key = otp_config_str(key_setting);

    *cb = NULL;
    if (!*cert && !*key)
        return 0;
    if (!*cert || !*key) {
        snprintf(err, errsz, "%s: set together with %s", *cert ? key_setting : cert_setting,
                 *cert ? cert_setting : key_setting);
        return -1;
    }
    if (otp_tls_load(slot, cert_setting, cert, key_setting, key, err, errsz) != 0)
        return -1;
    *cb = otp_tls_callback(slot);
    return 0;
}

static const char usage[] =
    "usage: otp-verifier                 run (settings from the environment)\n"
    "       otp-verifier --healthcheck    exit 0 if this host's verifier answers /readyz\n"
    "                                    on OTP_VERIFIER_ADMIN_LISTEN (for container "
    "healthchecks)\n"
    "       otp-verifier --version | --help\n"
    "Serves POST /v1/verify, POST /v1/requests (published to OTP_TOPIC_REQUESTS), GET\n"
    "/v1/requests/{id} on OTP_VERIFIER_LISTEN, POST /v1/webhooks/voipbin (and nothing else)\n"
    "on OTP_WEBHOOK_LISTEN, and GET /healthz, /readyz, /metrics on OTP_VERIFIER_ADMIN_LISTEN.";

int main(int argc, char **argv)
{
    static api_t api;
    char err[512];
    struct MHD_Daemon *d, *hooks, *admin = NULL;
    MHD_socket listen_fd, hooks_fd;
    const char *secret;
    otp_policy_t base;
    void *api_tls = NULL, *hooks_tls = NULL;
    otp_api_key_t env_keys[API_MAX_KEYS];
    int n_env_keys;

    otp_json_wipe_freed(); /* before any json_t: codes pass through JSON */
    if (otp_config_common_flags(argc, argv, OTP_PROG_VERIFIER, "otp-verifier", usage))
        return 0;
    if (argc == 2 && strcmp(argv[1], "--healthcheck") == 0)
        return otp_http_healthcheck("otp-verifier", "OTP_VERIFIER_ADMIN_LISTEN", "/readyz");
    if (argc != 1) {
        fprintf(stderr, "otp-verifier: unknown arguments\n%s\n", usage);
        return 2;
    }
    if (otp_service_init(OTP_PROG_VERIFIER, "otp-verifier") != 0)
        return 2;
    api.db_url = otp_config_str("OTP_DATABASE_URL");
    secret = otp_config_str("OTP_WEBHOOK_SECRET");
    api.webhook_secret = secret;
    api.max_body = (size_t)otp_config_int("OTP_MAX_BODY_BYTES");
    api.max_failed_per_hour = (int)otp_config_int("OTP_MAX_FAILED_VERIFY_PER_HOUR");
    otp_webhook_pending_caps(otp_config_int("OTP_WEBHOOK_PENDING_MAX_ROWS"),
                             otp_config_int("OTP_WEBHOOK_PENDING_MAX_BYTES"));
    if (otp_keyring_load(&api.keys, (int)otp_config_int("OTP_HASH_KEY_ID"),
                         otp_config_str("OTP_HASH_KEY"), otp_config_str("OTP_HASH_KEYS_PREVIOUS"),
                         err, sizeof(err)) != 0 ||
        api_load_key_hashes(&api, otp_config_str("OTP_API_KEY_HASHES"), err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    if (otp_policy_from_settings(&base, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    n_env_keys = api_env_keys(&api, env_keys);
    api.services = otp_services_start(api.db_url, &base, 1, env_keys, n_env_keys, err, sizeof(err));
    sodium_memzero(env_keys, sizeof(env_keys));
    if (!api.services) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    api.topic_requests = otp_config_str("OTP_TOPIC_REQUESTS");
    api.front = front_new(otp_config_str("OTP_TOPIC_REQUESTS"),
                          (int)otp_config_int("OTP_FRONT_DOOR_TIMEOUT_MS"), api_front_done, err,
                          sizeof(err));
    if (!api.front) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    /* A limit of 0 is none (NULL); ratelimit_new fails only when out of memory. */
    api.per_key = ratelimit_new((int)otp_config_int("OTP_API_RATE_PER_KEY"));
    api.per_address = ratelimit_new((int)otp_config_int("OTP_API_RATE_PER_ADDRESS"));
    if ((!api.per_key && otp_config_int("OTP_API_RATE_PER_KEY") > 0) ||
        (!api.per_address && otp_config_int("OTP_API_RATE_PER_ADDRESS") > 0)) {
        fprintf(stderr, "otp-verifier: out of memory for the rate limits\n");
        front_destroy(api.front);
        return 2;
    }
    api.checks = verify_pool_new(api.db_url, (int)otp_config_int("OTP_VERIFIER_DB_CONNECTIONS"),
                                 &api.check_stats, err, sizeof(err));
    if (!api.checks) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        front_destroy(api.front);
        return 2;
    }
    api.cors_origins = otp_config_str("OTP_CORS_ORIGINS");
    api.longpoll = longpoll_new(api.db_url, 250, api_status_body, &api, err, sizeof(err));
    if (!api.longpoll) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        verify_pool_destroy(api.checks);
        front_destroy(api.front);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    if (tls_setup(OTP_TLS_API, "OTP_VERIFIER_TLS_CERT_FILE", "OTP_VERIFIER_TLS_KEY_FILE", &api_tls,
                  err, sizeof(err)) != 0 ||
        tls_setup(OTP_TLS_WEBHOOK, "OTP_WEBHOOK_TLS_CERT_FILE", "OTP_WEBHOOK_TLS_KEY_FILE",
                  &hooks_tls, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    d = otp_http_start_tls("OTP_VERIFIER_LISTEN", otp_config_str("OTP_VERIFIER_LISTEN"),
                           (unsigned)otp_config_int("OTP_VERIFIER_THREADS"), api_handle, &api,
                           api_completed, api_tls, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        return 2;
    }
    hooks = otp_http_start_tls("OTP_WEBHOOK_LISTEN", otp_config_str("OTP_WEBHOOK_LISTEN"),
                               (unsigned)otp_config_int("OTP_WEBHOOK_THREADS"), api_webhook_handle,
                               &api, api_completed, hooks_tls, err, sizeof(err));
    if (!hooks) {
        fprintf(stderr, "otp-verifier: %s\n", err);
        verify_pool_close(api.checks);
        MHD_stop_daemon(d);
        return 2;
    }
    if (*otp_config_str("OTP_VERIFIER_ADMIN_LISTEN")) {
        admin =
            otp_http_start("OTP_VERIFIER_ADMIN_LISTEN", otp_config_str("OTP_VERIFIER_ADMIN_LISTEN"),
                           1, api_admin_handle, &api, NULL, err, sizeof(err));
        if (!admin) {
            fprintf(stderr, "otp-verifier: %s\n", err);
            verify_pool_close(api.checks);
            MHD_stop_daemon(hooks);
            MHD_stop_daemon(d);
            return 2;
        }
    }
    otp_info("verifier_started", "listen=%s port=%u webhook_port=%u admin_port=%u",
             otp_config_str("OTP_VERIFIER_LISTEN"), otp_http_port(d), otp_http_port(hooks),
             admin ? otp_http_port(admin) : 0);
    while (running) {
        pause();
        if (reload_tls) {
            reload_tls = 0;
            (void)otp_tls_reload(); /* a bad file is logged; the pair in use stays */
        }
    }
    otp_info("verifier_stopping", "verified=%lld", (long long)api.verified);
    /* No new connections; the checks under way finish and their answers go
     * out (for up to 5 s) before the daemon stops, so that no connection is
     * left suspended and no committed check loses its answer. */
    listen_fd = MHD_quiesce_daemon(d);
    hooks_fd = MHD_quiesce_daemon(hooks);
    longpoll_stop(api.longpoll); /* the waiting connections get the state now */
    verify_pool_close(api.checks);
    front_drain(api.front); /* every POST /v1/requests gets its report, then its answer */
    for (int i = 0; i < 500 && atomic_load(&api.checks_open) > 0; i++)
        usleep(10000);
    MHD_stop_daemon(d);
    MHD_stop_daemon(hooks);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    if (hooks_fd != MHD_INVALID_SOCKET)
        close(hooks_fd);
    if (admin)
        MHD_stop_daemon(admin);
    verify_pool_destroy(api.checks);
    longpoll_destroy(api.longpoll);
    front_destroy(api.front);
    otp_services_stop(api.services);
    otp_tls_clear();
    ratelimit_destroy(api.per_key);
    ratelimit_destroy(api.per_address);
    otp_keyring_clear(&api.keys);
    return 0;
}
