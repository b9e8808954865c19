/* SPDX-License-Identifier: Apache-2.0 */
/* Small libpq helpers: connect, run a parameterised statement, transactions.
 * Every statement with data goes through PQexecParams: no SQL is built from
 * input anywhere. One PGconn per thread. */
#ifndef OTP_DB_H
#define OTP_DB_H

#include <libpq-fe.h>
#include <stddef.h>

/* A statement every new session of this process runs first (after a reset
 * too), e.g. "SET jit = off"; call before the first connection. */
void otp_db_session_sql(const char *sql);

/* Connects (application_name = program). NULL with errstr on failure. */
PGconn *otp_db_connect(const char *url, const char *program, char *errstr, size_t errstr_size);

/* Resets a broken connection; 0 when it is usable again. */
int otp_db_ensure(PGconn *db);

/* A connection a thread keeps: opened on first use, reset when broken
 * (failures logged as db_connect_failed / db_reconnect_failed). Returns *db:
 * NULL if it could not be opened, not CONNECTION_OK if the reset failed. */
PGconn *otp_db_kept(PGconn **db, const char *url, const char *program);

/* Runs sql with text parameters. Returns the result when its status is
 * COMMAND_OK or TUPLES_OK, else logs the error (event "db_error", with `what`)
 * and returns NULL. The caller PQclear()s a non-NULL result. */
PGresult *otp_db_query(PGconn *db, const char *what, const char *sql, int nparams,
                       const char *const *params);

/* Prepares sql as `name` on this session unless it already is (the first
 * use after a connect or a reset). Later runs skip parsing and planning.
 * 0 ok, -1 error (logged). One PGconn per thread, as everywhere. */
int otp_db_prepare(PGconn *db, const char *name, const char *sql, int nparams)
    __attribute__((warn_unused_result));

/* otp_db_query through the prepared statement `name` (prepared on first use). */
PGresult *otp_db_query_prepared(PGconn *db, const char *name, const char *sql, int nparams,
                                const char *const *params);

/* Like otp_db_query for statements without rows: 0 ok, -1 error. */
int otp_db_exec(PGconn *db, const char *what, const char *sql, int nparams,
                const char *const *params) __attribute__((warn_unused_result));

/* Pipeline mode (one round trip for many statements): open, send each
 * statement, then close, which syncs and collects one result per statement
 * sent (NULL where it failed or was skipped after an earlier failure; the
 * caller PQclear()s the others) and leaves pipeline mode. close returns 0
 * when every statement succeeded, -1 otherwise (the first error is logged
 * with `what`). Statements after BEGIN in the same pipeline share its
 * transaction; a failed one aborts the rest up to the sync. */
int otp_db_pipe_open(PGconn *db) __attribute__((warn_unused_result));
int otp_db_pipe_send(PGconn *db, const char *sql, int nparams, const char *const *params,
                     const int *lengths, const int *formats) __attribute__((warn_unused_result));
/* Sends a statement made with otp_db_prepare (pipeline mode). */
int otp_db_pipe_send_prepared(PGconn *db, const char *name, int nparams, const char *const *params,
                              const int *lengths, const int *formats)
    __attribute__((warn_unused_result));
int otp_db_pipe_close(PGconn *db, const char *what, PGresult **results, int n)
    __attribute__((warn_unused_result));

/* A PostgreSQL array literal built one element at a time ("{a,NULL,"b c"}"),
 * for passing a whole batch as one parameter ($1::text[] and unnest). */
typedef struct otp_pgarray {
    char *s;
    size_t len, cap;
    int n;
    int oom;
} otp_pgarray_t;

/* Appends v (NULL = SQL NULL), quoted and escaped. */
void otp_pgarray_add(otp_pgarray_t *a, const char *v);
/* The literal, "{}" when empty; NULL if memory ran out. Owned by a. */
const char *otp_pgarray_str(otp_pgarray_t *a);
/* Frees the memory; NULL-safe. */
void otp_pgarray_free(otp_pgarray_t *a);

/* LISTENs on channel if this session does not yet (a reset connection is a
 * new session: *session holds the backend pid that listens). 0 ok, -1 error. */
int otp_db_listen(PGconn *db, const char *channel, int *session)
    __attribute__((warn_unused_result));

/* Waits until a notification comes or timeout_ms passes (0 = only look).
 * Drains every notification received. 1 one came, 0 none, -1 the connection
 * is broken. */
int otp_db_wait_notify(PGconn *db, int timeout_ms);

int otp_db_begin(PGconn *db) __attribute__((warn_unused_result));
int otp_db_commit(PGconn *db) __attribute__((warn_unused_result));
void otp_db_rollback(PGconn *db);

#endif
