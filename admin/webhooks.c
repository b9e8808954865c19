/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin webhooks list|replay: the deliveries otp-hooks keeps
 * (sql/045_hook_deliveries.sql). A replay makes the chosen deliveries due
 * again (otp-hooks sends them in seq order per request, as the first time;
 * receivers drop copies by event_id) and is recorded in hook_replays with who
 * asked, in the same transaction. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_db.h"
#include "otp_policy.h"
#include "otp_time.h"

static PGconn *connect_db(void)
{
    char err[512];
    PGconn *db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));

    if (!db)
        fprintf(stderr, "otp-admin: %s\n", err);
    return db;
}

#define STATE_SQL                                                                                  \
    "CASE WHEN delivered_at IS NOT NULL THEN 'delivered' WHEN gave_up_at IS NOT NULL THEN "        \
    "'gave_up' WHEN last_error IS NOT NULL THEN 'failing' ELSE 'pending' END"

static int list(int argc, char **argv)
{
    static const struct option opts[] = {{"service", required_argument, NULL, 's'},
                                         {"request", required_argument, NULL, 'r'},
                                         {"failed", no_argument, NULL, 'f'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {0, 0, 0, 0}};
    const char *p[4] = {NULL, NULL, "f", "50"};
    char limit[24];
    PGconn *db;
    PGresult *r;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        long long n;
        if (c == 's') {
            p[0] = optarg;
        } else if (c == 'r') {
            p[1] = optarg;
        } else if (c == 'f') {
            p[2] = "t";
        } else if (c == 'l') {
            n = strtoll(optarg, &end, 10);
            if (*end || end == optarg || n < 1 || n > 100000) {
                fprintf(stderr, "otp-admin: --limit takes 1 to 100000\n");
                return 2;
            }
            snprintf(limit, sizeof(limit), "%lld", n);
            p[3] = limit;
        } else {
            fprintf(stderr, "%s\n", admin_usage);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "otp-admin: webhooks list takes options only\n%s\n", admin_usage);
        return 2;
    }
    db = connect_db();
    if (!db)
        return 2;
    r = otp_db_query(db, "webhooks_list",
                     "SELECT id, service, request_id, seq, type, " STATE_SQL ", attempts,"
                     " coalesce(last_status::text, '-'), coalesce(last_error, '-'),"
                     " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                     "  FROM hook_deliveries"
                     " WHERE ($1::text IS NULL OR service = $1)"
                     "   AND ($2::uuid IS NULL OR request_id = $2::uuid)"
                     "   AND (NOT $3::boolean OR gave_up_at IS NOT NULL"
                     "        OR (delivered_at IS NULL AND last_error IS NOT NULL))"
                     " ORDER BY id DESC LIMIT $4::int",
                     4, p);
    if (!r) {
        fprintf(stderr, "otp-admin: webhooks list failed (see the log line above)\n");
        PQfinish(db);
        return 2;
    }
    printf("%-8s %-12s %-36s %4s %-16s %-9s %8s %6s %-20s %s\n", "id", "service", "request_id",
           "seq", "type", "state", "attempts", "status", "created_at", "last_error");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-8s %-12s %-36s %4s %-16s %-9s %8s %6s %-20s %s\n", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
               PQgetvalue(r, i, 5), PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 9),
               PQgetvalue(r, i, 8));
    PQclear(r);
    PQfinish(db);
    return 0;
}

static const char *actor_name(const char *given)
{
    if (given && *given)
        return given;
    if (getenv("SUDO_USER"))
        return getenv("SUDO_USER");
    return getenv("USER") ? getenv("USER") : "unknown";
}

