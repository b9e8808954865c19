/* SPDX-License-Identifier: Apache-2.0 */
#include "sim_xml.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64
#define MS_PER_CHAR 60     /* ~16 characters per second of ordinary speech */
#define MS_PER_SPELLED 360 /* a spelled character ("four", "eight") is a word */

typedef struct xp {
    const char *s;
    size_t n, i;
    /* speech statistics collected while parsing */
    long chars, spelled, break_ms;
    int spell_depth; /* > 0 inside <say-as interpret-as="characters|digits|verbatim|telephone"> */
} xp;

static int at_end(const xp *p)
{
    return p->i >= p->n;
}

static int starts(const xp *p, const char *lit)
{
    size_t l = strlen(lit);
    return p->n - p->i >= l && !memcmp(p->s + p->i, lit, l);
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static int name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static void skip_ws(xp *p)
{
    while (!at_end(p) && is_ws(p->s[p->i]))
        p->i++;
}

/* Reads a name; returns its length (0 = none). */
static size_t read_name(xp *p)
{
    size_t st = p->i;

    if (at_end(p) || !name_start((unsigned char)p->s[p->i]))
        return 0;
    while (!at_end(p) && name_char((unsigned char)p->s[p->i]))
        p->i++;
    return p->i - st;
}

/* At '&': accepts the five predefined entities and character references. */
static int entity(xp *p)
{
    static const char *named[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
    size_t k;

    p->i++;
    if (!at_end(p) && p->s[p->i] == '#') {
        int hex = 0, digits = 0;
        p->i++;
        if (!at_end(p) && p->s[p->i] == 'x') {
            hex = 1;
            p->i++;
        }
        while (!at_end(p)) {
            char c = p->s[p->i];
            if ((c >= '0' && c <= '9') ||
                (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))) {
                digits++;
                p->i++;
            } else
                break;
        }
        if (!digits || at_end(p) || p->s[p->i] != ';')
            return -1;
        p->i++;
        return 0;
    }
    for (k = 0; k < sizeof named / sizeof named[0]; k++)
        if (starts(p, named[k])) {
            p->i += strlen(named[k]);
            return 0;
        }
    return -1;
}

static int skip_until(xp *p, const char *lit)
{
    while (!at_end(p)) {
        if (starts(p, lit)) {
            p->i += strlen(lit);
            return 0;
        }
        p->i++;
    }
    return -1;
}

static void count_char(xp *p, char c)
{
    if (is_ws(c))
        return;
    if (p->spell_depth)
        p->spelled++;
    else
        p->chars++;
}

/* "700ms", "1.5s" → ms */
static long parse_break_time(const char *v, size_t n)
{
    char tmp[32];
    char *end;
    double d;

    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    d = strtod(tmp, &end);
    if (end == tmp || d < 0)
        return 0;
    if (!strcmp(end, "ms"))
        return (long)d;
    if (!strcmp(end, "s"))
        return (long)(d * 1000);
    return 0;
}

static long strength_ms(const char *v, size_t n)
{
    static const struct {
        const char *k;
        long ms;
    } t[] = {{"none", 0},     {"x-weak", 100}, {"weak", 250},
             {"medium", 500}, {"strong", 750}, {"x-strong", 1000}};
    size_t k;

    for (k = 0; k < sizeof t / sizeof t[0]; k++)
        if (strlen(t[k].k) == n && !memcmp(t[k].k, v, n))
            return t[k].ms;
    return 500;
}

/* Parses a start tag after '<'. Sets *selfclose; records break/say-as effects.
 * name/len give the element name for end-tag matching. */
static int start_tag(xp *p, const char **name, size_t *len, int *selfclose, int *spell)
{
    size_t nl;
    int is_break, is_sayas;
    long brk = -1;

    *name = p->s + p->i;
    nl = read_name(p);
    if (!nl)
        return -1;
    *len = nl;
    *spell = 0;
    is_break = nl == 5 && !memcmp(*name, "break", 5);
    is_sayas = nl == 6 && !memcmp(*name, "say-as", 6);
    for (;;) {
        const char *an, *av;
        size_t al, avl;
        char q;
        int had_ws = 0;

        while (!at_end(p) && is_ws(p->s[p->i])) {
            p->i++;
            had_ws = 1;
        }
        if (at_end(p))
            return -1;
        if (p->s[p->i] == '>') {
            p->i++;
            *selfclose = 0;
            break;
        }
        if (starts(p, "/>")) {
            p->i += 2;
            *selfclose = 1;
            break;
        }
        if (!had_ws)
            return -1;
        an = p->s + p->i;
        al = read_name(p);
        if (!al)
            return -1;
        skip_ws(p);
        if (at_end(p) || p->s[p->i] != '=')
            return -1;
        p->i++;
        skip_ws(p);
        if (at_end(p) || (p->s[p->i] != '"' && p->s[p->i] != '\''))
            return -1;
        q = p->s[p->i++];
        av = p->s + p->i;
        while (!at_end(p) && p->s[p->i] != q) {
            if (p->s[p->i] == '<')
                return -1;
            if (p->s[p->i] == '&') {
                if (entity(p))
                    return -1;
                continue;
            }
            p->i++;
        }
        if (at_end(p))
            return -1;
        avl = (size_t)(p->s + p->i - av);
        p->i++;
        if (is_break && al == 4 && !memcmp(an, "time", 4))
            brk = parse_break_time(av, avl);
        else if (is_break && al == 8 && !memcmp(an, "strength", 8) && brk < 0)
            brk = strength_ms(av, avl);
        else if (is_sayas && al == 12 && !memcmp(an, "interpret-as", 12))
            *spell = (avl == 10 && !memcmp(av, "characters", 10)) ||
                     (avl == 6 && !memcmp(av, "digits", 6)) ||
                     (avl == 8 && !memcmp(av, "verbatim", 8)) ||
                     (avl == 9 && !memcmp(av, "telephone", 9)) ||
                     (avl == 9 && !memcmp(av, "spell-out", 9));
    }
    if (is_break)
        p->break_ms += brk < 0 ? 500 : brk;
    return 0;
}

/* Misc allowed outside the root: whitespace, comments, processing instructions. */
static int misc(xp *p, int allow_doctype)
{
    for (;;) {
        skip_ws(p);
        if (starts(p, "<!--")) {
            p->i += 4;
            if (skip_until(p, "-->"))
                return -1;
        } else if (starts(p, "<?")) {
            p->i += 2;
            if (skip_until(p, "?>"))
                return -1;
        } else if (allow_doctype && starts(p, "<!DOCTYPE")) {
            if (skip_until(p, ">"))
                return -1;
        } else
            return 0;
    }
}

static int parse_doc(xp *p)
{
    const char *names[MAX_DEPTH];
    size_t lens[MAX_DEPTH];
    int spells[MAX_DEPTH];
    int depth = 0;

    if (misc(p, 1))
        return -1;
    if (at_end(p) || p->s[p->i] != '<')
        return -1;
    do {
        if (at_end(p))
            return -1;
        if (p->s[p->i] == '<') {
            if (starts(p, "<!--")) {
                p->i += 4;
                if (skip_until(p, "-->"))
                    return -1;
            } else if (starts(p, "<![CDATA[")) {
                p->i += 9;
                while (!at_end(p) && !starts(p, "]]>"))
                    count_char(p, p->s[p->i++]);
                if (at_end(p))
                    return -1;
                p->i += 3;
            } else if (starts(p, "<?")) {
                p->i += 2;
                if (skip_until(p, "?>"))
                    return -1;
            } else if (starts(p, "</")) {
                const char *nm;
                size_t nl;
                p->i += 2;
                nm = p->s + p->i;
                nl = read_name(p);
                skip_ws(p);
                if (!nl || at_end(p) || p->s[p->i] != '>' || !depth)
                    return -1;
                p->i++;
                depth--;
                if (lens[depth] != nl || memcmp(names[depth], nm, nl))
                    return -1;
                if (spells[depth])
                    p->spell_depth--;
            } else {
                int selfclose, spell;
                p->i++;
                if (depth >= MAX_DEPTH)
                    return -1;
                if (start_tag(p, &names[depth], &lens[depth], &selfclose, &spell))
                    return -1;
                if (!selfclose) {
                    spells[depth] = spell;
                    if (spell)
                        p->spell_depth++;
                    depth++;
                }
            }
        } else if (p->s[p->i] == '&') {
            if (!depth || entity(p))
                return -1;
            count_char(p, 'x');
        } else {
            if (!depth)
                return -1;
            count_char(p, p->s[p->i++]);
        }
    } while (depth > 0);
    if (misc(p, 0))
        return -1;
    return at_end(p) ? 0 : -1;
}

int sim_xml_wellformed(const char *s, size_t n)
{
    xp p;

    memset(&p, 0, sizeof p);
    p.s = s;
    p.n = n;
    return parse_doc(&p) == 0;
}

static char *wrap(const char *text)
{
    size_t n = strlen(text);
    char *w = malloc(n + 16);

    if (!w)
        return NULL;
    memcpy(w, "<speak>", 7);
    memcpy(w + 7, text, n);
    memcpy(w + 7 + n, "</speak>", 9);
    return w;
}

/* Parses text (or its wrapped form) and fills stats; -1 when neither is XML. */
static int analyse(const char *text, xp *out)
{
    char *w;
    int rc;

    memset(out, 0, sizeof *out);
    out->s = text;
    out->n = strlen(text);
    if (parse_doc(out) == 0)
        return 0;
    w = wrap(text);
    if (!w)
        return -1;
    memset(out, 0, sizeof *out);
    out->s = w;
    out->n = strlen(w);
    rc = parse_doc(out);
    free(w);
    out->s = NULL;
    return rc;
}

int sim_tts_accepts(const char *text)
{
    xp p;

    return text && analyse(text, &p) == 0;
}

char *sim_tts_ssml(const char *text)
{
    if (sim_xml_wellformed(text, strlen(text)))
        return strdup(text);
    return wrap(text);
}

int64_t sim_tts_duration_ms(const char *text)
{
    xp p;

    if (!text || analyse(text, &p))
        return 0;
    return 300 + p.chars * MS_PER_CHAR + p.spelled * MS_PER_SPELLED + p.break_ms;
}
