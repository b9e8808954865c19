/* SPDX-License-Identifier: Apache-2.0 */
/* otp_voice: XML escaping, the talk text of every locale file that exists,
 * the locale chain and the VoIPBin actions. */
#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otp_crypto.h"
#include "otp_phone.h"
#include "otp_voice.h"
#include "unit.h"

#define BRAND "A&B <Co> \"Q\" 'x'"
#define BRAND_ESC "A&amp;B &lt;Co&gt; &quot;Q&quot; &apos;x&apos;"
#define MAX_FILES 64
#define HOOK "http://127.0.0.1:1/hook"
#define REQ_ID "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01"

/* What the test itself reads from each common/locales/<locale>.json. */
typedef struct {
    char locale[64];
    char language[64];
    int primary;
    char countries[256]; /* ",de,at," */
    char lines[3][1024]; /* intro, again, outro: the lines read with the code */
    char gate[1024];
    char replay[1024];
    char sms[1024];
    char keypad[1024];
    char keypad_thanks[1024];
} locale_file_t;

static locale_file_t files[MAX_FILES];
static int nfiles;
static char dir[PATH_MAX];

static const char *str_of(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void read_locale_files(void)
{
    static const char *const keys[3] = {"intro", "again", "outro"};
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!CHECK(d != NULL))
        return;
    while ((e = readdir(d)) != NULL && nfiles < MAX_FILES) {
        size_t len = strlen(e->d_name);
        char path[PATH_MAX + 256];
        json_t *o, *c;
        size_t i;
        locale_file_t *f = &files[nfiles];

        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        o = json_load_file(path, 0, NULL);
        unit_ctx("%s", path);
        if (!CHECK(o != NULL)) {
            unit_ctx(NULL);
            continue;
        }
        snprintf(f->locale, sizeof(f->locale), "%s", str_of(o, "locale"));
        snprintf(f->language, sizeof(f->language), "%s", str_of(o, "language"));
        f->primary = json_is_true(json_object_get(o, "primary"));
        snprintf(f->countries, sizeof(f->countries), ",");
        json_array_foreach(json_object_get(o, "countries"), i, c)
        {
            size_t n = strlen(f->countries);
            snprintf(f->countries + n, sizeof(f->countries) - n, "%s,",
                     json_is_string(c) ? json_string_value(c) : "");
        }
        for (int k = 0; k < 3; k++)
            snprintf(f->lines[k], sizeof(f->lines[k]), "%s", str_of(o, keys[k]));
        snprintf(f->gate, sizeof(f->gate), "%s", str_of(o, "gate"));
        snprintf(f->replay, sizeof(f->replay), "%s", str_of(o, "replay"));
        CHECK(f->replay[0] != '\0'); /* every locale offers the code again */
        snprintf(f->sms, sizeof(f->sms), "%s", str_of(o, "sms"));
        snprintf(f->keypad, sizeof(f->keypad), "%s", str_of(o, "keypad"));
        snprintf(f->keypad_thanks, sizeof(f->keypad_thanks), "%s", str_of(o, "keypad_thanks"));
        /* the file name is the locale */
        CHECK(len - 5 == strlen(f->locale) && strncmp(e->d_name, f->locale, len - 5) == 0);
        unit_ctx(NULL);
        json_decref(o);
        nfiles++;
    }
    closedir(d);
    printf("locale files in %s: %d\n", dir, nfiles);
    CHECK(nfiles >= 1);
}

static const locale_file_t *file_of(const char *locale)
{
    for (int i = 0; i < nfiles; i++)
        if (strcmp(files[i].locale, locale) == 0)
            return &files[i];
    return NULL;
}

static int has_country(const locale_file_t *f, const char *iso)
{
    char needle[16];
    snprintf(needle, sizeof(needle), ",%s,", iso);
    return strstr(f->countries, needle) != NULL;
}

/* ---- a well-formedness check for the XML subset SSML uses ---- */

/* 0 if s is one well-formed element (optionally surrounded by whitespace):
 * balanced, properly nested tags, quoted attributes, no raw '&' except the
 * five named entities and character references, no raw '<' except in tags.
 * On failure, a reason in why. */
static int xml_check(const char *s, const char **why)
{
    char stack[32][64];
    int depth = 0, roots = 0;
    const char *p = s;

    while (*p) {
        if (*p == '<') {
            int closing = p[1] == '/';
            const char *name = p + 1 + closing;
            size_t nlen = 0;

            while (isalnum((unsigned char)name[nlen]) || name[nlen] == '-' || name[nlen] == '_' ||
                   name[nlen] == ':' || name[nlen] == '.')
                nlen++;
            if (nlen == 0 || nlen >= sizeof(stack[0]) || !isalpha((unsigned char)name[0])) {
                *why = "bad tag name";
                return -1;
            }
            p = name + nlen;
            if (closing) {
                while (*p == ' ')
                    p++;
                if (*p != '>') {
                    *why = "bad closing tag";
                    return -1;
                }
                if (depth == 0 || strlen(stack[depth - 1]) != nlen ||
                    strncmp(stack[depth - 1], name, nlen) != 0) {
                    *why = "closing tag does not match";
                    return -1;
                }
                depth--;
                p++;
                continue;
            }
            /* attributes: name="value" or name='value' */
            for (;;) {
                int spaced = 0;
                while (*p == ' ' || *p == '\t' || *p == '\n') {
                    p++;
                    spaced = 1;
                }
                if (*p == '>' || (p[0] == '/' && p[1] == '>'))
                    break;
                if (!spaced || !isalpha((unsigned char)*p)) {
                    *why = "bad attribute";
                    return -1;
                }
                while (isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == ':')
                    p++;
                if (*p != '=' || (p[1] != '"' && p[1] != '\'')) {
                    *why = "attribute without a quoted value";
                    return -1;
                }
                {
                    char q = p[1];
                    p += 2;
                    while (*p && *p != q) {
                        if (*p == '<' || (*p == '&' && strncmp(p, "&amp;", 5) &&
                                          strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
                                          strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6))) {
                            *why = "raw < or & in an attribute value";
                            return -1;
                        }
                        p++;
                    }
                    if (!*p) {
                        *why = "unterminated attribute value";
                        return -1;
                    }
                    p++;
                }
            }
            if (depth == 0 && ++roots > 1) {
                *why = "more than one root element";
                return -1;
            }
            if (*p == '/') { /* empty element */
                p += 2;
                continue;
            }
            if (depth == (int)(sizeof(stack) / sizeof(stack[0]))) {
                *why = "too deep";
                return -1;
            }
            memcpy(stack[depth], name, nlen);
            stack[depth][nlen] = '\0';
            depth++;
            p++;
        } else if (*p == '&') {
            static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            size_t k = 0;
            for (size_t i = 0; i < sizeof(ents) / sizeof(*ents) && !k; i++)
                if (strncmp(p, ents[i], strlen(ents[i])) == 0)
                    k = strlen(ents[i]);
            if (!k && p[1] == '#') {
                size_t j = 2;
                int hex = p[2] == 'x';
                j += (size_t)hex;
                while (hex ? isxdigit((unsigned char)p[j]) : isdigit((unsigned char)p[j]))
                    j++;
                if (j > 2u + (size_t)hex && p[j] == ';')
                    k = j + 1;
            }
            if (!k) {
                *why = "raw & that is not an entity";
                return -1;
            }
            if (depth == 0) {
                *why = "text outside the root element";
                return -1;
            }
            p += k;
        } else {
            if (depth == 0 && !isspace((unsigned char)*p)) {
                *why = "text outside the root element";
                return -1;
            }
            p++;
        }
    }
    if (depth != 0) {
        *why = "unclosed element";
        return -1;
    }
    if (roots != 1) {
        *why = "no root element";
        return -1;
    }
    return 0;
}

