/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_http.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_config.h"
#include "otp_metrics.h"

struct MHD_Daemon *otp_http_start(const char *setting, const char *listen, unsigned threads,
                                  MHD_AccessHandlerCallback handler, void *cls,
                                  MHD_RequestCompletedCallback completed, char *errstr,
                                  size_t errstr_size)
{
    return otp_http_start_tls(setting, listen, threads, handler, cls, completed, NULL, errstr,
                              errstr_size);
}

struct MHD_Daemon *otp_http_start_tls(const char *setting, const char *listen, unsigned threads,
                                      MHD_AccessHandlerCallback handler, void *cls,
                                      MHD_RequestCompletedCallback completed, void *cert_callback,
                                      char *errstr, size_t errstr_size)
{
    const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                           MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_in sa;
    char host[64];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port;
    struct MHD_Daemon *d;

    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        snprintf(errstr, errstr_size, "%s=%s: expected host:port", setting, listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    port = strtol(colon + 1, &end, 10);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (*end || port < 0 || port > 65535 ||
        inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa.sin_addr) !=
            1) {
        snprintf(errstr, errstr_size, "%s=%s: expected an IPv4 host:port", setting, listen);
        return NULL;
    }
    if (cert_callback)
        d = MHD_start_daemon(flags | MHD_USE_TLS, (uint16_t)port, NULL, NULL, handler, cls,
                             MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
                             MHD_OPTION_NOTIFY_COMPLETED, completed, cls,
                             MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_HTTPS_CERT_CALLBACK,
                             cert_callback, MHD_OPTION_END);
    else
        d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handler, cls, MHD_OPTION_SOCK_ADDR,
                             &sa, MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
                             completed, cls, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d)
        snprintf(errstr, errstr_size, "%s=%s: cannot listen (in use?)", setting, listen);
    return d;
}

unsigned otp_http_port(struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* The Origin the replies of this thread's current request may be read by. */
static __thread const char *cors_origin;

void otp_http_cors_origin(const char *origin)
{
    cors_origin = origin;
}

void otp_http_add_cors(struct MHD_Response *r)
{
    if (!cors_origin)
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", cors_origin);
    MHD_add_response_header(r, "Vary", "Origin");
}

otp_mhd_result otp_http_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                              const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    otp_mhd_result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    otp_http_add_cors(r);
    ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

otp_mhd_result otp_http_error(struct MHD_Connection *c, unsigned status, const char *code,
                              const char *message)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(o, JSON_COMPACT);
    otp_mhd_result ret = otp_http_reply(c, status, "application/json", s ? s : "{}");

    free(s);
    json_decref(o);
    return ret;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

int otp_http_probe(const char *listen, const char *path, long timeout_ms, char *errstr,
                   size_t errstr_size)
{
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    char url[256];
    CURL *h;
    CURLcode rc;
    long status = 0;
    size_t hlen;

    if (!colon) {
        snprintf(errstr, errstr_size, "%s: expected host:port", listen ? listen : "(none)");
        return -1;
    }
    hlen = (size_t)(colon - listen);
    if (hlen == 0 || (hlen == 7 && strncmp(listen, "0.0.0.0", 7) == 0))
        snprintf(url, sizeof(url), "http://127.0.0.1%s%s", colon, path);
    else
        snprintf(url, sizeof(url), "http://%.*s%s%s", (int)hlen, listen, colon, path);
    h = curl_easy_init();
    if (!h) {
        snprintf(errstr, errstr_size, "cannot set up the HTTP client");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "%s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    if (status != 200) {
        snprintf(errstr, errstr_size, "%s: HTTP %ld", url, status);
        return -1;
    }
    return 0;
}

int otp_http_healthcheck(const char *program, const char *setting, const char *path)
{
    char err[512];
    const char *listen = getenv(setting);

    if (!listen || !*listen)
        listen = otp_config_default(setting);
    if (!listen || !*listen) {
        fprintf(stderr, "%s: %s is empty: no admin endpoint to check\n", program, setting);
        return 1;
    }
    if (otp_http_probe(listen, path, 3000, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: not healthy: %s\n", program, err);
        return 1;
    }
    return 0;
}

otp_mhd_result otp_http_reply_metrics(struct MHD_Connection *c, unsigned programs)
{
    char *body = otp_metrics_render(programs);
    otp_mhd_result ret;

    if (!body)
        return otp_http_error(c, 500, "internal", "out of memory");
    ret = otp_http_reply(c, 200, "text/plain; version=0.0.4", body);
    free(body);
    return ret;
}
