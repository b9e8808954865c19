# SPDX-License-Identifier: Apache-2.0
"""Issue 6 (part): the gate against voicemail, answering-machine detection, locale on the call.

Real stack: PostgreSQL, Kafka broker, VoIPBin simulator (scripted callee), worker, verifier.
"""

import os
import re
import subprocess

import pytest

from stack import Stack
import pipeline as P
from testkit import wait_until


@pytest.fixture(scope="module")
def pipe():
    with Stack() as s:
        p = P.Pipeline(s)
        keys = dict(line.split("=", 1) for line in subprocess.run(
            [Stack.bin("otp-worker"), "--keygen"], capture_output=True, text=True,
            check=True).stdout.split())
        p.keypad_public = keys["OTP_KEYPAD_PUBLIC_KEY"]
        p.start_verifier()
        # One call per request here: outcomes are final, not retried.
        p.start_worker(OTP_MAX_CALL_ATTEMPTS=1, OTP_KEYPAD_SECRET_KEY=keys["OTP_KEYPAD_SECRET_KEY"],
                       OTP_CALLER_ID_BY_COUNTRY="gb:+442071230000")
        yield p
        p.close()


def produce_cli(p, *args):
    """otp-produce from flags (one request); returns its request_id."""
    out = subprocess.run([Stack.bin("otp-produce")] + list(args), capture_output=True, text=True,
                         env={**os.environ, **p.env(OTP_KEYPAD_PUBLIC_KEY=p.keypad_public)}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def sms_to(p, phone):
    return [m for m in p.sim.messages()
            if (P.call_request(m).get("destinations") or [{}])[0].get("target") == phone]


types_of = P.types_of


def wait_type(p, rid, t, timeout=60):
    p.status.wait_for(lambda evs: t in [e["type"] for e in evs if e.get("request_id") == rid],
                      timeout=timeout, what="%s for %s" % (t, rid))


def code_read(call):
    return any(P.spoken_code(t) for t in P.call_texts(call))


def test_gate_with_a_key_reads_the_code(pipe):
    ph = "+12013000001"
    pipe.sim.script(ph, outcome="answer", digits="5")
    [rid] = pipe.produce([{"phone": ph, "user_id": "gate-key", "delivery": {"gate": True}}])
    wait_type(pipe, rid, "delivered")
    [call] = pipe.calls_to(ph)
    types = [a["type"] for a in P.call_request(call)["actions"]]
    assert types[:3] == ["talk", "digits_receive", "condition_variable"], types
    texts = P.call_texts(call)
    assert "press any key" in texts[0].lower() and not P.spoken_code(texts[0])
    code = P.spoken_code(texts[1])
    assert code, texts
    assert pipe.verify(rid, code)[1]["status"] == "verified"
    assert "no_input" not in types_of(pipe, rid)


def test_gate_without_a_key_never_reads_the_code(pipe):
    ph = "+12013000002"
    pipe.sim.script(ph, outcome="answer")  # answers, presses nothing: a voicemail box
    [rid] = pipe.produce([{"phone": ph, "user_id": "gate-none", "delivery": {"gate": True}}])
    wait_type(pipe, rid, "no_input")
    wait_type(pipe, rid, "failed")
    [call] = pipe.calls_to(ph)
    assert not code_read(call), P.call_texts(call)
    # The prompt is said twice (once more when no key came) and says to open the keypad.
    texts = P.call_texts(call)
    assert len(texts) == 2 and texts[0] == texts[1], texts
    assert "open your keypad" in texts[0].lower(), texts
    ws = call.get("webhook_sends") or []
    assert ws and '"otp_no_input"' in ws[0]["body"] and rid in ws[0]["body"]
    failed = [e for e in pipe.status.of(rid) if e["type"] == "failed"][0]
    assert failed["cause"] == "no_input"


def test_machine_is_hung_up_on_without_the_code(pipe):
    ph = "+12013000003"
    pipe.sim.script(ph, outcome="machine")
    [rid] = pipe.produce([{"phone": ph, "user_id": "amd", "delivery": {"amd": True}}])
    wait_type(pipe, rid, "voicemail")
    wait_type(pipe, rid, "failed")
    [call] = pipe.calls_to(ph)
    assert P.call_request(call)["actions"][0]["type"] == "amd"
    assert call["call"]["hangup_reason"] == "amd"
    assert not code_read(call), P.call_texts(call)


def test_locale_is_spoken_and_reported(pipe):
    ph = "+4915112300004"
    [rid] = pipe.produce([{"phone": ph, "user_id": "de", "locale": "de-AT"}])
    wait_type(pipe, rid, "call_requested")
    pipe.wait_calls(1, pred=lambda c: c["target"] == ph and c["talks"])
    [call] = pipe.calls_to(ph)
    talk = [a for a in P.call_request(call)["actions"] if a["type"] == "talk"][0]["option"]
    assert talk["language"] == "de-DE"
    assert "Code" in re.sub(r"<[^>]*>", "", talk["text"])
    acc = [e for e in pipe.status.of(rid) if e["type"] == "accepted"][0]
    assert acc["locale"] == "de-DE" and acc["requested_locale"] == "de-AT"


def test_keypad_mode_verifies_the_keyed_digits(pipe):
    ph_ok, ph_bad = "+12013000011", "+12013000012"
    pipe.sim.script(ph_ok, outcome="answer", digits="482913#")
    pipe.sim.script(ph_bad, outcome="answer", digits="111111#")
    ok = produce_cli(pipe, "--phone", ph_ok, "--user", "kp-1", "--keypad-code", "482913")
    bad = produce_cli(pipe, "--phone", ph_bad, "--user", "kp-2", "--keypad-code", "482913")
    wait_type(pipe, ok, "verified")
    wait_type(pipe, bad, "verify_failed")
    # The code never travels in plain form on Kafka, and no call reads it.
    for e in pipe.status.of(ok) + pipe.status.of(bad):
        assert "482913" not in str(e)
    [call] = pipe.calls_to(ph_ok)
    assert not any("482913" in (t or "") for t in P.call_texts(call))
    types = [a["type"] for a in P.call_request(call)["actions"]]
    assert types[:3] == ["talk", "digits_receive", "webhook_send"], types
    # The keyed code was used: typing it again is refused.
    assert pipe.verify(ok, "482913")[0] == 404


def test_failed_call_falls_back_to_sms_with_a_fresh_code(pipe):
    ph = "+12013000021"
    pipe.sim.script(ph, outcome="busy")
    rid = produce_cli(pipe, "--phone", ph, "--user", "fallback", "--sms-fallback")
    wait_type(pipe, rid, "sms_sent")
    [msg] = sms_to(pipe, ph)
    code = re.search(r"\b(\d{6})\b", msg["text"]).group(1)
    [call] = pipe.calls_to(ph)
    assert call["call"]["hangup_reason"] == "busy" and not call["talks"]
    assert pipe.verify(rid, code)[1]["status"] == "verified"
    assert "failed" not in types_of(pipe, rid)


def test_failed_call_offers_a_resend_by_sms(pipe):
    ph = "+12013000031"
    pipe.sim.script(ph, outcome="noanswer", end_ms=2000, times=1)
    rid = produce_cli(pipe, "--phone", ph, "--user", "resend", "--purpose", "signup")
    wait_type(pipe, rid, "fallback_available")
    again = produce_cli(pipe, "--resend", rid, "--channel", "sms")
    wait_type(pipe, again, "sms_sent")
    wait_type(pipe, rid, "superseded")
    [msg] = sms_to(pipe, ph)
    code = re.search(r"\b(\d{6})\b", msg["text"]).group(1)
    assert pipe.verify(again, code)[1]["status"] == "verified"
    acc = [e for e in pipe.status.of(again) if e["type"] == "accepted"][0]
    assert acc["user_id"] == "resend" and acc["purpose"] == "signup"


def test_caller_id_per_country(pipe):
    ph = "+447400123456"
    [rid] = pipe.produce([{"phone": ph, "user_id": "uk"}])
    wait_type(pipe, rid, "call_requested")
    [call] = pipe.calls_to(ph)
    assert P.call_request(call)["source"] == {"type": "tel", "target": "+442071230000"}


def wait_talk(p, ph, pred, what, timeout=60):
    """The sim's record of the call to ph once one of its talks meets pred."""
    def found():
        calls = p.calls_to(ph)
        if calls and any(pred(t) for t in calls[0].get("talks") or []):
            return calls[0]
        return None
    return wait_until(found, timeout, "a talk: %s" % what, interval=0.05)


def is_offer(t):
    return "press 1" in (t.get("text") or "") and not P.spoken_code(t.get("text") or "")


def test_press_1_after_the_message_hears_it_again(pipe):
    """The gate's key stays in voipbin.call.digits; the flow empties it before the offer, so a 1
    pressed after the offer (during digits_receive, where keys are appended) is exactly "1"."""
    ph = "+12013000041"
    pipe.sim.script(ph, outcome="answer", digits="5")
    [rid] = pipe.produce([{"phone": ph, "user_id": "replay", "delivery": {"gate": True}}])
    call = wait_talk(pipe, ph, lambda t: is_offer(t) and t.get("ended_at"), "the offer ended")
    pipe.sim.press(call["id"], "1")
    wait_type(pipe, rid, "delivered")  # at the marker, while the call goes on
    pipe.sim.wait_call_ended(call["id"], timeout=60)
    [call] = pipe.calls_to(ph)
    texts = P.call_texts(call)
    # The gate, the message in two talks (the first reading, the heard marker, the rest), the
    # offer, the whole message again.
    assert len(texts) == 5, texts
    assert "press any key" in texts[0].lower() and is_offer(call["talks"][3]), texts
    assert P.spoken_code(texts[1]) and P.spoken_code(texts[1]) == P.spoken_code(texts[4]), texts
    assert P.spoken_code(texts[2]) == P.spoken_code(texts[4]), texts
    types = [a["type"] for a in P.call_request(call)["actions"]]
    at = types.index("variable_set")
    assert types[at:at + 6] == ["variable_set", "talk", "digits_receive", "branch", "talk",
                                "hangup"], types
    assert call["call"]["hangup_by"] == "local" and call["call"]["hangup_reason"] == "normal"
    assert pipe.verify(rid, P.spoken_code(texts[4]))[1]["status"] == "verified"


def test_no_key_after_the_message_ends_the_call(pipe):
    ph = "+12013000042"
    pipe.sim.script(ph, outcome="answer")
    [rid] = pipe.produce([{"phone": ph, "user_id": "no-replay"}])
    wait_type(pipe, rid, "delivered")  # at the marker, while the call goes on
    [call] = pipe.calls_to(ph)
    call = pipe.sim.wait_call_ended(call["id"], timeout=60)
    texts = P.call_texts(call)
    # The message in two talks (the heard marker between them), then the offer.
    assert len(texts) == 3 and P.spoken_code(texts[0]) and is_offer(call["talks"][2]), texts
    assert "branch" in (call.get("actions_executed") or []), call.get("actions_executed")
    assert call["call"]["hangup_by"] == "local" and call["call"]["hangup_reason"] == "normal"