static void test_xml_checker(void)
{
    static const char *const good[] = {
        "<speak>a</speak>",
        "<speak>1<break time=\"400ms\"/>2</speak>",
        " <speak/> ",
        "<speak>&amp;&lt;&gt;&quot;&apos;&#38;&#x26;</speak>",
        "<a><b x='1'>t</b></a>",
        "<speak><sub alias=\"a&amp;&lt;&quot;\">4</sub></speak>",
    };
    static const char *const bad[] = {
        "<speak>A & B</speak>",
        "<speak>a < b</speak>",
        "<speak><b></speak>",
        "<speak>text",
        "</speak>",
        "<speak/><speak/>",
        "x<speak/>",
        "<speak>&amp</speak>",
        "<speak><break time=400ms/></speak>",
        "<speak><break time=\"4\"00\"/></speak>",
        "<speak></speaks>",
        "",
        "<speak><sub alias=\"a&b\">4</sub></speak>",
    };
    const char *why = "";

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        unit_ctx("xml_check good %s", good[i]);
        CHECK_EQ_INT(xml_check(good[i], &why), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("xml_check bad %s", bad[i]);
        CHECK_EQ_INT(xml_check(bad[i], &why), -1);
    }
    unit_ctx(NULL);
}

/* xmllint, when installed, as a second opinion. 1 well-formed, 0 not, -1 no xmllint. */
static int xmllint_ok(const char *text)
{
    char path[] = "/tmp/otp-unit-xml-XXXXXX";
    char cmd[256];
    int fd, rc;
    FILE *f;

    if (access("/usr/bin/xmllint", X_OK) != 0)
        return -1;
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        return -1;
    }
    fputs(text, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "/usr/bin/xmllint --noout %s 2>/dev/null", path);
    rc = system(cmd);
    unlink(path);
    return rc == 0;
}

/* The character data of the XML (tags dropped, entities kept as text). */
static void text_only(const char *xml, char *out, size_t size)
{
    size_t n = 0;
    int in_tag = 0;

    for (const char *p = xml; *p && n + 1 < size; p++) {
        if (*p == '<')
            in_tag = 1;
        else if (*p == '>' && in_tag)
            in_tag = 0;
        else if (!in_tag)
            out[n++] = *p;
    }
    out[n] = '\0';
}

