/* SPDX-License-Identifier: Apache-2.0 */
/* The release every program reports (--version, otp_build_info). The Makefile writes
 * otp_version_gen.h (under build/gen/) from scripts/version.sh: `git describe`, or the VERSION
 * file of a source tarball. A packager may set it: make OTP_VERSION=1.2.3. */
#ifndef OTP_VERSION_H
#define OTP_VERSION_H

#ifndef OTP_VERSION
#if __has_include("otp_version_gen.h")
#include "otp_version_gen.h"
#else
#define OTP_VERSION "unknown"
#endif
#endif

#endif
