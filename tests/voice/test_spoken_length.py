# SPDX-License-Identifier: Apache-2.0
"""Issue 10: every call message lasts under 15 s for a cloud voice, at natural speed.

What is measured: the exact SSML a call sends (`otp-worker --preview LOCALE CODE`, brand "Acme"),
for every locale file, every code length 4-10, with each language's slowest digit repeated (found
by rendering all ten) and with a mixed code.

How (the model, stated once):
- espeak-ng renders the SSML (`-m`) and sox measures it (`soxi -D`). A leading <break> is not
  rendered by espeak-ng, so it is taken out before rendering and added back as written.
- A cloud voice is taken to speak 15% slower than espeak-ng, while pauses last as written:
      cloud = 1.15 x (rendered - written breaks) + all written breaks.
  espeak-ng renders every <break> at least as long as written (test_espeak_renders_breaks_as_written
  checks it), so "rendered - written breaks" never understates the speech, and every clause pause
  espeak-ng adds of its own counts as speech (also stretched by 15%).
- espeak-ng cannot read kanji or hanzi. For ja-JP the lines are read from their kana reading
  (espeak-ng's Japanese voice reads kana); for zh-CN and zh-TW from their pinyin with tone numbers
  (espeak-ng's cmn-latn-pinyin voice): one syllable per hanzi, which the test checks. The readings
  live in READINGS below; a template line without a reading fails the test.
- Lengths 4-8 must be under 15 s in every locale, except the pairs in OVER_AT_8 (below), which
  cannot fit with the code said twice at the minimum pauses; 9 and 10 are measured and printed,
  and every figure 4-10 (those pairs included) must match the README's table (within 0.2 s), so
  none of them can grow unnoticed.

Pacing (no speed-up anywhere, digits paced or grouped, code said twice) is checked on the same SSML.
"""

import glob
import json
import os
import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALE_DIR = os.path.join(ROOT, "common", "locales")
LOCALES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(LOCALE_DIR, "*.json")))
LIMIT_S = 15.0
CLOUD_SLOWER = 1.15
BUDGET_LENGTHS = range(4, 9)
ALL_LENGTHS = range(4, 11)
BRAND = "Acme"


def _header_ms(name):
    with open(os.path.join(ROOT, "common", "otp_voice.h"), encoding="utf-8") as f:
        return int(re.search(r"#define %s (\d+)" % name, f.read()).group(1))


# From this many digits the second reading follows a pause of REPEAT_MS instead of "Again:".
BARE_REPEAT_FROM = _header_ms("OTP_VOICE_BARE_REPEAT_FROM")
REPEAT_MS = _header_ms("OTP_VOICE_REPEAT_MS")

# BCP-47 → espeak-ng voice.
ESPEAK = {"en-US": "en-us", "en-GB": "en-gb", "de-DE": "de", "fr-FR": "fr-fr", "es-ES": "es",
          "es-419": "es-419", "it-IT": "it", "pt-BR": "pt-br", "pt-PT": "pt", "ja-JP": "ja",
          "ko-KR": "ko", "zh-CN": "cmn-latn-pinyin", "zh-TW": "cmn-latn-pinyin", "ru-RU": "ru",
          "hi-IN": "hi"}

# Phonetic readings for the languages espeak-ng cannot read in their own script. Keys are the
# template lines as written in the locale file ({brand} included); particles are written as said
# (は → わ).
READINGS = {
    "ja-JP": {
        "{brand}のコードは、": "{brand}のコードわ、",
        "もう一度、": "もういちど、",
        "{brand}がこのコードを伺うことはありません。": "{brand}がこのコードをうかがうことわありません。",
    },
    "zh-CN": {
        "{brand}验证码是": "{brand} yan4 zheng4 ma3 shi4",
        "重复一遍：": "chong2 fu4 yi2 bian4.",
        "{brand}绝不会向您索取。": "{brand} jue2 bu2 hui4 xiang4 nin2 suo3 qu3.",
    },
    "zh-TW": {
        "{brand}驗證碼是": "{brand} yan4 zheng4 ma3 shi4",
        "再說一次：": "zai4 shuo1 yi2 ci4.",
        "{brand}絕不會向您索取。": "{brand} jue2 bu2 hui4 xiang4 nin2 suo3 qu3.",
    },
}
BRAND_READING = {"ja-JP": "アクメ", "zh-CN": "ai1 ke4 mei2", "zh-TW": "ai1 ke4 mei2"}
PINYIN_DIGIT = {"零": "ling2", "幺": "yao1", "一": "yi1", "二": "er4", "三": "san1", "四": "si4",
                "五": "wu3", "六": "liu4", "七": "qi1", "八": "ba1", "九": "jiu3"}
