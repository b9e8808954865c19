/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_outbox.h"

#include <stdlib.h>

#include "otp_db.h"

int otp_outbox_add(PGconn *db, const char *request_id, const char *type, json_t *attrs)
{
    char *js = attrs ? json_dumps(attrs, JSON_COMPACT) : NULL;
    const char *params[3] = {request_id, type, js ? js : "{}"};
    int rc;

    json_decref(attrs);
    rc = otp_db_exec(db, "outbox_add",
                     "INSERT INTO outbox (request_id, type, attrs) VALUES ($1, $2, $3::jsonb)", 3,
                     params);
    free(js);
    return rc;
}
