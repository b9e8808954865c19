# SPDX-License-Identifier: Apache-2.0
"""Issue 13: `otp-admin resend --failed-since T [--until T] [--cause C] [--dry-run]` on the real
local stack (PostgreSQL, the mock Kafka cluster, the VoIPBin simulator, otp-worker). Requests
whose only call failed are resent once: a dry run publishes nothing; a run publishes a new
request per waiting user that the worker calls and that supersedes the failed one; a second run
calls no one again; a request superseded by a newer one, one whose number retention replaced by
its hash, and one outside --cause are left alone, each with its reason; a number over its budget
is refused by the worker (the tool does not bypass it). Numbers never appear in full."""

import hashlib
import hmac
import os
import re
import subprocess
import time
import uuid

import psycopg
import pytest

from stack import Stack
from testkit import wait_until

A, B, C, E, G = "+12025550141", "+12025550142", "+12025550143", "+12025550144", "+12025550145"


@pytest.fixture(scope="module")
def pipeline_options():
    # One call per request: a failed call ends the request (status failed, cause kept).
    return {"worker_env": {"OTP_MAX_CALL_ATTEMPTS": "1"}}


def sql(pipe, q, *args):
    with psycopg.connect(pipe.db_url, autocommit=True) as c:
        cur = c.execute(q, args)
        return cur.fetchall() if cur.description else None


def admin(pipe, *args):
    return subprocess.run([Stack.bin("otp-admin")] + list(args),
                          env={**os.environ, **pipe.env()}, capture_output=True, text=True,
                          timeout=120)


def wait_status(pipe, rid, want, timeout=60):
    def status():
        rows = sql(pipe, "SELECT status FROM challenges WHERE request_id = %s", rid)
        return rows[0][0] if rows else None
    def reached():
        got = status()
        return got if got in want else None
    return wait_until(reached, timeout,
                      "request %s to reach one of %r" % (rid, want), interval=0.2,
                      state=lambda: "status %r" % status())


def lines_about(out, rid):
    return [ln for ln in out.splitlines() if "request_id=%s " % rid in ln + " "]


def derived(line):
    m = re.search(r"new_request_id=([0-9a-f-]{36})", line)
    assert m, line
    return m.group(1)


def no_full_number(text):
    for ph in (A, B, C, E, G):
        assert ph not in text and ph[1:] not in text, text


