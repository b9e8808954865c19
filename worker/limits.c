/* SPDX-License-Identifier: Apache-2.0 */
#include "limits.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_config.h"
#include "otp_db.h"
#include "otp_phonenumber.h"
#include "otp_retention.h"

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
                     phone_prefixes ? "prefixes like +1900"
                                    : "lower-case ISO country codes like us");
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

/* OTP_BLOCKED_NUMBER_TYPES: names as otp_pn_type_name spells them. */
static int load_types(unsigned *mask, char *errstr, size_t errstr_size)
{
    const char *p = otp_config_str("OTP_BLOCKED_NUMBER_TYPES");

    *mask = 0;
    while (*p) {
        size_t k = strcspn(p, ",");
        int t = otp_pn_type_from_name(p, k);
        if (t < 0) {
            snprintf(errstr, errstr_size,
                     "OTP_BLOCKED_NUMBER_TYPES: \"%.*s\" is not a number type (premium_rate,"
                     " shared_cost, uan, personal_number, pager, voip, toll_free, ...)",
                     (int)(k > 32 ? 32 : k), p);
            return -1;
        }
        *mask |= 1u << t;
        p += k;
        if (*p == ',')
            p++;
    }
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
        load_list(l->premium, sizeof(l->premium), "OTP_PREMIUM_PREFIXES", 1, errstr, errstr_size) ||
        load_types(&l->blocked_types, errstr, errstr_size))
        return -1;
    snprintf(l->hash_key, sizeof(l->hash_key), "%s", otp_config_str("OTP_HASH_KEY"));
    return 0;
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

limits_verdict_t limits_decide(const limits_cfg_t *l, const otp_policy_t *svc, const char *phone,
                               const otp_pn_info_t *pn, const char *country,
                               const limits_counts_t *c, const char **reason)
{
    const char *allow = svc ? svc->countries : l->allow;
    int phone_15min = svc ? svc->limit_phone_15min : l->phone_15min;
    int phone_day = svc ? svc->limit_phone_day : l->phone_day;
    int user_hour = svc ? svc->limit_user_hour : l->user_hour;
    int country_hour = svc ? svc->limit_country_hour : l->country_hour;

    if (allow[0]) {
        char needle[8];
        snprintf(needle, sizeof(needle), ",%s,", country);
        if (!*country || !strstr(allow, needle)) {
            *reason = "country_not_allowed";
            return LIMITS_BLOCKED;
        }
    }
    if (l->blocked_types) {
        static const char *const type_reason[OTP_PN_NTYPES] = {
            "number_type_fixed_line",
            "number_type_mobile",
            "number_type_fixed_line_or_mobile",
            "number_type_toll_free",
            "number_type_premium_rate",
            "number_type_shared_cost",
            "number_type_voip",
            "number_type_personal_number",
            "number_type_pager",
            "number_type_uan",
            "number_type_voicemail",
            "number_type_unknown",
        };
        otp_pn_info_t info;
        if (!pn && otp_pn_lookup(phone, &info) == 0)
            pn = &info;
        if (pn && (l->blocked_types & (1u << pn->type))) {
            *reason = type_reason[pn->type];
            return LIMITS_BLOCKED;
        }
    }
    if (premium(l, phone)) {
        *reason = "premium_rate_prefix";
        return LIMITS_BLOCKED;
    }
    if (l->global_hour && c->global_hour >= l->global_hour)
        *reason = "global_hourly_cap";
    else if (phone_15min && c->phone_15min >= phone_15min)
        *reason = "phone_15min";
    else if (phone_day && c->phone_day >= phone_day)
        *reason = "phone_day";
    else if (user_hour && c->user_hour >= user_hour)
        *reason = "user_hour";
    else if (country_hour && c->country_hour >= country_hour)
        *reason = "country_hour";
    else
        return LIMITS_ALLOW;
    return LIMITS_RATE_LIMITED;
}

const char *limits_verdict_name(limits_verdict_t v)
{
    switch (v) {
    case LIMITS_BLOCKED:
        return "blocked";
    case LIMITS_RATE_LIMITED:
        return "rate_limited";
    case LIMITS_ALLOW:
    default:
        return NULL;
    }
}

