/* SPDX-License-Identifier: Apache-2.0 */
#include "otp_voice.h"

#include <ctype.h>
#include <stddef.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "otp_crypto.h"

#define MAX_LOCALES 64
#define LINE_MAX_BYTES 512

typedef struct voice_template {
    char locale[36];
    char language[36];
    int primary;
    char countries[128]; /* ",de,at,ch," */
    char intro[LINE_MAX_BYTES];
    char again[LINE_MAX_BYTES];
    char outro[LINE_MAX_BYTES];
    char gate[LINE_MAX_BYTES];
    char replay[LINE_MAX_BYTES]; /* "To hear it again, press 1." */
    char sms[LINE_MAX_BYTES];
    char keypad[LINE_MAX_BYTES];
    char keypad_thanks[LINE_MAX_BYTES];
    /* What the voice says for each digit where phone usage differs from the
     * engine's own reading (ja よん/なな, zh 幺, ko 공): said through
     * <sub alias>. Empty: <say-as interpret-as="characters">. */
    char digits[10][32];
} voice_template_t;

struct otp_voice_catalog {
    int n;
    voice_template_t t[MAX_LOCALES];
};

static int copy_line(json_t *o, const char *key, char *dst, size_t dst_size, int required)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return required ? -1 : 0;
    if (!json_is_string(v) || json_string_length(v) >= dst_size)
        return -1;
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int load_one(voice_template_t *t, const char *path, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *o = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    json_t *c;
    size_t i, n = 1;
    int rc = -1;

    if (!o) {
        snprintf(errstr, errstr_size, "%s: %s (line %d)", path, jerr.text, jerr.line);
        return -1;
    }
    memset(t, 0, sizeof(*t));
    if (copy_line(o, "locale", t->locale, sizeof(t->locale), 1) ||
        copy_line(o, "language", t->language, sizeof(t->language), 1) ||
        copy_line(o, "intro", t->intro, sizeof(t->intro), 1) ||
        copy_line(o, "again", t->again, sizeof(t->again), 1) ||
        copy_line(o, "outro", t->outro, sizeof(t->outro), 1) ||
        copy_line(o, "gate", t->gate, sizeof(t->gate), 1) ||
        copy_line(o, "replay", t->replay, sizeof(t->replay), 1) ||
        copy_line(o, "sms", t->sms, sizeof(t->sms), 1) ||
        copy_line(o, "keypad", t->keypad, sizeof(t->keypad), 1) ||
        copy_line(o, "keypad_thanks", t->keypad_thanks, sizeof(t->keypad_thanks), 1)) {
        snprintf(errstr, errstr_size,
                 "%s: locale, language, intro, again, outro, gate, replay, sms, keypad and "
                 "keypad_thanks must be strings under %d bytes",
                 path, LINE_MAX_BYTES);
        goto out;
    }
    t->primary = json_is_true(json_object_get(o, "primary"));
    /* The pace is the product's, never a template's: no rate, no speed-up. */
    if (json_object_get(o, "rate") || json_object_get(o, "digit_pause_ms")) {
        snprintf(errstr, errstr_size,
                 "%s: \"rate\" and \"digit_pause_ms\" are gone: the call is never sped up", path);
        goto out;
    }
    c = json_object_get(o, "digits");
    if (c && (!json_is_array(c) || json_array_size(c) != 10)) {
        snprintf(errstr, errstr_size, "%s: digits must be an array of 10 strings (0 to 9)", path);
        goto out;
    }
    for (i = 0; c && i < 10; i++) {
        json_t *w = json_array_get(c, i);
        if (!json_is_string(w) || json_string_length(w) == 0 ||
            json_string_length(w) >= sizeof(t->digits[0])) {
            snprintf(errstr, errstr_size, "%s: digits[%zu] must be a word under %zu bytes", path, i,
                     sizeof(t->digits[0]));
            goto out;
        }
        memcpy(t->digits[i], json_string_value(w), json_string_length(w) + 1);
    }
    t->countries[0] = ',';
    json_array_foreach(json_object_get(o, "countries"), i, c)
    {
        if (json_is_string(c) && n + json_string_length(c) + 2 < sizeof(t->countries)) {
            memcpy(t->countries + n, json_string_value(c), json_string_length(c));
            n += json_string_length(c);
            t->countries[n++] = ',';
        }
    }
    t->countries[n] = '\0';
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static int by_locale(const void *a, const void *b)
{
    return strcmp(((const voice_template_t *)a)->locale, ((const voice_template_t *)b)->locale);
}

otp_voice_catalog_t *otp_voice_load(const char *dir, char *errstr, size_t errstr_size)
{
    otp_voice_catalog_t *cat = calloc(1, sizeof(*cat));
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!cat || !d) {
        snprintf(errstr, errstr_size, "voice templates: cannot open folder %s", dir);
        goto fail;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char path[PATH_MAX];
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        if (cat->n == MAX_LOCALES) {
            snprintf(errstr, errstr_size, "voice templates: more than %d in %s", MAX_LOCALES, dir);
            goto fail;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (load_one(&cat->t[cat->n], path, errstr, errstr_size) != 0)
            goto fail;
        cat->n++;
    }
    closedir(d);
    d = NULL;
    if (cat->n == 0) {
        snprintf(errstr, errstr_size, "voice templates: no <locale>.json in %s", dir);
        goto fail;
    }
    qsort(cat->t, (size_t)cat->n, sizeof(cat->t[0]), by_locale);
    return cat;
fail:
    if (d)
        closedir(d);
    free(cat);
    return NULL;
}

void otp_voice_destroy(otp_voice_catalog_t *cat)
{
    free(cat);
}

void otp_voice_default_dir(char *out, size_t out_size)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        /* bin/otp-worker → bin → tree; tests live one level deeper (bin/unit). */
        for (int up = 0; up < 3; up++) {
            slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
            snprintf(out, out_size, "%s/common/locales", exe);
            if (access(out, R_OK) == 0)
                return;
        }
    }
    snprintf(out, out_size, "common/locales");
}

