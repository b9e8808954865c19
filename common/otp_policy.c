/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_phone.h"
#include "otp_voice.h"

static const struct {
    const char *name;
    unsigned bit;
} channel_names[] = {
    {"voice", OTP_CH_VOICE}, {"sms", OTP_CH_SMS}, {"keypad", OTP_CH_KEYPAD},
    {"gate", OTP_CH_GATE},   {"amd", OTP_CH_AMD},
};

unsigned otp_policy_channel(const char *name)
{
    for (size_t i = 0; i < sizeof(channel_names) / sizeof(channel_names[0]); i++)
        if (strcmp(name, channel_names[i].name) == 0)
            return channel_names[i].bit;
    return 0;
}

int otp_service_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > OTP_SERVICE_MAX || name[0] == '-' || strcmp(name, "dlq") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '-'))
            return 0;
    return 1;
}

const char *otp_policy_caller_id(const otp_policy_t *p, const char *country)
{
    for (int i = 0; i < p->n_caller_ids; i++)
        if (strcmp(p->caller_ids[i].country, country) == 0)
            return p->caller_ids[i].number;
    return p->caller_id;
}

int otp_policy_country_allowed(const otp_policy_t *p, const char *country)
{
    char needle[8];

    if (!p->countries[0])
        return 1;
    if (!country || strlen(country) != 2)
        return 0;
    snprintf(needle, sizeof(needle), ",%s,", country);
    return strstr(p->countries, needle) != NULL;
}

static int country_code_ok(const char *s, size_t n)
{
    return n == 2 && islower((unsigned char)s[0]) && islower((unsigned char)s[1]);
}

/* ",us,de," from "us,de" (a setting) or ["us","de"] (a policy). */
static int countries_add(otp_policy_t *p, const char *cc, size_t n, size_t *used)
{
    if (!country_code_ok(cc, n) || *used + n + 2 > sizeof(p->countries))
        return -1;
    if (*used == 0)
        p->countries[(*used)++] = ',';
    memcpy(p->countries + *used, cc, n);
    *used += n;
    p->countries[(*used)++] = ',';
    p->countries[*used] = '\0';
    return 0;
}

static int caller_id_add(otp_policy_t *p, const char *cc, size_t ccn, const char *num, size_t n)
{
    if (!country_code_ok(cc, ccn) || n >= sizeof(p->caller_ids[0].number) ||
        p->n_caller_ids == OTP_POLICY_CALLER_IDS)
        return -1;
    memcpy(p->caller_ids[p->n_caller_ids].country, cc, 2);
    p->caller_ids[p->n_caller_ids].country[2] = '\0';
    memcpy(p->caller_ids[p->n_caller_ids].number, num, n);
    p->caller_ids[p->n_caller_ids].number[n] = '\0';
    if (!otp_phone_is_e164(p->caller_ids[p->n_caller_ids].number))
        return -1;
    p->n_caller_ids++;
    return 0;
}

