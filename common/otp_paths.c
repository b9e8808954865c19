/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_paths.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef OTP_DATADIR
#define OTP_DATADIR "/usr/local/share/otp"
#endif

static int usable(const char *path)
{
    return access(path, R_OK | X_OK) == 0;
}

void otp_data_dir(const char *sub, const char *tree, char *out, size_t out_size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0'; /* exe = the binary's folder */
            snprintf(out, out_size, "%s/../share/otp/%s", exe, sub);
            if (usable(out))
                return;
        }
    }
    snprintf(out, out_size, "%s/%s", OTP_DATADIR, sub);
    if (usable(out))
        return;
    if (n > 0) {
        /* bin/otp-worker → the tree; tests live one or two levels deeper. */
        for (int up = 0; up < 3; up++) {
            slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
            snprintf(out, out_size, "%s/%s", exe, tree);
            if (usable(out))
                return;
        }
    }
    snprintf(out, out_size, "%s", tree);
}