/* A requested tag, cleaned: '_' read as '-' (en_GB), at most 35 bytes. */
static void normalize(const char *in, char *out, size_t out_size)
{
    size_t n = 0;

    for (; in && *in && n + 1 < out_size; in++)
        out[n++] = *in == '_' ? '-' : *in;
    out[n] = '\0';
}

static const voice_template_t *find_exact(const otp_voice_catalog_t *cat, const char *locale)
{
    char want[36];

    normalize(locale, want, sizeof(want));
    for (int i = 0; i < cat->n; i++)
        if (strcasecmp(cat->t[i].locale, want) == 0)
            return &cat->t[i];
    return NULL;
}

/* The lines a service may say in its own words (policy "templates"). */
static const struct {
    const char *name;
    size_t offset;
} service_lines[] = {
    {"intro", offsetof(voice_template_t, intro)},
    {"again", offsetof(voice_template_t, again)},
    {"outro", offsetof(voice_template_t, outro)},
    {"gate", offsetof(voice_template_t, gate)},
    {"replay", offsetof(voice_template_t, replay)},
    {"sms", offsetof(voice_template_t, sms)},
    {"keypad", offsetof(voice_template_t, keypad)},
    {"keypad_thanks", offsetof(voice_template_t, keypad_thanks)},
};

/* The locale's template as a service says it: the catalog's, with the lines
 * the service's templates ({"<locale>": {"<line>": "text"}}, checked by
 * otp_voice_templates_check) set for that locale put in its place, in *tmp. */
static const voice_template_t *find_for(const otp_voice_catalog_t *cat, const char *locale,
                                        const json_t *templates, voice_template_t *tmp)
{
    const voice_template_t *t = find_exact(cat, locale);
    const char *key;
    json_t *lines = NULL, *v;

    if (!t || !templates)
        return t;
    json_object_foreach((json_t *)templates, key, v)
    {
        char want[36];
        normalize(key, want, sizeof(want));
        if (strcasecmp(want, t->locale) == 0)
            lines = v;
    }
    if (!json_is_object(lines))
        return t;
    *tmp = *t;
    for (size_t i = 0; i < sizeof(service_lines) / sizeof(service_lines[0]); i++) {
        v = json_object_get(lines, service_lines[i].name);
        if (json_is_string(v) && json_string_length(v) < LINE_MAX_BYTES)
            memcpy((char *)tmp + service_lines[i].offset, json_string_value(v),
                   json_string_length(v) + 1);
    }
    return tmp;
}

