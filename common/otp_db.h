/* Small libpq helpers: connect, run a parameterised statement, transactions.
 * Every statement with data goes through PQexecParams: no SQL is built from
 * input anywhere. One PGconn per thread. */
#ifndef OTP_DB_H
#define OTP_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* Connects (application_name = program). NULL with errstr on failure. */
PGconn *otp_db_connect(const char *url, const char *program, char *errstr, size_t errstr_size);

/* Resets a broken connection; 0 when it is usable again. */
int otp_db_ensure(PGconn *db);

/* Runs sql with text parameters. Returns the result when its status is
 * COMMAND_OK or TUPLES_OK, else logs the error (event "db_error", with `what`)
 * and returns NULL. The caller PQclear()s a non-NULL result. */
PGresult *otp_db_query(PGconn *db, const char *what, const char *sql, int nparams,
                       const char *const *params);

/* Like otp_db_query for statements without rows: 0 ok, -1 error. */
int otp_db_exec(PGconn *db, const char *what, const char *sql, int nparams,
                const char *const *params) __attribute__((warn_unused_result));

int otp_db_begin(PGconn *db) __attribute__((warn_unused_result));
int otp_db_commit(PGconn *db) __attribute__((warn_unused_result));
void otp_db_rollback(PGconn *db);

#endif
