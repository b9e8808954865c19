/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin service ... and otp-admin key ...: the services (one application's
 * policy each, sql/015) and their API keys. Every change is one transaction
 * with its audit row in service_changes: who (--actor, else the login user,
 * and the database role), when, what (before and after; secrets never, only
 * whether one is set). Policies are checked exactly as the programs check
 * them when they load (otp_policy_apply over the deployment's settings), so a
 * policy the workers would refuse is never stored. */
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_db.h"
#include "otp_policy.h"
#include "otp_services.h"

/* The row as the audit keeps it: no secret, only whether one is set. */
#define ROW_JSON                                                                                   \
    "jsonb_build_object('name', name, 'friendly_name', friendly_name, 'policy', policy,"           \
    " 'webhook_url', webhook_url, 'webhook_secret_set', webhook_secret IS NOT NULL,"               \
    " 'disabled', disabled, 'version', version)"

typedef struct opts {
    const char *friendly, *policy, *webhook_url, *secret_file, *actor;
    const char *service, *scopes, *expires, *label;
} opts_t;

/* The options, each a string of opts_t. */
static const struct {
    const char *flag;
    size_t field;
} options[] = {
    {"--friendly-name", offsetof(opts_t, friendly)},
    {"--policy", offsetof(opts_t, policy)},
    {"--webhook-url", offsetof(opts_t, webhook_url)},
    {"--webhook-secret-file", offsetof(opts_t, secret_file)},
    {"--actor", offsetof(opts_t, actor)},
    {"--service", offsetof(opts_t, service)},
    {"--scopes", offsetof(opts_t, scopes)},
    {"--expires", offsetof(opts_t, expires)},
    {"--label", offsetof(opts_t, label)},
};

static int parse_opts(int argc, char **argv, int from, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = from; i < argc; i++) {
        const char **dst = NULL;
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]) && !dst; k++)
            if (strcmp(argv[i], options[k].flag) == 0)
                dst = (const char **)((char *)o + options[k].field);
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "otp-admin: unknown or incomplete option \"%s\"\n%s\n", argv[i],
                    admin_usage);
            return -1;
        }
        *dst = argv[++i];
    }
    return 0;
}

static const char *actor(const opts_t *o)
{
    if (o->actor && *o->actor)
        return o->actor;
    if (getenv("SUDO_USER"))
        return getenv("SUDO_USER");
    return getenv("USER") ? getenv("USER") : "unknown";
}

static PGconn *connect_db(void)
{
    char err[512];
    PGconn *db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));

    if (!db)
        fprintf(stderr, "otp-admin: %s\n", err);
    return db;
}

/* The audit row, in the open transaction. */
static int audit(PGconn *db, const char *service, const char *who, const char *action,
                 const char *before, const char *after)
{
    const char *p[5] = {service, who, action, before, after};

    return otp_db_exec(db, "service_audit",
                       "INSERT INTO service_changes (service, actor, action, before, after)"
                       " VALUES ($1, $2 || ' (role ' || current_user || ')', $3, $4::jsonb,"
                       " $5::jsonb)",
                       5, p);
}

/* A webhook secret from a file (first line, without its end of line). */
static char *read_secret(const char *path)
{
    FILE *f = fopen(path, "r");
    char buf[512];
    size_t n;

    if (!f) {
        fprintf(stderr, "otp-admin: --webhook-secret-file %s: cannot read it\n", path);
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strlen(buf) < 16) {
        fprintf(stderr,
                "otp-admin: --webhook-secret-file %s: a secret of at least 16 "
                "characters is needed\n",
                path);
        sodium_memzero(buf, sizeof(buf));
        return NULL;
    }
    return strdup(buf);
}

/* The stored overrides `current` changed by `change` (a null value removes a
 * key), checked over the deployment's policy. A malloc'd JSON text, or NULL
 * after printing why. */