PINYIN_ASCII = dict(zip("0123456789", ["ling2", "yi1", "er4", "san1", "si4", "wu3", "liu4", "qi1",
                                       "ba1", "jiu3"]))
HANZI = re.compile(r"[\u4e00-\u9fff]")


def load(locale):
    with open(os.path.join(LOCALE_DIR, locale + ".json"), encoding="utf-8") as f:
        return json.load(f)


def preview(locale, code, locale_dir=LOCALE_DIR):
    out = subprocess.run([os.path.join(ROOT, "bin", "otp-worker"), "--preview", locale, code],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "OTP_BRAND": BRAND, "OTP_LOCALE_DIR": locale_dir})
    picked, language, ssml = out.stdout.rstrip("\n").split("\t", 2)
    assert picked == locale, (picked, locale)
    return ssml


def break_ms(el):
    m = re.fullmatch(r"(\d+)ms", el.get("time", ""))
    assert m, "break without a time in ms: %r" % el.attrib
    return int(m.group(1))


def phonetic(locale, ssml):
    """The SSML with every text piece replaced by its reading (ja-JP, zh-*); others unchanged."""
    if locale not in READINGS:
        return ssml
    lines = {}
    for line, reading in READINGS[locale].items():
        lines[line.replace("{brand}", BRAND)] = reading.replace("{brand}", BRAND_READING[locale])

    def text(t):
        t = (t or "").strip()
        if not t:
            return ""
        assert t in lines, "%s: no reading for the line %r: add it to READINGS" % (locale, t)
        return lines[t]

    def digit(el):
        if el.tag == "sub":
            word = el.get("alias")
            return PINYIN_DIGIT[word] if locale.startswith("zh") else word
        return PINYIN_ASCII[el.text] if locale.startswith("zh") else el.text

    root = ET.fromstring(ssml)
    out = ["<speak>", text(root.text)]
    for el in root:
        if el.tag == "break":
            out.append('<break time="%dms"/>' % break_ms(el))
        else:
            out.append(" " + digit(el) + " ")
        out.append(text(el.tail))
    out.append("</speak>")
    return "".join(out)


def render_s(voice, ssml, tmp):
    wav = os.path.join(tmp, "m.wav")
    subprocess.run(["espeak-ng", "-m", "-v", voice, "-w", wav, ssml], check=True, capture_output=True)
    return float(subprocess.run(["soxi", "-D", wav], capture_output=True, text=True,
                                check=True).stdout)


def cloud_seconds(locale, ssml, tmp):
    """The message's length for a cloud voice (see the module docstring)."""
    ssml = phonetic(locale, ssml)
    root = ET.fromstring(ssml)
    written = sum(break_ms(b) for b in root.iter("break")) / 1000.0
    lead = 0.0
    # Leading breaks: espeak-ng drops them; take them out, count them as written.
    while not (root.text or "").strip() and len(root) and root[0].tag == "break":
        lead += break_ms(root[0]) / 1000.0
        root.text = (root.text or "") + (root[0].tail or "")
        root.remove(root[0])
    rendered = render_s(ESPEAK[locale], ET.tostring(root, encoding="unicode"), tmp)
    speech = rendered - (written - lead)
    assert speech > 0.3, "%s: implausibly short speech %.2f s" % (locale, speech)
    return CLOUD_SLOWER * speech + written


def speedups(ssml):
    """Every place that makes the voice faster than its own rate."""
    found = []
    for m in re.finditer(r"<prosody\b[^>]*>", ssml):
        rate = re.search(r'rate\s*=\s*["\']([^"\']*)["\']', m.group(0))
        if not rate:
            continue
        v = rate.group(1).strip()
        if v in ("fast", "x-fast") or (v.endswith("%") and float(v[:-1]) > 100) or \
                re.fullmatch(r"[+]\d.*", v) or (re.fullmatch(r"[\d.]+", v) and float(v) > 1.0):
            found.append(m.group(0))
    return found


