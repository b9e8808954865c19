/* The verifier's HTTP API (schema/verifier.openapi.yaml):
 *   POST /v1/verify                 {"request_id","code"} → verified / incorrect / rejected
 *   POST /v1/requests               an otp.requested event (the front door) → 202, on the topic
 *   GET  /v1/requests/{request_id}  the request's state (phone masked)
 *   POST /v1/webhooks/voipbin       VoIPBin call events, X-VoIPBIN-Signature checked, served
 *                                   only by api_webhook_handle on a listener of its own
 *                                   (OTP_WEBHOOK_LISTEN), which serves nothing else
 * /v1/verify and /v1/requests need "Authorization: Bearer <api key>", checked before the
 * body is read.
 * The admin endpoints GET /healthz, /readyz and /metrics are served by
 * api_admin_handle on their own address (OTP_VERIFIER_ADMIN_LISTEN). */
#ifndef OTP_VERIFIER_API_H
#define OTP_VERIFIER_API_H

#include <stdatomic.h>
#include <stddef.h>

#include "otp_crypto.h"
#include "otp_http.h"
#include "front.h"
#include "ratelimit.h"
#include "verify.h"

#define API_MAX_KEYS 16

typedef struct api {
    const char *db_url;
    const char *webhook_secret;
    otp_keyring_t keys;
    char api_key_hashes[API_MAX_KEYS][65];
    int n_api_keys;
    size_t max_body;
    int max_failed_per_hour;
    front_t *front; /* POST /v1/requests publishes through it */
    /* API requests per client address (before the key is checked) and per
     * key; NULL = no limit. */
    ratelimit_t *per_address, *per_key;
    /* POST /v1/verify and keypad digits are checked through `checks`;
     * checks_open counts the connections suspended for a check (or resumed)
     * and not yet answered. */
    verify_pool_t *checks;
    verify_stats_t check_stats;
    atomic_int checks_open;
    atomic_llong verified, incorrect, rejected, bad_requests, unauthorized;
    atomic_llong limited_address, limited_key;
    atomic_llong front_accepted, front_repeated, front_unavailable;
    atomic_llong webhooks, webhooks_bad_signature, webhooks_pending, db_errors;
    atomic_llong webhooks_not_ours, webhooks_dropped;
} api_t;

/* The front door's delivery report (front_done_fn): arg is the request's
 * context; resumes its connection. */
void api_front_done(void *arg, int err);

/* Parses OTP_API_KEY_HASHES ("hex,hex"). -1 with errstr on a bad entry. */
int api_load_key_hashes(api_t *a, const char *list, char *errstr, size_t errstr_size);

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
