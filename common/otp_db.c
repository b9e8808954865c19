/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otp_log.h"

/* The server's notices and warnings (a VACUUM the role may not run, say) as
 * log lines of their own, not libpq's bare lines on stderr. */
static void notice(void *arg, const char *message)
{
    char line[300];
    size_t n = strcspn(message, "\n");

    (void)arg;
    n = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    for (size_t i = 0; i < n; i++)
        line[i] = message[i] == '"' ? '\'' : message[i]; /* keeps the quoted field whole */
    line[n] = '\0';
    otp_info("db_notice", "message=\"%s\"", line);
}

/* What every new session of this process runs first (a reset too): NULL, or
 * what otp_db_session_sql set before the first connection. */
static const char *session_sql;

void otp_db_session_sql(const char *sql)
{
    session_sql = sql;
}

static void session_setup(PGconn *db)
{
    if (session_sql)
        PQclear(PQexec(db, session_sql));
}

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
    PQsetNoticeProcessor(db, notice, NULL);
    session_setup(db);
    return db;
}

int otp_db_ensure(PGconn *db)
{
    if (PQstatus(db) == CONNECTION_OK)
        return 0;
    PQreset(db);
    if (PQstatus(db) != CONNECTION_OK)
        return -1;
    session_setup(db);
    return 0;
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

PGconn *otp_db_kept(PGconn **db, const char *url, const char *program)
{
    char err[256];

    if (!*db) {
        *db = otp_db_connect(url, program, err, sizeof(err));
        if (!*db)
            otp_error("db_connect_failed", "error=\"%s\"", err);
    } else if (otp_db_ensure(*db) != 0) {
        otp_warn("db_reconnect_failed", "error=\"%.*s\"", (int)strcspn(PQerrorMessage(*db), "\n"),
                 PQerrorMessage(*db));
    }
    return *db;
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

static void log_result_error(PGconn *db, const char *what, const PGresult *r)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (!msg || !*msg)
        msg = PQerrorMessage(db);
    otp_error("db_error", "what=%s sqlstate=%s error=\"%.*s\"", what, state ? state : "-",
              (int)strcspn(msg, "\n"), msg);
}

int otp_db_pipe_open(PGconn *db)
{
    return PQenterPipelineMode(db) == 1 ? 0 : -1;
}

int otp_db_pipe_send(PGconn *db, const char *sql, int nparams, const char *const *params,
                     const int *lengths, const int *formats)
{
    return PQsendQueryParams(db, sql, nparams, NULL, params, lengths, formats, 0) == 1 ? 0 : -1;
}

int otp_db_pipe_close(PGconn *db, const char *what, PGresult **results, int n)
{
    int rc = 0, logged = 0;
    PGresult *r;

    for (int i = 0; i < n; i++)
        results[i] = NULL; /* also those after an early end */
    if (PQpipelineSync(db) != 1) {
        log_result_error(db, what, NULL);
        rc = -1;
        logged = 1;
    }
    for (int i = 0; i < n; i++) {
        ExecStatusType st;

        r = PQgetResult(db);
        if (!r) {
            rc = -1;
            continue;
        }
        st = PQresultStatus(r);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            results[i] = r;
        } else {
            if (st != PGRES_PIPELINE_ABORTED && !logged) {
                log_result_error(db, what, r);
                logged = 1;
            }
            rc = -1;
            PQclear(r);
            if (st == PGRES_PIPELINE_SYNC)
                break; /* fewer results than statements: the connection failed */
        }
        /* Each statement's results end with a NULL. */
        while ((r = PQgetResult(db)) != NULL)
            PQclear(r);
    }
    /* Up to and including the sync. */
    while ((r = PQgetResult(db)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC)
            break;
    }
    if (PQexitPipelineMode(db) != 1) {
        if (!logged)
            log_result_error(db, what, NULL);
        rc = -1;
    }
    if (rc != 0 && !logged)
        otp_error("db_error", "what=%s error=\"pipeline ended early\"", what);
    return rc;
}

static void pgarray_put(otp_pgarray_t *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->len + n + 2 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        char *ns;
        while (a->len + n + 2 > cap)
            cap *= 2;
        ns = realloc(a->s, cap);
        if (!ns) {
            a->oom = 1;
            return;
        }
        a->s = ns;
        a->cap = cap;
    }
    memcpy(a->s + a->len, s, n);
    a->len += n;
}