static void test_xml_escape(void)
{
    char out[128];

    CHECK_EQ_INT(otp_xml_escape("&", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&amp;");
    CHECK_EQ_INT(otp_xml_escape("<", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&lt;");
    CHECK_EQ_INT(otp_xml_escape(">", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&gt;");
    CHECK_EQ_INT(otp_xml_escape("\"", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&quot;");
    CHECK_EQ_INT(otp_xml_escape("'", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&apos;");
    CHECK_EQ_INT(otp_xml_escape(BRAND, out, sizeof(out)), 0);
    CHECK_EQ_STR(out, BRAND_ESC);
    CHECK_EQ_INT(otp_xml_escape("plain Ünïcödé 123", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "plain Ünïcödé 123");
    CHECK_EQ_INT(otp_xml_escape("&amp;", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "&amp;amp;");
    CHECK_EQ_INT(otp_xml_escape("", out, sizeof(out)), 0);
    CHECK_EQ_STR(out, "");
    /* exact fit, and one byte short */
    CHECK_EQ_INT(otp_xml_escape("a&b", out, 8), 0);
    CHECK_EQ_STR(out, "a&amp;b");
    CHECK_EQ_INT(otp_xml_escape("a&b", out, 7), -1);
    CHECK_EQ_INT(otp_xml_escape("", out, 1), 0);
    CHECK_EQ_INT(otp_xml_escape("a", out, 1), -1);
}

/* Every line of the locale that is read with the code, escaped, with {brand}
 * replaced: what must appear in the text. */
static void expected_line(const char *line, char *out, size_t size)
{
    char esc[4096];
    size_t n = 0;

    out[0] = '\0';
    if (otp_xml_escape(line, esc, sizeof(esc)) != 0)
        return;
    for (const char *p = esc; *p && n + 1 < size;) {
        if (strncmp(p, "{brand}", 7) == 0) {
            n += (size_t)snprintf(out + n, size - n, "%s", BRAND_ESC);
            p += 7;
        } else {
            out[n++] = *p++;
        }
    }
    out[n < size ? n : size - 1] = '\0';
}

/* One reading's pauses between consecutive digits: every one >= 250 ms, or
 * groups of 2-4 digits with >= 120 ms inside and >= 350 ms between groups
 * (issue 10). */
static void check_reading(const int *gaps, int ng, int len)
{
    int size = 1, paced = 1, grouped = 1;

    CHECK_EQ_INT(ng, len - 1);
    for (int i = 0; i < ng; i++) {
        paced &= gaps[i] >= 250;
        grouped &= gaps[i] >= 120;
        if (gaps[i] >= 350) {
            grouped &= size >= 2 && size <= 4;
            size = 1;
        } else {
            size++;
        }
    }
    grouped &= size >= 2 && size <= 4;
    CHECK(paced || grouped);
}

/* The code is read twice. A run of digits joined by breaks is one reading,
 * except that a break of OTP_VOICE_REPEAT_MS (long codes: no "Again:" line)
 * separates the two readings within one run. */
static void check_pauses(const char *s, int len)
{
    const char *p = s;
    int readings = 0, repeats = 0;

    while ((p = strstr(p, "</")) != NULL) {
        int gaps[32], ng = 0;
        const char *q = p;
        /* a run: digit-close, break, digit, ... */
        if (!(strncmp(p, "</sub>", 6) == 0 || strncmp(p, "</say-as>", 9) == 0) ||
            !(p[-1] >= '0' && p[-1] <= '9')) {
            p += 2;
            continue;
        }
        for (;;) {
            const char *b = strchr(q, '>') + 1;
            int ms;
            if (strncmp(b, "<break time=\"", 13) != 0 || sscanf(b + 13, "%dms", &ms) != 1)
                break;
            b = strchr(b, '>') + 1;
            if (strncmp(b, "<sub", 4) != 0 && strncmp(b, "<say-as", 7) != 0)
                break;
            if (ms == OTP_VOICE_REPEAT_MS) {
                check_reading(gaps, ng, len);
                readings++;
                repeats++;
                ng = 0;
            } else if (ng < 32) {
                gaps[ng++] = ms;
            }
            q = strstr(b, "</");
        }
        check_reading(gaps, ng, len);
        readings++;
        p = strchr(q, '>');
    }
    CHECK_EQ_INT(readings, 2);
    CHECK_EQ_INT(repeats, len >= OTP_VOICE_BARE_REPEAT_FROM);
}

static void check_render(const otp_voice_catalog_t *cat, const locale_file_t *f, int len)
{
    static const char digits[] = "7305918264";
    char code[16], twice[32], text[16384], got_digits[64];
    const char *why = "";
    char *s;
    size_t nd = 0;
    int template_digits = 0;

    snprintf(code, sizeof(code), "%.*s", len, digits);
    snprintf(twice, sizeof(twice), "%s%s", code, code);
    unit_ctx("render %s len %d", f->locale, len);
    s = otp_voice_render_code(cat, NULL, f->locale, BRAND, code);
    if (!CHECK(s != NULL)) {
        unit_ctx(NULL);
        return;
    }
    CHECK(strncmp(s, "<speak>", 7) == 0);
    CHECK(strlen(s) >= 8 && strcmp(s + strlen(s) - 8, "</speak>") == 0);
    if (!CHECK_EQ_INT(xml_check(s, &why), 0))
        printf("    not well-formed (%s): %s\n", why, s);
    CHECK(xmllint_ok(s) != 0);
    CHECK(strstr(s, "{brand}") == NULL);
    CHECK(strstr(s, "<Co>") == NULL);
    CHECK(strstr(s, "A&B") == NULL);
    for (int k = 0; k < 3; k++) {
        char want[4096];
        expected_line(f->lines[k], want, sizeof(want));
        /* "Again:" only where the code is short enough to leave room for it */
        if (k == 1 && len >= OTP_VOICE_BARE_REPEAT_FROM) {
            CHECK(strstr(s, want) == NULL);
            continue;
        }
        CHECK(strstr(s, want) != NULL);
        if (strstr(f->lines[k], "{brand}"))
            CHECK(strstr(s, BRAND_ESC) != NULL);
        for (const char *p = f->lines[k]; *p; p++)
            template_digits |= *p >= '0' && *p <= '9';
    }
    /* the code, digit by digit, twice in order */
    text_only(s, text, sizeof(text));
    for (const char *p = text; *p && nd + 1 < sizeof(got_digits); p++)
        if (*p >= '0' && *p <= '9')
            got_digits[nd++] = *p;
    got_digits[nd] = '\0';
    if (template_digits)
        CHECK(strstr(got_digits, twice) != NULL);
    else
        CHECK_EQ_STR(got_digits, twice);
    /* each digit is read as a digit: alone in a <say-as interpret-as="characters"> or a
     * <sub alias> holding the locale's word for it */
    {
        int spoken = 0;
        for (const char *p = s; *p; p++)
            if (*p >= '0' && *p <= '9' && p > s && p[-1] == '>' &&
                (strncmp(p + 1, "</say-as>", 9) == 0 || strncmp(p + 1, "</sub>", 6) == 0))
                spoken++;
        CHECK_EQ_INT(spoken, 2 * len);
    }
    /* never faster than the voice's own rate; a silence first */
    CHECK(strstr(s, "prosody") == NULL && strstr(s, "rate") == NULL);
    CHECK(strncmp(s, "<speak><break time=\"", 20) == 0);
    check_pauses(s, len);
    free(s);
    unit_ctx(NULL);
}

static void test_render(const otp_voice_catalog_t *cat)
{
    static const char *const bad_codes[] = {
        "12a456", "12 456",       "-12345",  "123456 ", " 123456",
        "12.456", "１２３４５６", "12345\n", "<speak>", "1234&",
    };

    for (int i = 0; i < nfiles; i++)
        for (int len = 4; len <= 10; len++)
            check_render(cat, &files[i], len);

    for (int i = 0; i < nfiles; i++) {
        for (size_t k = 0; k < sizeof(bad_codes) / sizeof(*bad_codes); k++) {
            char *s = otp_voice_render_code(cat, NULL, files[i].locale, BRAND, bad_codes[k]);
            unit_ctx("render %s code \"%s\"", files[i].locale, bad_codes[k]);
            CHECK(s == NULL);
            free(s);
        }
    }
    unit_ctx(NULL);
    {
        char *s = otp_voice_render_code(cat, NULL, "xx-XX", BRAND, "123456");
        CHECK(s == NULL);
        free(s);
        CHECK(otp_voice_render_code(cat, NULL, files[0].locale, BRAND, NULL) == NULL);
    }
    /* a brand far too long: refused or complete, never cut */
    {
        char brand[2000];
        char *s;
        memset(brand, '&', sizeof(brand) - 1);
        brand[sizeof(brand) - 1] = '\0';
        s = otp_voice_render_code(cat, NULL, files[0].locale, brand, "123456");
        if (s) {
            const char *why = "";
            CHECK_EQ_INT(xml_check(s, &why), 0);
        }
        free(s);
    }
}

/* The chain of a row holds when its preconditions hold. A token "xx-YY" needs
 * that file, "!xx-YY" needs it absent, "*xx-YY" needs it present and primary. */
static int preconditions(const char *needs, char *missing, size_t size)
{
    char buf[256];
    char *save = NULL;

    snprintf(buf, sizeof(buf), "%s", needs);
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        const locale_file_t *f = file_of(tok[0] == '!' || tok[0] == '*' ? tok + 1 : tok);
        int ok = tok[0] == '!' ? f == NULL : tok[0] == '*' ? (f && f->primary) : f != NULL;
        if (!ok) {
            snprintf(missing, size, "%s", tok);
            return 0;
        }
    }
    return 1;
}

static void test_pick_table(const otp_voice_catalog_t *cat)
{
    static const struct {
        const char *what, *requested, *phone, *def, *want, *needs;
    } rows[] = {
        {"exact", "de-DE", "", "", "de-DE", "de-DE"},
        {"exact, not primary", "en-GB", "+14155552671", "", "en-GB", "en-GB"},
        {"exact beats phone country", "fr-FR", "+4915112345678", "", "fr-FR", "fr-FR de-DE"},
        {"case-insensitive", "DE-de", "", "", "de-DE", "de-DE"},
        {"case-insensitive", "en-gb", "", "", "en-GB", "en-GB"},
        {"case-insensitive", "EN-US", "", "", "en-US", "en-US"},
        {"same language, other region", "de-AT", "", "", "de-DE", "de-DE !de-AT"},
        {"same language, the file listing the region", "en-AU", "", "", "en-GB", "en-GB !en-AU"},
        {"same language, the file listing the region", "en-NZ", "", "", "en-GB", "en-GB !en-NZ"},
        {"same language, the file listing the region", "en-IE", "+14155552671", "", "en-GB",
         "en-GB !en-IE"},
        {"underscore separator", "en_GB", "", "", "en-GB", "en-GB"},
        {"underscore, lower case", "en_gb", "", "", "en-GB", "en-GB"},
        {"Latin-American Spanish", "es-MX", "", "", "es-419", "es-419 !es-MX"},
        {"Latin-American Spanish", "es-AR", "", "", "es-419", "es-419 !es-AR"},
        {"Latin-American Spanish", "es-419", "", "", "es-419", "es-419"},
        {"language only, the phone's country picks the region", "es", "+5215512345678", "",
         "es-419", "es-419 !es"},
        {"language only, no phone: the primary file", "es", "", "", "es-ES", "*es-ES !es"},
        {"European Portuguese", "pt-PT", "+5511912345678", "", "pt-PT", "pt-PT"},
        {"Traditional Chinese", "zh-TW", "", "", "zh-TW", "zh-TW"},
        {"Traditional Chinese script", "zh-Hant", "", "", "zh-TW", "zh-TW !zh-Hant"},
        {"country of the phone", "", "+886912345678", "", "zh-TW", "zh-TW"},
        {"country of the phone", "", "+61412345678", "", "en-GB", "en-GB"},
        {"country of the phone", "", "+351912345678", "", "pt-PT", "pt-PT"},
        {"operator default, language only", "", "", "fr", "fr-FR", "fr-FR !fr"},
        {"operator default, underscore", "", "", "en_GB", "en-GB", "en-GB"},
        {"same language, the primary file", "en-IN", "+919812345678", "", "en-US", "*en-US !en-IN"},
        {"language only", "fr", "", "", "fr-FR", "fr-FR !fr"},
        {"language only", "ja", "+14155552671", "", "ja-JP", "ja-JP !ja"},
        {"underscore separator", "pt_BR", "", "", "pt-BR", "pt-BR"},
        {"same language beats country", "es-MX", "+4915112345678", "", "es-419",
         "es-419 !es-MX de-DE"},
        {"country of the phone", "", "+4915112345678", "", "de-DE", "*de-DE"},
        {"country of the phone", "", "+43664123456", "", "de-DE", "*de-DE"},
        {"country of the phone", "sv-SE", "+33612345678", "", "fr-FR", "*fr-FR !sv-SE"},
        {"country of the phone", "", "+819012345678", "en-US", "ja-JP", "*ja-JP en-US"},
        {"country of the phone, non-primary file", "", "+442071838750", "", "en-GB", "en-GB"},
        {"country of the phone beats operator default", "", "+5511912345678", "de-DE", "pt-BR",
         "*pt-BR de-DE"},
        {"operator default", "", "", "it-IT", "it-IT", "it-IT"},
        {"operator default", "sv-SE", "+3591234567", "ko-KR", "ko-KR", "ko-KR !sv-SE"},
        {"operator default", "", "+905321234567", "ru-RU", "ru-RU", "ru-RU !tr-TR"},
        {"operator default, case-insensitive", "", "", "IT-it", "it-IT", "it-IT"},
        {"en-US fallback", "", "", "", "en-US", "en-US"},
        {"en-US fallback", "sv-SE", "+3591234567", "xx-XX", "en-US", "en-US !sv-SE !xx-XX"},
        {"en-US fallback", "zz", "", "sv-SE", "en-US", "en-US !sv-SE"},
    };
    int ran = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        char missing[64];
        const char *country = rows[i].phone[0] ? otp_phone_country(rows[i].phone) : "";
        if (!preconditions(rows[i].needs, missing, sizeof(missing))) {
            unit_skip("pick row %zu (%s: \"%s\" %s default \"%s\"): needs %s", i, rows[i].what,
                      rows[i].requested, rows[i].phone, rows[i].def, missing);
            continue;
        }
        unit_ctx("pick row %zu (%s: \"%s\" %s/%s default \"%s\")", i, rows[i].what,
                 rows[i].requested, rows[i].phone, country, rows[i].def);
        CHECK_EQ_STR(otp_voice_pick(cat, rows[i].requested, country, rows[i].def), rows[i].want);
        ran++;
    }
    unit_ctx(NULL);
    printf("locale chain table: %d of %zu rows ran\n", ran, sizeof(rows) / sizeof(*rows));
    CHECK(otp_voice_pick(cat, NULL, NULL, NULL) != NULL);
}

/* The chain checked against whatever files exist. */
static void test_pick_generic(const otp_voice_catalog_t *cat)
{
    for (int i = 0; i < nfiles; i++) {
        const locale_file_t *f = &files[i];
        char up[64], low[64], lang[16], other[32];
        size_t k;

        unit_ctx("pick for file %s", f->locale);
        for (k = 0; f->locale[k] && k + 1 < sizeof(up); k++) {
            up[k] = (char)toupper((unsigned char)f->locale[k]);
            low[k] = (char)tolower((unsigned char)f->locale[k]);
        }
        up[k] = low[k] = '\0';
        CHECK_EQ_STR(otp_voice_pick(cat, f->locale, "", ""), f->locale);
        CHECK_EQ_STR(otp_voice_pick(cat, up, "", ""), f->locale);
        CHECK_EQ_STR(otp_voice_pick(cat, low, "", ""), f->locale);
        CHECK_EQ_STR(otp_voice_pick(cat, f->locale, "zz", "xx-XX"), f->locale);
        /* as the operator default, when nothing else matches */
        CHECK_EQ_STR(otp_voice_pick(cat, "", "", f->locale), f->locale);
        CHECK_EQ_STR(otp_voice_language(cat, f->locale), f->language);

        /* the language in a region no file has: a file of that language, primary first */
        snprintf(lang, sizeof(lang), "%.*s", (int)strcspn(f->locale, "-"), f->locale);
        snprintf(other, sizeof(other), "%s-ZZ", lang);
        if (!file_of(other)) {
            const char *got = otp_voice_pick(cat, other, "", "");
            const locale_file_t *g = file_of(got);
            int primary_exists = 0;
            for (int j = 0; j < nfiles; j++)
                primary_exists |= files[j].primary &&
                                  strncasecmp(files[j].locale, lang, strlen(lang)) == 0 &&
                                  files[j].locale[strlen(lang)] == '-';
            CHECK(strncasecmp(got, lang, strlen(lang)) == 0 && got[strlen(lang)] == '-');
            if (primary_exists)
                CHECK(g && g->primary);
        }

        /* each country it lists: a file listing that country, a primary one if any */
        for (const char *c = f->countries + 1; *c; c += strcspn(c, ",") + 1) {
            char iso[8];
            const char *got;
            const locale_file_t *g;
            int primary_exists = 0;

            snprintf(iso, sizeof(iso), "%.*s", (int)strcspn(c, ","), c);
            if (!iso[0])
                break;
            unit_ctx("pick for country %s (listed by %s)", iso, f->locale);
            got = otp_voice_pick(cat, "", iso, "");
            g = file_of(got);
            for (int j = 0; j < nfiles; j++)
                primary_exists |= files[j].primary && has_country(&files[j], iso);
            CHECK(g != NULL && has_country(g, iso));
            if (primary_exists)
                CHECK(g && g->primary);
        }
    }
    unit_ctx(NULL);
    if (file_of("en-US"))
        CHECK_EQ_STR(otp_voice_pick(cat, "", "", ""), "en-US");
    CHECK_EQ_STR(otp_voice_language(cat, "xx-XX"), "en-US");
}

static json_t *nth_action(json_t *actions, size_t i, const char *type)
{
    json_t *a = json_array_get(actions, i);
    const char *t = json_string_value(json_object_get(a, "type"));
    return t && strcmp(t, type) == 0 ? a : NULL;
}

static long action_with_id(json_t *actions, const char *id);

static const char *opt_s(json_t *action, const char *key)
{
    return json_string_value(json_object_get(json_object_get(action, "option"), key));
}

/* The replay offer from actions[at]: the digits emptied (variable_set, since
 * a gate key or a key during the message is still in voipbin.call.digits and
 * would end the wait at once), the offer (a key skips it), one key within the
 * wait, a branch whose replay key goes to the message again and anything else
 * to the hangup that also ends the replay. */
static void check_replay(json_t *a, size_t at, const locale_file_t *f, const char *text)
{
    char offer[4096];
    json_t *set = nth_action(a, at, "variable_set"), *talk = nth_action(a, at + 1, "talk");
    json_t *recv = nth_action(a, at + 2, "digits_receive"), *br = nth_action(a, at + 3, "branch");
    json_t *again = nth_action(a, at + 4, "talk"), *end = nth_action(a, at + 5, "hangup");
    json_t *targets = json_object_get(json_object_get(br, "option"), "target_ids");
    const char *why = "";

    expected_line(f->replay, offer, sizeof(offer));
    if (!CHECK(set && talk && recv && br && again && end))
        return;
    CHECK_EQ_STR(opt_s(set, "key"), "voipbin.call.digits");
    CHECK_EQ_STR(opt_s(set, "value"), "");
    CHECK(strstr(opt_s(talk, "text"), offer) != NULL);
    CHECK_EQ_INT(xml_check(opt_s(talk, "text"), &why), 0);
    CHECK(!strstr(opt_s(talk, "text"), ">4<"));
    CHECK_EQ_STR(opt_s(talk, "digits_handle"), "next");
    CHECK_EQ_STR(opt_s(talk, "language"), f->language);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(recv, "option"), "length")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(recv, "option"), "duration")),
                 OTP_VOICE_REPLAY_WAIT_MS);
    CHECK_EQ_STR(opt_s(br, "variable"), "voipbin.call.digits");
    CHECK_EQ_INT(json_object_size(targets), 1);
    CHECK_EQ_INT(action_with_id(a, json_string_value(json_object_get(targets, "1"))),
                 (long)(at + 4));
    CHECK_EQ_INT(action_with_id(a, opt_s(br, "default_target_id")), (long)(at + 5));
    CHECK_EQ_STR(opt_s(again, "text"), text);
    CHECK_EQ_STR(opt_s(again, "language"), f->language);
}

static void test_actions(const otp_voice_catalog_t *cat)
{
    otp_voice_opts_t plain = {.gate = 0, .amd = 0, .notify_uri = NULL, .request_id = REQ_ID};
    otp_voice_opts_t amd = {.gate = 0, .amd = 1, .notify_uri = NULL, .request_id = REQ_ID};

    for (int i = 0; i < nfiles; i++) {
        const locale_file_t *f = &files[i];
        char *text = otp_voice_render_code(cat, NULL, f->locale, BRAND, "4711");
        json_t *a, *talk, *last;

        unit_ctx("actions %s", f->locale);
        a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", &plain);
        if (CHECK(json_is_array(a)) && CHECK_EQ_INT(json_array_size(a), 7)) {
            talk = nth_action(a, 0, "talk");
            CHECK(talk != NULL);
            CHECK_EQ_STR(
                json_string_value(json_object_get(json_object_get(talk, "option"), "text")), text);
            CHECK_EQ_STR(
                json_string_value(json_object_get(json_object_get(talk, "option"), "language")),
                f->language);
            check_replay(a, 1, f, text);
        }
        json_decref(a);

        a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", &amd);
        if (CHECK(json_is_array(a)) && CHECK(json_array_size(a) >= 3)) {
            json_t *first = nth_action(a, 0, "amd");
            size_t n = json_array_size(a);
            int talks = 0;
            CHECK(first != NULL);
            CHECK_EQ_STR(json_string_value(
                             json_object_get(json_object_get(first, "option"), "machine_handle")),
                         "hangup");
            for (size_t k = 1; k < n; k++)
                talks += nth_action(a, k, "talk") != NULL;
            CHECK(talks >= 1);
            last = nth_action(a, n - 1, "hangup");
            CHECK(last != NULL);
        }
        json_decref(a);

        /* opts may be NULL: the plain flow */
        a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", NULL);
        CHECK(json_is_array(a) && json_array_size(a) == 7);
        json_decref(a);

        CHECK(otp_voice_actions(cat, NULL, f->locale, BRAND, "47a1", &plain) == NULL);
        free(text);
    }
    unit_ctx(NULL);
    CHECK(otp_voice_actions(cat, NULL, "xx-XX", BRAND, "4711", &plain) == NULL);
}

/* The message split at the end of its first reading, from actions[at]: the
 * intro and the code once; the marker webhook_send (otp_heard, the request
 * and ${voipbin.call.id}, to the notify_uri, not waited on); the rest (the
 * code again and the outro, no intro). */
static void check_marker(json_t *a, size_t at, const otp_voice_opts_t *opts)
{
    json_t *first = nth_action(a, at, "talk"), *mark = nth_action(a, at + 1, "webhook_send");
    json_t *rest = nth_action(a, at + 2, "talk"), *d;
    const char *ft, *rt, *why = "";

    if (!CHECK(first && mark && rest))
        return;
    ft = opt_s(first, "text");
    rt = opt_s(rest, "text");
    CHECK(ft && strstr(ft, ">4<") && strstr(ft, ">1<"));
    CHECK(rt && strstr(rt, ">4<") && strstr(rt, ">1<"));
    CHECK_EQ_INT(xml_check(ft, &why), 0);
    CHECK_EQ_INT(xml_check(rt, &why), 0);
    /* the first reading once: its first digit (the only 4) appears once */
    CHECK(strstr(strstr(ft, ">4<") + 1, ">4<") == NULL);
    CHECK_EQ_STR(opt_s(mark, "uri"), opts->notify_uri);
    CHECK_EQ_STR(opt_s(mark, "method"), "POST");
    CHECK(json_is_false(json_object_get(json_object_get(mark, "option"), "sync")));
    d = json_loads(opt_s(mark, "data") ? opt_s(mark, "data") : "", 0, NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "type")), "otp_heard");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(d, "data"), "request_id")),
                 opts->request_id);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(d, "data"), "id")),
                 "${voipbin.call.id}");
    json_decref(d);
}