int otp_voice_templates_check(const json_t *templates, char *errstr, size_t errstr_size)
{
    const char *locale, *name;
    json_t *lines, *v;

    if (!json_is_object(templates) || json_object_size(templates) > MAX_LOCALES) {
        snprintf(errstr, errstr_size,
                 "templates: expected {\"<locale>\": {\"<line>\": \"text\"}} for at most %d "
                 "locales",
                 MAX_LOCALES);
        return -1;
    }
    json_object_foreach((json_t *)templates, locale, lines)
    {
        size_t len = strlen(locale);
        if (len < 2 || len > 35 || strspn(locale, "abcdefghijklmnopqrstuvwxyz") < 2 ||
            strspn(locale, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
                len) {
            snprintf(errstr, errstr_size, "templates.%.40s: not a locale (like en-US)", locale);
            return -1;
        }
        if (!json_is_object(lines) || json_object_size(lines) == 0) {
            snprintf(errstr, errstr_size,
                     "templates.%s: expected an object of lines (intro, again, outro, gate, "
                     "replay, sms, keypad, keypad_thanks)",
                     locale);
            return -1;
        }
        json_object_foreach(lines, name, v)
        {
            size_t i, n = sizeof(service_lines) / sizeof(service_lines[0]);
            const char *text = json_string_value(v), *p;
            int has_code = 0;

            for (i = 0; i < n && strcmp(name, service_lines[i].name) != 0; i++)
                ;
            if (i == n) {
                snprintf(errstr, errstr_size,
                         "templates.%s.%.40s: not a line (intro, again, outro, gate, replay, sms, "
                         "keypad, keypad_thanks)",
                         locale, name);
                return -1;
            }
            if (!text || json_string_length(v) == 0 || json_string_length(v) >= LINE_MAX_BYTES ||
                strspn(text, " ") == json_string_length(v)) {
                snprintf(errstr, errstr_size, "templates.%s.%s: expected text of 1 to %d bytes",
                         locale, name, LINE_MAX_BYTES - 1);
                return -1;
            }
            for (p = text; *p; p++) {
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                    snprintf(errstr, errstr_size, "templates.%s.%s: control characters", locale,
                             name);
                    return -1;
                }
                if (*p == '{' && strncmp(p, "{brand}", 7) != 0 && strncmp(p, "{code}", 6) != 0) {
                    snprintf(errstr, errstr_size,
                             "templates.%s.%s: the only placeholders are {brand} and, in sms, "
                             "{code}",
                             locale, name);
                    return -1;
                }
                has_code += strncmp(p, "{code}", 6) == 0;
            }
            /* The text carries the code; a call reads it itself, between
             * the lines, paced: a line never says it. */
            if (strcmp(name, "sms") == 0 ? has_code != 1 : has_code != 0) {
                snprintf(errstr, errstr_size,
                         strcmp(name, "sms") == 0
                             ? "templates.%s.%s: a text must say {code} exactly once"
                             : "templates.%s.%s: a call reads the code itself, between the "
                               "lines: no {code} here",
                         locale, name);
                return -1;
            }
        }
    }
    return 0;
}

static int lists_country(const voice_template_t *t, const char *iso)
{
    char needle[8];

    if (!iso || strlen(iso) != 2)
        return 0;
    snprintf(needle, sizeof(needle), ",%c%c,", tolower((unsigned char)iso[0]),
             tolower((unsigned char)iso[1]));
    return strstr(t->countries, needle) != NULL;
}

/* The region of a BCP-47 tag (de-AT → "at", zh-Hant-TW → "tw"); zh-Hant
 * without a region is Traditional Chinese, read as Taiwan's. "" if none. */
static void region_of(const char *tag, char *out, size_t out_size)
{
    const char *p = tag + strcspn(tag, "-");

    out[0] = '\0';
    while (*p == '-') {
        size_t k = strcspn(p + 1, "-");
        if (k == 2 && out_size > 2) {
            out[0] = (char)tolower((unsigned char)p[1]);
            out[1] = (char)tolower((unsigned char)p[2]);
            out[2] = '\0';
            return;
        }
        if (k == 4 && strncasecmp(p + 1, "hant", 4) == 0)
            snprintf(out, out_size, "tw");
        p += k + 1;
    }
}

/* A file of the tag's language: the one that lists the tag's region (es-MX →
 * es-419, en-AU → en-GB), else the one that lists the phone's country, else
 * the primary one, else any. */
static const voice_template_t *find_language(const otp_voice_catalog_t *cat, const char *tag,
                                             const char *phone_country)
{
    const voice_template_t *by_phone = NULL, *primary = NULL, *any = NULL;
    char want[36], region[4];
    size_t lang_len;

    normalize(tag, want, sizeof(want));
    lang_len = strcspn(want, "-");
    region_of(want, region, sizeof(region));
    for (int i = 0; i < cat->n; i++) {
        const voice_template_t *t = &cat->t[i];
        if (strncasecmp(t->locale, want, lang_len) != 0 || strcspn(t->locale, "-") != lang_len)
            continue;
        if (region[0] && lists_country(t, region))
            return t;
        if (!by_phone && lists_country(t, phone_country))
            by_phone = t;
        if (!primary && t->primary)
            primary = t;
        if (!any)
            any = t;
    }
    return by_phone ? by_phone : primary ? primary : any;
}