def test_every_locale_has_an_espeak_voice():
    assert set(LOCALES) <= set(ESPEAK), sorted(set(LOCALES) - set(ESPEAK))
    required = {"en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "pt-BR", "ja-JP", "ko-KR",
                "zh-CN", "ru-RU", "hi-IN", "pt-PT", "zh-TW"}
    assert required <= set(LOCALES), sorted(required - set(LOCALES))
    assert "es-419" in LOCALES or "es-MX" in LOCALES


def test_espeak_renders_breaks_as_written():
    """The model subtracts written breaks from espeak-ng's rendering: they must be there."""
    with tempfile.TemporaryDirectory() as tmp:
        for voice in sorted(set(ESPEAK.values())):
            word = {"ja": "なな", "cmn-latn-pinyin": "qi1", "ko": "칠"}.get(voice, "7")
            plain = render_s(voice, "<speak>%s %s</speak>" % (word, word), tmp)
            for ms in (120, 200, 300, 350, 1000):
                paused = render_s(voice, '<speak>%s<break time="%dms"/>%s</speak>' % (word, ms, word),
                                  tmp)
                assert paused - plain >= ms / 1000.0 - 0.01, (voice, ms, paused, plain)


def test_readings_match_their_lines():
    """A reading belongs to its line: one pinyin syllable per hanzi, the kana of a Japanese line
    appear in its reading in order. A stale reading fails here."""
    for locale, table in READINGS.items():
        f = load(locale)
        assert set(table) == {f["intro"], f["again"], f["outro"]}, \
            "%s: READINGS must hold exactly the intro, again and outro lines" % locale
        for line, reading in table.items():
            if locale.startswith("zh"):
                syllables = re.findall(r"[a-z]+[1-5]", reading)
                assert len(syllables) == len(HANZI.findall(line)), (locale, line, reading)
            else:
                kana = [c for c in line if "\u3041" <= c <= "\u30ff" and c not in "はー"]
                it = iter(reading)
                assert all(c in it for c in kana), (locale, line, reading)


def test_budget_model_fails_a_template_that_grew():
    """The measurement can fail: en-US with its warning said three times is over 15 s."""
    f = load("en-US")
    f["outro"] = " ".join([f["outro"]] * 3)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "en-US.json"), "w", encoding="utf-8") as out:
            json.dump(f, out, ensure_ascii=False)
        assert cloud_seconds("en-US", preview("en-US", "77777777", tmp), tmp) > LIMIT_S


def test_speedup_detector():
    assert speedups('<speak><prosody rate="110%">1</prosody></speak>')
    assert speedups('<speak><prosody rate="fast">1</prosody></speak>')
    assert speedups("<speak><prosody pitch='low' rate='1.2'>1</prosody></speak>")
    assert not speedups('<speak><prosody rate="100%">1</prosody></speak>')
    assert not speedups('<speak><prosody rate="90%">1</prosody></speak>')


def paced_or_grouped(gaps):
    """The pauses between consecutive digits (ms) meet the rule: all >= 250 ms (paced), or groups
    of 2-4 digits with >= 120 ms inside and >= 350 ms between them (grouped)."""
    sizes, size = [], 1
    for ms in gaps:
        if ms >= 350:
            sizes.append(size)
            size = 1
        else:
            size += 1
    sizes.append(size)
    paced = all(ms >= 250 for ms in gaps)
    grouped = all(ms >= 120 for ms in gaps) and all(2 <= s <= 4 for s in sizes)
    return paced or grouped


def test_pacing_rule():
    assert paced_or_grouped([250] * 9)
    assert paced_or_grouped([120, 120, 350, 120, 120])
    assert paced_or_grouped([120, 350, 120, 120])
    assert not paced_or_grouped([100, 100, 350, 100, 100])
    assert not paced_or_grouped([120] * 7)  # eight digits in one breath
    assert not paced_or_grouped([120, 120, 300, 120, 120])  # 300 ms is no group pause
    assert not paced_or_grouped([350, 120, 120, 120])  # a lone digit is no group


