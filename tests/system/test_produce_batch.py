# SPDX-License-Identifier: Apache-2.0
"""Issue 13: `otp-produce --file` for batch re-sends, on the real local stack (the mock Kafka
cluster, PostgreSQL, otp-worker, the VoIPBin simulator): one result per line (line, request_id,
delivered|failed, reason) on stdout or in --report FILE, counted as delivered only on the
broker's acknowledgement; exit status 1 when any line failed; --rate N/s; a re-run with the same
report skips the lines already delivered and sends the failed ones under the same request ids,
so no number is called twice."""

import json
import os
import subprocess
import time
import uuid

import psycopg

from stack import Stack
from testkit import wait_until


def phone(i):
    return "+1202555%04d" % (3000 + i)


def produce(pipe, *args, stdin=None):
    return subprocess.run([Stack.bin("otp-produce")] + list(args), input=stdin,
                          env={**os.environ, **pipe.env()}, capture_output=True, text=True,
                          timeout=120)


def rows(text, by_line=True):
    """The result lines: [(line, request_id, status, reason)], by line number (or as written)."""
    out = []
    for ln in text.splitlines():
        if not ln.strip() or ln.startswith("#"):
            continue
        f = ln.split("\t")
        assert len(f) == 5, ln
        out.append((int(f[0]), f[1], f[2], f[3]))
    return sorted(out) if by_line else out


def latest(text):
    """{line: (request_id, status, reason)} as the last run reported it."""
    return {n: (rid, st, why) for n, rid, st, why in rows(text, by_line=False)}


def challenges(pipe, ids):
    with psycopg.connect(pipe.db_url, autocommit=True) as c:
        return dict(c.execute("SELECT request_id::text, user_id FROM challenges"
                              " WHERE request_id = ANY(%s::uuid[])", (list(ids),)).fetchall())


def wait_challenges(pipe, ids, timeout=60):
    def all_in():
        got = challenges(pipe, ids)
        return got if len(got) == len(set(ids)) else None
    return wait_until(all_in, timeout, "%d requests ingested" % len(set(ids)), interval=0.2,
                      state=lambda: "%d in" % len(challenges(pipe, ids)))


def test_results_on_stdout_and_exit_status(pipe, tmp_path):
    lines = [json.dumps({"user_id": "pb-1", "phone": phone(1)}),
             json.dumps({"user_id": "pb-2", "phone": phone(2), "request_id": str(uuid.uuid4())}),
             "",  # blank lines are not requests
             json.dumps({"user_id": "pb-3", "phone": "2025553003"}),  # no +: not E.164
             "not json " + phone(4)]
    f = tmp_path / "batch.ndjson"
    f.write_text("\n".join(lines) + "\n")
    out = produce(pipe, "--file", str(f))
    assert out.returncode == 1, out.stdout + out.stderr
    got = latest(out.stdout)
    assert sorted(got) == [1, 2, 4, 5], out.stdout
    assert got[1][1] == "delivered" and uuid.UUID(got[1][0])
    assert got[2] == (json.loads(lines[1])["request_id"], "delivered", "-")
    assert got[4][1] == "failed" and "phone" in got[4][2], got[4]
    assert got[5][1] == "failed" and "not a JSON object" in got[5][2], got[5]
    # No full number in the results or the log, even in a parser's quote of a bad line.
    assert phone(4) not in out.stdout + out.stderr and phone(4)[1:] not in out.stdout
    assert phone(1) not in out.stdout
    wait_challenges(pipe, [got[1][0], got[2][0]])

    # Every line good: exit 0.
    f.write_text(json.dumps({"user_id": "pb-5", "phone": phone(5)}) + "\n")
    out = produce(pipe, "--file", str(f))
    assert out.returncode == 0 and latest(out.stdout)[1][1] == "delivered", out.stdout


