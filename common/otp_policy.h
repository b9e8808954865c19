/* SPDX-License-Identifier: Apache-2.0 */
/* A service's policy: what one application sets for its codes and calls.
 * The deployment's OTP_* settings are the policy of the 'default' service and
 * the base of every other one: a service's row in PostgreSQL (services.policy)
 * holds only what it sets differently, as a JSON object whose keys are those
 * listed in otp_policy_apply. One value, copied from the base and changed by
 * the overrides, read by pointer from the services cache (otp_services.h). */
#ifndef OTP_POLICY_H
#define OTP_POLICY_H

#include <jansson.h>
#include <stddef.h>

#define OTP_SERVICE_MAX 32
#define OTP_SERVICE_DEFAULT "default"
#define OTP_POLICY_CALLER_IDS 32

/* Channels a service allows (policy "channels"). */
#define OTP_CH_VOICE 0x1u
#define OTP_CH_SMS 0x2u /* SMS as the channel, and the SMS fallback after failed calls */
#define OTP_CH_KEYPAD 0x4u
#define OTP_CH_GATE 0x8u
#define OTP_CH_AMD 0x10u
#define OTP_CH_ALL 0x1fu

typedef struct otp_policy {
    char service[OTP_SERVICE_MAX + 1];
    char brand[132];    /* spoken: 1-32 characters of UTF-8 */
    char caller_id[18]; /* E.164; "" where the program does not call */
    int n_caller_ids;
    struct {
        char country[3];
        char number[18];
    } caller_ids[OTP_POLICY_CALLER_IDS];
    int code_length, min_code_length; /* the default, and the fewest digits a request may ask */
    int ttl_s, max_ttl_s;             /* the default life, and the longest a request may ask */
    int max_attempts, max_call_attempts;
    unsigned channels;
    char countries[512]; /* ",us,de," or "" = every country */
    int limit_phone_15min, limit_phone_day, limit_user_hour, limit_country_hour; /* 0 = none */
    char default_locale[36];
    int max_failed_verify_per_hour;
    int fallback_after_s;
    /* The service's own words for its calls and texts (otp_voice.h), NULL
     * for the catalog's. Owned by the policy that otp_policy_apply set them
     * on (otp_policy_clear drops them): a copy of the value shares them and
     * must not outlive it. */
    json_t *templates;
    int disabled;
} otp_policy_t;

/* The deployment's policy from the OTP_* settings (after otp_config_load);
 * the settings a program does not read keep their defaults. service is
 * "default". -1 with errstr naming the setting. */
int otp_policy_from_settings(otp_policy_t *p, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Applies a service's overrides (a JSON object) to p, checking each value:
 *   brand, caller_id, caller_ids {"cc": "+E164"}, code_length, min_code_length,
 *   ttl_seconds, max_ttl_seconds, max_attempts, max_call_attempts,
 *   channels ["voice","sms","keypad","gate","amd"], countries ["us",...] ([] = all),
 *   limits {phone_15min, phone_day, user_hour, country_hour}, default_locale,
 *   max_failed_verify_per_hour, fallback_after_seconds,
 *   templates {"<locale>": {"<line>": "text"}} (otp_voice_templates_check).
 * A null value leaves the base's; templates replace the ones p held whole
 * ({} for none: the catalog's words). -1 with errstr ("policy.code_length: ...")
 * on an unknown key or a bad value; p is then partly changed. */
int otp_policy_apply(otp_policy_t *p, const json_t *overrides, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* Drops the templates p holds (when it set them: otp_policy_apply). */
void otp_policy_clear(otp_policy_t *p);

/* The same from JSON text. */
int otp_policy_apply_text(otp_policy_t *p, const char *json, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The policy as JSON (every key, effective values), for `otp-admin service
 * show`. A new reference, NULL when memory ran out. */
json_t *otp_policy_to_json(const otp_policy_t *p);

/* 1 when name is a valid service name: [a-z0-9][a-z0-9-]{0,31}, not "dlq". */
int otp_service_name_ok(const char *name);

/* The caller ID for a destination country: the country's own, else caller_id. */
const char *otp_policy_caller_id(const otp_policy_t *p, const char *country);

/* 1 when the service allows calls to country (two lower-case letters, "" for
 * numbers of no country, which only an empty list allows). */
int otp_policy_country_allowed(const otp_policy_t *p, const char *country);

/* Channel bit by name (OTP_CH_*), 0 for an unknown name. */
unsigned otp_policy_channel(const char *name);

#endif