@pytest.fixture(scope="module")
def failed(pipe):
    """Five requests whose one call failed: A (to resend), B (its user asked again since),
    C (number purged), E (busy: another cause), G (its number over budget)."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    for ph in (A, B, C, G):
        pipe.sim.script(ph, outcome="failed", times=1)
    pipe.sim.script(E, outcome="busy", end_ms=1000, times=1)
    reqs = [{"phone": ph, "user_id": "resend-" + ph[-2:], "purpose": "login"}
            for ph in (A, B, C, E, G)]
    ids = dict(zip((A, B, C, E, G), pipe.produce(reqs)))
    for ph, rid in ids.items():
        assert wait_status(pipe, rid, ("failed",)) == "failed"
    causes = dict(sql(pipe, "SELECT request_id::text, reason FROM challenges"
                            " WHERE request_id = ANY(%s::uuid[])", list(ids.values())))
    assert causes[ids[A]] == "call_failed" and causes[ids[E]] == "busy", causes

    # B's user asked again (and got a call): B is superseded by a newer request.
    [newer_b] = pipe.produce([{"phone": B, "user_id": "resend-42", "purpose": "login"}])
    wait_status(pipe, newer_b, ("call_requested", "ringing", "answered", "delivered"))
    # Retention replaced C's number by its keyed hash (what the purge does an hour after expiry).
    key = hmac.new(("phone:" + pipe.hash_key).encode(), C.encode(), hashlib.sha256).hexdigest()
    sql(pipe, "UPDATE challenges SET phone = NULL, phone_hash = decode(%s, 'hex')"
              " WHERE request_id = %s", key, ids[C])
    # G's number has used up its 15-minute budget.
    gkey = hmac.new(("phone:" + pipe.hash_key).encode(), G.encode(), hashlib.sha256).hexdigest()
    sql(pipe, "INSERT INTO budget_counts (scope, key, bucket, n)"
              " VALUES ('p', 'default:' || %s, date_trunc('minute', now()), 100)"
              " ON CONFLICT (scope, key, bucket) DO UPDATE SET n = 100", gkey)
    return {"since": since, "ids": ids, "newer_b": newer_b}


def test_dry_run_publishes_nothing(pipe, failed):
    ids = failed["ids"]
    calls_before = len(pipe.sim.calls())
    out = admin(pipe, "resend", "--failed-since", failed["since"], "--cause", "call_failed",
                "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr
    no_full_number(out.stdout + out.stderr)
    [a] = lines_about(out.stdout, ids[A])
    assert a.startswith("would_resend ") and "phone=+12*******41" in a and "cause=call_failed" in a
    [b] = lines_about(out.stdout, ids[B])
    assert b.startswith("skip ") and "reason=superseded_by_newer" in b
    assert "newer_request_id=%s" % failed["newer_b"] in b
    [c] = lines_about(out.stdout, ids[C])
    assert c.startswith("skip ") and "reason=number_purged" in c
    assert lines_about(out.stdout, ids[E]) == [], "busy is not --cause call_failed"
    assert "dry run: nothing published" in out.stdout
    time.sleep(2)
    assert sql(pipe, "SELECT count(*) FROM challenges WHERE request_id = %s", derived(a)) == [(0,)]
    assert len(pipe.sim.calls()) == calls_before
    assert wait_status(pipe, ids[A], ("failed",)) == "failed"

    # Without --cause, E (busy) is in the window too.
    out = admin(pipe, "resend", "--failed-since", failed["since"], "--dry-run")
    assert out.returncode == 0, out.stderr
    [e] = lines_about(out.stdout, ids[E])
    assert e.startswith("would_resend ") and "cause=busy" in e
    # A window that ends before the failures holds none of them.
    out = admin(pipe, "resend", "--failed-since", "2020-01-01T00:00:00Z", "--until",
                "2020-01-02T00:00:00Z", "--dry-run")
    assert out.returncode == 0 and "failed_requests=0" in out.stdout, out.stdout


def test_resend_calls_once_within_budgets(pipe, failed):
    ids = failed["ids"]
    out = admin(pipe, "resend", "--failed-since", failed["since"], "--cause", "call_failed")
    assert out.returncode == 0, out.stdout + out.stderr
    no_full_number(out.stdout + out.stderr)
    [a] = lines_about(out.stdout, ids[A])
    assert a.startswith("resent "), out.stdout
    new_a = derived(a)
    [g] = lines_about(out.stdout, ids[G])
    assert g.startswith("resent "), out.stdout
    new_g = derived(g)
    assert [ln.split()[0] for ln in lines_about(out.stdout, ids[B])] == ["skip"]
    assert [ln.split()[0] for ln in lines_about(out.stdout, ids[C])] == ["skip"]

    # The worker calls A's number again with a fresh request that supersedes the failed one.
    pipe.wait_calls(2, pred=lambda c: c["target"] == A)
    wait_status(pipe, new_a, ("call_requested", "ringing", "answered", "delivered"))
    assert wait_status(pipe, ids[A], ("superseded",)) == "superseded"
    [(user, purpose)] = sql(pipe, "SELECT user_id, purpose FROM challenges WHERE request_id = %s",
                            new_a)
    assert (user, purpose) == ("resend-41", "login")
    pipe.status.wait_for(lambda evs: any(e.get("request_id") == ids[A] and e["type"] == "superseded"
                                         and e.get("by") == new_a for e in evs),
                         what="A superseded by its resend")
    # G's number is over its budget: the worker refuses the resend, no call is placed.
    assert wait_status(pipe, new_g, ("rate_limited",)) == "rate_limited"
    assert len(pipe.calls_to(G)) == 1
    # B (superseded by its user's newer request) and C (number purged) were not called again.
    assert len(pipe.calls_to(C)) == 1
    assert len(pipe.calls_to(B)) == 2  # its first call and its user's newer request

    # A second run publishes nothing new and places no call.
    calls_before = len(pipe.sim.calls())
    out = admin(pipe, "resend", "--failed-since", failed["since"], "--cause", "call_failed")
    assert out.returncode == 0, out.stdout + out.stderr
    [a2] = lines_about(out.stdout, ids[A])
    assert a2.startswith("skip ") and "reason=already_resent" in a2 and new_a in a2, a2
    [g2] = lines_about(out.stdout, ids[G])
    assert "reason=already_resent" in g2 and "new_status=rate_limited" in g2, g2
    assert "resent=0" in out.stdout
    time.sleep(3)
    assert len(pipe.sim.calls()) == calls_before
    assert sql(pipe, "SELECT count(*) FROM challenges WHERE user_id = 'resend-41'") == [(2,)]


def test_resend_id_is_derived_not_random(pipe, failed):
    """The same failed request always maps to the same new id: the idempotency that makes a
    re-run (or a run racing another) harmless at ingest."""
    ids = failed["ids"]
    runs = [admin(pipe, "resend", "--failed-since", failed["since"], "--dry-run").stdout
            for _ in range(2)]
    got = [[derived(ln) for ln in lines_about(r, ids[E])] for r in runs]
    assert got[0] == got[1] and len(got[0]) == 1, runs
    assert uuid.UUID(got[0][0]).version == 8


def test_usage_errors(pipe):
    assert admin(pipe, "resend").returncode == 2
    assert admin(pipe, "resend", "--failed-since", "yesterday").returncode == 2
    assert admin(pipe, "resend", "--failed-since", "2026-01-01T00:00:00Z", "extra").returncode == 2
