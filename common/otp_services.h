/* SPDX-License-Identifier: Apache-2.0 */
/* The services and API keys of a deployment, kept in memory (sql/015):
 * loaded at start, loaded again whenever NOTIFY otp_services says a service
 * or a key changed (a trigger sends it), so a change reaches every program
 * within about a second without a query per request.
 *
 * A load makes a new immutable set; readers hold the set they acquired until
 * they release it, so a reload never changes a policy under a reader. Every
 * function is thread-safe. */
#ifndef OTP_SERVICES_H
#define OTP_SERVICES_H

#include <stddef.h>
#include <stdint.h>

#include "otp_policy.h"

/* API key scopes. */
#define OTP_SCOPE_CREATE 0x1u
#define OTP_SCOPE_VERIFY 0x2u
#define OTP_SCOPE_READ 0x4u
#define OTP_SCOPE_ALL 0x7u

typedef struct otp_api_key {
    char id[40];
    char service[OTP_SERVICE_MAX + 1];
    unsigned char hash[32]; /* SHA-256 of the key */
    unsigned scopes;
    int64_t expires_ms; /* 0 = never */
} otp_api_key_t;

typedef struct otp_svc_set otp_svc_set_t;
typedef struct otp_services otp_services_t;

/* Loads the services (each a copy of *base changed by its overrides) and,
 * with_keys, the API keys (those of the database, then the `extra` ones, e.g.
 * from OTP_API_KEY_HASHES; a program without keys, the worker, never reads
 * api_keys), then starts the thread that reloads them. A service
 * whose stored policy no longer passes otp_policy_apply is logged and kept
 * disabled. NULL with errstr when the first load fails. */
otp_services_t *otp_services_start(const char *db_url, const otp_policy_t *base, int with_keys,
                                   const otp_api_key_t *extra, int n_extra, char *errstr,
                                   size_t errstr_size);
/* Stops the thread and frees; sets still acquired stay valid until released. NULL-safe. */
void otp_services_stop(otp_services_t *s);

/* Loads again now (also what the thread does on a notification). 0 ok, -1 the
 * database did not answer (the last set stays). */
int otp_services_reload(otp_services_t *s);

/* The current set, held until otp_services_release. */
const otp_svc_set_t *otp_services_acquire(otp_services_t *s);
void otp_services_release(const otp_svc_set_t *set);

/* A service by name; NULL when there is none. (Disabled ones are found: the
 * caller decides.) */
const otp_policy_t *otp_svc_find(const otp_svc_set_t *set, const char *name);
/* The key whose SHA-256 is hash; NULL when none (revoked keys are not loaded;
 * an expired one is returned: check expires_ms). */
const otp_api_key_t *otp_svc_key(const otp_svc_set_t *set, const unsigned char hash[32]);
/* How many services and keys the set holds; its load number (1, 2, ...). */
int otp_svc_count(const otp_svc_set_t *set);
int otp_svc_key_count(const otp_svc_set_t *set);
long otp_svc_generation(const otp_svc_set_t *set);

/* Topics: a service's requests arrive on base + "." + name; base itself is
 * the default service's. The service a topic carries into out (NULL when the
 * topic is not one of them). */
const char *otp_services_topic_service(const char *base, const char *topic,
                                       char out[OTP_SERVICE_MAX + 1]);
/* base + "." + name, or base for the default service. */
int otp_services_topic(const char *base, const char *service, char *out, size_t size);
/* The subscription pattern of every service topic but base itself: "^" base
 * "\." name "$" for any valid name except the suffix of dlq_topic when it is
 * base + "." + a name (so the workers never consume their own dead letters).
 * Plain POSIX extended syntax, as librdkafka accepts. -1 when out is short. */
int otp_services_topic_pattern(const char *base, const char *dlq_topic, char *out, size_t size);

/* Parses scopes "create,verify,read" into OTP_SCOPE_* bits; 0 on a bad list. */
unsigned otp_scopes_parse(const char *list);
/* "create,verify,read" of bits into out. */
void otp_scopes_format(unsigned scopes, char *out, size_t size);

#endif
