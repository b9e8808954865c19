# SPDX-License-Identifier: Apache-2.0
"""Issue 13: an audit-grade status stream.

Every request's events on otp.call_status are numbered 1..n without gaps, in the order they were
written, even when the worker (ingest, dispatcher) and the verifier (webhooks, verify) write events
of one request at the same time; every message carries the CloudEvents Kafka binding headers; and
`otp-admin audit` finds a gap, a request without a final event and a doubled number that an
independent client injects into the topic.
"""

import json
import os
import subprocess
import threading
import time
import uuid

import pytest

import pipeline as P
from stack import Stack
from testkit import produce

FINAL = {"verified", "locked", "expired", "superseded", "rejected", "blocked", "rate_limited",
         "failed"}


def phone(i):
    return "+1%010d" % (2025553000 + i)


def audit(pipe, from_ms, settle=0):
    out = subprocess.run([Stack.bin("otp-admin"), "audit", "--from", str(from_ms),
                          "--settle", str(settle)],
                         env={**os.environ, **pipe.env()}, capture_output=True, text=True,
                         timeout=120)
    return out.returncode, out.stdout, out.stderr


def by_request(evs):
    out = {}
    for e in evs:
        if "request_id" in e:
            out.setdefault(e["request_id"], []).append(e)
    return out