const char *otp_voice_pick(const otp_voice_catalog_t *cat, const char *requested,
                           const char *phone_country, const char *operator_default)
{
    const voice_template_t *t = NULL;

    if (requested && *requested) {
        t = find_exact(cat, requested);
        if (!t)
            t = find_language(cat, requested, phone_country);
    }
    if (!t && phone_country && *phone_country) {
        /* Prefer the primary locale of a language spoken there. */
        for (int i = 0; i < cat->n && !t; i++)
            if (cat->t[i].primary && lists_country(&cat->t[i], phone_country))
                t = &cat->t[i];
        for (int i = 0; i < cat->n && !t; i++)
            if (lists_country(&cat->t[i], phone_country))
                t = &cat->t[i];
    }
    if (!t && operator_default && *operator_default) {
        t = find_exact(cat, operator_default);
        if (!t)
            t = find_language(cat, operator_default, NULL);
    }
    if (!t)
        t = find_exact(cat, "en-US");
    if (!t)
        t = &cat->t[0];
    return t->locale;
}

const char *otp_voice_language(const otp_voice_catalog_t *cat, const char *locale)
{
    const voice_template_t *t = find_exact(cat, locale);
    return t ? t->language : "en-US";
}

int otp_xml_escape(const char *in, char *out, size_t out_size)
{
    size_t n = 0;

    for (; *in; in++) {
        const char *rep = NULL;
        char one[2] = {*in, '\0'};
        size_t k;
        switch (*in) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            rep = one;
            break;
        }
        k = strlen(rep);
        if (n + k + 1 > out_size)
            return -1;
        memcpy(out + n, rep, k);
        n += k;
    }
    if (n + 1 > out_size)
        return -1;
    out[n] = '\0';
    return 0;
}

/* Appends fmt to the buffer; -1 when it would not fit. */
static int put(char *buf, size_t size, size_t *n, const char *s)
{
    size_t k = strlen(s);
    if (*n + k + 1 > size)
        return -1;
    memcpy(buf + *n, s, k + 1);
    *n += k;
    return 0;
}

/* A template line with {brand} replaced by the escaped brand. The template
 * text itself is escaped too: it is data, not markup. */
static int put_line(char *buf, size_t size, size_t *n, const char *line, const char *brand_esc)
{
    char esc[LINE_MAX_BYTES * 6];
    const char *p = line;

    while (*p) {
        const char *b = strstr(p, "{brand}");
        size_t k = b ? (size_t)(b - p) : strlen(p);
        char piece[LINE_MAX_BYTES];
        if (k >= sizeof(piece))
            return -1;
        memcpy(piece, p, k);
        piece[k] = '\0';
        if (otp_xml_escape(piece, esc, sizeof(esc)) || put(buf, size, n, esc))
            return -1;
        if (!b)
            break;
        if (put(buf, size, n, brand_esc))
            return -1;
        p = b + 7;
    }
    return 0;
}

/* One digit: the template's word for it through <sub alias>, else the digit
 * spelled by the engine. The digit itself stays in the text either way. */
static int put_digit(char *buf, size_t size, size_t *n, const voice_template_t *t, char d)
{
    char piece[256], alias[6 * sizeof(t->digits[0])];
    const char *word = t->digits[d - '0'];

    if (word[0]) {
        if (otp_xml_escape(word, alias, sizeof(alias)))
            return -1;
        snprintf(piece, sizeof(piece), "<sub alias=\"%s\">%c</sub>", alias, d);
    } else {
        snprintf(piece, sizeof(piece), "<say-as interpret-as=\"characters\">%c</say-as>", d);
    }
    return put(buf, size, n, piece);
}

static int put_break(char *buf, size_t size, size_t *n, int ms)
{
    char piece[48];

    snprintf(piece, sizeof(piece), "<break time=\"%dms\"/>", ms);
    return put(buf, size, n, piece);
}

int otp_voice_groups(size_t len, int *groups)
{
    /* The usual phone grouping: 2-2, 3-2, 3-3, 3-4, 4-4, 3-3-3, 3-3-4. */
    static const int table[11][4] = {
        [4] = {2, 2}, [5] = {3, 2},    [6] = {3, 3},     [7] = {3, 4},
        [8] = {4, 4}, [9] = {3, 3, 3}, [10] = {3, 3, 4},
    };
    int k = 0;

    if (len < OTP_CODE_MIN || len > OTP_CODE_MAX)
        return 0;
    for (; k < 4 && table[len][k]; k++)
        groups[k] = table[len][k];
    return k;
}

/* The code once: groups of digits, OTP_VOICE_INNER_MS between the digits of a
 * group, OTP_VOICE_GROUP_MS between groups. No pause after the last digit:
 * the caller's follows. */
