#include "otp_phone.h"

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

/* Calling codes of the countries a voice OTP service is most often asked to
 * reach. NANP ("1") is reported as "us". Longest prefix wins. */
static const struct {
    const char *prefix;
    const char *iso;
} calling_codes[] = {
    {"1", "us"},    {"7", "ru"},    {"20", "eg"},   {"27", "za"},   {"30", "gr"},   {"31", "nl"},
    {"32", "be"},   {"33", "fr"},   {"34", "es"},   {"36", "hu"},   {"39", "it"},   {"40", "ro"},
    {"41", "ch"},   {"43", "at"},   {"44", "gb"},   {"45", "dk"},   {"46", "se"},   {"47", "no"},
    {"48", "pl"},   {"49", "de"},   {"51", "pe"},   {"52", "mx"},   {"54", "ar"},   {"55", "br"},
    {"56", "cl"},   {"57", "co"},   {"60", "my"},   {"61", "au"},   {"62", "id"},   {"63", "ph"},
    {"64", "nz"},   {"65", "sg"},   {"66", "th"},   {"81", "jp"},   {"82", "kr"},   {"84", "vn"},
    {"86", "cn"},   {"90", "tr"},   {"91", "in"},   {"92", "pk"},   {"212", "ma"},  {"234", "ng"},
    {"254", "ke"},  {"351", "pt"},  {"352", "lu"},  {"353", "ie"},  {"358", "fi"},  {"372", "ee"},
    {"380", "ua"},  {"420", "cz"},  {"421", "sk"},  {"852", "hk"},  {"886", "tw"},  {"966", "sa"},
    {"971", "ae"},  {"972", "il"},
};

const char *otp_phone_country(const char *e164)
{
    const char *best = "";
    size_t best_len = 0;

    if (!otp_phone_is_e164(e164))
        return "";
    for (size_t i = 0; i < sizeof(calling_codes) / sizeof(*calling_codes); i++) {
        size_t n = strlen(calling_codes[i].prefix);
        if (n > best_len && strncmp(e164 + 1, calling_codes[i].prefix, n) == 0) {
            best = calling_codes[i].iso;
            best_len = n;
        }
    }
    return best;
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
