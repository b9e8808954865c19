#include "otp_http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct MHD_Daemon *otp_http_start(const char *setting, const char *listen, unsigned threads,
                                  MHD_AccessHandlerCallback handler, void *cls,
                                  MHD_RequestCompletedCallback completed, char *errstr,
                                  size_t errstr_size)
{
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
        inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa.sin_addr) != 1) {
        snprintf(errstr, errstr_size, "%s=%s: expected an IPv4 host:port", setting, listen);
        return NULL;
    }
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL_LINUX_ONLY |
                             MHD_USE_TURBO,
                         (uint16_t)port, NULL, NULL, handler, cls, MHD_OPTION_SOCK_ADDR, &sa,
                         MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED,
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