/* The plain flow with a notify_uri: first reading, marker, the rest, the
 * replay of the whole message, 9 actions. Without one: no marker (7). The
 * model's times: the code starts after the intro and ends later; the gate
 * prompt comes before both. */
static void test_actions_marker(const otp_voice_catalog_t *cat)
{
    otp_voice_opts_t notify = {.gate = 0, .amd = 0, .notify_uri = HOOK, .request_id = REQ_ID};
    otp_voice_opts_t bad_id = {.gate = 0, .amd = 0, .notify_uri = HOOK, .request_id = "x"};

    for (int i = 0; i < nfiles; i++) {
        const locale_file_t *f = &files[i];
        char *whole = otp_voice_render_code(cat, NULL, f->locale, BRAND, "4711");
        json_t *a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", &notify);
        otp_voice_heard_t plain, gated;

        unit_ctx("marker %s", f->locale);
        if (CHECK(json_is_array(a)) && CHECK_EQ_INT(json_array_size(a), 9)) {
            check_marker(a, 0, &notify);
            check_replay(a, 3, f, whole);
        }
        json_decref(a);
        a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", &bad_id);
        CHECK(json_is_array(a) && json_array_size(a) == 7); /* no UUID: no marker */
        json_decref(a);
        if (CHECK_EQ_INT(otp_voice_heard_times(cat, NULL, f->locale, BRAND, 6, 0, &plain), 0) &&
            CHECK_EQ_INT(otp_voice_heard_times(cat, NULL, f->locale, BRAND, 6, 1, &gated), 0)) {
            CHECK(plain.code_start_ms >= OTP_VOICE_LEAD_MS + OTP_VOICE_BEFORE_CODE_MS);
            CHECK(plain.code_end_ms >= plain.code_start_ms + 6 * OTP_VOICE_MS_PER_DIGIT);
            CHECK(gated.code_start_ms > plain.code_start_ms);
            CHECK_EQ_INT(gated.code_end_ms - gated.code_start_ms,
                         plain.code_end_ms - plain.code_start_ms);
        }
        CHECK_EQ_INT(otp_voice_heard_times(cat, NULL, f->locale, BRAND, 3, 0, &plain), -1);
        free(whole);
    }
    unit_ctx(NULL);
    {
        otp_voice_heard_t h;
        CHECK_EQ_INT(otp_voice_heard_times(cat, NULL, "xx-XX", BRAND, 6, 0, &h), -1);
    }
}

