/* SPDX-License-Identifier: Apache-2.0 */
/* Phone number facts from Google's libphonenumber (C++), behind a C
 * interface: whether a number is valid, its region and its type. The
 * metadata is the library's own (Debian libphonenumber-dev), so NANP islands,
 * Canada and Puerto Rico get their own region and premium ranges are known
 * wherever the library knows them. Thread-safe: any thread may call. */
#ifndef OTP_PHONENUMBER_H
#define OTP_PHONENUMBER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libphonenumber's PhoneNumberType, in its order. */
typedef enum {
    OTP_PN_FIXED_LINE,
    OTP_PN_MOBILE,
    OTP_PN_FIXED_LINE_OR_MOBILE,
    OTP_PN_TOLL_FREE,
    OTP_PN_PREMIUM_RATE,
    OTP_PN_SHARED_COST,
    OTP_PN_VOIP,
    OTP_PN_PERSONAL_NUMBER,
    OTP_PN_PAGER,
    OTP_PN_UAN,
    OTP_PN_VOICEMAIL,
    OTP_PN_UNKNOWN,
    OTP_PN_NTYPES
} otp_pn_type_t;

typedef struct otp_pn_info {
    /* Lower-case ISO 3166 alpha-2 region ("jm", "ca", "pr"); "" for a
     * non-geographic number (+881 satellite, +800 ...). */
    char region[3];
    otp_pn_type_t type;
} otp_pn_info_t;

/* Looks an E.164 string up. 0 when libphonenumber holds it a valid number
 * (info filled), -1 when it is not (impossible length, unassigned range,
 * not E.164). info may be NULL. */
int otp_pn_lookup(const char *e164, otp_pn_info_t *info) __attribute__((warn_unused_result));

/* "premium_rate", "shared_cost", "uan", ... (static); "unknown" out of range. */
const char *otp_pn_type_name(otp_pn_type_t t);

/* The type named `name` (as otp_pn_type_name spells it); -1 if none. */
int otp_pn_type_from_name(const char *name, size_t len);

#ifdef __cplusplus
}
#endif

#endif
