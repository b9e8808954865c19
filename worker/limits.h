/* Calls cost money: the checks a request passes before it may be called
 * (shared/reference/otp-security.md, toll fraud). Blocked: a destination we
 * never call (country not allowed, premium-rate prefix). Rate limited: too
 * many requests for the number, the user or the country in a window, or the
 * global hourly cap (the circuit breaker). Every request that was accepted
 * counts, whatever became of it: a hang-up or a code never verified costs as
 * much as a verified one. */
#ifndef OTP_LIMITS_H
#define OTP_LIMITS_H

#include <libpq-fe.h>
#include <stddef.h>

typedef struct limits_cfg {
    int phone_15min, phone_day, user_hour, country_hour, global_hour;
    char allow[512];   /* ",us,de," or "" = every country */
    char premium[512]; /* ",+1900,+881," */
} limits_cfg_t;

/* Reads the OTP_LIMIT_* settings. -1 with errstr naming a bad one. */
int limits_load(limits_cfg_t *l, char *errstr, size_t errstr_size);

/* The decision for one request, inside the ingest transaction (rows written
 * earlier in the batch count). Returns NULL when it may be called, else the
 * event type ("blocked" or "rate_limited") with the reason in reason.
 * global_accepted: requests accepted in the last hour, kept by the caller
 * (one count per batch, not per request). */
const char *limits_check(PGconn *db, const limits_cfg_t *l, const char *phone, const char *country,
                         const char *user_id, long global_accepted, char *reason,
                         size_t reason_size, int *db_error);

/* Requests accepted in the last hour, all numbers. -1 on error. */
long limits_global_count(PGconn *db);

#endif
