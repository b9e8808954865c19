/* SPDX-License-Identifier: Apache-2.0 */
/* Calls cost money: the checks a request passes before it may be called
 * (shared/reference/otp-security.md, toll fraud). Blocked: a destination we
 * never call (country not allowed, a number type such as premium rate per
 * libphonenumber, premium-rate prefix). Rate limited: too
 * many requests for the number, the user or the country in a window, or the
 * global hourly cap (the circuit breaker). Every request that was accepted
 * counts, whatever became of it: a hang-up or a code never verified costs as
 * much as a verified one. That is its first call (or text); the calls after
 * it and a fallback text are added to the same counters by the transactions
 * that record them (sql/032_budget_calls.sql).
 *
 * The counts are kept in PostgreSQL as per-minute counters (budget_counts:
 * scope, key, minute, n), read once per ingest batch for the batch's keys and
 * added to once per batch, so the cost of a request does not grow with the
 * traffic of the window. A window of 15 minutes counts the current minute and
 * the 15 before it (the limit errs on the strict side by under a minute). */
#ifndef OTP_LIMITS_H
#define OTP_LIMITS_H

#include <libpq-fe.h>
#include <stddef.h>

#include "otp_phonenumber.h"
#include "otp_policy.h"

typedef struct limits_cfg {
    int phone_15min, phone_day, user_hour, country_hour, global_hour;
    char allow[512];        /* ",us,de," or "" = every country */
    char premium[512];      /* ",+1900,+881," */
    unsigned blocked_types; /* bit (1u << otp_pn_type_t) set = never called */
    /* OTP_HASH_KEY: budget_counts holds a number's keyed hash (the one the
     * purge leaves in challenges.phone_hash), never the number; "" = the
     * number itself (unit tests without a key). */
    char hash_key[160];
} limits_cfg_t;

typedef enum {
    LIMITS_ALLOW,
    LIMITS_BLOCKED,      /* event "blocked" */
    LIMITS_RATE_LIMITED, /* event "rate_limited" */
} limits_verdict_t;

/* What a request is measured against: accepted requests in each window. */
typedef struct limits_counts {
    long phone_15min, phone_day, user_hour, country_hour, global_hour;
} limits_counts_t;

/* Reads the OTP_LIMIT_* settings. -1 with errstr naming a bad one. */
int limits_load(limits_cfg_t *l, char *errstr, size_t errstr_size)
    __attribute__((warn_unused_result));

/* The decision for one request: pure, no I/O. The countries and the
 * per-number, per-user and per-country budgets are the service's (svc; NULL:
 * the deployment's, l); the global cap, number types and prefixes are the
 * deployment's. *reason is set to a static machine-readable word unless the
 * verdict is LIMITS_ALLOW ("number_type_premium_rate" for a blocked number
 * type). pn: what libphonenumber said of phone (the caller's one lookup:
 * each costs tens of microseconds of regular expressions), NULL to look it
 * up here. */
limits_verdict_t limits_decide(const limits_cfg_t *l, const otp_policy_t *svc, const char *phone,
                               const otp_pn_info_t *pn, const char *country,
                               const limits_counts_t *c, const char **reason);

/* "blocked" or "rate_limited" (the status and the event type); NULL for allow. */
const char *limits_verdict_name(limits_verdict_t v);

/* The counts of one ingest batch: the keys its requests touch, their counts
 * before the batch, and what the batch adds. One thread (ingest). */
typedef struct limits_ledger limits_ledger_t;

limits_ledger_t *limits_ledger_new(const limits_cfg_t *l);
void limits_ledger_destroy(limits_ledger_t *lg);

/* Starts a batch: forgets the keys and counts of the last one. */
void limits_ledger_reset(limits_ledger_t *lg);

/* Registers a request's keys (only the scopes whose limit is set). The keys
 * of a service's budgets are "service:number", "service:user" and
 * "service:country" (the caller qualifies them). -1 when out of memory. */
int limits_ledger_want(limits_ledger_t *lg, const otp_policy_t *svc, const char *phone,
                       const char *user_id, const char *country)
    __attribute__((warn_unused_result));

/* Reads the counts of every registered key in one statement. 0 ok, -1 on a
 * database error (logged). */
int limits_ledger_load(limits_ledger_t *lg, PGconn *db) __attribute__((warn_unused_result));

/* The counts for a registered request: loaded + accepted earlier in the batch. */
void limits_ledger_counts(const limits_ledger_t *lg, const char *phone, const char *user_id,
                          const char *country, limits_counts_t *out);

/* Requests accepted in the last hour by everyone (loaded + this batch); 0
 * when the global cap is off. */
long limits_ledger_global(const limits_ledger_t *lg);

/* Counts one accepted request in the batch (for the requests after it, and for
 * limits_ledger_store). undo = 1 takes one back (it turned out a duplicate). */
void limits_ledger_add(limits_ledger_t *lg, const char *phone, const char *user_id,
                       const char *country, int undo);

/* Sends (pipeline mode, see otp_db_pipe_send) the one statement that adds the
 * batch's accepted requests to the counters, in key order (no deadlock
 * between workers). 1 sent, 0 nothing to add, -1 error. */
int limits_ledger_send_store(limits_ledger_t *lg, PGconn *db) __attribute__((warn_unused_result));

/* Deletes counters older than every window, a few thousand rows at most per
 * call (autocommit). 0 ok, -1 error. */
int limits_ledger_purge(PGconn *db) __attribute__((warn_unused_result));

#endif
