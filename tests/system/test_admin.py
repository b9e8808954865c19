# SPDX-License-Identifier: Apache-2.0
"""Issue 13: otp-admin dlq list|show|replay and otp-admin status on the real local stack: a bad
request is looked at (numbers masked), fixed and re-published; the replay is recorded and the
fixed request is called; a request's status shows the challenge, its calls and its events with
the number masked."""

import json
import os
import subprocess
import time
import uuid

import psycopg

import pipeline as P
from stack import Stack
from testkit import dlq_visible_uuid


def admin(pipe, *args, binary=False):
    return subprocess.run([Stack.bin("otp-admin")] + list(args),
                          env={**os.environ, **pipe.env()}, capture_output=True,
                          text=not binary, timeout=120)


def mentions(ev, text):
    return text in json.dumps({k: v for k, v in ev.items() if not k.startswith("_")})


def sql(pipe, q, *args):
    with psycopg.connect(pipe.db_url, autocommit=True) as c:
        return c.execute(q, args).fetchall()


def test_dead_letter_listed_fixed_and_replayed(pipe, tmp_path):
    rid = dlq_visible_uuid()
    bad_phone, good_phone = "+1202555012", "+12025550123"  # 10 digits: not a US number
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    raw = json.dumps({"request_id": rid, "user_id": "dlq-user", "phone": bad_phone,
                      "purpose": "login", "requested_at": now})
    pipe.raw_kafka([raw])
    pipe.dlq.wait_for(lambda evs: sum(mentions(e, rid) for e in evs) >= 1, what="dead letter")
    [(dl_id, reason)] = sql(pipe, "SELECT id, reason FROM dead_letters WHERE payload = %s",
                            raw.encode())

    out = admin(pipe, "dlq", "list")
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("%d " % dl_id)]
    assert line and reason in line[0], out.stdout
    assert bad_phone not in out.stdout and "1202555012" not in out.stdout

    out = admin(pipe, "dlq", "show", str(dl_id))
    assert out.returncode == 0 and reason in out.stdout and rid in out.stdout, out.stdout
    assert "1202555012" not in out.stdout, out.stdout
    out = admin(pipe, "dlq", "show", str(dl_id), "--raw", binary=True)
    assert out.returncode == 0 and out.stdout == raw.encode()

    # Replayed as stored: the same bytes again, refused again (a second dead letter).
    out = admin(pipe, "dlq", "replay", str(dl_id))
    assert out.returncode == 0 and "edited=no" in out.stdout, out.stdout + out.stderr
    pipe.dlq.wait_for(lambda evs: sum(mentions(e, rid) for e in evs) >= 2,
                      what="the unedited replay refused again")

    # Fixed and replayed: the request is accepted and called.
    fixed = tmp_path / "fixed.json"
    fixed.write_text(raw.replace(bad_phone, good_phone) + "\n")
    out = admin(pipe, "dlq", "replay", str(dl_id), "--edit", str(fixed))
    assert out.returncode == 0 and "edited=yes" in out.stdout, out.stdout + out.stderr
    assert good_phone not in out.stdout
    pipe.wait_calls(1, pred=lambda c: c["target"] == good_phone)
    pipe.status.wait_for(lambda evs: "accepted" in [e["type"] for e in evs
                                                    if e.get("request_id") == rid])
    rows = sql(pipe, "SELECT edited, payload FROM dead_letter_replays WHERE dead_letter_id = %s"
               " ORDER BY id", dl_id)
    assert [(e, bytes(p)) for e, p in rows] == [
        (False, raw.encode()), (True, raw.replace(bad_phone, good_phone).encode())]
    out = admin(pipe, "dlq", "show", str(dl_id))
    assert out.stdout.count("replay: ") == 2 and "edited=yes" in out.stdout, out.stdout

    for args in (["dlq"], ["dlq", "show"], ["dlq", "replay", "x"], ["dlq", "list", "--nope"]):
        r = admin(pipe, *args)
        assert r.returncode == 2 and "usage: otp-admin" in r.stderr, (args, r.stderr)
    r = admin(pipe, "dlq", "show", "999999")
    assert r.returncode == 1 and "no dead letter" in r.stderr


def test_status_shows_challenge_calls_and_events_masked(pipe):
    number = "+12025556010"
    [rid] = pipe.produce([{"phone": number, "user_id": "status-user"}])
    [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == number and c["talks"])
    st, body = pipe.verify(rid, P.spoken_code(P.call_texts(call)[0]))
    assert body["status"] == "verified"
    pipe.status.wait_for(lambda evs: "verified" in [e["type"] for e in evs
                                                    if e.get("request_id") == rid])
    out = admin(pipe, "status", rid)
    assert out.returncode == 0, out.stderr
    f = dict(ln.split(": ", 1) for ln in out.stdout.splitlines() if ": " in ln
             and not ln.startswith(("event:", "call:")))
    assert f["status"] == "verified" and f["user_id"] == "status-user", out.stdout
    assert f["phone"] == "+12*******10" and number not in out.stdout, out.stdout
    assert "call: " in out.stdout and "attempt=1" in out.stdout
    events = [json.loads(ln[len("event: "):]) for ln in out.stdout.splitlines()
              if ln.startswith("event: ")]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
    assert {"accepted", "call_requested", "verified"} <= {e["type"] for e in events}

    r = admin(pipe, "status", str(uuid.uuid4()))
    assert r.returncode == 1 and "challenge: none" in r.stdout
    r = admin(pipe, "status", "not-a-uuid")
    assert r.returncode == 2 and "usage: otp-admin" in r.stderr
