/* SPDX-License-Identifier: Apache-2.0 */
/* otp-admin: tools for the people who run and audit the pipeline. Reads the
 * same OTP_* settings as the other programs. */
#include <stdio.h>
#include <string.h>

#include "admin.h"
#include "otp_config.h"
#include "otp_log.h"
#include "otp_version.h"

const char admin_usage[] =
    "usage: otp-admin audit --from TIME [--settle SECONDS]\n"
    "         read otp.call_status from TIME (RFC 3339 or epoch ms) to its end; report every\n"
    "         request with a missing seq, no final event (once quiet SECONDS, default 900)\n"
    "         or events out of order; exit 1 if any\n"
    "       otp-admin purge\n"
    "         run the retention purge now (OTP_RETENTION_DAYS; waits while a worker runs it)\n"
    "       otp-admin dlq list [--limit N]\n"
    "       otp-admin dlq show ID [--raw]\n"
    "         dead letters, numbers masked; --raw writes the exact stored bytes to stdout\n"
    "       otp-admin dlq replay ID [--edit FILE]\n"
    "         publish the stored bytes (or FILE, a fixed version) to otp.requested again and\n"
    "         record the replay\n"
    "       otp-admin resend --failed-since TIME [--until TIME] [--cause C] [--dry-run]\n"
    "         publish a new request (resend_of, a request_id derived from the failed one, so a\n"
    "         second run calls no one twice) for each request that failed in the window (its\n"
    "         cause C or C_...), unverified and not superseded by a newer request of the same\n"
    "         user and purpose or number; one line per request (resent / skip reason=...);\n"
    "         the workers apply the call budgets to them as to any request\n"
    "       otp-admin service create NAME [--friendly-name TEXT] [--policy JSON]\n"
    "                 [--webhook-url URL] [--webhook-secret-file FILE] [--actor WHO]\n"
    "       otp-admin service update NAME [same options; --policy keys are merged, null removes]\n"
    "       otp-admin service show NAME | service list | service disable|enable NAME\n"
    "         services: one application's policy each (brand, caller_id, caller_ids,\n"
    "         code_length, min_code_length, ttl_seconds, max_ttl_seconds, max_attempts,\n"
    "         max_call_attempts, channels, countries, limits, default_locale,\n"
    "         max_failed_verify_per_hour, fallback_after_seconds, templates: the\n"
    "         service's own words per locale), over the OTP_* settings;\n"
    "         its requests come on OTP_TOPIC_REQUESTS.NAME; every change is audited\n"
    "       otp-admin key create --service NAME --scopes create,verify,read\n"
    "                 [--expires TIME] [--label TEXT] [--actor WHO]\n"
    "         a new API key bound to the service; the key is printed once, only its SHA-256\n"
    "         is kept\n"
    "       otp-admin key list [--service NAME] | key revoke KEY_ID [--actor WHO]\n"
    "       otp-admin cancel REQUEST_ID\n"
    "         end the request (as POST /v1/requests/{id}/cancel): no check passes any more, a\n"
    "         call still reading its code is hung up; exit 1 if it is over or unknown\n"
    "       otp-admin webhooks list [--service S] [--request ID] [--failed] [--limit N]\n"
    "         the app webhooks otp-hooks sends, newest first: state (delivered, pending,\n"
    "         failing, gave_up), attempts, the last HTTP status and error\n"
    "       otp-admin webhooks replay ID | --request ID | --service S --since TIME\n"
    "                 [--actor WHO]\n"
    "         send those deliveries again (in seq order per request; receivers drop copies by\n"
    "         event_id); recorded with who asked\n"
    "       otp-admin status REQUEST_ID\n"
    "         the challenge, its calls and its events on otp.call_status (number masked)\n"
    "       otp-admin --version | --help";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"audit", admin_audit},   {"purge", admin_purge},   {"dlq", admin_dlq},
    {"status", admin_status}, {"resend", admin_resend}, {"service", admin_service},
    {"key", admin_key},       {"cancel", admin_cancel}, {"webhooks", admin_webhooks},
};

int main(int argc, char **argv)
{
    char err[512];

    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        otp_config_print_help(OTP_PROG_ADMIN | OTP_PROG_ADMIN_PURGE, admin_usage);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
        printf("otp-admin %s\n", OTP_VERSION);
        return 0;
    }
    for (size_t i = 0; argc >= 2 && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        if (otp_config_load(OTP_PROG_ADMIN |
                                (strcmp(argv[1], "purge") == 0 ? OTP_PROG_ADMIN_PURGE : 0),
                            err, sizeof(err)) != 0) {
            fprintf(stderr, "otp-admin: %s\n", err);
            return 2;
        }
        otp_log_init("otp-admin", otp_log_level_parse(otp_config_str("OTP_LOG_LEVEL")),
                     otp_log_format_parse(otp_config_str("OTP_LOG_FORMAT")));
        /* The subcommand's own options start after its name. */
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "otp-admin: unknown command \"%s\"\n%s\n", argc >= 2 ? argv[1] : "",
            admin_usage);
    return 2;
}
