/* SPDX-License-Identifier: Apache-2.0 */
/* VoIPBin REST client (shared/reference/voipbin-api.md): POST /v1.0/calls and
 * GET /v1.0/calls on libcurl multi, many requests in flight, one thread.
 * The access key travels as ?accesskey= and is never logged.
 *
 * json_t ownership, the same rule as otp_outbox.h and worker/challenge.h: a
 * json_t * argument is stolen (released by the callee whatever the result);
 * a json_t ** result is a new reference the caller releases. */
#ifndef VOIPBIN_CLIENT_H
#define VOIPBIN_CLIENT_H

#include <jansson.h>
#include <stdint.h>

typedef struct vb_client vb_client_t;

/* How a failed request may be retried (DESIGN.md, retry policy). */
typedef enum {
    VB_OK = 0,
    VB_RETRY_SAFE, /* not placed for sure: connect failure, 429, 503 */
    VB_AMBIGUOUS,  /* may have been placed: timeout after sending, 500, other 5xx */
    VB_PERMANENT,  /* not placed, and retrying will not help: 400, 401, 402, 403, 404 */
} vb_class_t;

typedef struct vb_result {
    vb_class_t cls;
    long http_status;       /* 0 when no response */
    int64_t retry_after_ms; /* from Retry-After, 0 if none */
    char call_id[37];       /* calls[0].id (or the message id) on success */
    char reason[64];        /* error.reason, or a transport cause like "timeout" */
    char message[160];      /* error.message or curl's words */
} vb_result_t;

typedef void(vb_done_cb)(void *opaque, const vb_result_t *res);

/* base_url like "https://api.voipbin.net/v1.0". max_in_flight bounds the
 * transfers (and the memory). NULL on failure. */
vb_client_t *vb_client_new(const char *base_url, const char *access_key, int max_in_flight,
                           long timeout_ms);
void vb_client_destroy(vb_client_t *c);

/* Queues POST /v1.0/calls with source, one tel destination and inline actions
 * (stolen). cb runs from vb_client_perform. -1 when the in-flight window is
 * full or the request cannot be built. */
int vb_call_create(vb_client_t *c, const char *source, const char *destination, json_t *actions,
                   vb_done_cb *cb, void *opaque);

/* Queues POST /v1.0/messages (an SMS) with source, one tel destination and
 * text; on success res->call_id holds the message id. -1 when the window is full. */
int vb_message_create(vb_client_t *c, const char *source, const char *destination, const char *text,
                      vb_done_cb *cb, void *opaque);

/* Drops the requests queued since the last vb_client_perform (none of their
 * bytes has been sent), handing each opaque to free_opaque instead of calling
 * its callback. Returns how many were dropped. */
int vb_client_drop_unsent(vb_client_t *c, void (*free_opaque)(void *));

/* Runs transfers for up to timeout_ms (0 = only what is ready) and calls the
 * callbacks of finished ones; the wait ends early when wake_fd (-1: none) has
 * something to read. Returns the number still in flight. */
int vb_client_perform(vb_client_t *c, int timeout_ms, int wake_fd);
int vb_client_in_flight(const vb_client_t *c);

/* Classifies an HTTP status (or 0 + curl failure, with `sent` saying whether
 * the request had been fully sent). Exposed for the unit tests. */
vb_class_t vb_classify(long http_status, int transport_error, int sent);

/* Synchronous: finds a call to `destination` created at or after since_ms
 * (GET /v1.0/calls, newest first, paging until older). 1 found (id in
 * call_id_out), 0 none, -1 error. *requests_out: the GETs it sent (each
 * counts against the account's rate). Used after an ambiguous failure. */
int vb_find_call_since(vb_client_t *c, const char *destination, int64_t since_ms,
                       char call_id_out[37], int *requests_out);

/* Synchronous: GET /v1.0/calls/{id}. 1 with *call_out (a new reference to
 * the Call object, caller decrefs), 0 when VoIPBin answers 404 (no such
 * call), -1 on any other failure. One request against the account's rate.
 * Used when a call's webhooks do not come. */
int vb_call_get(vb_client_t *c, const char *call_id, json_t **call_out);

/* Synchronous: POST /v1.0/calls/{id}/hangup (idempotent at VoIPBin: a call
 * already ending or ended answers 200 with its current state). 1 done (200;
 * *status_out, if not NULL, gets the call's status, 16 bytes), 0 no such call
 * (404), -1 worth another try (network, timeout, 429, 5xx), -2 refused (any
 * other answer). One request against the account's rate. */
int vb_call_hangup(vb_client_t *c, const char *call_id, char status_out[16]);

#endif
