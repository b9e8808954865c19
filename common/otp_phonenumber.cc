/* SPDX-License-Identifier: Apache-2.0 */
// The only C++ in the tree: libphonenumber behind otp_phonenumber.h.
#include "otp_phonenumber.h"

#include <phonenumbers/phonenumberutil.h>

#include <cstring>
#include <string>

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

namespace
{

const char *const type_names[OTP_PN_NTYPES] = {
    "fixed_line",  "mobile",  "fixed_line_or_mobile", "toll_free", "premium_rate",
    "shared_cost", "voip",    "personal_number",      "pager",     "uan",
    "voicemail",   "unknown",
};

bool plain_e164(const char *s)
{
    size_t n = 0;

    if (!s || s[0] != '+')
        return false;
    for (const char *p = s + 1; *p; p++, n++)
        if (*p < '0' || *p > '9')
            return false;
    return n >= 2 && n <= 15;
}

} // namespace

extern "C" int otp_pn_lookup(const char *e164, otp_pn_info_t *info)
{
    // Parse() accepts letters, spaces and national forms; only strict E.164
    // gets this far, so "+1 415..." never turns valid by the library's leniency.
    if (!plain_e164(e164))
        return -1;
    try {
        const PhoneNumberUtil *u = PhoneNumberUtil::GetInstance();
        PhoneNumber n;
        std::string region;

        if (u->Parse(e164, "ZZ", &n) != PhoneNumberUtil::NO_PARSING_ERROR || !u->IsValidNumber(n))
            return -1;
        if (info) {
            u->GetRegionCodeForNumber(n, &region);
            info->region[0] = '\0';
            if (region.size() == 2 && region[0] >= 'A' && region[0] <= 'Z' && region[1] >= 'A' &&
                region[1] <= 'Z') {
                info->region[0] = static_cast<char>(region[0] - 'A' + 'a');
                info->region[1] = static_cast<char>(region[1] - 'A' + 'a');
                info->region[2] = '\0';
            }
            int t = static_cast<int>(u->GetNumberType(n));
            info->type =
                t >= 0 && t < OTP_PN_NTYPES ? static_cast<otp_pn_type_t>(t) : OTP_PN_UNKNOWN;
        }
        return 0;
    } catch (...) {
        return -1; // out of memory inside the library: never let it cross into C
    }
}

extern "C" const char *otp_pn_type_name(otp_pn_type_t t)
{
    return t >= 0 && t < OTP_PN_NTYPES ? type_names[t] : "unknown";
}

extern "C" int otp_pn_type_from_name(const char *name, size_t len)
{
    for (int i = 0; i < OTP_PN_NTYPES; i++)
        if (std::strlen(type_names[i]) == len && std::strncmp(type_names[i], name, len) == 0)
            return i;
    return -1;
}