static char *merged_policy(const char *current, const char *change)
{
    json_error_t jerr;
    json_t *cur = json_loads(current ? current : "{}", 0, &jerr);
    json_t *ch = change ? json_loads(change, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    otp_policy_t p = {.templates = NULL};
    char err[300];
    char *out = NULL;
    const char *k;
    json_t *v;
    void *tmp;

    if (!ch || !json_is_object(ch)) {
        fprintf(stderr, "otp-admin: --policy: expected a JSON object\n");
        goto done;
    }
    if (!cur || json_object_update(cur, ch) != 0)
        goto done;
    json_object_foreach_safe(cur, tmp, k, v)
    {
        if (json_is_null(v))
            json_object_del(cur, k);
    }
    if (otp_policy_from_settings(&p, err, sizeof(err)) != 0 ||
        otp_policy_apply(&p, cur, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-admin: %s\n", err);
        goto done;
    }
    out = json_dumps(cur, JSON_COMPACT | JSON_SORT_KEYS);
done:
    otp_policy_clear(&p);
    json_decref(cur);
    json_decref(ch);
    return out;
}

static int service_write(int create, const char *name, const opts_t *o)
{
    PGconn *db = NULL;
    PGresult *r = NULL;
    char *policy = NULL, *secret = NULL;
    const char *p[6];
    int rc = 1;

    if (!otp_service_name_ok(name)) {
        fprintf(stderr,
                "otp-admin: service name \"%s\": expected 1-32 of a-z, 0-9 and -, not starting "
                "with - (and not dlq)\n",
                name);
        return 2;
    }
    if (o->friendly && strlen(o->friendly) > 32) {
        fprintf(stderr, "otp-admin: --friendly-name: at most 32 characters\n");
        return 2;
    }
    if (o->webhook_url && *o->webhook_url && strncmp(o->webhook_url, "https://", 8) != 0 &&
        strncmp(o->webhook_url, "http://", 7) != 0) {
        fprintf(stderr, "otp-admin: --webhook-url: expected an http(s) URL\n");
        return 2;
    }
    if (o->secret_file && !(secret = read_secret(o->secret_file)))
        return 2;
    if (!(db = connect_db()) || otp_db_begin(db) != 0)
        goto out;
    p[0] = name;
    r = otp_db_query(db, "service_lock",
                     "SELECT policy::text, " ROW_JSON "::text FROM services WHERE name = $1"
                     " FOR UPDATE",
                     1, p);
    if (!r)
        goto out;
    if (create != (PQntuples(r) == 0)) {
        fprintf(stderr, "otp-admin: service %s %s\n", name,
                create ? "exists already (use service update)" : "does not exist");
        rc = 2;
        goto out;
    }
    policy = merged_policy(create ? "{}" : PQgetvalue(r, 0, 0), o->policy);
    if (!policy) {
        rc = 2;
        goto out;
    }
    p[1] = o->friendly;
    p[2] = policy;
    p[3] = o->webhook_url;
    p[4] = secret;
    p[5] = create ? NULL : PQgetvalue(r, 0, 1);
    if (create) {
        PQclear(r);
        r = otp_db_query(db, "service_create",
                         "INSERT INTO services AS s (name, friendly_name, policy, webhook_url,"
                         "   webhook_secret)"
                         " VALUES ($1, coalesce($2, $1), $3::jsonb, nullif($4, ''), $5)"
                         " RETURNING " ROW_JSON "::text",
                         5, p);
    } else {
        PGresult *old = r;
        r = otp_db_query(db, "service_update",
                         "UPDATE services SET friendly_name = coalesce($2, friendly_name),"
                         "  policy = $3::jsonb,"
                         "  webhook_url = CASE WHEN $4::text IS NULL THEN webhook_url"
                         "                     ELSE nullif($4, '') END,"
                         "  webhook_secret = coalesce($5, webhook_secret),"
                         "  version = version + 1, updated_at = now()"
                         " WHERE name = $1 RETURNING " ROW_JSON "::text",
                         5, p);
        p[5] = r ? PQgetvalue(old, 0, 1) : NULL;
        if (r && audit(db, name, actor(o), "update", p[5], PQgetvalue(r, 0, 0)) != 0) {
            PQclear(old);
            goto out;
        }
        PQclear(old);
    }
    if (!r || (create && audit(db, name, actor(o), "create", NULL, PQgetvalue(r, 0, 0)) != 0) ||
        otp_db_commit(db) != 0)
        goto out;
    printf("%s\n", PQgetvalue(r, 0, 0));
    rc = 0;
out:
    if (rc != 0 && db && PQtransactionStatus(db) != PQTRANS_IDLE)
        otp_db_rollback(db);
    PQclear(r);
    free(policy);
    if (secret) {
        sodium_memzero(secret, strlen(secret));
        free(secret);
    }
    if (db)
        PQfinish(db);
    return rc;
}

static int service_set_disabled(const char *name, int disabled, const opts_t *o)
{
    PGconn *db = connect_db();
    PGresult *before = NULL, *after = NULL;
    const char *p[2] = {name, disabled ? "t" : "f"};
    int rc = 1;

    if (!db || otp_db_begin(db) != 0)
        goto out;
    before =
        otp_db_query(db, "service_lock",
                     "SELECT " ROW_JSON "::text FROM services WHERE name = $1 FOR UPDATE", 1, p);
    if (before && PQntuples(before) == 0) {
        fprintf(stderr, "otp-admin: service %s does not exist\n", name);
        rc = 2;
        goto out;
    }
    if (before)
        after = otp_db_query(db, "service_disable",
                             "UPDATE services SET disabled = $2::boolean, version = version + 1,"
                             "  updated_at = now() WHERE name = $1 RETURNING " ROW_JSON "::text",
                             2, p);
    if (!after ||
        audit(db, name, actor(o), disabled ? "disable" : "enable", PQgetvalue(before, 0, 0),
              PQgetvalue(after, 0, 0)) != 0 ||
        otp_db_commit(db) != 0)
        goto out;
    printf("%s\n", PQgetvalue(after, 0, 0));
    rc = 0;
out:
    if (rc != 0 && db && PQtransactionStatus(db) != PQTRANS_IDLE)
        otp_db_rollback(db);
    PQclear(before);
    PQclear(after);
    if (db)
        PQfinish(db);
    return rc;
}

static int service_show(const char *name)
{
    PGconn *db = connect_db();
    PGresult *r = NULL, *log = NULL;
    const char *p[1] = {name};
    otp_policy_t pol;
    char err[300], *eff = NULL;
    json_t *o = NULL;
    int rc = 1;

    if (!db)
        return 1;
    r = otp_db_query(db, "service_show",
                     "SELECT " ROW_JSON "::text, policy::text FROM services WHERE name = $1", 1, p);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        fprintf(stderr, "otp-admin: service %s does not exist\n", name);
        rc = 2;
        goto out;
    }
    printf("service: %s\n", PQgetvalue(r, 0, 0));
    /* What the programs use: the deployment's settings (as this program
     * reads them) changed by the service's overrides. */
    if (otp_policy_from_settings(&pol, err, sizeof(err)) == 0 &&
        otp_policy_apply_text(&pol, PQgetvalue(r, 0, 1), err, sizeof(err)) == 0 &&
        (o = otp_policy_to_json(&pol)) != NULL && (eff = json_dumps(o, JSON_COMPACT)) != NULL)
        printf("effective: %s\n", eff);
    else
        printf("effective: (cannot be computed: %s)\n", err);
    otp_policy_clear(&pol);
    log = otp_db_query(db, "service_log",
                       "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                       "  actor, action, coalesce(after::text, '')"
                       "  FROM service_changes WHERE service = $1 ORDER BY id DESC LIMIT 20",
                       1, p);
    for (int i = 0; log && i < PQntuples(log); i++)
        printf("change: at=%s actor=\"%s\" action=%s after=%s\n", PQgetvalue(log, i, 0),
               PQgetvalue(log, i, 1), PQgetvalue(log, i, 2), PQgetvalue(log, i, 3));
    rc = log ? 0 : 1;
out:
    free(eff);
    json_decref(o);
    PQclear(r);
    PQclear(log);
    PQfinish(db);
    return rc;
}

static int service_list(void)
{
    PGconn *db = connect_db();
    PGresult *r;

    if (!db)
        return 1;
    r = otp_db_query(db, "service_list",
                     "SELECT name, CASE WHEN disabled THEN 'disabled' ELSE 'enabled' END,"
                     "  friendly_name, policy::text,"
                     "  (SELECT count(*) FROM api_keys k WHERE k.service = s.name"
                     "     AND k.revoked_at IS NULL)"
                     "  FROM services s ORDER BY name",
                     0, NULL);
    for (int i = 0; r && i < PQntuples(r); i++)
        printf("%s %s friendly_name=\"%s\" keys=%s policy=%s\n", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 4), PQgetvalue(r, i, 3));
    PQclear(r);
    PQfinish(db);
    return r ? 0 : 1;
}

