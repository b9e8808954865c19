"""Issue 6 (part): the gate against voicemail, answering-machine detection, locale on the call.

Real stack: PostgreSQL, Kafka broker, VoIPBin simulator (scripted callee), worker, verifier.
"""

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from stack import Stack  # noqa: E402
import pipeline as P  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    with Stack() as s:
        p = P.Pipeline(s)
        p.start_verifier()
        # One call per request here: outcomes are final, not retried.
        p.start_worker(OTP_MAX_CALL_ATTEMPTS=1)
        yield p
        p.close()


def types_of(p, rid):
    return [e["type"] for e in sorted(p.status.of(rid), key=lambda e: e["seq"])]


def wait_type(p, rid, t, timeout=60):
    p.status.wait_for(lambda evs: t in [e["type"] for e in evs if e.get("request_id") == rid],
                      timeout=timeout, what="%s for %s" % (t, rid))


def code_read(call):
    return any(P.spoken_code(t) for t in P.call_texts(call))


def test_gate_with_a_key_reads_the_code(pipe):
    ph = "+15553000001"
    pipe.sim.script(ph, outcome="answer", digits="5")
    [rid] = pipe.produce([{"phone": ph, "user_id": "gate-key", "delivery": {"gate": True}}])
    wait_type(pipe, rid, "delivered")
    [call] = pipe.calls_to(ph)
    types = [a["type"] for a in P.call_request(call)["actions"]]
    assert types[:3] == ["talk", "digits_receive", "condition_variable"], types
    texts = P.call_texts(call)
    assert "press any key" in texts[0].lower() and not P.spoken_code(texts[0])
    code = P.spoken_code(texts[-1])
    assert code, texts
    assert pipe.verify(rid, code)[1]["status"] == "verified"
    assert "no_input" not in types_of(pipe, rid)


def test_gate_without_a_key_never_reads_the_code(pipe):
    ph = "+15553000002"
    pipe.sim.script(ph, outcome="answer")  # answers, presses nothing: a voicemail box
    [rid] = pipe.produce([{"phone": ph, "user_id": "gate-none", "delivery": {"gate": True}}])
    wait_type(pipe, rid, "no_input")
    wait_type(pipe, rid, "failed")
    [call] = pipe.calls_to(ph)
    assert not code_read(call), P.call_texts(call)
    ws = call.get("webhook_sends") or []
    assert ws and '"otp_no_input"' in ws[0]["body"] and rid in ws[0]["body"]
    failed = [e for e in pipe.status.of(rid) if e["type"] == "failed"][0]
    assert failed["cause"] == "no_input"


def test_machine_is_hung_up_on_without_the_code(pipe):
    ph = "+15553000003"
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
