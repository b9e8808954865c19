/* SPDX-License-Identifier: Apache-2.0 */
/* Long-poll of GET /v1/requests/{id}?wait=N: a connection waiting for a
 * request's state to change is suspended (libmicrohttpd), not parked on an
 * HTTP thread; one thread re-reads the state of every waiting request on its
 * own database connection every `interval_ms` (a read, no write; nothing at
 * all while nobody waits) and resumes a connection when its state differs
 * from the one the client has, or at its deadline. Status changes do not
 * NOTIFY: a notifying commit takes a database-wide lock (README,
 * "Architecture"). */
#ifndef OTP_VERIFIER_LONGPOLL_H
#define OTP_VERIFIER_LONGPOLL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "otp_http.h"

/* Reads a request's state (of that service): a malloc'd JSON body and its HTTP status; for a
 * 200 also its version (16 hex digits, a hash of the state). NULL when memory
 * ran out. Called on the long-poll thread with its own connection (NULL when
 * the database is not reachable). */
typedef char *(*longpoll_read_fn)(void *cls, PGconn *conn, const char *request_id,
                                  const char *service, unsigned *status, char version[17]);

typedef struct longpoll longpoll_t;

/* One waiting connection; owned by the connection's context, handed to the
 * long-poll thread by longpoll_add and handed back when `conn` is resumed
 * (then body and status hold the answer; the thread no longer touches it). */
typedef struct longpoll_wait {
    struct MHD_Connection *conn;
    char request_id[37];
    char service[33]; /* the asking key's: another service's request reads as unknown */
    char version[17]; /* the state the client has: answer when it differs */
    int64_t deadline_us;
    unsigned status;
    char *body; /* malloc'd answer, for the caller to free */
    struct longpoll_wait *next;
} longpoll_wait_t;

/* Starts the thread. NULL with errstr when it cannot start. */
longpoll_t *longpoll_new(const char *db_url, int interval_ms, longpoll_read_fn read, void *cls,
                         char *errstr, size_t errstr_size);

/* Suspends w->conn and queues the wait. -1 when stopping (nothing done). Any
 * HTTP thread. */
int longpoll_add(longpoll_t *lp, longpoll_wait_t *w) __attribute__((warn_unused_result));

/* Number of connections waiting (metrics). */
int longpoll_waiting(longpoll_t *lp);

/* Answers every waiter with its state now and refuses new ones; call before
 * stopping the HTTP daemon (a suspended connection must be resumed first). */
void longpoll_stop(longpoll_t *lp);

/* Stops (if not yet) and frees; NULL-safe. */
void longpoll_destroy(longpoll_t *lp);

#endif