int admin_service(int argc, char **argv)
{
    opts_t o;
    const char *verb = argc >= 2 ? argv[1] : "";
    const char *name = argc >= 3 ? argv[2] : NULL;

    if (strcmp(verb, "list") == 0 && argc == 2)
        return service_list();
    if (!name || parse_opts(argc, argv, 3, &o) != 0) {
        fprintf(stderr, "otp-admin: service needs a verb and a NAME\n%s\n", admin_usage);
        return 2;
    }
    if (strcmp(verb, "create") == 0)
        return service_write(1, name, &o);
    if (strcmp(verb, "update") == 0)
        return service_write(0, name, &o);
    if (strcmp(verb, "show") == 0)
        return service_show(name);
    if (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0)
        return service_set_disabled(name, strcmp(verb, "disable") == 0, &o);
    fprintf(stderr, "otp-admin: service %s: unknown verb\n%s\n", verb, admin_usage);
    return 2;
}

/* A new key: "otpk_" and 43 characters (32 random bytes, base64url), its id
 * "k_" and 16 hex characters. */
static void new_key(char key[72], char id[24])
{
    unsigned char raw[32], rid[8];
    char b64[64], hex[17];

    randombytes_buf(raw, sizeof(raw));
    randombytes_buf(rid, sizeof(rid));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2hex(hex, sizeof(hex), rid, sizeof(rid));
    snprintf(key, 72, "otpk_%s", b64);
    snprintf(id, 24, "k_%s", hex);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(b64, sizeof(b64));
}