static int put_code(char *buf, size_t size, size_t *n, const voice_template_t *t, const char *code)
{
    int groups[4], ng = otp_voice_groups(strlen(code), groups);
    const char *c = code;

    for (int g = 0; g < ng; g++) {
        for (int k = 0; k < groups[g]; k++, c++) {
            if (put_digit(buf, size, n, t, *c))
                return -1;
            if (k + 1 < groups[g] && put_break(buf, size, n, OTP_VOICE_INNER_MS))
                return -1;
        }
        if (g + 1 < ng && put_break(buf, size, n, OTP_VOICE_GROUP_MS))
            return -1;
    }
    return 0;
}

static int code_ok(const char *code)
{
    size_t len = code ? strlen(code) : 0;

    return len >= OTP_CODE_MIN && len <= OTP_CODE_MAX && strspn(code, "0123456789") == len;
}

/* Between the two readings: "Again:" with its pauses, or for a long code a
 * pause alone (its 16 digits leave no room for the line within 15 s). */
static int put_again(char *buf, size_t size, size_t *n, const voice_template_t *t,
                     const char *brand_esc, int bare)
{
    if (bare)
        return put_break(buf, size, n, OTP_VOICE_REPEAT_MS);
    return put_break(buf, size, n, OTP_VOICE_AFTER_CODE_MS) ||
           put_line(buf, size, n, t->again, brand_esc) ||
           put_break(buf, size, n, OTP_VOICE_BEFORE_CODE_MS);
}

static char *render_line(const char *line, const char *brand);

/* The message, or one part of it: MSG_WHOLE; MSG_FIRST up to the end of the
 * first reading; MSG_REST from there on. FIRST and REST together say what
 * WHOLE says. */
enum { MSG_WHOLE, MSG_FIRST, MSG_REST };

static char *render_message(const voice_template_t *t, const char *brand, const char *code,
                            int part)
{
    size_t size = 8192, n = 0;
    char *buf = malloc(size);
    char brand_esc[512];
    int first = part != MSG_REST, rest = part != MSG_FIRST;

    if (!t || !buf || !code_ok(code) ||
        otp_xml_escape(brand ? brand : "", brand_esc, sizeof(brand_esc)))
        goto fail;
    /* A short silence first, so the first word is not lost while the phone
     * reaches the ear. Natural speed throughout: no <prosody>. */
    if (put(buf, size, &n, "<speak>") ||
        (first && (put_break(buf, size, &n, OTP_VOICE_LEAD_MS) ||
                   put_line(buf, size, &n, t->intro, brand_esc) ||
                   put_break(buf, size, &n, OTP_VOICE_BEFORE_CODE_MS) ||
                   put_code(buf, size, &n, t, code))) ||
        (rest &&
         (put_again(buf, size, &n, t, brand_esc, strlen(code) >= OTP_VOICE_BARE_REPEAT_FROM) ||
          put_code(buf, size, &n, t, code) || put_break(buf, size, &n, OTP_VOICE_AFTER_CODE_MS) ||
          put_line(buf, size, &n, t->outro, brand_esc))) ||
        put(buf, size, &n, "</speak>"))
        goto fail;
    return buf;
fail:
    otp_free_wiped(buf); /* may hold part of the code */
    return NULL;
}

char *otp_voice_render_code(const otp_voice_catalog_t *cat, const json_t *templates,
                            const char *locale, const char *brand, const char *code)
{
    voice_template_t tmp;

    return render_message(find_for(cat, locale, templates, &tmp), brand, code, MSG_WHOLE);
}

/* The SSML's length as spoken, by the model the header states. */
static int64_t spoken_ms(const char *ssml)
{
    int64_t ms = 0;
    const char *p = ssml;

    while (p && *p) {
        if (*p == '<') {
            const char *end = strchr(p, '>');
            long brk;
            if (!end)
                break;
            if (strncmp(p, "<break time=\"", 13) == 0 && (brk = strtol(p + 13, NULL, 10)) > 0)
                ms += brk;
            /* A digit, spelled or said by its word, is one word. */
            if (strncmp(p, "<say-as", 7) == 0 || strncmp(p, "<sub ", 5) == 0) {
                const char *close =
                    strstr(end, strncmp(p, "<sub ", 5) == 0 ? "</sub>" : "</say-as>");
                ms += OTP_VOICE_MS_PER_DIGIT;
                p = close ? strchr(close, '>') + 1 : end + 1;
                continue;
            }
            p = end + 1;
            continue;
        }
        if ((unsigned char)*p < 0x80 || ((unsigned char)*p & 0xc0) == 0xc0)
            ms += OTP_VOICE_MS_PER_CHAR; /* one per character, not per byte */
        p++;
    }
    return ms;
}

