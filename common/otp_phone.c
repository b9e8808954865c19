/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_phone.h"

#include "otp_phonenumber.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

int otp_phone_is_e164(const char *s)
{
    size_t n;

    if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    for (n = 1; s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return 0;
    n -= 1;
    return n >= 7 && n <= 15;
}

/* Every "xy" once, so a region can be returned as static storage. */
static char region_names[26 * 26][3];
static pthread_once_t region_once = PTHREAD_ONCE_INIT;

static void region_names_fill(void)
{
    for (int i = 0; i < 26 * 26; i++) {
        region_names[i][0] = (char)('a' + i / 26);
        region_names[i][1] = (char)('a' + i % 26);
    }
}

const char *otp_phone_country_of(const otp_pn_info_t *info)
{
    if (!info || info->region[0] < 'a' || info->region[0] > 'z' || info->region[1] < 'a' ||
        info->region[1] > 'z')
        return "";
    pthread_once(&region_once, region_names_fill);
    return region_names[(info->region[0] - 'a') * 26 + (info->region[1] - 'a')];
}

const char *otp_phone_country(const char *e164)
{
    otp_pn_info_t info;

    if (!otp_phone_is_e164(e164) || otp_pn_lookup(e164, &info) != 0)
        return "";
    return otp_phone_country_of(&info);
}

void otp_phone_mask(const char *e164, char *out, size_t out_size)
{
    size_t n, keep_head, i;

    if (out_size == 0)
        return;
    if (!otp_phone_is_e164(e164)) {
        snprintf(out, out_size, "(invalid)");
        return;
    }
    n = strlen(e164);
    /* '+' and up to 4 leading digits, the last 2, and always at least 4 hidden. */
    keep_head = 1 + (n - 1 >= 12 ? 4 : 2);
    if (keep_head > n - 1 - 6 + 1)
        keep_head = n - 1 - 6 + 1;
    for (i = 0; i < n && i + 1 < out_size; i++)
        out[i] = (i < keep_head || i >= n - 2) ? e164[i] : '*';
    out[i] = '\0';
}