static int key_create(const opts_t *o)
{
    PGconn *db = NULL;
    PGresult *r = NULL;
    char key[72], id[24], hash[65], scopes[32], expires[32];
    const char *p[6];
    int64_t exp_ms = 0;
    unsigned sc = o->scopes ? otp_scopes_parse(o->scopes) : 0;
    int rc = 1;

    if (!o->service || !o->scopes || sc == 0) {
        fprintf(stderr, "otp-admin: key create needs --service NAME and --scopes "
                        "create,verify,read (one or more)\n");
        return 2;
    }
    if (o->expires && admin_parse_time(o->expires, &exp_ms) != 0) {
        fprintf(stderr, "otp-admin: --expires: expected RFC 3339 or epoch ms\n");
        return 2;
    }
    otp_scopes_format(sc, scopes, sizeof(scopes));
    snprintf(expires, sizeof(expires), "%lld", (long long)exp_ms);
    new_key(key, id);
    otp_sha256_hex(key, hash);
    p[0] = id;
    p[1] = o->service;
    p[2] = hash;
    p[3] = scopes;
    p[4] = o->label ? o->label : "";
    p[5] = o->expires ? expires : NULL;
    if (!(db = connect_db()) || otp_db_begin(db) != 0)
        goto out;
    r = otp_db_query(db, "key_service", "SELECT 1 FROM services WHERE name = $1", 1, &p[1]);
    if (r && PQntuples(r) == 0) {
        fprintf(stderr, "otp-admin: service %s does not exist\n", o->service);
        rc = 2;
        goto out;
    }
    PQclear(r);
    r = otp_db_query(db, "key_create",
                     "INSERT INTO api_keys (id, service, key_hash, scopes, label, expires_at)"
                     " VALUES ($1, $2, $3, string_to_array($4, ','), $5,"
                     "   to_timestamp($6::bigint / 1000.0))"
                     " RETURNING jsonb_build_object('key_id', id, 'scopes', scopes, 'label', label,"
                     "   'expires_at', expires_at)::text",
                     6, p);
    if (!r || audit(db, o->service, actor(o), "key_create", NULL, PQgetvalue(r, 0, 0)) != 0 ||
        otp_db_commit(db) != 0)
        goto out;
    /* The only time the key is shown: it is not stored, only its SHA-256. */
    printf("key_id=%s service=%s scopes=%s\nkey=%s\n", id, o->service, scopes, key);
    rc = 0;
out:
    sodium_memzero(key, sizeof(key));
    if (rc != 0 && db && PQtransactionStatus(db) != PQTRANS_IDLE)
        otp_db_rollback(db);
    PQclear(r);
    if (db)
        PQfinish(db);
    return rc;
}

