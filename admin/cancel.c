/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin cancel REQUEST_ID: what POST /v1/requests/{id}/cancel does, for an
 * operator (otp_cancel.h): the request ends 'cancelled', a call still reading
 * its code is hung up by a worker, no check passes any more. */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "otp_cancel.h"
#include "otp_config.h"
#include "otp_crypto.h"
#include "otp_db.h"

int admin_cancel(int argc, char **argv)
{
    char err[512];
    PGconn *db;
    otp_cancel_result_t res;
    int rc = 2;

    if (argc != 2 || !otp_uuid_valid(argv[1])) {
        fprintf(stderr, "otp-admin: cancel needs one REQUEST_ID (a UUID)\n%s\n", admin_usage);
        return 2;
    }
    db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-admin", err, sizeof(err));
    if (!db) {
        fprintf(stderr, "otp-admin: %s\n", err);
        return 2;
    }
    switch (otp_cancel_request(db, argv[1], "admin", NULL, NULL, &res)) {
    case OTP_CANCEL_DONE:
        printf("cancelled request_id=%s was=%s call_hangup=%s\n", argv[1], res.status,
               res.call_id[0] ? res.call_id : "none");
        rc = 0;
        break;
    case OTP_CANCEL_ALREADY:
        printf("cancelled request_id=%s (already)\n", argv[1]);
        rc = 0;
        break;
    case OTP_CANCEL_FINAL:
        fprintf(stderr, "otp-admin: request %s is %s: nothing to cancel\n", argv[1], res.status);
        rc = 1;
        break;
    case OTP_CANCEL_NOT_FOUND:
        fprintf(stderr, "otp-admin: no request %s\n", argv[1]);
        rc = 1;
        break;
    case OTP_CANCEL_ERROR:
        fprintf(stderr, "otp-admin: database error: %s", PQerrorMessage(db));
        break;
    }
    PQfinish(db);
    return rc;
}
