/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_service.h"

#include <stdio.h>

#include "otp_crypto.h"
#include "otp_log.h"
#include "otp_metrics.h"
#include "otp_version.h"

int otp_service_init(unsigned prog, const char *name)
{
    char err[512] = "cannot initialise libsodium";

    if (otp_config_load(prog, err, sizeof(err)) != 0 || otp_crypto_init() != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return -1;
    }
    otp_metrics_init(name, OTP_VERSION);
    otp_log_init(name, otp_log_level_parse(otp_config_str("OTP_LOG_LEVEL")),
                 otp_log_format_parse(otp_config_str("OTP_LOG_FORMAT")));
    return 0;
}