static int key_list(const opts_t *o)
{
    PGconn *db = connect_db();
    const char *p[1] = {o->service};
    PGresult *r;

    if (!db)
        return 1;
    r = otp_db_query(db, "key_list",
                     "SELECT id, service, array_to_string(scopes, ','), label,"
                     "  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                     "  coalesce(to_char(expires_at AT TIME ZONE 'UTC',"
                     "    'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'),"
                     "  CASE WHEN revoked_at IS NOT NULL THEN 'revoked'"
                     "       WHEN expires_at <= now() THEN 'expired' ELSE 'active' END"
                     "  FROM api_keys WHERE $1::text IS NULL OR service = $1"
                     " ORDER BY service, created_at",
                     1, p);
    for (int i = 0; r && i < PQntuples(r); i++)
        printf("%s service=%s scopes=%s label=\"%s\" created_at=%s expires_at=%s state=%s\n",
               PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
               PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    PQclear(r);
    PQfinish(db);
    return r ? 0 : 1;
}

static int key_revoke(const char *id, const opts_t *o)
{
    PGconn *db = connect_db();
    PGresult *r = NULL;
    const char *p[1] = {id};
    int rc = 1;

    if (!db || otp_db_begin(db) != 0)
        goto out;
    r = otp_db_query(db, "key_revoke",
                     "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
                     " RETURNING service, jsonb_build_object('key_id', id, 'revoked_at',"
                     "   revoked_at)::text",
                     1, p);
    if (r && PQntuples(r) == 0) {
        fprintf(stderr, "otp-admin: no active key %s\n", id);
        rc = 2;
        goto out;
    }
    if (!r ||
        audit(db, PQgetvalue(r, 0, 0), actor(o), "key_revoke", NULL, PQgetvalue(r, 0, 1)) != 0 ||
        otp_db_commit(db) != 0)
        goto out;
    printf("revoked %s\n", id);
    rc = 0;
out:
    if (rc != 0 && db && PQtransactionStatus(db) != PQTRANS_IDLE)
        otp_db_rollback(db);
    PQclear(r);
    if (db)
        PQfinish(db);
    return rc;
}

int admin_key(int argc, char **argv)
{
    opts_t o;
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "revoke") == 0 && argc >= 3 && parse_opts(argc, argv, 3, &o) == 0)
        return key_revoke(argv[2], &o);
    if (parse_opts(argc, argv, 2, &o) != 0)
        return 2;
    if (strcmp(verb, "create") == 0)
        return key_create(&o);
    if (strcmp(verb, "list") == 0)
        return key_list(&o);
    fprintf(stderr, "otp-admin: key needs create, list or revoke\n%s\n", admin_usage);
    return 2;
}