def test_rerun_with_report_never_calls_twice(pipe, tmp_path):
    reqs = [{"user_id": "pr-%d" % i, "phone": phone(10 + i)} for i in range(4)]
    # Two identical lines are two requests (each gets its own id, kept across runs).
    reqs.append(dict(reqs[3]))
    f = tmp_path / "resend.ndjson"
    f.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    report = tmp_path / "report.tsv"

    # The broker is down: nothing is delivered, every line fails with the broker's reason.
    assert pipe.s.kafka.control("down 1").startswith("ok")
    try:
        out = produce(pipe, "--file", str(f), "--report", str(report), "--timeout", "3")
    finally:
        assert pipe.s.kafka.control("up 1").startswith("ok")
    assert out.returncode == 1, out.stderr
    assert out.stdout == ""
    first = latest(report.read_text())
    assert sorted(first) == [1, 2, 3, 4, 5]
    assert all(st == "failed" and why != "-" for _, st, why in first.values()), first
    ids = [first[n][0] for n in range(1, 6)]
    assert len(set(ids)) == 5

    # Re-run: the failed lines go again under the same ids, and are delivered.
    out = produce(pipe, "--file", str(f), "--report", str(report))
    assert out.returncode == 0, out.stderr
    second = latest(report.read_text())
    assert all(second[n][1] == "delivered" for n in range(1, 6)), second
    assert [second[n][0] for n in (1, 2, 3)] == ids[:3]
    # The two identical lines share their two ids (either way round).
    assert {second[4][0], second[5][0]} == set(ids[3:])
    wait_challenges(pipe, ids)
    pipe.wait_calls(4, pred=lambda c: c["target"] in {r["phone"] for r in reqs})
    time.sleep(1)
    per_phone = [len(pipe.calls_to(r["phone"])) for r in reqs[:4]]
    assert per_phone[:3] == [1, 1, 1], per_phone

    # Re-run again, with one new line: only the new line is published.
    f.write_text(f.read_text() + json.dumps({"user_id": "pr-9", "phone": phone(19)}) + "\n")
    calls = len(pipe.sim.calls())
    out = produce(pipe, "--file", str(f), "--report", str(report))
    assert out.returncode == 0, out.stderr
    third = rows(report.read_text(), by_line=False)[-6:]
    third = {n: (rid, st, why) for n, rid, st, why in third}
    assert all(third[n][1:] == ("delivered", "earlier_run") for n in range(1, 6)), third
    assert {third[n][0] for n in range(1, 6)} == set(ids)
    assert third[6][1] == "delivered" and third[6][2] == "-" and third[6][0] not in ids
    assert "5 lines delivered by an earlier run" in out.stderr
    pipe.wait_calls(calls + 1)
    time.sleep(2)
    assert len(pipe.sim.calls()) == calls + 1, "only the new line is called"
    assert [len(pipe.calls_to(r["phone"])) for r in reqs[:4]] == per_phone

    # Moving lines around does not change their ids: the report matches them by content.
    lines = f.read_text().splitlines()
    f.write_text("\n".join(reversed(lines)) + "\n")
    out = produce(pipe, "--file", str(f), "--report", str(report))
    assert out.returncode == 0, out.stderr
    last = rows(report.read_text(), by_line=False)[-6:]
    assert {rid for _, rid, _, _ in last} == set(ids) | {third[6][0]}
    assert all(st == "delivered" and why == "earlier_run" for _, _, st, why in last), last


def test_rate_limits_publishing(pipe, tmp_path):
    n, rate = 8, 4
    f = tmp_path / "rate.ndjson"
    f.write_text("".join(json.dumps({"user_id": "rt-%d" % i, "phone": phone(40 + i)}) + "\n"
                         for i in range(n)))
    t0 = time.monotonic()
    out = produce(pipe, "--file", str(f), "--rate", "%d/s" % rate)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    assert len(rows(out.stdout)) == n
    assert took >= (n - 1) / rate - 0.1, took
    assert produce(pipe, "--file", str(f), "--rate", "fast").returncode == 2
    assert produce(pipe, "--phone", phone(1), "--user", "x", "--report", "r").returncode == 2