/* ---- the ledger ---- */

/* Scopes as stored in budget_counts.scope. */
#define SCOPE_PHONE 'p'
#define SCOPE_USER 'u'
#define SCOPE_COUNTRY 'c'
#define SCOPE_GLOBAL 'g'

typedef struct ledger_entry {
    char scope;
    char *key;
    long n15, hour, day; /* before the batch */
    long added;          /* accepted in the batch */
} ledger_entry_t;

struct limits_ledger {
    const limits_cfg_t *cfg;
    ledger_entry_t *e;
    int n, cap;
    int *slot; /* open addressing: index into e, -1 = free */
    int nslots;
};

static uint32_t key_hash(char scope, const char *key)
{
    uint32_t h = 2166136261u ^ (unsigned char)scope;

    h *= 16777619u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    return h;
}

static int find_slot(const limits_ledger_t *lg, char scope, const char *key)
{
    int i = (int)(key_hash(scope, key) & (uint32_t)(lg->nslots - 1));

    while (lg->slot[i] >= 0) {
        const ledger_entry_t *e = &lg->e[lg->slot[i]];
        if (e->scope == scope && strcmp(e->key, key) == 0)
            break;
        i = (i + 1) & (lg->nslots - 1);
    }
    return i;
}

static ledger_entry_t *lookup(const limits_ledger_t *lg, char scope, const char *key)
{
    int i = find_slot(lg, scope, key);
    return lg->slot[i] >= 0 ? &lg->e[lg->slot[i]] : NULL;
}

static int grow(limits_ledger_t *lg)
{
    int nslots = lg->nslots * 2;
    int *slot = malloc(sizeof(int) * (size_t)nslots);
    ledger_entry_t *e = realloc(lg->e, sizeof(*e) * (size_t)(nslots / 2));

    if (!slot || !e) {
        free(slot);
        if (e)
            lg->e = e;
        return -1;
    }
    lg->e = e;
    lg->cap = nslots / 2;
    free(lg->slot);
    lg->slot = slot;
    lg->nslots = nslots;
    memset(slot, -1, sizeof(int) * (size_t)nslots);
    for (int k = 0; k < lg->n; k++)
        lg->slot[find_slot(lg, lg->e[k].scope, lg->e[k].key)] = k;
    return 0;
}

static int want(limits_ledger_t *lg, char scope, const char *key)
{
    int i;

    if (lg->n + 1 > lg->cap && grow(lg) != 0)
        return -1;
    i = find_slot(lg, scope, key);
    if (lg->slot[i] >= 0)
        return 0;
    lg->e[lg->n].key = strdup(key);
    if (!lg->e[lg->n].key)
        return -1;
    lg->e[lg->n].scope = scope;
    lg->e[lg->n].n15 = lg->e[lg->n].hour = lg->e[lg->n].day = lg->e[lg->n].added = 0;
    lg->slot[i] = lg->n++;
    return 0;
}

limits_ledger_t *limits_ledger_new(const limits_cfg_t *l)
{
    limits_ledger_t *lg = calloc(1, sizeof(*lg));

    if (!lg)
        return NULL;
    lg->cfg = l;
    lg->nslots = 256;
    lg->cap = lg->nslots / 2;
    lg->slot = malloc(sizeof(int) * (size_t)lg->nslots);
    lg->e = malloc(sizeof(*lg->e) * (size_t)lg->cap);
    if (!lg->slot || !lg->e) {
        limits_ledger_destroy(lg);
        return NULL;
    }
    memset(lg->slot, -1, sizeof(int) * (size_t)lg->nslots);
    return lg;
}

void limits_ledger_reset(limits_ledger_t *lg)
{
    for (int k = 0; k < lg->n; k++)
        free(lg->e[k].key);
    lg->n = 0;
    memset(lg->slot, -1, sizeof(int) * (size_t)lg->nslots);
}

