/* SPDX-License-Identifier: Apache-2.0 */
/* otp-migrate: applies the numbered migrations in sql/ that are not applied
 * yet, each in its own transaction, in order, under an advisory lock so two
 * starts cannot race. Running it twice changes nothing. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otp_config.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_paths.h"
#include "otp_version.h"
#include "otp_wait.h"

#define MAX_FILES 256
#define MIGRATE_LOCK "727274" /* pg_advisory_lock key of the migrator */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int probe_db(void *arg, char *err, size_t errsz)
{
    PGconn **out = arg;
    *out = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-migrate", err, errsz);
    return *out ? 0 : -1;
}

int main(int argc, char **argv)
{
    char err[512], dir[PATH_MAX];
    char *files[MAX_FILES];
    int nfiles = 0, applied = 0, rc = 1;
    PGconn *db = NULL;
    DIR *d;
    struct dirent *e;

    static const char usage[] =
        "usage: otp-migrate [SQL_DIR]   apply the pending migrations (NNN_name.sql)\n"
        "       otp-migrate --version | --help\n"
        "SQL_DIR defaults to the installed migrations (share/otp/sql).";

    if (otp_config_common_flags(argc, argv, OTP_PROG_MIGRATE, "otp-migrate", usage))
        return 0;
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "otp-migrate: unknown arguments\n%s\n", usage);
        return 2;
    }
    if (otp_config_load(OTP_PROG_MIGRATE, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-migrate: %s\n", err);
        return 2;
    }
    otp_log_init("otp-migrate", otp_log_level_parse(otp_config_str("OTP_LOG_LEVEL")),
                 otp_log_format_parse(otp_config_str("OTP_LOG_FORMAT")));
    if (argc > 1)
        snprintf(dir, sizeof(dir), "%s", argv[1]);
    else
        otp_data_dir("sql", "sql", dir, sizeof(dir));

    d = opendir(dir);
    if (!d) {
        fprintf(stderr, "otp-migrate: cannot open %s: %s\n", dir, strerror(errno));
        return 2;
    }
    while ((e = readdir(d)) != NULL && nfiles < MAX_FILES) {
        size_t len = strlen(e->d_name);
        if (len > 8 && e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
            strcmp(e->d_name + len - 4, ".sql") == 0)
            files[nfiles++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(files, (size_t)nfiles, sizeof(*files), by_name);

    if (otp_wait_for("database", probe_db, &db, (int)otp_config_int("OTP_STARTUP_TIMEOUT_SECONDS"),
                     NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "otp-migrate: %s\n", err);
        goto out;
    }
    if (otp_db_exec(db, "lock", "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0, NULL) ||
        otp_db_exec(db, "bootstrap",
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    0, NULL))
        goto out;

    for (int i = 0; i < nfiles; i++) {
        char version[16], path[PATH_MAX + 300];
        const char *params[2];
        PGresult *r;
        char *sql;
        int done;

        snprintf(version, sizeof(version), "%ld", strtol(files[i], NULL, 10));
        params[0] = version;
        params[1] = files[i];
        r = otp_db_query(db, "check", "SELECT 1 FROM schema_migrations WHERE version = $1", 1,
                         params);
        if (!r)
            goto out;
        done = PQntuples(r) > 0;
        PQclear(r);
        if (done)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        sql = slurp(path);
        if (!sql) {
            fprintf(stderr, "otp-migrate: cannot read %s\n", path);
            goto out;
        }
        if (otp_db_begin(db) != 0) {
            free(sql);
            goto out;
        }
        /* PQexec runs a multi-statement script; the migration and its record commit together. */
        r = PQexec(db, sql);
        free(sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "otp-migrate: %s failed: %s", files[i], PQresultErrorMessage(r));
            PQclear(r);
            otp_db_rollback(db);
            goto out;
        }
        PQclear(r);
        if (otp_db_exec(db, "record",
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2,
                        params) ||
            otp_db_commit(db) != 0) {
            otp_db_rollback(db);
            goto out;
        }
        otp_info("migration_applied", "version=%s name=%s", version, files[i]);
        applied++;
    }
    printf("otp-migrate: %d applied, %d already current\n", applied, nfiles - applied);
    rc = 0;
out:
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    PQfinish(db);
    return rc;
}
