/* SPDX-License-Identifier: Apache-2.0 */
/* otp-worker's settings: every OTP_* value the worker reads, checked at start
 * with an error that names the setting (the table itself, with defaults and
 * help, is common/otp_config.c). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "otp_config.h"
#include "otp_paths.h"
#include "otp_phone.h"
#include "worker.h"

/* OTP_CALLER_ID_BY_COUNTRY: "cc:+E164[,cc:+E164]" (up to 32). */
static int caller_ids_load(worker_settings_t *c, char *err, size_t errsz)
{
    const char *p = otp_config_str("OTP_CALLER_ID_BY_COUNTRY");

    while (*p) {
        size_t k = strcspn(p, ",");
        const char *colon = memchr(p, ':', k);
        if (!colon || colon - p != 2 || k - 3 >= sizeof(c->caller_ids[0].number) ||
            c->n_caller_ids == 32) {
            snprintf(err, errsz,
                     "OTP_CALLER_ID_BY_COUNTRY: expected cc:+E164[,cc:+E164] (up to 32)");
            return -1;
        }
        memcpy(c->caller_ids[c->n_caller_ids].country, p, 2);
        c->caller_ids[c->n_caller_ids].country[2] = '\0';
        memcpy(c->caller_ids[c->n_caller_ids].number, colon + 1, k - 3);
        c->caller_ids[c->n_caller_ids].number[k - 3] = '\0';
        if (!otp_phone_is_e164(c->caller_ids[c->n_caller_ids].number)) {
            snprintf(err, errsz, "OTP_CALLER_ID_BY_COUNTRY: %.*s is not an E.164 number",
                     (int)(k - 3), colon + 1);
            return -1;
        }
        c->n_caller_ids++;
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

int worker_settings_load(worker_t *w, char *err, size_t errsz)
{
    worker_settings_t *c = &w->cfg;
    char voice_dir[1024];
    const char *dir = otp_config_str("OTP_LOCALE_DIR");

    c->topic_requests = otp_config_str("OTP_TOPIC_REQUESTS");
    c->topic_status = otp_config_str("OTP_TOPIC_STATUS");
    c->status_topic_per_service = otp_config_bool("OTP_STATUS_TOPIC_PER_SERVICE");
    c->topic_dlq = otp_config_str("OTP_TOPIC_DLQ");
    c->caller_id = otp_config_str("OTP_CALLER_ID");
    c->brand = otp_config_str("OTP_BRAND");
    if (otp_voice_brand_check(c->brand, err, errsz) != 0)
        return -1;
    c->callback_url = otp_config_str("OTP_CALLBACK_URL");
    c->gate_default = otp_config_bool("OTP_GATE_DEFAULT");
    c->amd_default = otp_config_bool("OTP_AMD_DEFAULT");
    c->sms_fallback_default = otp_config_bool("OTP_SMS_FALLBACK_DEFAULT");
    if (*otp_config_str("OTP_KEYPAD_SECRET_KEY")) {
        size_t bin_len = 0;
        const char *hex = otp_config_str("OTP_KEYPAD_SECRET_KEY");
        if (strlen(hex) != 64 ||
            sodium_hex2bin(c->keypad_sk, 32, hex, 64, NULL, &bin_len, NULL) != 0 || bin_len != 32) {
            snprintf(err, errsz,
                     "OTP_KEYPAD_SECRET_KEY: expected 64 hex characters (otp-worker --keygen)");
            return -1;
        }
        crypto_scalarmult_base(c->keypad_pk, c->keypad_sk);
        c->keypad_enabled = 1;
    }
    c->default_locale = otp_config_str("OTP_DEFAULT_LOCALE");
    c->code_length = (int)otp_config_int("OTP_CODE_LENGTH");
    c->ttl_s = (int)otp_config_int("OTP_TTL_SECONDS");
    c->max_attempts = (int)otp_config_int("OTP_MAX_ATTEMPTS");
    c->max_call_attempts = (int)otp_config_int("OTP_MAX_CALL_ATTEMPTS");
    c->policy.min_remaining_ms = otp_config_int("OTP_MIN_REMAINING_SECONDS") * 1000;
    c->policy.retry_base_ms = otp_config_int("OTP_RETRY_BASE_MS");
    c->policy.retry_cap_ms = otp_config_int("OTP_RETRY_CAP_MS");
    c->lease_s = (int)otp_config_int("OTP_LEASE_SECONDS");
    c->call_status_timeout_s = (int)otp_config_int("OTP_CALL_STATUS_TIMEOUT_SECONDS");
    c->fallback_after_s = (int)otp_config_int("OTP_FALLBACK_AFTER_SECONDS");
    c->call_timeout_ms = otp_config_int("OTP_CALL_TIMEOUT_MS");
    if ((long)c->lease_s * 1000 < c->call_timeout_ms + WORKER_LEASE_MARGIN_MS) {
        snprintf(err, errsz,
                 "OTP_LEASE_SECONDS=%d cannot outlive OTP_CALL_TIMEOUT_MS=%ld plus the %d ms"
                 " look-up margin: a lease that runs out under a live call request lets another"
                 " worker place a second call; set OTP_LEASE_SECONDS to at least %ld or lower"
                 " OTP_CALL_TIMEOUT_MS",
                 c->lease_s, c->call_timeout_ms, WORKER_LEASE_MARGIN_MS,
                 (c->call_timeout_ms + WORKER_LEASE_MARGIN_MS + 999) / 1000);
        return -1;
    }
    c->max_in_flight = (int)otp_config_int("OTP_MAX_IN_FLIGHT");
    snprintf(c->rate_per_s, sizeof(c->rate_per_s), "%.3f",
             (double)otp_config_int("OTP_VOIPBIN_RATE") / 1000.0);
    snprintf(c->burst, sizeof(c->burst), "%ld", otp_config_int("OTP_VOIPBIN_BURST"));
    if (*otp_config_str("OTP_WORKER_ID")) {
        snprintf(c->worker_id, sizeof(c->worker_id), "%s", otp_config_str("OTP_WORKER_ID"));
    } else {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        snprintf(c->worker_id, sizeof(c->worker_id), "%s-%d", host, (int)getpid());
    }
    if (!otp_phone_is_e164(c->caller_id)) {
        snprintf(err, errsz, "OTP_CALLER_ID=%s: expected an E.164 number such as +15550100000",
                 c->caller_id);
        return -1;
    }
    if (caller_ids_load(c, err, errsz) != 0)
        return -1;
    if (c->policy.min_remaining_ms >= (int64_t)c->ttl_s * 1000) {
        snprintf(err, errsz, "OTP_MIN_REMAINING_SECONDS must be below OTP_TTL_SECONDS");
        return -1;
    }
    if (limits_load(&w->limits, err, errsz) != 0 ||
        otp_policy_from_settings(&w->policy, err, errsz) != 0)
        return -1;
    if (otp_keyring_load(&w->keys, (int)otp_config_int("OTP_HASH_KEY_ID"),
                         otp_config_str("OTP_HASH_KEY"), otp_config_str("OTP_HASH_KEYS_PREVIOUS"),
                         err, errsz) != 0)
        return -1;
    if (*dir)
        snprintf(voice_dir, sizeof(voice_dir), "%s", dir);
    else
        otp_data_dir("locales", "common/locales", voice_dir, sizeof(voice_dir));
    w->voice = otp_voice_load(voice_dir, err, errsz);
    if (!w->voice)
        return -1;
    {
        /* "fr" or "en_GB" resolve like a request's locale; another language is an error. */
        const char *picked = otp_voice_pick(w->voice, "", "", c->default_locale);
        size_t lang = strcspn(c->default_locale, "-_");
        if (lang == 0 || strncasecmp(picked, c->default_locale, lang) != 0 || picked[lang] != '-') {
            snprintf(err, errsz, "OTP_DEFAULT_LOCALE=%.40s: no template for it in %.400s",
                     c->default_locale, voice_dir);
            return -1;
        }
        c->default_locale = picked;
    }
    return 0;
}