void limits_ledger_destroy(limits_ledger_t *lg)
{
    if (!lg)
        return;
    if (lg->e)
        limits_ledger_reset(lg);
    free(lg->slot);
    free(lg->e);
    free(lg);
}

int limits_ledger_want(limits_ledger_t *lg, const otp_policy_t *svc, const char *phone,
                       const char *user_id, const char *country)
{
    const limits_cfg_t *l = lg->cfg;
    int per_phone =
        svc ? svc->limit_phone_15min || svc->limit_phone_day : l->phone_15min || l->phone_day;

    if (per_phone && want(lg, SCOPE_PHONE, phone) != 0)
        return -1;
    if ((svc ? svc->limit_user_hour : l->user_hour) && want(lg, SCOPE_USER, user_id) != 0)
        return -1;
    if ((svc ? svc->limit_country_hour : l->country_hour) && want(lg, SCOPE_COUNTRY, country) != 0)
        return -1;
    if (l->global_hour && want(lg, SCOPE_GLOBAL, "") != 0)
        return -1;
    return 0;
}

/* Reads at most one row per key and minute: the phone's day (bounded by the
 * phone's own limits), the hour of a user, a country, and everyone. One probe
 * of the primary key per key, whatever the table holds: the scopes are sent
 * as "char" like the column (as text, the column was cast and the key could
 * not be used: a hash join read the whole table, 4.8 ms a batch at 10,000
 * rows, 90 ms at 210,000), and the lateral sum keeps the plan a probe. */
static const char load_sql[] =
    "SELECT k.i, s.n15, s.hour, s.day"
    "  FROM unnest($1::\"char\"[], $2::text[]) WITH ORDINALITY AS k(scope, key, i)"
    " CROSS JOIN LATERAL ("
    "   SELECT coalesce(sum(b.n) FILTER (WHERE b.bucket >= date_trunc('minute', now()"
    "            - interval '15 minutes')), 0) AS n15,"
    "          coalesce(sum(b.n) FILTER (WHERE b.bucket >= date_trunc('minute', now()"
    "            - interval '1 hour')), 0) AS hour,"
    "          coalesce(sum(b.n), 0) AS day"
    "     FROM budget_counts b"
    "    WHERE b.scope = k.scope AND b.key = k.key"
    "      AND b.bucket >= date_trunc('minute', now() - CASE k.scope WHEN 'p'"
    "            THEN interval '1 day' ELSE interval '1 hour' END)) s";

/* The key of an entry in budget_counts: "service:" and the number's keyed
 * hash, else the key as it is ("service:user", "service:country", ""). */
static const char *db_key(const limits_ledger_t *lg, const ledger_entry_t *e,
                          char buf[OTP_SERVICE_MAX + 67])
{
    const char *colon = strchr(e->key, ':');
    char h[65];

    if (e->scope != SCOPE_PHONE || !lg->cfg->hash_key[0])
        return e->key;
    if (!colon) {
        otp_retention_phone_hash(lg->cfg->hash_key, e->key, buf);
        return buf;
    }
    otp_retention_phone_hash(lg->cfg->hash_key, colon + 1, h);
    snprintf(buf, OTP_SERVICE_MAX + 67, "%.*s:%s", (int)(colon - e->key), e->key, h);
    return buf;
}

int limits_ledger_load(limits_ledger_t *lg, PGconn *db)
{
    otp_pgarray_t scopes = {0}, keys = {0};
    const char *p[2];
    PGresult *r = NULL;
    int rc = -1;

    if (lg->n == 0)
        return 0;
    for (int k = 0; k < lg->n; k++) {
        char sc[2] = {lg->e[k].scope, '\0'}, h[OTP_SERVICE_MAX + 67];
        otp_pgarray_add(&scopes, sc);
        otp_pgarray_add(&keys, db_key(lg, &lg->e[k], h));
    }
    p[0] = otp_pgarray_str(&scopes);
    p[1] = otp_pgarray_str(&keys);
    if (!p[0] || !p[1])
        goto out;
    r = otp_db_query_prepared(db, "limits_load", load_sql, 2, p);
    if (!r)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 1;
        if (k < 0 || k >= lg->n)
            continue;
        lg->e[k].n15 = strtol(PQgetvalue(r, i, 1), NULL, 10);
        lg->e[k].hour = strtol(PQgetvalue(r, i, 2), NULL, 10);
        lg->e[k].day = strtol(PQgetvalue(r, i, 3), NULL, 10);
    }
    rc = 0;
