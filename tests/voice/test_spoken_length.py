"""Issue 6: every call message is under 15 seconds spoken, in every locale, at the longest code.

Each template is rendered by the product itself (otp-worker --preview: the exact SSML a call
sends), spoken by espeak-ng in that language from SSML (-m), and measured with sox (soxi -D).
Codes of 10 digits, each digit repeated (some digits are long words: Japanese 7 "nana", Chinese
7 "qi"...) plus a mixed one, so the worst case is measured, not guessed.
"""

import glob
import json
import os
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOCALES = sorted(glob.glob(os.path.join(ROOT, "common", "locales", "*.json")))
LIMIT_S = 15.0
CODES = ["%d" % d * 10 for d in range(10)] + ["9876543210"]

# BCP-47 → espeak-ng voice (espeak-ng names Mandarin "cmn").
ESPEAK = {"en-US": "en-us", "en-GB": "en-gb", "de-DE": "de", "fr-FR": "fr-fr", "es-ES": "es",
          "it-IT": "it", "pt-BR": "pt-br", "ja-JP": "ja", "ko-KR": "ko", "zh-CN": "cmn",
          "ru-RU": "ru", "hi-IN": "hi"}


def test_the_twelve_required_locales_exist():
    have = {os.path.basename(p)[:-5] for p in LOCALES}
    assert set(ESPEAK) <= have, sorted(set(ESPEAK) - have)


@pytest.mark.parametrize("path", LOCALES, ids=lambda p: os.path.basename(p)[:-5])
def test_message_under_15_seconds(path):
    with open(path, encoding="utf-8") as f:
        locale = json.load(f)["locale"]
    voice = ESPEAK.get(locale, locale.lower())
    worst = (0.0, None)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "m.wav")
        for code in CODES:
            out = subprocess.run([os.path.join(ROOT, "bin", "otp-worker"), "--preview", locale, code],
                                 capture_output=True, text=True, check=True, env={**os.environ, "OTP_BRAND": "Acme"})
            picked, language, ssml = out.stdout.rstrip("\n").split("\t", 2)
            assert picked == locale and language == locale
            subprocess.run(["espeak-ng", "-m", "-v", voice, "-w", wav, ssml], check=True,
                           capture_output=True)
            secs = float(subprocess.run(["soxi", "-D", wav], capture_output=True, text=True,
                                        check=True).stdout)
            assert secs > 3.0, "implausibly short: %s %s %.2f s" % (locale, code, secs)
            worst = max(worst, (secs, code))
    print("%s: longest %.2f s (code %s)" % (locale, worst[0], worst[1]))
    assert worst[0] < LIMIT_S, "%s: %.2f s for code %s" % (locale, worst[0], worst[1])