int otp_voice_heard_times(const otp_voice_catalog_t *cat, const json_t *templates,
                          const char *locale, const char *brand, int code_length, int gate,
                          otp_voice_heard_t *out)
{
    voice_template_t tmp;
    const voice_template_t *t = find_for(cat, locale, templates, &tmp);
    char code[OTP_CODE_MAX + 1], *first, *digit, *sub, saved;
    int64_t before = 0;

    if (!t || code_length < OTP_CODE_MIN || code_length > OTP_CODE_MAX)
        return -1;
    if (gate) {
        /* The shortest way through the gate: a key at once after the prompt. */
        char *prompt = render_line(t->gate, brand);
        if (!prompt)
            return -1;
        before = spoken_ms(prompt);
        free(prompt);
    }
    /* The times depend on the code's length, not on its digits (a digit's
     * word counts as one word): any code of that length will do. */
    memset(code, '0', (size_t)code_length);
    code[code_length] = '\0';
    first = render_message(t, brand, code, MSG_FIRST);
    if (!first)
        return -1;
    out->code_end_ms = before + spoken_ms(first);
    digit = strstr(first, "<say-as");
    sub = strstr(first, "<sub ");
    if (sub && (!digit || sub < digit))
        digit = sub;
    out->code_start_ms = out->code_end_ms;
    if (digit) {
        saved = *digit;
        *digit = '\0';
        out->code_start_ms = before + spoken_ms(first);
        *digit = saved;
    }
    free(first);
    return 0;
}

static json_t *talk(const char *text, const char *language)
{
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "talk", "option", "text", text, "language",
                     language);
}

/* One template line alone (the gate prompt, the replay offer), as SSML after
 * a short silence. */
static char *render_line(const char *line, const char *brand)
{
    size_t size = 4096, n = 0;
    char *buf = malloc(size);
    char brand_esc[512];

    if (!buf || otp_xml_escape(brand ? brand : "", brand_esc, sizeof(brand_esc)) ||
        put(buf, size, &n, "<speak>") || put_break(buf, size, &n, OTP_VOICE_LEAD_MS) ||
        put_line(buf, size, &n, line, brand_esc) || put(buf, size, &n, "</speak>")) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* After the message: "to hear it again, press 1" → digits_receive → branch:
 * the key → the message once more; anything else or nothing → hang up.
 * voipbin.call.digits may already hold a key (the gate's, or one pressed
 * during the message: outside digits_receive a key overwrites the variable),
 * and digits_receive ends at once when the stored digits already meet its
 * length. So the variable is emptied first (variable_set): in VoIPBin the
 * digits are that activeflow variable itself (call-manager digit.go reads and
 * writes it through flow-manager; variable_set takes any key). Were the reset
 * ever not to hold, the stale key ends the wait at once and the call hangs up
 * (or, if it was the replay key, reads the code once more): never worse. */
static int append_replay(json_t *actions, const voice_template_t *t, const char *brand,
                         const char *text)
{
    char replay_id[37], end_id[37];
    char *offer = render_line(t->replay, brand);

    if (!offer)
        return -1;
    otp_uuid_v4(replay_id);
    otp_uuid_v4(end_id);
    json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s}}", "type", "variable_set",
                                             "option", "key", "voipbin.call.digits", "value", ""));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "talk", "option", "text",
                                    offer, "language", t->language, "digits_handle", "next"));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:i, s:i}}", "type", "digits_receive", "option",
                                    "duration", OTP_VOICE_REPLAY_WAIT_MS, "length", 1));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "type", "branch", "option",
                                    "variable", "voipbin.call.digits", "default_target_id", end_id,
                                    "target_ids", OTP_VOICE_REPLAY_KEY, replay_id));
    json_array_append_new(actions,
                          json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", replay_id, "type", "talk",
                                    "option", "text", text, "language", t->language));
    json_array_append_new(actions, json_pack("{s:s, s:s}", "id", end_id, "type", "hangup"));
    free(offer);
    return 0;
}

/* The message: one talk; or, when the call can report back (a notify_uri and
 * a request id), the first reading, the "heard" marker (a signed
 * webhook_send otp_heard naming the request and the call), then the rest. The
 * marker is what makes a call "delivered": the callee stayed on the line
 * through one full reading of the code. */