static int replay(int argc, char **argv)
{
    static const struct option opts[] = {{"request", required_argument, NULL, 'r'},
                                         {"service", required_argument, NULL, 's'},
                                         {"since", required_argument, NULL, 'S'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {0, 0, 0, 0}};
    const char *request = NULL, *service = NULL, *since = NULL, *actor = NULL, *id = NULL;
    char since_s[40] = "", count[24];
    json_t *sel = NULL;
    char *sel_text = NULL;
    PGconn *db = NULL;
    PGresult *r = NULL;
    int c, rc = 2, n;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            request = optarg;
        else if (c == 's')
            service = optarg;
        else if (c == 'S')
            since = optarg;
        else if (c == 'a')
            actor = optarg;
        else
            goto usage;
    }
    if (optind + 1 == argc)
        id = argv[optind];
    else if (optind != argc)
        goto usage;
    /* Exactly one of: ID, --request, --service with --since. */
    if ((id != NULL) + (request != NULL) + (service != NULL || since != NULL) != 1 ||
        ((service != NULL) != (since != NULL)))
        goto usage;
    if (id && strspn(id, "0123456789") != strlen(id)) {
        fprintf(stderr, "otp-admin: webhooks replay: \"%s\" is not a delivery id\n", id);
        return 2;
    }
    if (since) {
        int64_t ms;
        if (admin_parse_time(since, &ms) != 0) {
            fprintf(stderr, "otp-admin: --since: not a time: \"%s\"\n", since);
            return 2;
        }
        otp_time_format(ms, since_s, sizeof(since_s));
    }
    sel = json_pack("{s:s?, s:s?, s:s?, s:s?}", "id", id, "request_id", request, "service", service,
                    "since", since ? since_s : NULL);
    sel_text = sel ? json_dumps(sel, JSON_COMPACT) : NULL;
    if (!sel_text)
        goto out;
    db = connect_db();
    if (!db)
        goto out;
    {
        const char *p[5] = {id, request, service, since ? since_s : NULL, NULL};
        const char *q[3] = {actor_name(actor), sel_text, count};
        if (otp_db_begin(db) != 0)
            goto out;
        r = otp_db_query(db, "webhooks_replay",
                         "UPDATE hook_deliveries SET delivered_at = NULL, gave_up_at = NULL,"
                         "       next_try_at = now(), attempts = 0, last_error = NULL,"
                         "       last_status = NULL"
                         " WHERE ($1::bigint IS NULL OR id = $1::bigint)"
                         "   AND ($2::uuid IS NULL OR request_id = $2::uuid)"
                         "   AND ($3::text IS NULL OR service = $3)"
                         "   AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz)",
                         4, p);
        if (!r)
            goto rollback;
        n = (int)strtol(PQcmdTuples(r), NULL, 10);
        snprintf(count, sizeof(count), "%d", n);
        if (otp_db_exec(db, "webhooks_replay_audit",
                        "INSERT INTO hook_replays (actor, selector, deliveries)"
                        " VALUES ($1 || ' (role ' || current_user || ')', $2::jsonb, $3::int)",
                        3, q) != 0 ||
            otp_db_exec(db, "webhooks_replay_notify", "SELECT pg_notify('otp_hooks', '')", 0,
                        NULL) != 0 ||
            otp_db_commit(db) != 0)
            goto rollback;
        printf("replayed: deliveries=%d\n", n);
        rc = n > 0 ? 0 : 1;
        if (n == 0)
            fprintf(stderr, "otp-admin: webhooks replay: no delivery matched %s\n", sel_text);
        goto out;
    }
rollback:
    otp_db_rollback(db);
    fprintf(stderr, "otp-admin: webhooks replay failed (see the log line above)\n");
    goto out;
usage:
    fprintf(stderr,
            "otp-admin: webhooks replay takes a delivery ID, --request ID, or --service S "
            "--since TIME\n%s\n",
            admin_usage);
out:
    PQclear(r);
    PQfinish(db);
    free(sel_text);
    json_decref(sel);
    return rc;
}

int admin_webhooks(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0)
        return list(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "replay") == 0)
        return replay(argc - 1, argv + 1);
    fprintf(stderr, "otp-admin: webhooks list|replay\n%s\n", admin_usage);
    return 2;
}
