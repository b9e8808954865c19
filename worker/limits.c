#include "limits.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_config.h"
#include "otp_db.h"

/* Requests that count against a budget: every one that was let through. */
#define COUNTED "status NOT IN ('rate_limited', 'blocked')"

static int load_list(char *dst, size_t size, const char *setting, int phone_prefixes, char *errstr,
                     size_t errstr_size)
{
    const char *p = otp_config_str(setting);
    size_t n = 0;

    dst[n++] = ',';
    while (*p) {
        size_t k = strcspn(p, ",");
        int ok = k > 0;
        for (size_t i = 0; i < k && ok; i++) {
            char c = p[i];
            ok = phone_prefixes ? (i == 0 ? c == '+' : isdigit((unsigned char)c))
                                : (islower((unsigned char)c) && k == 2);
        }
        if (!ok || n + k + 2 > size) {
            snprintf(errstr, errstr_size, "%s: expected %s separated by commas", setting,
                     phone_prefixes ? "prefixes like +1900" : "lower-case ISO country codes like us");
            return -1;
        }
        memcpy(dst + n, p, k);
        n += k;
        dst[n++] = ',';
        p += k;
        if (*p == ',')
            p++;
    }
    dst[n] = '\0';
    if (n == 1)
        dst[0] = '\0';
    return 0;
}

int limits_load(limits_cfg_t *l, char *errstr, size_t errstr_size)
{
    l->phone_15min = (int)otp_config_int("OTP_LIMIT_PHONE_15MIN");
    l->phone_day = (int)otp_config_int("OTP_LIMIT_PHONE_DAY");
    l->user_hour = (int)otp_config_int("OTP_LIMIT_USER_HOUR");
    l->country_hour = (int)otp_config_int("OTP_LIMIT_COUNTRY_HOUR");
    l->global_hour = (int)otp_config_int("OTP_LIMIT_GLOBAL_HOUR");
    if (load_list(l->allow, sizeof(l->allow), "OTP_COUNTRY_ALLOWLIST", 0, errstr, errstr_size) ||
        load_list(l->premium, sizeof(l->premium), "OTP_PREMIUM_PREFIXES", 1, errstr, errstr_size))
        return -1;
    return 0;
}

long limits_global_count(PGconn *db)
{
    PGresult *r = otp_db_query(db, "limits_global",
                               "SELECT count(*) FROM challenges"
                               " WHERE created_at > now() - interval '1 hour' AND " COUNTED,
                               0, NULL);
    long n;

    if (!r)
        return -1;
    n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static int premium(const limits_cfg_t *l, const char *phone)
{
    const char *p = l->premium;

    while (p && *p) {
        const char *next = strchr(p + 1, ',');
        size_t k = next ? (size_t)(next - p - 1) : 0;
        if (k > 0 && strncmp(phone, p + 1, k) == 0)
            return 1;
        p = next;
    }
    return 0;
}

const char *limits_check(PGconn *db, const limits_cfg_t *l, const char *phone, const char *country,
                         const char *user_id, long global_accepted, char *reason,
                         size_t reason_size, int *db_error)
{
    const char *p[3] = {phone, user_id, country};
    PGresult *r;
    long phone_15, phone_day, user_hour, country_hour;

    *db_error = 0;
    if (l->allow[0]) {
        char needle[8];
        snprintf(needle, sizeof(needle), ",%s,", country);
        if (!*country || !strstr(l->allow, needle)) {
            snprintf(reason, reason_size, "country_not_allowed");
            return "blocked";
        }
    }
    if (premium(l, phone)) {
        snprintf(reason, reason_size, "premium_rate_prefix");
        return "blocked";
    }
    if (l->global_hour && global_accepted >= l->global_hour) {
        snprintf(reason, reason_size, "global_hourly_cap");
        return "rate_limited";
    }
    if (!l->phone_15min && !l->phone_day && !l->user_hour && !l->country_hour)
        return NULL;
    r = otp_db_query(db, "limits_counts",
                     "SELECT"
                     " (SELECT count(*) FROM challenges WHERE phone = $1 AND " COUNTED
                     "    AND created_at > now() - interval '15 minutes'),"
                     " (SELECT count(*) FROM challenges WHERE phone = $1 AND " COUNTED
                     "    AND created_at > now() - interval '1 day'),"
                     " (SELECT count(*) FROM challenges WHERE user_id = $2 AND " COUNTED
                     "    AND created_at > now() - interval '1 hour'),"
                     " (SELECT count(*) FROM challenges WHERE country = $3 AND " COUNTED
                     "    AND created_at > now() - interval '1 hour')",
                     3, p);
    if (!r) {
        *db_error = 1;
        return NULL;
    }
    phone_15 = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    phone_day = strtol(PQgetvalue(r, 0, 1), NULL, 10);
    user_hour = strtol(PQgetvalue(r, 0, 2), NULL, 10);
    country_hour = strtol(PQgetvalue(r, 0, 3), NULL, 10);
    PQclear(r);
    if (l->phone_15min && phone_15 >= l->phone_15min)
        snprintf(reason, reason_size, "phone_15min");
    else if (l->phone_day && phone_day >= l->phone_day)
        snprintf(reason, reason_size, "phone_day");
    else if (l->user_hour && user_hour >= l->user_hour)
        snprintf(reason, reason_size, "user_hour");
    else if (l->country_hour && country_hour >= l->country_hour)
        snprintf(reason, reason_size, "country_hour");
    else
        return NULL;
    return "rate_limited";
}