static int append_message(json_t *actions, const voice_template_t *t, const char *brand,
                          const char *code, const char *text, const otp_voice_opts_t *opts)
{
    char data[256], *first, *rest;

    if (!opts || !opts->notify_uri || !*opts->notify_uri || !opts->request_id ||
        !otp_uuid_valid(opts->request_id)) {
        json_array_append_new(actions, talk(text, t->language));
        return 0;
    }
    first = render_message(t, brand, code, MSG_FIRST);
    rest = render_message(t, brand, code, MSG_REST);
    if (!first || !rest) {
        otp_free_wiped(first);
        otp_free_wiped(rest);
        return -1;
    }
    /* The request id goes into JSON unescaped: only a UUID is allowed there. */
    snprintf(data, sizeof(data),
             "{\"type\":\"otp_heard\",\"data\":{\"request_id\":\"%s\","
             "\"id\":\"${voipbin.call.id}\"}}",
             opts->request_id);
    json_array_append_new(actions, talk(first, t->language));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "type", "webhook_send",
                                    "option", "uri", opts->notify_uri, "method", "POST",
                                    "data_type", "application/json", "data", data, "sync", 0));
    json_array_append_new(actions, talk(rest, t->language));
    otp_free_wiped(first); /* the actions keep their own copies */
    otp_free_wiped(rest);
    return 0;
}

json_t *otp_voice_actions(const otp_voice_catalog_t *cat, const json_t *templates,
                          const char *locale, const char *brand, const char *code,
                          const otp_voice_opts_t *opts)
{
    voice_template_t tmp;
    const voice_template_t *t = find_for(cat, locale, templates, &tmp);
    json_t *actions = NULL;
    char *text = NULL, *gate = NULL;

    if (!t)
        return NULL;
    text = otp_voice_render_code(cat, templates, locale, brand, code);
    if (!text)
        return NULL;
    actions = json_array();
    if (opts && opts->amd)
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:b}}", "type", "amd", "option",
                                                 "machine_handle", "hangup", "async", 0));
    if (opts && opts->gate) {
        /* Press any key to hear the code: a voicemail box never presses one,
         * so the code is never read into it. No key → the prompt once more
         * (goto, loop_count 1), then still none → report and hang up. */
        char gate_id[37], again_id[37];
        gate = render_line(t->gate, brand);
        if (!gate) {
            json_decref(actions);
            otp_free_wiped(text);
            return NULL;
        }
        otp_uuid_v4(gate_id);
        otp_uuid_v4(again_id);
        json_array_append_new(actions, json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "id", gate_id,
                                                 "type", "talk", "option", "text", gate, "language",
                                                 t->language, "digits_handle", "next"));
        json_array_append_new(actions, json_pack("{s:s, s:{s:i, s:i}}", "type", "digits_receive",
                                                 "option", "duration", 6000, "length", 1));
        json_array_append_new(actions,
                              json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:s}}", "type",
                                        "condition_variable", "option", "condition",
                                        ">=", "variable", "voipbin.call.digits", "value_type",
                                        "length", "value_length", 1, "false_target_id", again_id));
        if (append_message(actions, t, brand, code, text, opts) ||
            append_replay(actions, t, brand, text))
            goto fail;
        json_array_append_new(actions,
                              json_pack("{s:s, s:s, s:{s:s, s:i}}", "id", again_id, "type", "goto",
                                        "option", "target_id", gate_id, "loop_count", 1));
        /* The request id goes into JSON unescaped: only a UUID is allowed there. */
        if (opts->notify_uri && *opts->notify_uri && opts->request_id &&
            otp_uuid_valid(opts->request_id)) {
            char data[256];
            snprintf(data, sizeof(data),
                     "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"%s\","
                     "\"id\":\"${voipbin.call.id}\"}}",
                     opts->request_id);
            json_array_append_new(
                actions, json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "type", "webhook_send",
                                   "option", "uri", opts->notify_uri, "method", "POST", "data_type",
                                   "application/json", "data", data, "sync", 1));
            json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
        } else {
            json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
        }
    } else if (append_message(actions, t, brand, code, text, opts) ||
               append_replay(actions, t, brand, text)) {
        goto fail;
    }
    free(gate);
    otp_free_wiped(text); /* the SSML with the code; the actions keep a copy */
    return actions;
fail:
    json_decref(actions);
    free(gate);
    free(text);
    return NULL;
}

