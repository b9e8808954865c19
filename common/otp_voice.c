#include "otp_voice.h"

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
    char sms[LINE_MAX_BYTES];
    char keypad[LINE_MAX_BYTES];
    char keypad_thanks[LINE_MAX_BYTES];
    char rate[8]; /* SSML prosody rate such as "110%", "" = the voice's own */
    int digit_pause_ms;
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
        copy_line(o, "sms", t->sms, sizeof(t->sms), 1) ||
        copy_line(o, "keypad", t->keypad, sizeof(t->keypad), 1) ||
        copy_line(o, "keypad_thanks", t->keypad_thanks, sizeof(t->keypad_thanks), 1)) {
        snprintf(errstr, errstr_size,
                 "%s: locale, language, intro, again, outro, gate, sms, keypad and keypad_thanks "
                 "must be strings under %d bytes",
                 path, LINE_MAX_BYTES);
        goto out;
    }
    t->primary = json_is_true(json_object_get(o, "primary"));
    if (copy_line(o, "rate", t->rate, sizeof(t->rate), 0) ||
        (t->rate[0] && (strspn(t->rate, "0123456789") + 1 != strlen(t->rate) ||
                        t->rate[strlen(t->rate) - 1] != '%'))) {
        snprintf(errstr, errstr_size, "%s: rate must look like \"110%%\"", path);
        goto out;
    }
    t->digit_pause_ms = (int)json_integer_value(json_object_get(o, "digit_pause_ms"));
    if (t->digit_pause_ms <= 0 || t->digit_pause_ms > 2000)
        t->digit_pause_ms = 300;
    t->countries[0] = ',';
    json_array_foreach(json_object_get(o, "countries"), i, c) {
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

static const voice_template_t *find_exact(const otp_voice_catalog_t *cat, const char *locale)
{
    for (int i = 0; i < cat->n; i++)
        if (strcasecmp(cat->t[i].locale, locale) == 0)
            return &cat->t[i];
    return NULL;
}

static const voice_template_t *find_language(const otp_voice_catalog_t *cat, const char *locale)
{
    const voice_template_t *any = NULL;
    size_t lang_len = strcspn(locale, "-_");

    for (int i = 0; i < cat->n; i++) {
        const voice_template_t *t = &cat->t[i];
        if (strncasecmp(t->locale, locale, lang_len) == 0 && strcspn(t->locale, "-") == lang_len) {
            if (t->primary)
                return t;
            if (!any)
                any = t;
        }
    }
    return any;
}

const char *otp_voice_pick(const otp_voice_catalog_t *cat, const char *requested,
                           const char *phone_country, const char *operator_default)
{
    const voice_template_t *t = NULL;

    if (requested && *requested) {
        t = find_exact(cat, requested);
        if (!t)
            t = find_language(cat, requested);
    }
    if (!t && phone_country && *phone_country) {
        char needle[8];
        snprintf(needle, sizeof(needle), ",%s,", phone_country);
        /* Prefer the primary locale of a language spoken there. */
        for (int i = 0; i < cat->n && !t; i++)
            if (cat->t[i].primary && strstr(cat->t[i].countries, needle))
                t = &cat->t[i];
        for (int i = 0; i < cat->n && !t; i++)
            if (strstr(cat->t[i].countries, needle))
                t = &cat->t[i];
    }
    if (!t && operator_default && *operator_default)
        t = find_exact(cat, operator_default);
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
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: rep = one; break;
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

static int put_digits(char *buf, size_t size, size_t *n, const char *code, int pause_ms)
{
    char piece[64];
    for (const char *c = code; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        /* No pause after the last digit: the caller's longer break follows. */
        if (c[1])
            snprintf(piece, sizeof(piece), "%c<break time=\"%dms\"/>", *c, pause_ms);
        else
            snprintf(piece, sizeof(piece), "%c", *c);
        if (put(buf, size, n, piece))
            return -1;
    }
    return 0;
}

/* The pause after each digit. Every break is also a clause boundary to the
 * TTS, which adds its own short pause, so long codes get shorter explicit
 * ones: the whole message stays under 15 s at 10 digits. */
static int digit_pause(const voice_template_t *t, size_t len)
{
    if (len <= 6)
        return t->digit_pause_ms;
    return len <= 8 ? t->digit_pause_ms / 2 : t->digit_pause_ms / 6;
}

char *otp_voice_render_code(const otp_voice_catalog_t *cat, const char *locale, const char *brand,
                            const char *code)
{
    const voice_template_t *t = find_exact(cat, locale);
    size_t size = 8192, n = 0;
    char *buf = malloc(size);
    char brand_esc[512];
    int rate;

    if (!t || !buf || !code || strlen(code) < OTP_CODE_MIN || strlen(code) > OTP_CODE_MAX ||
        otp_xml_escape(brand ? brand : "", brand_esc, sizeof(brand_esc)))
        goto fail;
    if (put(buf, size, &n, "<speak>"))
        goto fail;
    /* Twenty digits and three lines in under 15 s: long codes are read faster
     * (the template's own rate when it is faster still). */
    rate = strlen(code) > 8 ? 125 : strlen(code) > 6 ? 110 : 100;
    if (t->rate[0] && strtol(t->rate, NULL, 10) > rate)
        rate = (int)strtol(t->rate, NULL, 10);
    if (rate != 100) {
        char open_tag[48];
        snprintf(open_tag, sizeof(open_tag), "<prosody rate=\"%d%%\">", rate);
        if (put(buf, size, &n, open_tag))
            goto fail;
    }
    if (put_line(buf, size, &n, t->intro, brand_esc) ||
        put(buf, size, &n, "<break time=\"300ms\"/>") ||
        put_digits(buf, size, &n, code, digit_pause(t, strlen(code))) ||
        put(buf, size, &n, "<break time=\"500ms\"/>") || put_line(buf, size, &n, t->again, brand_esc) ||
        put(buf, size, &n, "<break time=\"300ms\"/>") ||
        put_digits(buf, size, &n, code, digit_pause(t, strlen(code))) ||
        put(buf, size, &n, "<break time=\"500ms\"/>") || put_line(buf, size, &n, t->outro, brand_esc) ||
        (rate != 100 && put(buf, size, &n, "</prosody>")) || put(buf, size, &n, "</speak>"))
        goto fail;
    return buf;
fail:
    free(buf);
    return NULL;
}

static json_t *talk(const char *text, const char *language)
{
    return json_pack("{s:s, s:{s:s, s:s}}", "type", "talk", "option", "text", text, "language",
                     language);
}

/* The gate line alone, as SSML. */
static char *render_gate(const voice_template_t *t, const char *brand)
{
    size_t size = 4096, n = 0;
    char *buf = malloc(size);
    char brand_esc[512];

    if (!buf || otp_xml_escape(brand ? brand : "", brand_esc, sizeof(brand_esc)) ||
        put(buf, size, &n, "<speak>") || put_line(buf, size, &n, t->gate, brand_esc) ||
        put(buf, size, &n, "</speak>")) {
        free(buf);
        return NULL;
    }
    return buf;
}

json_t *otp_voice_actions(const otp_voice_catalog_t *cat, const char *locale, const char *brand,
                          const char *code, const otp_voice_opts_t *opts)
{
    const voice_template_t *t = find_exact(cat, locale);
    json_t *actions = NULL;
    char *text = NULL, *gate = NULL;

    if (!t)
        return NULL;
    text = otp_voice_render_code(cat, locale, brand, code);
    if (!text)
        return NULL;
    actions = json_array();
    if (opts && opts->amd)
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:b}}", "type", "amd", "option",
                                                 "machine_handle", "hangup", "async", 0));
    if (opts && opts->gate) {
        /* Press any key to hear the code: a voicemail box never presses one,
         * so the code is never read into it. No key → report and hang up. */
        char no_input_id[37];
        gate = render_gate(t, brand);
        if (!gate) {
            json_decref(actions);
            free(text);
            return NULL;
        }
        otp_uuid_v4(no_input_id);
        json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "talk", "option",
                                                 "text", gate, "language", t->language,
                                                 "digits_handle", "next"));
        json_array_append_new(actions, json_pack("{s:s, s:{s:i, s:i}}", "type", "digits_receive",
                                                 "option", "duration", 6000, "length", 1));
        json_array_append_new(actions,
                              json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:s}}", "type",
                                        "condition_variable", "option", "condition", ">=",
                                        "variable", "voipbin.call.digits", "value_type", "length",
                                        "value_length", 1, "false_target_id", no_input_id));
        json_array_append_new(actions, talk(text, t->language));
        json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
        /* The request id goes into JSON unescaped: only a UUID is allowed there. */
        if (opts->notify_uri && *opts->notify_uri && opts->request_id && otp_uuid_valid(opts->request_id)) {
            char data[256];
            snprintf(data, sizeof(data),
                     "{\"type\":\"otp_no_input\",\"data\":{\"request_id\":\"%s\","
                     "\"id\":\"${voipbin.call.id}\"}}",
                     opts->request_id);
            json_array_append_new(actions,
                                  json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "id", no_input_id,
                                            "type", "webhook_send", "option", "uri", opts->notify_uri,
                                            "method", "POST", "data_type", "application/json", "data",
                                            data, "sync", 1));
            json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
        } else {
            json_array_append_new(actions, json_pack("{s:s, s:s}", "id", no_input_id, "type", "hangup"));
        }
    } else {
        json_array_append_new(actions, talk(text, t->language));
        json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
    }
    free(gate);
    free(text);
    return actions;
}

char *otp_voice_render_sms(const otp_voice_catalog_t *cat, const char *locale, const char *brand,
                           const char *code)
{
    const voice_template_t *t = find_exact(cat, locale);
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
    free(buf);
    return NULL;
}

json_t *otp_voice_keypad_actions(const otp_voice_catalog_t *cat, const char *locale,
                                 const char *brand, int code_length, const char *notify_uri,
                                 const char *request_id)
{
    const voice_template_t *t = find_exact(cat, locale);
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
    json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:s}}", "type", "talk", "option", "text",
                                             prompt, "language", t->language, "digits_handle", "next"));
    json_array_append_new(actions, json_pack("{s:s, s:{s:i, s:i, s:s}}", "type", "digits_receive",
                                             "option", "duration", 20000, "length", code_length + 1,
                                             "key", "#"));
    json_array_append_new(actions, json_pack("{s:s, s:{s:s, s:s, s:s, s:s, s:b}}", "type", "webhook_send",
                                             "option", "uri", notify_uri, "method", "POST", "data_type",
                                             "application/json", "data", data, "sync", 1));
    json_array_append_new(actions, talk(thanks, t->language));
    json_array_append_new(actions, json_pack("{s:s}", "type", "hangup"));
    return actions;
}
