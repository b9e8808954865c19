/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd helpers shared by the verifier and the worker's health port. */
#ifndef OTP_HTTP_H
#define OTP_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

#if MHD_VERSION < 0x00097002
typedef int otp_mhd_result;
#else
typedef enum MHD_Result otp_mhd_result;
/* GET http://<listen><path> (a 0.0.0.0 or empty host means 127.0.0.1) within
 * timeout_ms. 0 when the answer is 200; -1 with the reason in errstr. */
int otp_http_probe(const char *listen, const char *path, long timeout_ms, char *errstr,
                   size_t errstr_size) __attribute__((warn_unused_result));

/* --healthcheck: probes `path` on the address in the environment variable
 * `setting` (or its default from the settings table) and returns the exit
 * status (0 healthy, 1 not), saying why on stderr. */
int otp_http_healthcheck(const char *program, const char *setting, const char *path);

#endif

/* Starts a daemon with its own polling thread (threads > 1: a thread pool)
 * on "host:port", serving HTTPS when cert_callback (otp_tls_callback) is set.
 * NULL with errstr naming the setting on failure. */
struct MHD_Daemon *otp_http_start_tls(const char *setting, const char *listen, unsigned threads,
                                      MHD_AccessHandlerCallback handler, void *cls,
                                      MHD_RequestCompletedCallback completed, void *cert_callback,
                                      char *errstr, size_t errstr_size);
/* otp_http_start_tls without TLS. */
struct MHD_Daemon *otp_http_start(const char *setting, const char *listen, unsigned threads,
                                  MHD_AccessHandlerCallback handler, void *cls,
                                  MHD_RequestCompletedCallback completed, char *errstr,
                                  size_t errstr_size);

/* The port a daemon listens on (useful with port 0). */
unsigned otp_http_port(struct MHD_Daemon *d);

/* Queues a response with a copy of body. */
otp_mhd_result otp_http_reply(struct MHD_Connection *c, unsigned status, const char *content_type,
                              const char *body);

/* Answers 200 with the Prometheus exposition of every metric of `programs`
 * (otp_metrics_render), or 500 when memory ran out. */
otp_mhd_result otp_http_reply_metrics(struct MHD_Connection *c, unsigned programs);

/* CORS: the replies this thread queues until the next call carry
 * Access-Control-Allow-Origin: origin (and Vary: Origin); NULL: none. The
 * string must live until then (a request header does). */
void otp_http_cors_origin(const char *origin);

/* Adds the thread's CORS headers (if any) to a response built by hand. */
void otp_http_add_cors(struct MHD_Response *r);

/* Queues {"error":{"code":code,"message":message}} with status. */
otp_mhd_result otp_http_error(struct MHD_Connection *c, unsigned status, const char *code,
                              const char *message);

/* GET http://<listen><path> (a 0.0.0.0 or empty host means 127.0.0.1) within
 * timeout_ms. 0 when the answer is 200; -1 with the reason in errstr. */
int otp_http_probe(const char *listen, const char *path, long timeout_ms, char *errstr,
                   size_t errstr_size) __attribute__((warn_unused_result));

/* --healthcheck: probes `path` on the address in the environment variable
 * `setting` (or its default from the settings table) and returns the exit
 * status (0 healthy, 1 not), saying why on stderr. */
int otp_http_healthcheck(const char *program, const char *setting, const char *path);

#endif