int otp_policy_from_settings(otp_policy_t *p, char *err, size_t errsz)
{
    const char *s;
    size_t used = 0;

    memset(p, 0, sizeof(*p));
    snprintf(p->service, sizeof(p->service), "%s", OTP_SERVICE_DEFAULT);
    snprintf(p->brand, sizeof(p->brand), "%s", otp_config_str("OTP_BRAND"));
    snprintf(p->caller_id, sizeof(p->caller_id), "%s", otp_config_str("OTP_CALLER_ID"));
    p->code_length = (int)otp_config_int("OTP_CODE_LENGTH");
    p->min_code_length = OTP_CODE_MIN;
    p->ttl_s = (int)otp_config_int("OTP_TTL_SECONDS");
    p->max_ttl_s = 600;
    p->max_attempts = (int)otp_config_int("OTP_MAX_ATTEMPTS");
    p->max_call_attempts = (int)otp_config_int("OTP_MAX_CALL_ATTEMPTS");
    p->channels = OTP_CH_ALL;
    p->limit_phone_15min = (int)otp_config_int("OTP_LIMIT_PHONE_15MIN");
    p->limit_phone_day = (int)otp_config_int("OTP_LIMIT_PHONE_DAY");
    p->limit_user_hour = (int)otp_config_int("OTP_LIMIT_USER_HOUR");
    p->limit_country_hour = (int)otp_config_int("OTP_LIMIT_COUNTRY_HOUR");
    snprintf(p->default_locale, sizeof(p->default_locale), "%s",
             otp_config_str("OTP_DEFAULT_LOCALE"));
    p->max_failed_verify_per_hour = (int)otp_config_int("OTP_MAX_FAILED_VERIFY_PER_HOUR");
    s = otp_config_str("OTP_FALLBACK_AFTER_SECONDS");
    p->fallback_after_s = s && *s ? (int)otp_config_int("OTP_FALLBACK_AFTER_SECONDS") : 20;

    for (s = otp_config_str("OTP_COUNTRY_ALLOWLIST"); s && *s;) {
        size_t k = strcspn(s, ",");
        if (countries_add(p, s, k, &used) != 0) {
            snprintf(err, errsz,
                     "OTP_COUNTRY_ALLOWLIST: expected lower-case ISO country codes like us "
                     "separated by commas");
            return -1;
        }
        s += k + (s[k] == ',');
    }
    for (s = otp_config_str("OTP_CALLER_ID_BY_COUNTRY"); s && *s;) {
        size_t k = strcspn(s, ",");
        const char *colon = memchr(s, ':', k);
        if (!colon ||
            caller_id_add(p, s, (size_t)(colon - s), colon + 1, k - (size_t)(colon - s) - 1) != 0) {
            snprintf(err, errsz,
                     "OTP_CALLER_ID_BY_COUNTRY: expected cc:+E164[,cc:+E164] (up to %d)",
                     OTP_POLICY_CALLER_IDS);
            return -1;
        }
        s += k + (s[k] == ',');
    }
    return 0;
}

/* One integer key of the overrides (at path, e.g. "limits.") within [min, max];
 * absent or null: kept. */
static int int_at(const json_t *o, const char *path, const char *key, int *dst, long min, long max,
                  char *err, size_t errsz)
{
    json_t *v = json_object_get(o, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errsz, "policy.%s%s: expected a whole number %ld-%ld", path, key, min, max);
        return -1;
    }
    *dst = (int)json_integer_value(v);
    return 0;
}

static int int_key(const json_t *o, const char *key, int *dst, long min, long max, char *err,
                   size_t errsz)
{
    return int_at(o, "", key, dst, min, max, err, errsz);
}

static int str_key(const json_t *o, const char *key, const json_t **out, char *err, size_t errsz)
{
    json_t *v = json_object_get(o, key);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(err, errsz, "policy.%s: expected a string", key);
        return -1;
    }
    *out = v;
    return 0;
}

static int apply_strings(otp_policy_t *p, const json_t *o, char *err, size_t errsz)
{
    const json_t *v;

    if (str_key(o, "brand", &v, err, errsz) != 0)
        return -1;
    if (v) {
        char e[200];
        if (otp_voice_brand_check(json_string_value(v), e, sizeof(e)) != 0) {
            const char *why = strncmp(e, "OTP_BRAND: ", 11) == 0 ? e + 11 : e;
            snprintf(err, errsz, "policy.brand: %s", why);
            return -1;
        }
        snprintf(p->brand, sizeof(p->brand), "%s", json_string_value(v));
    }
    if (str_key(o, "caller_id", &v, err, errsz) != 0)
        return -1;
    if (v) {
        if (!otp_phone_is_e164(json_string_value(v))) {
            snprintf(err, errsz, "policy.caller_id: expected an E.164 number such as +15550100000");
            return -1;
        }
        snprintf(p->caller_id, sizeof(p->caller_id), "%s", json_string_value(v));
    }
    if (str_key(o, "default_locale", &v, err, errsz) != 0)
        return -1;
    if (v) {
        const char *l = json_string_value(v);
        size_t n = strlen(l);
        if (n < 2 || n >= sizeof(p->default_locale) ||
            strspn(l, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != n) {
            snprintf(err, errsz, "policy.default_locale: expected a BCP-47 tag such as de-DE");
            return -1;
        }
        snprintf(p->default_locale, sizeof(p->default_locale), "%s", l);
    }
    return 0;
}

static int apply_lists(otp_policy_t *p, const json_t *o, char *err, size_t errsz)
{
    json_t *v = json_object_get(o, "channels"), *e;
    const char *k;
    size_t i, used = 0;

    if (v && !json_is_null(v)) {
        unsigned ch = 0;
        if (!json_is_array(v))
            goto bad_channels;
        json_array_foreach(v, i, e)
        {
            unsigned bit = json_is_string(e) ? otp_policy_channel(json_string_value(e)) : 0;
            if (!bit)
                goto bad_channels;
            ch |= bit;
        }
        if (!(ch & (OTP_CH_VOICE | OTP_CH_SMS | OTP_CH_KEYPAD)))
            goto bad_channels;
        p->channels = ch;
    }
    v = json_object_get(o, "countries");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v))
            goto bad_countries;
        p->countries[0] = '\0';
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e) ||
                countries_add(p, json_string_value(e), json_string_length(e), &used) != 0)
                goto bad_countries;
        }
    }
    v = json_object_get(o, "caller_ids");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            goto bad_caller_ids;
        p->n_caller_ids = 0;
        json_object_foreach(v, k, e)
        {
            if (!json_is_string(e) ||
                caller_id_add(p, k, strlen(k), json_string_value(e), json_string_length(e)) != 0)
                goto bad_caller_ids;
        }
    }
    return 0;
