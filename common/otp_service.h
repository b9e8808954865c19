/* SPDX-License-Identifier: Apache-2.0 */
/* The start every long-running program shares: the settings (checked, with
 * the bad one named), libsodium, the metrics registry and the logger. */
#ifndef OTP_SERVICE_H
#define OTP_SERVICE_H

#include "otp_config.h"

/* 0 ok; -1 after printing "name: what is wrong" on stderr (exit with 2). */
int otp_service_init(unsigned prog, const char *name) __attribute__((warn_unused_result));

#endif