@pytest.mark.parametrize("locale", LOCALES)
def test_pacing_no_speedup_said_twice(locale):
    for n in ALL_LENGTHS:
        code = "4829130756"[:n]
        ssml = preview(locale, code)
        assert not speedups(ssml), (locale, speedups(ssml))
        assert "rate" not in ssml, "%s: a rate in the SSML" % locale
        root = ET.fromstring(ssml)
        assert root[0].tag == "break" and not (root.text or "").strip() and \
            break_ms(root[0]) >= 300, "%s: no leading silence" % locale
        digits = [el for el in root if el.tag in ("say-as", "sub")]
        assert "".join(d.text for d in digits) == code * 2, (locale, code)
        for d in digits:
            if d.tag == "say-as":
                assert d.get("interpret-as") == "characters"
            else:
                assert d.get("alias") == load(locale)["digits"][int(d.text)]
        # The pauses between consecutive digits of one reading of the code.
        gaps, cur = [], []
        kids = list(root)
        for i, el in enumerate(kids):
            if el.tag in ("say-as", "sub") and i + 2 < len(kids) and kids[i + 1].tag == "break" \
                    and kids[i + 2].tag in ("say-as", "sub") and not (el.tail or "").strip() \
                    and not (kids[i + 1].tail or "").strip() \
                    and break_ms(kids[i + 1]) != REPEAT_MS:
                cur.append(break_ms(kids[i + 1]))
            elif el.tag in ("say-as", "sub"):
                gaps.append(cur)
                cur = []
        assert len(gaps) == 2 and all(len(g) == n - 1 for g in gaps), (locale, n, gaps)
        # Long codes: the readings are set apart by a pause alone, well above a group pause.
        if n >= BARE_REPEAT_FROM:
            assert ('<break time="%dms"/>' % REPEAT_MS) in ssml and REPEAT_MS >= 2 * 250
            assert load(locale)["again"] not in ssml
        for g in gaps:
            assert paced_or_grouped(g), "%s, %d digits: pauses %s" % (locale, n, g)


def worst_digit(locale, tmp):
    """The digit whose repetition makes the longest 8-digit message, as rendered."""
    return max("0123456789", key=lambda d: cloud_seconds(locale, preview(locale, d * 8), tmp))


# 8-digit messages still at or over 15 s. In these languages the worst digit said sixteen times
# with the minimum pauses alone takes 10-13 s (Italian "quattro" x 16 is about 12.7 s), and even a
# bare intro with no "Again:" and no warning stays over (it-IT about 15.7 s): the code said twice
# does not fit. They are listed, not hidden: the README states each figure, the figure may not
# grow (the README check), and a pair that comes under 15 s must leave the list.
OVER_AT_8 = {("hi-IN", 8), ("it-IT", 8), ("ko-KR", 8), ("ru-RU", 8), ("zh-CN", 8), ("zh-TW", 8)}

README = os.path.join(ROOT, "README.md")
README_TOLERANCE_S = 0.2


def measure(locale):
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = worst_digit(locale, tmp)
        for n in ALL_LENGTHS:
            results[n] = max((cloud_seconds(locale, preview(locale, code), tmp), code)
                             for code in (d * n, "7305918264"[:n]))
    print("\n%s (slowest digit %s): %s" % (locale, d, ", ".join(
        "%d digits %.1f s" % (n, results[n][0]) for n in ALL_LENGTHS)))
    return results


def readme_row(locale):
    """The README's measured lengths for locale (the voice section's table), by code length."""
    with open(README, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            if cells and cells[0] == locale and len(cells) == 1 + len(ALL_LENGTHS):
                return dict(zip(ALL_LENGTHS, (float(c) for c in cells[1:])))
    return None


@pytest.mark.parametrize("locale", LOCALES)
def test_message_under_15_seconds(locale):
    """Every length 4-8 under 15 s; 9 and 10 are measured and must be what the README states."""
    results = measure(locale)
    over = ["%d digits: %.2f s (code %s)" % (n, results[n][0], results[n][1])
            for n in BUDGET_LENGTHS
            if results[n][0] >= LIMIT_S and (locale, n) not in OVER_AT_8]
    assert not over, "%s: 15 s or more: %s" % (locale, "; ".join(over))
    fits = ["%d digits: %.2f s" % (n, results[n][0]) for n in BUDGET_LENGTHS
            if (locale, n) in OVER_AT_8 and results[n][0] < LIMIT_S]
    assert not fits, "%s: now under 15 s, take it out of OVER_AT_8: %s" % (locale, "; ".join(fits))
    row = readme_row(locale)
    assert row, "%s: no row in the README's table of measured lengths" % locale
    stale = ["%d digits: README %.1f s, measured %.2f s" % (n, row[n], results[n][0])
             for n in ALL_LENGTHS if abs(row[n] - results[n][0]) > README_TOLERANCE_S]
    assert not stale, "%s: the README's figures are stale: %s" % (locale, "; ".join(stale))
