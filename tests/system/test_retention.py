# SPDX-License-Identifier: Apache-2.0
"""Issue 13: retention. OTP_RETENTION_DAYS old challenges (with their calls), dead letters,
pending webhooks and event counters are deleted, wrong-code records older than the cap's hour are
dropped, and a number is replaced by its keyed hash once its challenge can no longer call or
text; live rows are left alone. `otp-admin purge` runs it on demand, the worker in the background.
"""

import hashlib
import hmac
import os
import subprocess
import time
import uuid

import psycopg
import pytest

import pipeline as P
from stack import Stack
from testkit import wait_until


@pytest.fixture(scope="module")
def pipeline_options():
    # The fixture's worker purges only after an hour: the tests decide when the purge runs.
    return {"worker_env": {"OTP_PURGE_INTERVAL_SECONDS": 3600}}


def phone(i):
    return "+1%010d" % (2025554000 + i)


def sql(pipe, q, *args):
    with psycopg.connect(pipe.db_url, autocommit=True) as c:
        cur = c.execute(q, args)
        return cur.fetchall() if cur.description else None


def purge(pipe, **env):
    out = subprocess.run([Stack.bin("otp-admin"), "purge"], env={**os.environ, **pipe.env(**env)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return dict(kv.split("=") for kv in out.stdout.split()[1:])


def old_challenge(pipe, days, status="verified"):
    rid = str(uuid.uuid4())
    sql(pipe, "INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, locale,"
        " code_length, status, max_attempts, max_call_attempts, requested_at, expires_at,"
        " created_at) VALUES (%s, 'old', 'login', '+12025554999', '+1202*****99', 'en-US', 6, %s,"
        " 5, 3, now() - make_interval(days => %s), now() - make_interval(days => %s),"
        " now() - make_interval(days => %s))", rid, status, days, days, days)
    sql(pipe, "INSERT INTO calls (call_id, request_id, attempt, created_at) VALUES"
        " (gen_random_uuid(), %s, 1, now() - make_interval(days => %s))", rid, days)
    return rid


def phone_hash(pipe, number):
    return hmac.new(("phone:" + pipe.hash_key).encode(), number.encode(),
                    hashlib.sha256).hexdigest()


def test_purge_deletes_what_is_past_retention_and_nothing_else(pipe):
    old = [old_challenge(pipe, 31) for _ in range(3)]
    young = old_challenge(pipe, 29)
    sql(pipe, "INSERT INTO dead_letters (reason, error, topic, kpartition, koffset, payload,"
        " created_at) VALUES ('bad_json', 'x', 'retention-test', 0, 1, '\\x7b'::bytea,"
        " now() - interval '31 days'), ('bad_json', 'x', 'retention-test', 0, 2, '\\x7b'::bytea,"
        " now() - interval '29 days')")
    sql(pipe, "INSERT INTO webhook_pending (call_id, body, received_at) VALUES"
        " (gen_random_uuid(), '{}', now() - interval '31 days'), (gen_random_uuid(), '{}', now())")
    sql(pipe, "INSERT INTO outbox_seq (request_id, n, updated_at) VALUES"
        " (gen_random_uuid(), 1, now() - interval '31 days'), (gen_random_uuid(), 1, now())")
    sql(pipe, "INSERT INTO verify_user_failures (user_id, at) VALUES"
        " ('stale', ARRAY[now() - interval '3 hours', now() - interval '61 minutes']),"
        " ('recent', ARRAY[now() - interval '2 hours', now() - interval '5 minutes'])")
    # A live request, mid-flight: its rows must come through untouched.
    [live] = pipe.produce([{"phone": phone(1), "user_id": "live-1"}])
    pipe.status.wait_for(lambda evs: "call_requested" in [e["type"] for e in evs
                                                          if e.get("request_id") == live])

    got = purge(pipe)
    assert got["retention_days"] == "30"
    assert int(got["challenges"]) == 3 and int(got["calls"]) == 3, got
    assert int(got["dead_letters"]) == 1 and int(got["webhook_pending"]) == 1, got
    assert int(got["outbox_seq"]) == 1 and int(got["verify_user_failures"]) == 1, got

    assert sql(pipe, "SELECT count(*) FROM challenges WHERE request_id = ANY(%s::uuid[])",
               old) == [(0,)]
    assert sql(pipe, "SELECT count(*) FROM calls WHERE request_id = ANY(%s::uuid[])", old) == [(0,)]
    assert sql(pipe, "SELECT count(*) FROM challenges WHERE request_id = %s", young) == [(1,)]
    assert sql(pipe, "SELECT koffset FROM dead_letters WHERE topic = 'retention-test'") == [(2,)]
    assert sql(pipe, "SELECT user_id FROM verify_user_failures") == [("recent",)]
    assert sql(pipe, "SELECT phone FROM challenges WHERE request_id = %s", live) == [(phone(1),)]
    # A second run finds nothing more to do.
    again = purge(pipe)
    assert all(v == "0" for k, v in again.items() if k != "retention_days"), again
    # A shorter retention reaches the younger rows.
    assert int(purge(pipe, OTP_RETENTION_DAYS=28)["challenges"]) == 1


def test_number_kept_while_live_then_replaced_by_its_keyed_hash(pipe):
    ids = pipe.produce([{"phone": phone(10), "user_id": "hash-10"},
                        {"phone": phone(11), "user_id": "hash-11"},
                        {"phone": phone(12), "user_id": "hash-12"}])
    calls = pipe.wait_calls(3, pred=lambda c: c["target"] in (phone(10), phone(11), phone(12))
                            and c["talks"])
    codes = {c["target"]: P.spoken_code(P.call_texts(c)[0]) for c in calls}
    st, body = pipe.verify(ids[0], codes[phone(10)])
    assert body["status"] == "verified", body
    # A cancelled request will never call or text again either.
    out = subprocess.run([Stack.bin("otp-admin"), "cancel", ids[2]],
                         env={**os.environ, **pipe.env()}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr

    got = purge(pipe)
    assert int(got["numbers_hashed"]) >= 1, got
    rows = dict((str(r[0]), r[1:]) for r in sql(
        pipe, "SELECT request_id, phone, encode(phone_hash, 'hex'), phone_masked FROM challenges"
        " WHERE request_id = ANY(%s::uuid[])", ids))
    assert rows[ids[0]] == (None, phone_hash(pipe, phone(10)), "+12*******10"), rows[ids[0]]
    assert rows[ids[2]] == (None, phone_hash(pipe, phone(12)), "+12*******12"), rows[ids[2]]
    # Live: the number, and (since ingest keeps the budgets' key for the calls after the first)
    # its keyed hash.
    assert rows[ids[1]][0] == phone(11) and rows[ids[1]][1] == phone_hash(pipe, phone(11)), \
        rows[ids[1]]
    # The per-number call budgets never held the number: only its keyed hash, per service.
    keys = {k for (k,) in sql(pipe, "SELECT key FROM budget_counts WHERE scope = 'p'")}
    assert {"default:" + phone_hash(pipe, phone(10)),
            "default:" + phone_hash(pipe, phone(11))} <= keys, keys
    assert not [k for k in keys if "+" in k], keys
    # The live one still works: its code verifies after the purge.
    st, body = pipe.verify(ids[1], codes[phone(11)])
    assert body["status"] == "verified", body
    # A resend of a request whose number is gone is refused with a reason, never called.
    out = subprocess.run([Stack.bin("otp-produce"), "--resend", ids[0]],
                         env={**os.environ, **pipe.env()}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    pipe.dlq.wait_for(lambda evs: any(e.get("reason") == "resend_of_purged" for e in evs),
                      timeout=30, what="resend_of_purged dead letter")


def test_worker_purges_in_the_background_one_at_a_time(pipe):
    rid = old_challenge(pipe, 40)
    w = pipe.start_worker(OTP_PURGE_INTERVAL_SECONDS=1)
    wait_until(lambda: sql(pipe, "SELECT count(*) FROM challenges WHERE request_id = %s",
                           rid) == [(0,)], 30, "the worker to purge the old challenge",
               interval=0.5)
    time.sleep(1.5)
    assert "event=purged" in w.log() and "challenges=1 calls=1" in w.log(), w.log()[-2000:]