bad_channels:
    snprintf(err, errsz,
             "policy.channels: expected a list of voice, sms, keypad, gate, amd with at least "
             "one of voice, sms, keypad");
    return -1;
bad_countries:
    snprintf(err, errsz,
             "policy.countries: expected a list of lower-case ISO country codes like \"us\" "
             "([] = every country)");
    return -1;
bad_caller_ids:
    snprintf(err, errsz,
             "policy.caller_ids: expected {\"cc\": \"+E164\", ...} with lower-case country "
             "codes (up to %d)",
             OTP_POLICY_CALLER_IDS);
    return -1;
}

static const char *const known_keys[] = {
    "brand",
    "caller_id",
    "caller_ids",
    "code_length",
    "min_code_length",
    "ttl_seconds",
    "max_ttl_seconds",
    "max_attempts",
    "max_call_attempts",
    "channels",
    "countries",
    "limits",
    "default_locale",
    "max_failed_verify_per_hour",
    "fallback_after_seconds",
    "templates",
};

int otp_policy_apply(otp_policy_t *p, const json_t *o, char *err, size_t errsz)
{
    const char *key;
    json_t *v, *lim;

    if (!json_is_object(o)) {
        snprintf(err, errsz, "policy: expected a JSON object");
        return -1;
    }
    json_object_foreach((json_t *)o, key, v)
    {
        size_t i, n = sizeof(known_keys) / sizeof(known_keys[0]);
        for (i = 0; i < n && strcmp(key, known_keys[i]) != 0; i++)
            ;
        if (i == n) {
            snprintf(err, errsz, "policy.%.40s: not a policy key", key);
            return -1;
        }
    }
    if (apply_strings(p, o, err, errsz) != 0 || apply_lists(p, o, err, errsz) != 0 ||
        int_key(o, "code_length", &p->code_length, OTP_CODE_MIN, OTP_CODE_MAX, err, errsz) ||
        int_key(o, "min_code_length", &p->min_code_length, OTP_CODE_MIN, OTP_CODE_MAX, err,
                errsz) ||
        int_key(o, "ttl_seconds", &p->ttl_s, 60, 600, err, errsz) ||
        int_key(o, "max_ttl_seconds", &p->max_ttl_s, 60, 600, err, errsz) ||
        int_key(o, "max_attempts", &p->max_attempts, 1, 20, err, errsz) ||
        int_key(o, "max_call_attempts", &p->max_call_attempts, 1, 10, err, errsz) ||
        int_key(o, "max_failed_verify_per_hour", &p->max_failed_verify_per_hour, 1, 100000, err,
                errsz) ||
        int_key(o, "fallback_after_seconds", &p->fallback_after_s, 5, 600, err, errsz))
        return -1;
    lim = json_object_get(o, "limits");
    if (lim && !json_is_null(lim)) {
        if (!json_is_object(lim)) {
            snprintf(err, errsz, "policy.limits: expected an object");
            return -1;
        }
        json_object_foreach(lim, key, v)
        {
            if (strcmp(key, "phone_15min") && strcmp(key, "phone_day") &&
                strcmp(key, "user_hour") && strcmp(key, "country_hour")) {
                snprintf(err, errsz,
                         "policy.limits.%.40s: not a limit (phone_15min, phone_day, user_hour, "
                         "country_hour)",
                         key);
                return -1;
            }
        }
        if (int_at(lim, "limits.", "phone_15min", &p->limit_phone_15min, 0, 1000, err, errsz) ||
            int_at(lim, "limits.", "phone_day", &p->limit_phone_day, 0, 10000, err, errsz) ||
            int_at(lim, "limits.", "user_hour", &p->limit_user_hour, 0, 10000, err, errsz) ||
            int_at(lim, "limits.", "country_hour", &p->limit_country_hour, 0, 100000000, err,
                   errsz))
            return -1;
    }
    v = json_object_get(o, "templates");
    if (v && !json_is_null(v)) {
        char why[200];
        if (otp_voice_templates_check(v, why, sizeof(why)) != 0) {
            snprintf(err, errsz, "policy.%s", why);
            return -1;
        }
        json_decref(p->templates);
        p->templates = NULL;
        if (json_object_size(v) > 0 && !(p->templates = json_deep_copy(v))) {
            snprintf(err, errsz, "policy.templates: out of memory");
            return -1;
        }
    }
    if (p->min_code_length > p->code_length) {
        snprintf(err, errsz, "policy.min_code_length: %d is above code_length %d",
                 p->min_code_length, p->code_length);
        return -1;
    }
    if (p->ttl_s > p->max_ttl_s) {
        snprintf(err, errsz, "policy.max_ttl_seconds: %d is below ttl_seconds %d", p->max_ttl_s,
                 p->ttl_s);
        return -1;
    }
    return 0;
}