out:
    PQclear(r);
    otp_pgarray_free(&scopes);
    otp_pgarray_free(&keys);
    return rc;
}

void limits_ledger_counts(const limits_ledger_t *lg, const char *phone, const char *user_id,
                          const char *country, limits_counts_t *out)
{
    const ledger_entry_t *e;

    memset(out, 0, sizeof(*out));
    if ((e = lookup(lg, SCOPE_PHONE, phone)) != NULL) {
        out->phone_15min = e->n15 + e->added;
        out->phone_day = e->day + e->added;
    }
    if ((e = lookup(lg, SCOPE_USER, user_id)) != NULL)
        out->user_hour = e->hour + e->added;
    if ((e = lookup(lg, SCOPE_COUNTRY, country)) != NULL)
        out->country_hour = e->hour + e->added;
    if ((e = lookup(lg, SCOPE_GLOBAL, "")) != NULL)
        out->global_hour = e->hour + e->added;
}

long limits_ledger_global(const limits_ledger_t *lg)
{
    const ledger_entry_t *e = lookup(lg, SCOPE_GLOBAL, "");
    return e ? e->hour + e->added : 0;
}

void limits_ledger_add(limits_ledger_t *lg, const char *phone, const char *user_id,
                       const char *country, int undo)
{
    const char scopes[4] = {SCOPE_PHONE, SCOPE_USER, SCOPE_COUNTRY, SCOPE_GLOBAL};
    const char *keys[4] = {phone, user_id, country, ""};

    for (int i = 0; i < 4; i++) {
        ledger_entry_t *e = lookup(lg, scopes[i], keys[i]);
        if (e)
            e->added += undo ? -1 : 1;
    }
}

int limits_ledger_send_store(limits_ledger_t *lg, PGconn *db)
{
    otp_pgarray_t scopes = {0}, keys = {0}, adds = {0};
    const char *p[3];
    int rc = -1, n = 0;

    for (int k = 0; k < lg->n; k++) {
        char sc[2] = {lg->e[k].scope, '\0'}, add[24], h[OTP_SERVICE_MAX + 67];
        if (lg->e[k].added <= 0)
            continue;
        snprintf(add, sizeof(add), "%ld", lg->e[k].added);
        otp_pgarray_add(&scopes, sc);
        otp_pgarray_add(&keys, db_key(lg, &lg->e[k], h));
        otp_pgarray_add(&adds, add);
        n++;
    }
    if (n == 0) {
        rc = 0;
        goto out;
    }
    p[0] = otp_pgarray_str(&scopes);
    p[1] = otp_pgarray_str(&keys);
    p[2] = otp_pgarray_str(&adds);
    if (p[0] && p[1] && p[2] &&
        otp_db_pipe_send(db,
                         "INSERT INTO budget_counts AS b (scope, key, bucket, n)"
                         " SELECT scope, key, date_trunc('minute', now()), n"
                         "   FROM unnest($1::text[], $2::text[], $3::int[]) AS t(scope, key, n)"
                         "  ORDER BY scope, key"
                         " ON CONFLICT (scope, key, bucket) DO UPDATE SET n = b.n + excluded.n",
                         3, p, NULL, NULL) == 0)
        rc = 1;
out:
    otp_pgarray_free(&scopes);
    otp_pgarray_free(&keys);
    otp_pgarray_free(&adds);
    return rc;
}

int limits_ledger_purge(PGconn *db)
{
    return otp_db_exec(db, "limits_purge",
                       "DELETE FROM budget_counts WHERE ctid = ANY(ARRAY("
                       "SELECT ctid FROM budget_counts"
                       " WHERE bucket < now() - interval '1 day 10 minutes' LIMIT 5000))",
                       0, NULL);
}