/* Index of the action whose "id" is id, or -1. */
static long action_with_id(json_t *actions, const char *id)
{
    for (size_t k = 0; id && k < json_array_size(actions); k++) {
        const char *aid = json_string_value(json_object_get(json_array_get(actions, k), "id"));
        if (aid && strcmp(aid, id) == 0)
            return (long)k;
    }
    return -1;
}

/* delivery.gate: "press any key to hear your code". The header promises the
 * gate ("ask for a key before reading the code"), so with gate = 1 the gate
 * line is spoken and a key is collected (digits_receive) before any talk that
 * reads the code, and the no-key branch jumps past the code to a report
 * (webhook_send otp_no_input, when there is a notify_uri) or a hangup. */
static void check_gate_flow(const otp_voice_catalog_t *cat, const locale_file_t *f,
                            const otp_voice_opts_t *opts)
{
    json_t *a = otp_voice_actions(cat, NULL, f->locale, BRAND, "4711", opts);
    char gate_text[4096];
    long gate_at = -1, receive_at = -1, code_at = -1, no_key_at = -1, hangup_after_code = -1;
    const char *why = "";

    unit_ctx("gate actions %s, notify %s", f->locale, opts->notify_uri ? "yes" : "no");
    expected_line(f->gate, gate_text, sizeof(gate_text));
    if (!CHECK(json_is_array(a))) {
        unit_ctx(NULL);
        return;
    }
    for (size_t k = 0; k < json_array_size(a); k++) {
        json_t *act = json_array_get(a, k);
        json_t *opt = json_object_get(act, "option");
        const char *type = json_string_value(json_object_get(act, "type"));
        const char *text = json_string_value(json_object_get(opt, "text"));
        const char *jump = json_string_value(json_object_get(opt, "false_target_id"));

        if (!CHECK(type != NULL))
            continue;
        if (strcmp(type, "digits_receive") == 0 && receive_at < 0)
            receive_at = (long)k;
        if (strcmp(type, "talk") == 0 && CHECK(text != NULL)) {
            if (!CHECK_EQ_INT(xml_check(text, &why), 0))
                printf("    not well-formed (%s): %s\n", why, text);
            if (gate_at < 0 && strstr(text, gate_text))
                gate_at = (long)k;
            if (code_at < 0 && strstr(text, ">4<"))
                code_at = (long)k;
        }
        if (strcmp(type, "hangup") == 0 && code_at >= 0 && hangup_after_code < 0)
            hangup_after_code = (long)k;
        if (jump) {
            /* a jump goes to an action that exists, further on */
            no_key_at = action_with_id(a, jump);
            CHECK(no_key_at > (long)k);
        }
    }
    CHECK(gate_at >= 0);
    CHECK(receive_at > gate_at);
    CHECK(code_at > receive_at);
    /* the gate line itself never holds the code */
    if (gate_at >= 0) {
        const char *g = json_string_value(
            json_object_get(json_object_get(json_array_get(a, (size_t)gate_at), "option"), "text"));
        CHECK(g && !strstr(g, ">4<") && !strstr(g, "4711"));
    }
    /* after the code: with a notify_uri the heard marker and the rest of the
     * message; then the offer to hear it (all of it) again */
    if (code_at >= 0 && opts->notify_uri) {
        char *whole = otp_voice_render_code(cat, NULL, f->locale, BRAND, "4711");
        check_marker(a, (size_t)code_at, opts);
        check_replay(a, (size_t)code_at + 3, f, whole);
        free(whole);
    } else if (code_at >= 0) {
        check_replay(a, (size_t)code_at + 1, f, opt_s(json_array_get(a, (size_t)code_at), "text"));
    }
    /* no key: past the code, and the code is followed by a hangup before that */
    if (CHECK(no_key_at > code_at) && CHECK(hangup_after_code > code_at))
        CHECK(hangup_after_code < no_key_at);
    /* no key: the prompt once more (goto the gate talk, loop_count 1); still none: the report */
    if (no_key_at >= 0) {
        json_t *jump = json_array_get(a, (size_t)no_key_at);
        json_t *jopt = json_object_get(jump, "option");
        json_t *gate_act = gate_at >= 0 ? json_array_get(a, (size_t)gate_at) : NULL;
        CHECK_EQ_STR(json_string_value(json_object_get(jump, "type")), "goto");
        CHECK_EQ_INT(json_integer_value(json_object_get(jopt, "loop_count")), 1);
        CHECK(gate_act && json_string_value(json_object_get(gate_act, "id")) &&
              action_with_id(a, json_string_value(json_object_get(jopt, "target_id"))) == gate_at);
        no_key_at++;
    }
    if (no_key_at >= 0) {
        json_t *target = json_array_get(a, (size_t)no_key_at);
        const char *type = json_string_value(json_object_get(target, "type"));
        if (opts->notify_uri) {
            json_t *opt = json_object_get(target, "option");
            const char *data = json_string_value(json_object_get(opt, "data"));
            json_t *d = data ? json_loads(data, 0, NULL) : NULL;
            CHECK_EQ_STR(type, "webhook_send");
            CHECK_EQ_STR(json_string_value(json_object_get(opt, "uri")), opts->notify_uri);
            CHECK(d != NULL);
            CHECK_EQ_STR(json_string_value(json_object_get(d, "type")), "otp_no_input");
            CHECK_EQ_STR(
                json_string_value(json_object_get(json_object_get(d, "data"), "request_id")),
                opts->request_id);
            json_decref(d);
            CHECK_EQ_STR(json_string_value(
                             json_object_get(json_array_get(a, json_array_size(a) - 1), "type")),
                         "hangup");
        } else {
            CHECK_EQ_STR(type, "hangup");
        }
    }
    json_decref(a);
    unit_ctx(NULL);
}