int otp_policy_apply_text(otp_policy_t *p, const char *text, char *err, size_t errsz)
{
    json_error_t jerr;
    json_t *o = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &jerr);
    int rc;

    if (!o) {
        snprintf(err, errsz, "policy: not JSON (%s)", jerr.text);
        return -1;
    }
    rc = otp_policy_apply(p, o, err, errsz);
    json_decref(o);
    return rc;
}

void otp_policy_clear(otp_policy_t *p)
{
    json_decref(p->templates);
    p->templates = NULL;
}

json_t *otp_policy_to_json(const otp_policy_t *p)
{
    json_t *ch = json_array(), *cc = json_array(), *ids = json_object();
    const char *c;

    for (size_t i = 0; i < sizeof(channel_names) / sizeof(channel_names[0]); i++)
        if (p->channels & channel_names[i].bit)
            json_array_append_new(ch, json_string(channel_names[i].name));
    for (c = p->countries; c && *c && c[1];) {
        const char *next = strchr(c + 1, ',');
        if (!next)
            break;
        json_array_append_new(cc, json_stringn(c + 1, (size_t)(next - c - 1)));
        c = next;
    }
    for (int i = 0; i < p->n_caller_ids; i++)
        json_object_set_new(ids, p->caller_ids[i].country, json_string(p->caller_ids[i].number));
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:i, s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:{s:i, s:i, s:i, "
                  "s:i}, s:s, s:i, s:i}",
                  "brand", p->brand, "caller_id", p->caller_id, "caller_ids", ids, "code_length",
                  p->code_length, "min_code_length", p->min_code_length, "ttl_seconds", p->ttl_s,
                  "max_ttl_seconds", p->max_ttl_s, "max_attempts", p->max_attempts,
                  "max_call_attempts", p->max_call_attempts, "channels", ch, "countries", cc,
                  "limits", "phone_15min", p->limit_phone_15min, "phone_day", p->limit_phone_day,
                  "user_hour", p->limit_user_hour, "country_hour", p->limit_country_hour,
                  "default_locale", p->default_locale, "max_failed_verify_per_hour",
                  p->max_failed_verify_per_hour, "fallback_after_seconds", p->fallback_after_s);

    if (o)
        json_object_set_new(o, "templates",
                            p->templates ? json_deep_copy(p->templates) : json_object());
    return o;
}
