/* SPDX-License-Identifier: Apache-2.0 */
#include "budget.h"

#include <stdio.h>
#include <stdlib.h>

#include "otp_db.h"

/* The tokens available now: the stored ones plus the refill since. */
#define AVAIL_SQL(rate, burst)                                                                     \
    "least(" burst "::float8, tokens + " rate "::float8 *"                                         \
    " extract(epoch FROM clock_timestamp() - updated_at))"

int budget_take(PGconn *db, const char *rate, const char *burst, int want)
{
    char want_s[12];
    const char *p[3] = {rate, burst, want_s};
    PGresult *r;
    int got;

    snprintf(want_s, sizeof(want_s), "%d", want);
    r = otp_db_query(
        db, "budget_take",
        "WITH b AS (SELECT " AVAIL_SQL(
            "$1", "$2") " AS avail"
                        "  FROM rate_budget WHERE name = 'voipbin' FOR UPDATE)"
                        "UPDATE rate_budget r SET updated_at = clock_timestamp(),"
                        "  tokens = b.avail - least($3::int, greatest(floor(b.avail), 0)::int)"
                        "  FROM b WHERE r.name = 'voipbin'"
                        " RETURNING least($3::int, greatest(floor(b.avail), 0)::int)",
        3, p);
    if (!r)
        return -1;
    got = PQntuples(r) ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return got;
}

int budget_charge(PGconn *db, int n)
{
    char n_s[12];
    const char *p[1] = {n_s};

    snprintf(n_s, sizeof(n_s), "%d", n);
    return otp_db_exec(db, "budget_charge",
                       "UPDATE rate_budget SET tokens = tokens - $1::int WHERE name = 'voipbin'", 1,
                       p);
}

int64_t budget_wait_ms(PGconn *db, const char *rate, const char *burst)
{
    const char *p[2] = {rate, burst};
    PGresult *r = otp_db_query(db, "budget_wait",
                               "SELECT " AVAIL_SQL("$1", "$2") " FROM rate_budget"
                                                               " WHERE name = 'voipbin'",
                               2, p);
    double per_s = strtod(rate, NULL), tokens;

    if (!r)
        return -1;
    tokens = PQntuples(r) ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
    PQclear(r);
    if (tokens >= 1.0 || per_s <= 0)
        return 0;
    return (int64_t)((1.0 - tokens) / per_s * 1000.0) + 1;
}
