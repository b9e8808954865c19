/* SPDX-License-Identifier: Apache-2.0 */
/* Phone numbers: E.164 checks, masking for logs and topics, country lookup. */
#ifndef OTP_PHONE_H
#define OTP_PHONE_H

#include "otp_phonenumber.h"

#include <stddef.h>

#define OTP_PHONE_MAX 17 /* '+', 15 digits, NUL */

/* 1 if `s` is E.164: '+', a first digit 1-9, 7 to 15 digits in all. */
int otp_phone_is_e164(const char *s);

/* Writes a masked form ("+4915*******78": "+", up to 4 leading digits and the
 * last 2 kept, at least 4 hidden)
 * into out. Always NUL-terminates; "(invalid)" for a non-E.164 input. */
void otp_phone_mask(const char *e164, char *out, size_t out_size);

/* Lower-case ISO 3166 alpha-2 region of a valid E.164 number, from
 * libphonenumber (+1-876 → "jm", +1-416 → "ca", +1-787 → "pr"), or "" for an
 * invalid or non-geographic (+881) number. Static storage; thread-safe. */
const char *otp_phone_country(const char *e164);

/* The same from a lookup already made (otp_pn_lookup's info): "" for none. */
const char *otp_phone_country_of(const otp_pn_info_t *info);

#endif
