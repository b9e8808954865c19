#include "otp_db.h"

#include <stdio.h>
#include <string.h>

#include "otp_log.h"

PGconn *otp_db_connect(const char *url, const char *program, char *errstr, size_t errstr_size)
{
    const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
    const char *vals[] = {url, program, "5", NULL};
    PGconn *db = PQconnectdbParams(keys, vals, 1);

    if (!db || PQstatus(db) != CONNECTION_OK) {
        const char *msg = db ? PQerrorMessage(db) : "out of memory";
        snprintf(errstr, errstr_size, "OTP_DATABASE_URL: cannot connect: %.*s",
                 (int)strcspn(msg, "\n"), msg);
        PQfinish(db);
        return NULL;
    }
    return db;
}

int otp_db_ensure(PGconn *db)
{
    if (PQstatus(db) == CONNECTION_OK)
        return 0;
    PQreset(db);
    return PQstatus(db) == CONNECTION_OK ? 0 : -1;
}

PGresult *otp_db_query(PGconn *db, const char *what, const char *sql, int nparams,
                       const char *const *params)
{
    PGresult *r = PQexecParams(db, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    {
        const char *msg = PQresultErrorMessage(r);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!msg || !*msg)
            msg = PQerrorMessage(db);
        otp_error("db_error", "what=%s sqlstate=%s error=\"%.*s\"", what, state ? state : "-",
                  (int)strcspn(msg, "\n"), msg);
    }
    PQclear(r);
    return NULL;
}

int otp_db_exec(PGconn *db, const char *what, const char *sql, int nparams,
                const char *const *params)
{
    PGresult *r = otp_db_query(db, what, sql, nparams, params);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int otp_db_begin(PGconn *db)
{
    return otp_db_exec(db, "begin", "BEGIN", 0, NULL);
}

int otp_db_commit(PGconn *db)
{
    return otp_db_exec(db, "commit", "COMMIT", 0, NULL);
}

void otp_db_rollback(PGconn *db)
{
    PGresult *r = PQexec(db, "ROLLBACK");
    PQclear(r);
}