static void test_actions_gate(const otp_voice_catalog_t *cat)
{
    otp_voice_opts_t notify = {.gate = 1, .notify_uri = HOOK, .request_id = REQ_ID};
    otp_voice_opts_t quiet = {.gate = 1, .notify_uri = NULL, .request_id = REQ_ID};
    otp_voice_opts_t both = {.gate = 1, .amd = 1, .notify_uri = HOOK, .request_id = REQ_ID};

    for (int i = 0; i < nfiles; i++) {
        check_gate_flow(cat, &files[i], &notify);
        check_gate_flow(cat, &files[i], &quiet);
        check_gate_flow(cat, &files[i], &both);
    }
    /* gate and amd: amd first */
    if (nfiles > 0) {
        json_t *a = otp_voice_actions(cat, NULL, files[0].locale, BRAND, "4711", &both);
        CHECK(nth_action(a, 0, "amd") != NULL);
        json_decref(a);
    }
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The SMS text: plain text (no escaping), {brand} and {code} filled in. */
static void test_sms(const otp_voice_catalog_t *cat)
{
    static const char *const bad_codes[] = {"12a456", "", "123", "12 456", "-1234"};

    for (int i = 0; i < nfiles; i++) {
        const locale_file_t *f = &files[i];
        char *s;

        unit_ctx("sms %s", f->locale);
        s = otp_voice_render_sms(cat, NULL, f->locale, BRAND, "482913");
        if (CHECK(s != NULL)) {
            CHECK_EQ_INT(count(s, "482913"), count(f->sms, "{code}"));
            CHECK(count(f->sms, "{code}") >= 1);
            CHECK_EQ_INT(count(s, BRAND), count(f->sms, "{brand}"));
            CHECK(strstr(s, "&amp;") == NULL);
            CHECK(strstr(s, "{code}") == NULL && strstr(s, "{brand}") == NULL);
        }
        free(s);
        /* a brand holding a placeholder is not filled in again */
        s = otp_voice_render_sms(cat, NULL, f->locale, "{code}", "482913");
        if (CHECK(s != NULL))
            CHECK_EQ_INT(count(s, "482913"), count(f->sms, "{code}"));
        free(s);
        for (size_t k = 0; k < sizeof(bad_codes) / sizeof(*bad_codes); k++) {
            s = otp_voice_render_sms(cat, NULL, f->locale, BRAND, bad_codes[k]);
            CHECK(s == NULL);
            free(s);
        }
        CHECK(otp_voice_render_sms(cat, NULL, f->locale, BRAND, NULL) == NULL);
    }
    unit_ctx(NULL);
    CHECK(otp_voice_render_sms(cat, NULL, "xx-XX", BRAND, "482913") == NULL);
}

/* Keypad mode: prompt, collect code_length digits and '#', send them with
 * webhook_send (otp_keypad), thank, hang up. Nothing without a notify_uri. */
static void test_keypad(const otp_voice_catalog_t *cat)
{
    for (int i = 0; i < nfiles; i++) {
        const locale_file_t *f = &files[i];
        char prompt[4096];
        json_t *a, *d = NULL;
        const char *why = "";

        unit_ctx("keypad %s", f->locale);
        CHECK(otp_voice_keypad_actions(cat, NULL, f->locale, BRAND, 6, NULL, REQ_ID) == NULL);
        CHECK(otp_voice_keypad_actions(cat, NULL, f->locale, BRAND, 6, "", REQ_ID) == NULL);
        a = otp_voice_keypad_actions(cat, NULL, f->locale, BRAND, 6, HOOK, REQ_ID);
        if (!CHECK(json_is_array(a)) || !CHECK(json_array_size(a) >= 4)) {
            json_decref(a);
            continue;
        }
        expected_line(f->keypad, prompt, sizeof(prompt));
        {
            json_t *talk = nth_action(a, 0, "talk");
            json_t *opt = json_object_get(talk, "option");
            const char *text = json_string_value(json_object_get(opt, "text"));
            CHECK(talk != NULL);
            CHECK(text && strstr(text, prompt) != NULL);
            CHECK(text && xml_check(text, &why) == 0);
            CHECK_EQ_STR(json_string_value(json_object_get(opt, "language")), f->language);
        }
        for (size_t k = 0; k < json_array_size(a); k++) {
            json_t *act = json_array_get(a, k);
            json_t *opt = json_object_get(act, "option");
            const char *type = json_string_value(json_object_get(act, "type"));
            if (type && strcmp(type, "digits_receive") == 0) {
                CHECK_EQ_STR(json_string_value(json_object_get(opt, "key")), "#");
                CHECK(json_integer_value(json_object_get(opt, "length")) >= 6);
            }
            if (type && strcmp(type, "webhook_send") == 0) {
                const char *data = json_string_value(json_object_get(opt, "data"));
                CHECK_EQ_STR(json_string_value(json_object_get(opt, "uri")), HOOK);
                d = data ? json_loads(data, 0, NULL) : NULL;
            }
            if (type && strcmp(type, "talk") == 0) {
                const char *text = json_string_value(json_object_get(opt, "text"));
                CHECK(text && xml_check(text, &why) == 0);
            }
        }
        if (CHECK(d != NULL)) {
            json_t *dd = json_object_get(d, "data");
            CHECK_EQ_STR(json_string_value(json_object_get(d, "type")), "otp_keypad");
            CHECK_EQ_STR(json_string_value(json_object_get(dd, "request_id")), REQ_ID);
            CHECK_EQ_STR(json_string_value(json_object_get(dd, "digits")),
                         "${voipbin.call.digits}");
        }
        json_decref(d);
        CHECK(nth_action(a, json_array_size(a) - 1, "hangup") != NULL);
        json_decref(a);
    }
    unit_ctx(NULL);
    CHECK(otp_voice_keypad_actions(cat, NULL, "xx-XX", BRAND, 6, HOOK, REQ_ID) == NULL);
}

/* OTP_BRAND: valid UTF-8, no control characters, 1-32 characters, not blank;
 * the error names the setting. */
static void test_brand(void)
{
    static const char *const good[] = {
        "Acme",
        "A&B <Co>",
        "Société Générale",
        "株式会社アクメ",
        "Acme 🚀",
        "12345678901234567890123456789012",
        "スーパーマーケット・アクメ・ジャパン株式会社東京本店ですよね",
    };
    static const char *const bad[] = {
        "",
        "   ",
        "Acme\n",
        "Ac\tme",
        "Acme\x7f",
        "\xc2\x85"
        "Acme",
        "Acme\xff",
        "\xc0\xaf"
        "Acme",
        "\xed\xa0\x80",
        "\xe2\x80\xa8",
        "\xf4\x90\x80\x80",
        "Acme\xe2\x82",
        "123456789012345678901234567890123",
    };
    char err[256];

    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        unit_ctx("brand good %zu", i);
        err[0] = '\0';
        CHECK_EQ_INT(otp_voice_brand_check(good[i], err, sizeof(err)), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        unit_ctx("brand bad %zu", i);
        err[0] = '\0';
        CHECK_EQ_INT(otp_voice_brand_check(bad[i], err, sizeof(err)), -1);
        CHECK(strncmp(err, "OTP_BRAND: ", 11) == 0);
    }
    CHECK_EQ_INT(otp_voice_brand_check(NULL, err, sizeof(err)), -1);
    unit_ctx(NULL);
}

/* Grouping: every length 4-10 is split into groups adding up to it. */
static void test_groups(void)
{
    int g[4];
    for (size_t len = 0; len <= 12; len++) {
        int n = otp_voice_groups(len, g), sum = 0;
        unit_ctx("groups of %zu", len);
        if (len < 4 || len > 10) {
            CHECK_EQ_INT(n, 0);
            continue;
        }
        CHECK(n >= 2 && n <= 3);
        for (int i = 0; i < n; i++) {
            CHECK(g[i] >= 2 && g[i] <= 4);
            sum += g[i];
        }
        CHECK_EQ_INT(sum, (int)len);
    }
    unit_ctx(NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static void test_load_errors(void)
{
    char tmp[] = "/tmp/otp-unit-locales-XXXXXX";
    char path[PATH_MAX], err[512];
    otp_voice_catalog_t *c;

    err[0] = '\0';
    CHECK(otp_voice_load("/nonexistent/otp-locales", err, sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/otp-locales") != NULL);
    if (!CHECK(mkdtemp(tmp) != NULL))
        return;

    /* empty folder */
    err[0] = '\0';
    CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');

    /* a good file alone loads */
    snprintf(path, sizeof(path), "%s/xx-XX.json", tmp);
    write_file(
        path,
        "{\"locale\":\"xx-XX\",\"language\":\"xx-XX\",\"intro\":\"i {brand}\","
        "\"again\":\"a\",\"outro\":\"o\",\"gate\":\"g\",\"replay\":\"r\",\"sms\":\"s {code}\","
        "\"keypad\":\"k\",\"keypad_thanks\":\"t\"}");
    c = otp_voice_load(tmp, err, sizeof(err));
    CHECK(c != NULL);
    if (c) {
        char *s = otp_voice_render_code(c, NULL, "xx-XX", "B", "4829");
        const char *why = "";
        CHECK_EQ_STR(otp_voice_pick(c, "", "", ""), "xx-XX"); /* no en-US: the only one */
        /* no digit words: each digit spelled by the engine */
        CHECK(s &&
              strstr(s, "<say-as interpret-as=\"characters\">4</say-as><break time=\"120ms\"/>"
                        "<say-as interpret-as=\"characters\">8</say-as><break time=\"350ms\"/>"));
        CHECK(s && !strstr(s, "<sub"));
        free(s);
        otp_voice_destroy(c);
        /* digit words are escaped into the alias */
        snprintf(path, sizeof(path), "%s/ww-WW.json", tmp);
        write_file(path,
                   "{\"locale\":\"ww-WW\",\"language\":\"ww-WW\",\"intro\":\"i\","
                   "\"again\":\"a\",\"outro\":\"o\",\"gate\":\"g\",\"replay\":\"r\",\"sms\":\"s\","
                   "\"keypad\":\"k\",\"keypad_thanks\":\"t\",\"digits\":[\"0\",\"1\",\"2\","
                   "\"3\",\"f<o>&\\\"r\",\"5\",\"6\",\"7\",\"8\",\"9\"]}");
        c = otp_voice_load(tmp, err, sizeof(err));
        s = c ? otp_voice_render_code(c, NULL, "ww-WW", "B", "4444") : NULL;
        CHECK(s && strstr(s, "<sub alias=\"f&lt;o&gt;&amp;&quot;r\">4</sub>"));
        CHECK(s && xml_check(s, &why) == 0);
        CHECK(s && xmllint_ok(s) != 0);
        free(s);
        otp_voice_destroy(c);
        unlink(path);
    }
    otp_voice_destroy(NULL);

    /* a template missing a line */
    snprintf(path, sizeof(path), "%s/yy-YY.json", tmp);
    write_file(path, "{\"locale\":\"yy-YY\",\"language\":\"yy-YY\",\"intro\":\"i\",\"again\":\"a\","
                     "\"outro\":\"o\"}");
    err[0] = '\0';
    CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "yy-YY.json") != NULL);
    unlink(path);

    /* a template without the replay offer */
    snprintf(path, sizeof(path), "%s/yy-YY.json", tmp);
    write_file(path, "{\"locale\":\"yy-YY\",\"language\":\"yy-YY\",\"intro\":\"i\",\"again\":\"a\","
                     "\"outro\":\"o\",\"gate\":\"g\",\"sms\":\"s\",\"keypad\":\"k\","
                     "\"keypad_thanks\":\"t\"}");
    err[0] = '\0';
    CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "replay") != NULL);
    unlink(path);

    /* bad JSON */
    snprintf(path, sizeof(path), "%s/zz-ZZ.json", tmp);
    write_file(path, "{\"locale\": \"zz-ZZ\",");
    err[0] = '\0';
    CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "zz-ZZ.json") != NULL);
    unlink(path);

    /* a line that is not a string */
    snprintf(path, sizeof(path), "%s/zz-ZZ.json", tmp);
    write_file(path, "{\"locale\":\"zz-ZZ\",\"language\":\"zz-ZZ\",\"intro\":1,\"again\":\"a\","
                     "\"outro\":\"o\",\"gate\":\"g\"}");
    CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
    unlink(path);

    /* a template cannot speed the call up, and digit words come as ten strings */
    {
        static const char *const bad[] = {
            "\"rate\":\"110%\"",
            "\"digit_pause_ms\":50",
            "\"digits\":[\"a\"]",
            "\"digits\":[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"\"]",
            "\"digits\":\"0123456789\"",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
            char text[1024];
            snprintf(path, sizeof(path), "%s/zz-ZZ.json", tmp);
            snprintf(
                text, sizeof(text),
                "{\"locale\":\"zz-ZZ\",\"language\":\"zz-ZZ\",\"intro\":\"i\","
                "\"again\":\"a\",\"outro\":\"o\",\"gate\":\"g\",\"replay\":\"r\",\"sms\":\"s\","
                "\"keypad\":\"k\",\"keypad_thanks\":\"t\",%s}",
                bad[i]);
            write_file(path, text);
            err[0] = '\0';
            unit_ctx("template with %s", bad[i]);
            CHECK(otp_voice_load(tmp, err, sizeof(err)) == NULL);
            CHECK(strstr(err, "zz-ZZ.json") != NULL);
            unlink(path);
        }
        unit_ctx(NULL);
    }

    snprintf(path, sizeof(path), "%s/xx-XX.json", tmp);
    unlink(path);
    rmdir(tmp);
}

