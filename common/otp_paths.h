/* SPDX-License-Identifier: Apache-2.0 */
/* Where the programs find their data (voice templates, SQL migrations):
 * installed under PREFIX/share/otp by `make install`, or in the source tree. */
#ifndef OTP_PATHS_H
#define OTP_PATHS_H

#include <stddef.h>

/* The folder `sub` of the data, the first that exists of:
 *   <dir of the binary>/../share/otp/<sub>   (an installed tree, wherever it was moved)
 *   OTP_DATADIR/<sub>                        (PREFIX/share/otp of the build)
 *   <dir of the binary>/../<tree>            (the source tree: bin/ next to common/, sql/;
 *                                             tests one level deeper)
 * and else `tree` as given (relative to the working directory). */
void otp_data_dir(const char *sub, const char *tree, char *out, size_t out_size);

#endif