char *otp_voice_render_sms(const otp_voice_catalog_t *cat, const json_t *templates,
                           const char *locale, const char *brand, const char *code)
{
    voice_template_t tmp;
    const voice_template_t *t = find_for(cat, locale, templates, &tmp);
    size_t size = 1024, n = 0;
    char *buf = malloc(size);
    const char *p;

    if (!t || !buf || !code || strspn(code, "0123456789") != strlen(code) ||
        strlen(code) < OTP_CODE_MIN || strlen(code) > OTP_CODE_MAX)
        goto fail;
    for (p = t->sms; *p;) {
        if (strncmp(p, "{brand}", 7) == 0) {
            if (put(buf, size, &n, brand ? brand : ""))
                goto fail;
            p += 7;
        } else if (strncmp(p, "{code}", 6) == 0) {
            if (put(buf, size, &n, code))
                goto fail;
            p += 6;
        } else {
            char one[2] = {*p++, '\0'};
            if (put(buf, size, &n, one))
                goto fail;
        }
    }
    return buf;
fail:
    otp_free_wiped(buf); /* may hold part of the code */
    return NULL;
}

json_t *otp_voice_keypad_actions(const otp_voice_catalog_t *cat, const json_t *templates,
                                 const char *locale, const char *brand, int code_length,
                                 const char *notify_uri, const char *request_id)
{
    voice_template_t tmp;
    const voice_template_t *t = find_for(cat, locale, templates, &tmp);
    size_t size = 2048, n = 0;
    char prompt[2048], thanks[1024], brand_esc[512], data[320];
    json_t *actions;

    if (!t || !notify_uri || !*notify_uri || !request_id || !otp_uuid_valid(request_id) ||
        otp_xml_escape(brand ? brand : "", brand_esc, sizeof(brand_esc)))
        return NULL;
    prompt[0] = thanks[0] = '\0';
    if (put(prompt, size, &n, "<speak>") || put_line(prompt, size, &n, t->keypad, brand_esc) ||
        put(prompt, size, &n, "</speak>"))
        return NULL;
    n = 0;
    if (put(thanks, sizeof(thanks), &n, "<speak>") ||
        put_line(thanks, sizeof(thanks), &n, t->keypad_thanks, brand_esc) ||
        put(thanks, sizeof(thanks), &n, "</speak>"))
        return NULL;
    /* The digits come back only through webhook_send: VoIPBin never pushes DTMF. */
    snprintf(data, sizeof(data),
             "{\"type\":\"otp_keypad\",\"data\":{\"request_id\":\"%s\","
             "\"id\":\"${voipbin.call.id}\",\"digits\":\"${voipbin.call.digits}\"}}",
             request_id);
    actions = json_array();
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "talk", "option", "text",
                                    prompt, "language", t->language, "digits_handle", "next"));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:i, s:i, s:s}}", "type", "digits_receive", "option",
                                    "duration", 20000, "length", code_length + 1, "key", "#"));
    json_array_append_new(actions,
                          json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "type", "webhook_send",
                                    "option", "uri", notify_uri, "method", "POST", "data_type",
                                    "application/json", "data", data, "sync", 1));
    json_array_append_new(actions, talk(thanks, t->language));
    json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
    return actions;
}

/* The next code point of s (valid, shortest-form UTF-8), or -1. */
static long utf8_next(const unsigned char **s)
{
    const unsigned char *p = *s;
    long cp;
    int extra;

    if (p[0] < 0x80) {
        cp = p[0];
        extra = 0;
    } else if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        cp = p[0] & 0x1f;
        extra = 1;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        cp = p[0] & 0x0f;
        extra = 2;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        cp = p[0] & 0x07;
        extra = 3;
    } else {
        return -1;
    }
    for (int i = 1; i <= extra; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *s = p + extra + 1;
    return cp;
}

int otp_voice_brand_check(const char *brand, char *errstr, size_t errstr_size)
{
    const unsigned char *p = (const unsigned char *)(brand ? brand : "");
    int chars = 0, visible = 0;

    while (*p) {
        long cp = utf8_next(&p);
        if (cp < 0) {
            snprintf(errstr, errstr_size, "OTP_BRAND: not valid UTF-8 (byte %zu)",
                     (size_t)(p - (const unsigned char *)brand));
            return -1;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            snprintf(errstr, errstr_size,
                     "OTP_BRAND: holds a control character (U+%04lX at character %d); the brand "
                     "is spoken in every call",
                     cp, chars + 1);
            return -1;
        }
        visible |= cp != ' ' && cp != 0xa0 && cp != 0x3000;
        if (++chars > OTP_VOICE_BRAND_MAX) {
            snprintf(errstr, errstr_size,
                     "OTP_BRAND: longer than %d characters; it is spoken twice in every call, "
                     "whose message must stay under 15 s",
                     OTP_VOICE_BRAND_MAX);
            return -1;
        }
    }
    if (!visible) {
        snprintf(errstr, errstr_size, "OTP_BRAND: empty or blank; the call says who is calling");
        return -1;
    }
    return 0;
}
