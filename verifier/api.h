/* SPDX-License-Identifier: Apache-2.0 */
/* The verifier's HTTP API (schema/verifier.openapi.yaml):
 *   POST /v1/verify                 {"request_id","code"} → verified / incorrect / rejected
 *   POST /v1/requests               an otp.requested event (the front door) → 202, on the topic
 *   GET  /v1/requests/{request_id}  the request's state (phone masked); ?wait=N
 *                                   answers when it changes (longpoll.h)
 *   OPTIONS /v1/...                 CORS preflight, for OTP_CORS_ORIGINS, no key
 *   POST /v1/webhooks/voipbin       VoIPBin call events, X-VoIPBIN-Signature checked, served
 *                                   only by api_webhook_handle on a listener of its own
 *                                   (OTP_WEBHOOK_LISTEN), which serves nothing else
 * /v1/verify and /v1/requests need "Authorization: Bearer <api key>", checked before the
 * body is read: a key bound to one service, with scopes (verify, create, read;
 * otp-admin key create). A key sees only its service's requests: another
 * service's request id answers exactly as an unknown one.
 * The admin endpoints GET /healthz, /readyz and /metrics are served by
 * api_admin_handle on their own address (OTP_VERIFIER_ADMIN_LISTEN). */
#ifndef OTP_VERIFIER_API_H
#define OTP_VERIFIER_API_H

#include <stdatomic.h>
#include <stddef.h>

#include "otp_crypto.h"
#include "otp_http.h"
#include "otp_services.h"
#include "front.h"
#include "ratelimit.h"
#include "longpoll.h"
#include "verify.h"

#define API_MAX_KEYS 16
/* GET /v1/requests/{id}?wait=N: the longest wait. */
#define API_MAX_WAIT_SECONDS 25

typedef struct api {
    const char *db_url;
    const char *webhook_secret;
    otp_keyring_t keys;
    /* OTP_API_KEY_HASHES: keys of the default service with every scope. */
    char api_key_hashes[API_MAX_KEYS][65];
    int n_api_keys;
    otp_services_t *services; /* services and their API keys, in memory */
    const char *topic_requests;
    size_t max_body;
    int max_failed_per_hour;
    front_t *front;       /* POST /v1/requests publishes through it */
    longpoll_t *longpoll; /* GET /v1/requests/{id}?wait=N waits through it */
    /* OTP_CORS_ORIGINS: origins whose pages may call /v1 from a browser
     * (comma-separated, exact); empty: none. */
    const char *cors_origins;
    /* API requests per client address (before the key is checked) and per
     * key; NULL = no limit. */
    ratelimit_t *per_address, *per_key;
    /* POST /v1/verify and keypad digits are checked through `checks`;
     * checks_open counts the connections suspended for a check (or resumed)
     * and not yet answered. */
    verify_pool_t *checks;
    verify_stats_t check_stats;
    atomic_int checks_open;
    atomic_llong verified, incorrect, rejected, bad_requests, unauthorized, forbidden;
    atomic_llong limited_address, limited_key;
    atomic_llong front_accepted, front_repeated, front_unavailable;
    atomic_llong webhooks, webhooks_bad_signature, webhooks_pending, db_errors;
    atomic_llong webhooks_not_ours, webhooks_dropped;
} api_t;

/* The front door's delivery report (front_done_fn): arg is the request's
 * context; resumes its connection. */
void api_front_done(void *arg, int err);

/* Parses OTP_API_KEY_HASHES ("hex,hex", empty = none). -1 with errstr on a bad entry. */
int api_load_key_hashes(api_t *a, const char *list, char *errstr, size_t errstr_size);

/* The OTP_API_KEY_HASHES keys as keys of the default service with every
 * scope (ids "env-1", "env-2", ...), into out (API_MAX_KEYS). Their count. */
int api_env_keys(const api_t *a, otp_api_key_t *out);

/* The body of GET /v1/requests/{id} (longpoll_read_fn; cls unused). */
char *api_status_body(void *cls, PGconn *conn, const char *id, const char *service,
                      unsigned *status, char version[17]);

/* 1 when origin is one of the comma-separated list's entries (exactly). */
int api_origin_allowed(const char *list, const char *origin);

/* The libmicrohttpd handlers of the API listener and of the webhook
 * listener (each answers 404 to the other's routes), and the completion
 * callback of both; cls is the api_t. */
otp_mhd_result api_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                          const char *version, const char *upload_data, size_t *upload_data_size,
                          void **con_cls);
otp_mhd_result api_webhook_handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls);
void api_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                   enum MHD_RequestTerminationCode toe);

/* The admin handler: /healthz (alive), /readyz (the database answers),
 * /metrics; cls is the api_t. */
otp_mhd_result api_admin_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);

#endif