@pytest.fixture(scope="module")
def run(pipe):
    """A real run: 12 requests called, answered and verified while the webhooks still come in
    (verifier and worker write events of one request at once), two wrong codes on one of them,
    and one bad message with a request id (rejected, no challenge)."""
    from_ms = int(time.time() * 1000) - 1000
    reqs = [{"phone": phone(i), "user_id": "audit-%d" % i} for i in range(12)]
    ids = pipe.produce(reqs)
    by_phone = {r["phone"]: rid for r, rid in zip(reqs, ids)}
    bad_id = str(uuid.uuid4())
    pipe.raw_kafka([json.dumps({"request_id": bad_id, "user_id": "audit-bad", "phone": "12"})])
    calls = pipe.wait_calls(12, pred=lambda c: c["target"] in by_phone and c["talks"])

    def verify(c):
        rid = by_phone[c["target"]]
        code = P.spoken_code(P.call_texts(c)[0])
        if c["target"] == phone(0):
            wrong = "%06d" % ((int(code) + 1) % 1000000)
            for _ in range(2):
                assert pipe.verify(rid, wrong)[1]["status"] == "incorrect"
        st, body = pipe.verify(rid, code)
        assert (st, body["status"]) == (200, "verified"), body

    threads = [threading.Thread(target=verify, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = set(ids)
    pipe.status.wait_for(
        lambda evs: all({"verified", "delivered"} <= {e["type"] for e in evs
                                                      if e.get("request_id") == rid}
                        for rid in want)
        and any(e.get("request_id") == bad_id for e in evs),
        timeout=90, what="verified + delivered for 12 requests, rejected for the bad one")
    time.sleep(2)  # late duplicates of webhooks would show up now
    return {"from_ms": from_ms, "ids": ids, "bad_id": bad_id, "wrong": by_phone[phone(0)]}


def test_status_events_are_numbered_per_request_without_gaps(pipe, run):
    evs = by_request(pipe.status.snapshot())
    for rid in run["ids"] + [run["bad_id"]]:
        seen = {}
        for e in evs[rid]:  # in the order read: one request is one partition
            seen.setdefault(e["event_id"], e)
        got = [e["seq"] for e in seen.values()]
        assert got == list(range(1, len(got) + 1)), (rid, [(e["seq"], e["type"])
                                                           for e in seen.values()])
        assert list(seen.values())[-1]["type"] in FINAL | {"delivered"}, list(seen.values())
    types = [e["type"] for e in evs[run["wrong"]]]
    assert types.count("verify_failed") == 2 and "verified" in types, types
    assert [e["type"] for e in evs[run["bad_id"]]] == ["rejected"]
    counts = sorted(len({e["event_id"] for e in evs[rid]}) for rid in run["ids"])
    print("events per request: min %d max %d" % (counts[0], counts[-1]))
    assert counts[0] >= 5  # accepted, call_requested, answered, delivered, verified at least


def test_every_status_event_carries_cloudevents_headers(pipe, run):
    evs = [e for e in pipe.status.snapshot() if e.get("request_id") in set(run["ids"])]
    assert evs
    for e in evs:
        h = {k: (v.decode() if v is not None else None) for k, v in e["_headers"].items()}
        assert h["ce_specversion"] == "1.0", h
        assert h["ce_id"] == e["event_id"], h
        assert h["ce_type"] == "net.voipbin.otp.call_status." + e["type"], h
        assert h["ce_source"] == "/otp/call_status", h
        assert h["ce_time"] == e["at"], h
        assert h["ce_subject"] == e["request_id"], h
        assert h["content-type"] == "application/json", h


def test_audit_passes_a_complete_run_and_flags_injected_faults(pipe, run):
    rc, out, err = audit(pipe, run["from_ms"])
    assert rc == 0, out + err
    assert "with_problems=0" in out and "requests=13" in out, out

    # An independent client writes doctored events: a gap (seq n+2 after n) on one request,
    # a second event with an existing number on another, and a request with no final event.
    evs = by_request(pipe.status.snapshot())
    gap_rid, dup_rid = run["ids"][1], run["ids"][2]
    last = max(evs[gap_rid], key=lambda e: e["seq"])
    gap = dict(last, event_id=str(uuid.uuid4()), seq=last["seq"] + 2, type="verify_failed")
    dup = dict(evs[dup_rid][0], event_id=str(uuid.uuid4()), type="ringing")  # seq 1 again
    lonely_rid = str(uuid.uuid4())
    lonely = dict(evs[gap_rid][0], event_id=str(uuid.uuid4()), request_id=lonely_rid, seq=1,
                  type="accepted")
    produce(pipe.bootstrap, "otp.call_status", [
        (ev["request_id"], json.dumps({k: v for k, v in ev.items() if not k.startswith("_")}))
        for ev in (gap, dup, lonely)])

    rc, out, err = audit(pipe, run["from_ms"])
    assert rc == 1, out + err
    lines = {ln.split()[0].split("=")[1]: ln for ln in out.splitlines()
             if ln.startswith("request_id=")}
    assert set(lines) == {gap_rid, dup_rid, lonely_rid}, out
    assert "missing=1 missing_seq=%d " % (last["seq"] + 1) in lines[gap_rid], lines[gap_rid]
    assert "duplicate_seq=yes" in lines[dup_rid] and "out_of_order=yes" in lines[dup_rid]
    assert "final=no" in lines[lonely_rid], lines[lonely_rid]
    assert "with_problems=3" in out, out

    # A request still in flight (quiet for less than --settle) is not a missing final event.
    rc, out, err = audit(pipe, run["from_ms"], settle=3600)
    assert rc == 1 and lonely_rid not in out and "with_problems=2" in out, out
    # From a time after everything: nothing to audit.
    rc, out, err = audit(pipe, int(time.time() * 1000) + 60000)
    assert rc == 0 and "events=0" in out, out


def test_admin_usage():
    # Only `otp-admin purge` needs OTP_HASH_KEY: an auditor runs without the secret.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    for args in (["audit"], ["audit", "--from", "x"], ["frobnicate"], ["audit", "--nope", "1"]):
        out = subprocess.run([Stack.bin("otp-admin")] + args, capture_output=True, text=True,
                             env=env)
        assert out.returncode == 2, (args, out.stderr)
        assert "usage: otp-admin" in out.stderr or "not a time" in out.stderr, (args, out.stderr)
    out = subprocess.run([Stack.bin("otp-admin"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "OTP_TOPIC_STATUS" in out.stdout


def test_superseded_event_is_numbered_in_its_own_request(pipe):
    # The superseding request's statement updates the older challenge and writes its event in one
    # statement: the number comes from the same row.
    [old] = pipe.produce([{"phone": phone(50), "user_id": "audit-sup"}])
    pipe.status.wait_for(lambda evs: "call_requested" in [e["type"] for e in evs
                                                          if e.get("request_id") == old])
    [new] = pipe.produce([{"phone": phone(50), "user_id": "audit-sup"}])
    pipe.status.wait_for(lambda evs: "superseded" in [e["type"] for e in evs
                                                      if e.get("request_id") == old]
                         and "accepted" in [e["type"] for e in evs
                                            if e.get("request_id") == new])
    for rid in (old, new):
        seen = {}
        for e in pipe.status.of(rid):
            seen.setdefault(e["event_id"], e)
        seqs = [e["seq"] for e in seen.values()]
        assert seqs == list(range(1, len(seqs) + 1)), [(e["seq"], e["type"])
                                                       for e in seen.values()]
    assert [e["type"] for e in pipe.status.of(new)][0] == "accepted"