void otp_pgarray_add(otp_pgarray_t *a, const char *v)
{
    pgarray_put(a, a->n ? "," : "{", 1);
    a->n++;
    if (!v) {
        pgarray_put(a, "NULL", 4);
        return;
    }
    pgarray_put(a, "\"", 1);
    for (const char *p = v; *p;) {
        size_t k = strcspn(p, "\"\\");
        pgarray_put(a, p, k);
        p += k;
        if (*p) {
            char esc[2] = {'\\', *p++};
            pgarray_put(a, esc, 2);
        }
    }
    pgarray_put(a, "\"", 1);
}

const char *otp_pgarray_str(otp_pgarray_t *a)
{
    if (a->n == 0)
        return "{}";
    pgarray_put(a, "}", 1);
    if (a->oom)
        return NULL;
    a->s[a->len] = '\0';
    a->len--; /* the closing brace is re-added by the next call */
    return a->s;
}

void otp_pgarray_free(otp_pgarray_t *a)
{
    if (!a)
        return;
    free(a->s);
    memset(a, 0, sizeof(*a));
}

int otp_db_listen(PGconn *db, const char *channel, int *session)
{
    char sql[96];

    if (*session == PQbackendPID(db) && *session != 0)
        return 0;
    snprintf(sql, sizeof(sql), "LISTEN %s", channel);
    if (otp_db_exec(db, "listen", sql, 0, NULL) != 0)
        return -1;
    *session = PQbackendPID(db);
    return 0;
}

static int drain_notifies(PGconn *db)
{
    PGnotify *n;
    int got = 0;

    while ((n = PQnotifies(db)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

int otp_db_wait_notify(PGconn *db, int timeout_ms)
{
    struct pollfd pfd;

    if (PQstatus(db) != CONNECTION_OK)
        return -1;
    if (drain_notifies(db))
        return 1;
    pfd.fd = PQsocket(db);
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (pfd.fd < 0)
        return -1;
    if (poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms) > 0 && PQconsumeInput(db) != 1)
        return -1;
    return drain_notifies(db);
}

/* The statements prepared on this thread's sessions: a connection, the
 * backend that has it (a reset starts a new one) and the name. */
#define PREPARED_MAX 64
static __thread struct {
    const PGconn *db;
    int pid;
    const char *name;
} prepared[PREPARED_MAX];

int otp_db_prepare(PGconn *db, const char *name, const char *sql, int nparams)
{
    int pid = PQbackendPID(db), free_slot = -1;
    PGresult *r;

    for (int i = 0; i < PREPARED_MAX; i++) {
        if (prepared[i].db == db && prepared[i].name == name) {
            if (prepared[i].pid == pid)
                return 0;
            free_slot = i; /* prepared on a session that has ended */
            break;
        }
        if (free_slot < 0 && !prepared[i].name)
            free_slot = i;
    }
    r = PQprepare(db, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        /* Another statement of that name on this session (e.g. a slot lost
         * to a full table): use it. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (!state || strcmp(state, "42P05") != 0) {
            log_result_error(db, name, r);
            PQclear(r);
            return -1;
        }
    }
    PQclear(r);
    if (free_slot >= 0) {
        prepared[free_slot].db = db;
        prepared[free_slot].pid = pid;
        prepared[free_slot].name = name;
    }
    return 0;
}

PGresult *otp_db_query_prepared(PGconn *db, const char *name, const char *sql, int nparams,
                                const char *const *params)
{
    PGresult *r;
    ExecStatusType st;

    if (otp_db_prepare(db, name, sql, nparams) != 0)
        return NULL;
    r = PQexecPrepared(db, name, nparams, params, NULL, NULL, 0);
    st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    log_result_error(db, name, r);
    PQclear(r);
    return NULL;
}

int otp_db_pipe_send_prepared(PGconn *db, const char *name, int nparams, const char *const *params,
                              const int *lengths, const int *formats)
{
    return PQsendQueryPrepared(db, name, nparams, params, lengths, formats, 0) == 1 ? 0 : -1;
}
