/* SPDX-License-Identifier: Apache-2.0 */
#include <unistd.h>

#include "otp_config.h"
#include "otp_db.h"
#include "otp_log.h"
#include "otp_retention.h"
#include "otp_time.h"
#include "worker.h"

#define PURGE_BATCH 500

void *purge_thread(void *arg)
{
    worker_t *w = arg;
    PGconn *db = NULL;
    int64_t interval = otp_config_int("OTP_PURGE_INTERVAL_SECONDS") * 1000;
    int64_t next = otp_monotonic_ms() + interval; /* the first one after an interval */
    int days = (int)otp_config_int("OTP_RETENTION_DAYS");

    while (*w->running) {
        otp_retention_stats_t st;
        char err[256];
        int rc;

        if (otp_monotonic_ms() < next) {
            usleep(200000);
            continue;
        }
        next = otp_monotonic_ms() + interval;
        if (!db) {
            db = otp_db_connect(otp_config_str("OTP_DATABASE_URL"), "otp-worker-purge", err,
                                sizeof(err));
            if (!db) {
                otp_warn("purge_connect_failed", "error=\"%s\"", err);
                continue;
            }
        }
        if (otp_db_ensure(db) != 0)
            continue;
        rc = otp_retention_purge(db, otp_config_str("OTP_HASH_KEY"), days, PURGE_BATCH, w->running,
                                 &st);
        if (rc < 0)
            atomic_fetch_add(&w->m.db_errors, 1);
        else if (rc == 0 && (st.scrubbed || st.challenges || st.dead_letters ||
                             st.webhook_pending || st.outbox_seq || st.verify_user_failures))
            otp_info("purged",
                     "retention_days=%d numbers_hashed=%ld challenges=%ld calls=%ld "
                     "dead_letters=%ld webhook_pending=%ld outbox_seq=%ld "
                     "verify_user_failures=%ld",
                     days, st.scrubbed, st.challenges, st.calls, st.dead_letters,
                     st.webhook_pending, st.outbox_seq, st.verify_user_failures);
    }
    PQfinish(db);
    return NULL;
}