/* A service's own words: checked like a policy key, said in place of the
 * catalog's lines for the locale it names only, the pacing and the code
 * still the product's, every value escaped. */
static void test_templates(const otp_voice_catalog_t *cat)
{
    static const char *const bad[] = {
        "[]",
        "{\"en-US\": \"Hi\"}",
        "{\"en-US\": {}}",
        "{\"en-US\": {\"jingle\": \"x\"}}",
        "{\"en-US\": {\"intro\": \"\"}}",
        "{\"en-US\": {\"intro\": \"   \"}}",
        "{\"en-US\": {\"intro\": \"Your code is {code}\"}}",
        "{\"en-US\": {\"intro\": \"Hi {name}\"}}",
        "{\"en-US\": {\"intro\": \"a\\nb\"}}",
        "{\"en-US\": {\"sms\": \"{brand} says hi\"}}",
        "{\"en-US\": {\"sms\": \"{code} {code}\"}}",
        "{\"x\": {\"intro\": \"Hi\"}}",
        "{\"en US\": {\"intro\": \"Hi\"}}",
    };
    char err[256], line[600];
    json_t *t;
    char *a, *b;
    otp_voice_heard_t h1, h2;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = json_loads(bad[i], 0, NULL);
        unit_ctx("templates %s", bad[i]);
        err[0] = '\0';
        CHECK(t != NULL);
        CHECK_EQ_INT(otp_voice_templates_check(t, err, sizeof(err)), -1);
        CHECK(strncmp(err, "templates", 9) == 0);
        json_decref(t);
    }
    memset(line, 'x', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    t = json_pack("{s:{s:s}}", "en-US", "intro", line);
    unit_ctx("templates: a line of 599 bytes");
    CHECK_EQ_INT(otp_voice_templates_check(t, err, sizeof(err)), -1);
    json_decref(t);

    t = json_loads("{\"en-us\": {\"intro\": \"Your <sign-in> code for {brand} is\","
                   " \"outro\": \"Never share it.\","
                   " \"sms\": \"{code} is your {brand} code\"},"
                   " \"de-DE\": {\"intro\": \"Ihr Code lautet\"}}",
                   0, NULL);
    unit_ctx("templates: en-us and de-DE");
    if (!CHECK(t != NULL))
        return;
    CHECK_EQ_INT(otp_voice_templates_check(t, err, sizeof(err)), 0);
    a = otp_voice_render_code(cat, t, "en-US", "Acme", "482913");
    b = otp_voice_render_code(cat, NULL, "en-US", "Acme", "482913");
    if (CHECK(a && b)) {
        const char *why = NULL;
        CHECK(strstr(a, "Your &lt;sign-in&gt; code for Acme is") != NULL);
        CHECK(strstr(a, "Never share it.") != NULL);
        CHECK(strstr(a, "will never ask") == NULL);
        CHECK(strstr(b, "Your Acme code is") != NULL);
        CHECK_EQ_INT(xml_check(a, &why), 0);
        /* The code, its grouping, its pauses and the second reading are the
         * product's: from the first digit to the end of the second reading,
         * the two messages are the same bytes. */
        if (CHECK(strstr(a, "<sub") && strstr(b, "<sub"))) {
            const char *ca = strstr(a, "<sub"), *cb = strstr(b, "<sub");
            size_t la = strlen(ca) - strlen("Never share it.</speak>");
            size_t lb = strlen(cb) - strlen("Acme will never ask you for this code.</speak>");
            CHECK_EQ_INT((long long)la, (long long)lb);
            CHECK(la == lb && memcmp(ca, cb, la) == 0);
        }
    }
    free(a);
    free(b);
    /* Another locale the service names: its line, the rest the catalog's. */
    a = otp_voice_render_code(cat, t, "de-DE", "Acme", "482913");
    b = otp_voice_render_code(cat, NULL, "de-DE", "Acme", "482913");
    if (CHECK(a && b)) {
        CHECK(strstr(a, "Ihr Code lautet<break") != NULL);
        CHECK(strstr(a, "Ihr Acme-Code") == NULL);
        CHECK_EQ_STR(strstr(a, "<sub"), strstr(b, "<sub")); /* the rest: the catalog's */
    }
    free(a);
    free(b);
    /* A locale it does not name: the catalog's, to the byte. */
    a = otp_voice_render_code(cat, t, "fr-FR", "Acme", "482913");
    b = otp_voice_render_code(cat, NULL, "fr-FR", "Acme", "482913");
    if (CHECK(a && b))
        CHECK_EQ_STR(a, b);
    free(a);
    free(b);
    a = otp_voice_render_sms(cat, t, "en-US", "Acme", "482913");
    if (CHECK(a != NULL))
        CHECK_EQ_STR(a, "482913 is your Acme code");
    free(a);
    /* The heard time follows the words said: a longer intro, a later code. */
    if (CHECK(otp_voice_heard_times(cat, t, "en-US", "Acme", 6, 0, &h1) == 0 &&
              otp_voice_heard_times(cat, NULL, "en-US", "Acme", 6, 0, &h2) == 0))
        CHECK(h1.code_start_ms > h2.code_start_ms);
    json_decref(t);
}

int main(int argc, char **argv)
{
    otp_voice_catalog_t *cat;
    char err[512];
    const char *env = getenv("OTP_LOCALE_DIR");

    (void)argc;
    if (otp_crypto_init() != 0) { /* the gate flow draws a UUID */
        printf("otp_crypto_init failed\n");
        return 1;
    }
    if (env && *env)
        snprintf(dir, sizeof(dir), "%s", env);
    else
        otp_voice_default_dir(dir, sizeof(dir));
    test_xml_checker();
    test_xml_escape();
    test_brand();
    test_groups();
    read_locale_files();
    cat = otp_voice_load(dir, err, sizeof(err));
    if (!CHECK(cat != NULL)) {
        printf("otp_voice_load(%s): %s\n", dir, err);
        return unit_finish(argv[0]);
    }
    test_render(cat);
    test_pick_table(cat);
    test_pick_generic(cat);
    test_actions(cat);
    test_actions_gate(cat);
    test_actions_marker(cat);
    test_sms(cat);
    test_keypad(cat);
    test_templates(cat);
    test_load_errors();
    otp_voice_destroy(cat);
    return unit_finish(argv[0]);
}
