# SPDX-License-Identifier: Apache-2.0
"""Issue 5: security checks of the whole pipeline on the real local stack.

PostgreSQL server, the Kafka protocol broker (librdkafka mock cluster), the VoIPBin simulator,
otp-worker and otp-verifier are real processes on loopback (tests/pipeline.py). Every check
looks at real outcomes: HTTP answers, rows in PostgreSQL (psql), messages on the topics read
back with an independent Kafka client, the programs' own log files and exit codes.

 1. concurrency: racing right codes verify once; racing wrong guesses never pass max_attempts;
    the per-user cap of wrong codes across challenges
 2. enumeration: unknown / expired / locked / used / superseded answer alike, in status, body
    and time
 3. hostile input in every field of otp.requested, of the verify request and of the webhook
 4. verifier input: 413, 400, 415, 401, API key rotation, webhook signatures
 5. hash key rotation: old rows verify under the previous key, new rows get the new key id
 6. secrets at start: missing, sample or malformed settings stop the programs (exit 2)
 7. no code, full phone number, hash or secret in the logs or on the topics

Product bugs found are kept as strict xfails, with the bug in the reason.
"""

import base64
import collections
import glob
import hashlib
import http.client
import itertools
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from stack import ROOT, Stack, free_port
import pipeline as P
from testkit import load_schema, produce, wait_until, webhook_signature as sign

SAMPLE_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
CLOSED_DB = "postgresql://otp@127.0.0.1:1/otp"  # nothing listens on port 1
TABLES = ("challenges", "calls", "outbox", "webhook_pending", "schema_migrations", "rate_budget",
          "verify_user_failures", "dead_letters")

# Phones that received a code (or were accepted); check 7 searches logs and topics for them.
ISSUED_PHONES = set()
# Secrets made during the module (rotated hash key, second API key); check 7 searches for them.
EXTRA_SECRETS = {}

_seq = itertools.count(1)


def new_phone():
    return "+1201%07d" % (4100000 + next(_seq))


def new_tag():
    """A unique marker without digits (a DLQ copy masks long digit runs)."""
    return "tag" + uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))


def new_user(prefix="sec"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---- helpers ---------------------------------------------------------------------------------

Challenge = collections.namedtuple("Challenge", "rid phone user code")


def issue(pipe, n=1, users=None, purposes=None, timeout=60, **fields):
    """Publishes n requests (own phone and user each, unless users are given) and waits until
    each call spoke its code."""
    reqs = []
    for i in range(n):
        r = {"phone": new_phone(), "user_id": users[i] if users else new_user()}
        if purposes:
            r["purpose"] = purposes[i]
        r.update(fields)
        reqs.append(r)
    ids = pipe.produce(reqs)
    assert len(ids) == n
    phones = {r["phone"] for r in reqs}
    ISSUED_PHONES.update(phones)

    def spoken(c):
        return any(P.spoken_code(t or "") for t in P.call_texts(c))

    calls = pipe.wait_calls(n, timeout=timeout, pred=lambda c: c["target"] in phones and spoken(c))
    last = {}
    for c in calls:  # a retried call speaks a fresh code: the last one counts
        last[c["target"]] = [P.spoken_code(t) for t in P.call_texts(c) if P.spoken_code(t or "")][-1]
    return [Challenge(rid, r["phone"], r["user_id"], last[r["phone"]]) for r, rid in zip(reqs, ids)]


def wrong_code(code):
    return "%0*d" % (len(code), (int(code) + 1) % 10 ** len(code))


def http_raw(port, method, path, body=b"", headers=None, timeout=15):
    """(status, body bytes) over a connection of its own; headers exactly as given."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def as_json(raw):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"_raw": raw.decode("utf-8", "replace")}


def verify_raw(pipe, body, api_key=None, port=None, content_type="application/json"):
    headers = {"Authorization": "Bearer " + (api_key or pipe.api_key)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    st, raw = http_raw(port or pipe.verifier_port, "POST", "/v1/verify", body, headers)
    return st, as_json(raw)


def webhook(port, body, secret=None, signature=None):
    headers = {"Content-Type": "application/json"}
    if signature is None and secret is not None:
        signature = sign(secret, body)
    if signature is not None:
        headers["X-VoIPBIN-Signature"] = signature
    st, raw = http_raw(port, "POST", "/v1/webhooks/voipbin", body, headers)
    return st, as_json(raw)


def race(port, bodies, api_key):
    """Sends every body at once: one thread and one connection each, released by a barrier."""
    barrier = threading.Barrier(len(bodies))
    results = [None] * len(bodies)

    def one(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            c.connect()
            barrier.wait(timeout=60)
            c.request("POST", "/v1/verify", body=bodies[i],
                      headers={"Content-Type": "application/json",
                               "Authorization": "Bearer " + api_key})
            r = c.getresponse()
            results[i] = (r.status, as_json(r.read()))
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertion
            results[i] = ("error", {"error": repr(e)})
        finally:
            c.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def row(pipe, rid, cols):
    out = pipe.s.psql("SELECT %s FROM challenges WHERE request_id = '%s'" % (cols, rid)).strip()
    return out.split("|") if out else None


def wait_row(pipe, rid, cols, pred, timeout=30):
    return wait_until(lambda: (lambda r: r if r is not None and pred(r) else None)(
        row(pipe, rid, cols)), timeout, "row %s: %s to match" % (rid, cols),
        state=lambda: "it is %r" % (row(pipe, rid, cols),))


types_of = P.types_of


def tables_exist(pipe):
    out = pipe.s.psql("SELECT %s" % ", ".join("to_regclass('public.%s') IS NOT NULL" % t
                                              for t in TABLES)).strip()
    return dict(zip(TABLES, [v == "t" for v in out.split("|")]))


STOPPED = set()  # programs this module stopped on purpose (key rotation)


def all_alive(pipe):
    procs = [pipe.verifier] + [w for w in pipe.workers if w.pid not in STOPPED]
    return {"%s (pid %d)" % (p.name, p.pid): p.alive() for p in procs}


def spawn_verifier(pipe, name, **extra):
    """A verifier of its own on other loopback ports (its webhook's: proc.webhook_port)."""
    port, hooks = free_port(), free_port()
    settings = {"OTP_DATABASE_URL": pipe.verifier_db_url}
    settings.update(extra)
    env = pipe.env(OTP_VERIFIER_LISTEN="127.0.0.1:%d" % port,
                   OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % hooks, **settings)
    proc = pipe.s.spawn(name, [Stack.bin("otp-verifier")], env=env,
                        ready_line=r"event=verifier_started")
    proc.webhook_port = hooks
    return proc, port


def calling_number(pipe):
    """A number one of our challenges is calling right now (test-only shortcut: a row in
    'calling', leased for an hour): events of a call not recorded yet to it may be ours, so the
    verifier keeps them (webhook_pending); events of other calls it does not keep."""
    phone = new_phone()
    pipe.s.psql(
        "INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, locale,"
        " code_length, status, max_attempts, max_call_attempts, requested_at, expires_at,"
        " lease_owner, next_attempt_at) VALUES (gen_random_uuid(), 'sec-calling', 'login', '%s',"
        " '+1201*****00', 'en-US', 6, 'calling', 5, 3, now(), now() + interval '5 minutes',"
        " 'test-lease', now() + interval '1 hour')" % phone)
    return {"type": "tel", "target": phone}


def dlq_original(e):
    """The original bytes of a DLQ entry."""
    if "original_base64" in e:
        return base64.b64decode(e["original_base64"])
    return (e.get("original") or "").encode("utf-8")


_DIGIT_RUN = re.compile(rb"(?:[0-9]|\\u[0-9A-Fa-f]{4}){7,}")


def masked_copy(sent):
    """The DLQ copy of a message as schema/otp.requested.dlq.schema.json describes it: every run
    of 7 or more digits (a JSON escape counts as one) masked, one '*' each."""
    return _DIGIT_RUN.sub(lambda m: b"*" * len(re.findall(rb"[0-9]|\\u[0-9A-Fa-f]{4}", m.group())),
                          sent)


def dead_letters(pipe, ids):
    """{dead_letter_id: exact payload bytes} from PostgreSQL."""
    if not ids:
        return {}
    out = pipe.s.psql("SELECT id, encode(payload, 'hex') FROM dead_letters WHERE id IN (%s)"
                      % ",".join(str(int(i)) for i in ids))
    return {int(i): bytes.fromhex(h) for i, h in (l.split("|") for l in out.split("\n") if l)}


# ---- 1. concurrency --------------------------------------------------------------------------

def test_fifty_concurrent_right_codes_verify_exactly_once(pipe):
    [ch] = issue(pipe)
    body = json.dumps({"request_id": ch.rid, "code": ch.code}).encode()
    results = race(pipe.verifier_port, [body] * 50, pipe.api_key)
    outcome = collections.Counter("%s %s" % (st, b.get("status")) for st, b in results)
    print("50 concurrent right codes:", dict(outcome))
    assert not [r for r in results if r[0] == "error"], results
    assert outcome["200 verified"] == 1, outcome
    assert outcome["404 rejected"] == 49, outcome
    assert not [b for _, b in results if b.get("status") == "incorrect"], "right code called incorrect"
    status, attempts, max_attempts = row(pipe, ch.rid, "status, attempts, max_attempts")
    assert status == "verified" and int(attempts) <= int(max_attempts)
    pipe.status.wait_for(lambda evs: "verified" in [e["type"] for e in evs
                                                    if e.get("request_id") == ch.rid])
    time.sleep(1)  # room for a wrong second event
    assert types_of(pipe, ch.rid).count("verified") == 1
    # Used: the right code is refused from now on.
    assert pipe.verify(ch.rid, ch.code)[0] == 404


def test_two_hundred_concurrent_wrong_guesses_never_pass_max_attempts(pipe):
    [ch] = issue(pipe)
    max_attempts = int(row(pipe, ch.rid, "max_attempts")[0])
    guesses = set()
    while len(guesses) < 200:
        g = "%06d" % random.randrange(10 ** 6)
        if g != ch.code:
            guesses.add(g)
    bodies = [json.dumps({"request_id": ch.rid, "code": g}).encode() for g in sorted(guesses)]

    samples, stop = [], threading.Event()

    def poll():  # the attempts column, seen from PostgreSQL while the guesses land
        while not stop.is_set():
            r = row(pipe, ch.rid, "attempts, status")
            samples.append((int(r[0]), r[1]))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        results = race(pipe.verifier_port, bodies, pipe.api_key)
    finally:
        stop.set()
        poller.join(30)
    attempts, status = row(pipe, ch.rid, "attempts, status")
    samples.append((int(attempts), status))
    outcome = collections.Counter("%s %s" % (st, b.get("status")) for st, b in results)
    print("200 concurrent wrong guesses: %s; attempts column over %d samples: max %d (max_attempts %d)"
          % (dict(outcome), len(samples), max(a for a, _ in samples), max_attempts))
    assert not [r for r in results if r[0] == "error"], results
    assert max(a for a, _ in samples) <= max_attempts
    assert int(attempts) == max_attempts and status == "locked"
    incorrect = [b for st, b in results if b.get("status") == "incorrect"]
    assert len(incorrect) <= max_attempts
    assert len(incorrect) == max_attempts, "each counted wrong attempt answers incorrect"
    assert sorted(b["attempts_left"] for b in incorrect) == list(range(max_attempts))
    assert outcome["404 rejected"] == 200 - max_attempts, outcome
    assert not [b for _, b in results if b.get("status") == "verified"]
    # Locked: the right code no longer helps.
    st, b = pipe.verify(ch.rid, ch.code)
    assert (st, b["status"]) == (404, "rejected")
    pipe.status.wait_for(lambda evs: "locked" in [e["type"] for e in evs
                                                  if e.get("request_id") == ch.rid])
    time.sleep(1)
    ts = types_of(pipe, ch.rid)
    assert ts.count("verify_failed") == max_attempts and ts.count("locked") == 1, ts


def test_wrong_codes_per_user_are_capped_across_challenges(pipe):
    """OTP_MAX_FAILED_VERIFY_PER_HOUR: once a user has that many wrong codes in the hour, every
    check of theirs is rejected, on any challenge, even with the right code."""
    proc, port = spawn_verifier(pipe, "verifier-cap", OTP_MAX_FAILED_VERIFY_PER_HOUR=3)
    try:
        user = new_user()
        a, b = issue(pipe, 2, users=[user, user], purposes=["login", "payment"])
        answers = [verify_raw(pipe, {"request_id": a.rid, "code": wrong_code(a.code)}, port=port)
                   for _ in range(2)]
        answers.append(verify_raw(pipe, {"request_id": b.rid, "code": wrong_code(b.code)},
                                  port=port))
        assert [st for st, _ in answers] == [200, 200, 200], answers
        st, body = verify_raw(pipe, {"request_id": b.rid, "code": b.code}, port=port)
        assert (st, body["status"]) == (404, "rejected"), body
        st, body = verify_raw(pipe, {"request_id": a.rid, "code": a.code}, port=port)
        assert (st, body["status"]) == (404, "rejected"), body
        # Another user is not affected.
        [c] = issue(pipe)
        st, body = verify_raw(pipe, {"request_id": c.rid, "code": c.code}, port=port)
        assert (st, body["status"]) == (200, "verified"), body
    finally:
        proc.stop()


def test_per_user_cap_holds_under_concurrent_guesses(pipe):
    cap = 2
    purposes = ["login", "payment", "signup", "reset", "transfer", "email", "phone", "admin"]
    proc, port = spawn_verifier(pipe, "verifier-cap-race", OTP_MAX_FAILED_VERIFY_PER_HOUR=cap,
                                OTP_VERIFIER_THREADS=16)
    try:
        users = [new_user() for _ in range(3)]
        chs = issue(pipe, len(users) * len(purposes),
                    users=[u for u in users for _ in purposes], purposes=purposes * len(users))
        bodies = [json.dumps({"request_id": ch.rid, "code": wrong_code(ch.code)}).encode()
                  for ch in chs for _ in range(5)]
        results = race(port, bodies, pipe.api_key)
    finally:
        proc.stop()
    assert not [r for r in results if r[0] == "error"], results
    counts = {u: int(pipe.s.psql("SELECT coalesce(sum(cardinality(at)), 0) FROM verify_user_failures"
                                 " WHERE user_id = '%s'" % u)) for u in users}
    # What the guesser was told: no user got more "incorrect" answers than the cap.
    by_rid = {ch.rid: u for ch, u in zip(chs, [u for u in users for _ in purposes])}
    told = {u: 0 for u in users}
    for body, (st, ans) in zip(bodies, results):
        if st == 200 and ans.get("status") == "incorrect":
            told[by_rid[json.loads(body)["request_id"]]] += 1
    assert max(told.values()) <= cap, told
    print("%d concurrent wrong codes over %d challenges of %d users, cap %d: failures counted per "
          "user %s" % (len(bodies), len(chs), len(users), cap, sorted(counts.values())))
    assert max(counts.values()) <= cap, counts


def plug_db_thread(pipe, conn, plug, send, threads):
    """Holds plug's row in conn's transaction and sends plug's right code in a thread: the
    verifier's one database thread (OTP_VERIFIER_DB_CONNECTIONS=1) waits on the row, so the
    checks sent next queue and go as one batch once conn ends its transaction."""
    conn.execute("SELECT 1 FROM challenges WHERE request_id = %s FOR UPDATE", (plug.rid,))
    threads.append(threading.Thread(target=send, args=(
        "plug", {"request_id": plug.rid, "code": plug.code})))
    threads[-1].start()
    wait_until(lambda: pipe.s.psql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'otp-verifier'"
        " AND wait_event_type = 'Lock'").strip() == "1", 10,
        "the database thread to wait on the plug's row")


def test_a_batch_that_waits_on_a_lock_is_checked_one_by_one(pipe):
    """Checks that queue while a commit is on its way share the next transaction. When one of
    them waits on a row lock (here an outside transaction holds a challenge) the batch gives up
    after its lock timeout, nothing of it is counted, and each check runs alone: every answer is
    the one it would have been, and every attempt is counted exactly once."""
    admin = free_port()
    proc, port = spawn_verifier(pipe, "verifier-batch-split", OTP_VERIFIER_DB_CONNECTIONS=1,
                                OTP_VERIFIER_ADMIN_LISTEN="127.0.0.1:%d" % admin)
    plug, *rest = issue(pipe, 8)
    # `held` last in request id order: the checks before it in the batch run, and are then
    # rolled back with it, so "nothing of it is counted" is what the test sees.
    rest.sort(key=lambda c: c.rid)
    held, others = rest[-1], rest[:-1]
    right, wrong = others[:3], others[3:]
    bodies = ([{"request_id": held.rid, "code": held.code}] +
              [{"request_id": c.rid, "code": c.code} for c in right] +
              [{"request_id": c.rid, "code": wrong_code(c.code)} for c in wrong])
    results, threads = {}, []

    def send(key, body):
        results[key] = verify_raw(pipe, body, port=port)

    try:
        with psycopg.connect(pipe.db_url) as a, psycopg.connect(pipe.db_url) as b:
            b.execute("SELECT 1 FROM challenges WHERE request_id = %s FOR UPDATE", (held.rid,))
            # The only database thread waits on `plug`, so the rest queue behind it ...
            plug_db_thread(pipe, a, plug, send, threads)
            for i, body in enumerate(bodies):
                threads.append(threading.Thread(target=send, args=(i, body)))
                threads[-1].start()
            time.sleep(0.5)
            assert not results, "answered while the database thread was held: %r" % results
            # ... and go as one batch once it is free; `held` still waits on b.
            a.rollback()
            wait_until(lambda: "event=verify_batch_split" in open(
                proc.log_path, encoding="utf-8", errors="replace").read(), 10,
                "the batch to give up on the held row")
            b.rollback()
            for t in threads:
                t.join(60)
        st, metrics = http_raw(admin, "GET", "/metrics")
    finally:
        proc.stop()
    assert st == 200
    assert re.search(rb'^otp_verifier_check_transactions_total\{kind="split"\} 1$', metrics,
                     re.M), metrics
    log = open(proc.log_path, encoding="utf-8", errors="replace").read()
    assert "event=verify_batch_split checks=%d" % len(bodies) in log, \
        "the batch did not split: the test did not reach the path it is for"
    assert results["plug"][0] == 200 and results["plug"][1]["status"] == "verified", results
    for i, c in enumerate([held] + right):
        assert (results[i][0], results[i][1].get("status")) == (200, "verified"), (c, results[i])
    for i, c in enumerate(wrong, start=1 + len(right)):
        st, body = results[i]
        assert (st, body.get("status")) == (200, "incorrect"), body
        max_attempts = int(row(pipe, c.rid, "max_attempts")[0])
        assert body["attempts_left"] == max_attempts - 1, "counted more than once: %r" % body
    for c in [plug, held] + others:
        assert int(row(pipe, c.rid, "attempts")[0]) == 1, c
    for c in wrong:
        pipe.status.wait_for(lambda evs, rid=c.rid: "verify_failed" in
                             [e["type"] for e in evs if e.get("request_id") == rid])
    time.sleep(1)  # room for a doubled event
    for c in wrong:
        assert types_of(pipe, c.rid).count("verify_failed") == 1
    for c in [plug, held] + right:
        assert types_of(pipe, c.rid).count("verified") == 1


def test_a_users_checks_in_one_batch_see_each_other(pipe):
    """A batch is one statement over all its checks, and a user's second and later checks in it
    run in later statements of the same transaction, each seeing the one before (as separate
    commits would): three right codes for one challenge verify once; three wrong codes over one
    user's three challenges, cap 2, count 2 and refuse the third; a wrong then a right code for
    one challenge answer incorrect, then verified."""
    admin = free_port()
    proc, port = spawn_verifier(pipe, "verifier-batch-users", OTP_VERIFIER_DB_CONNECTIONS=1,
                                OTP_MAX_FAILED_VERIFY_PER_HOUR=2,
                                OTP_VERIFIER_ADMIN_LISTEN="127.0.0.1:%d" % admin)
    capped_user, other_user = new_user(), new_user()
    purposes = ["login", "payment", "signup"]
    plug, x, y, *u2 = issue(pipe, 6, users=[new_user(), new_user(), other_user] + [capped_user] * 3,
                            purposes=["login", "login", "login"] + purposes)
    bodies = ([("x%d" % i, {"request_id": x.rid, "code": x.code}) for i in range(3)] +
              [("u%d" % i, {"request_id": c.rid, "code": wrong_code(c.code)})
               for i, c in enumerate(u2)] +
              [("y-wrong", {"request_id": y.rid, "code": wrong_code(y.code)}),
               ("y-right", {"request_id": y.rid, "code": y.code})])
    results, threads = {}, []

    def send(key, body):
        results[key] = verify_raw(pipe, body, port=port)

    try:
        with psycopg.connect(pipe.db_url) as a:
            plug_db_thread(pipe, a, plug, send, threads)
            # Queued in this order (the order a user's checks are made in).
            for key, body in bodies:
                threads.append(threading.Thread(target=send, args=(key, body)))
                threads[-1].start()
                time.sleep(0.1)
            time.sleep(0.5)
            assert not results, "answered while the database thread was held: %r" % results
            a.rollback()
            for t in threads:
                t.join(60)
        st, metrics = http_raw(admin, "GET", "/metrics")
    finally:
        proc.stop()
    assert st == 200
    answers = {k: (st, b.get("status")) for k, (st, b) in results.items()}
    print("one batch of %d checks: %s" % (len(bodies), answers))
    assert answers["plug"] == (200, "verified")
    xs = collections.Counter(answers["x%d" % i] for i in range(3))
    assert xs == {(200, "verified"): 1, (404, "rejected"): 2}, xs
    us = [answers["u%d" % i] for i in range(3)]
    assert collections.Counter(us) == {(200, "incorrect"): 2, (404, "rejected"): 1}, us
    assert pipe.s.psql("SELECT cardinality(at) FROM verify_user_failures WHERE user_id = '%s'"
                       % capped_user).strip() == "2"
    assert answers["y-wrong"] == (200, "incorrect") and answers["y-right"] == (200, "verified")
    assert int(row(pipe, y.rid, "attempts")[0]) == 2 and int(row(pipe, x.rid, "attempts")[0]) == 1
    # The eight checks went as one transaction of three statements: five checks deferred from
    # the first (a user's second and third), one from the second (the capped user's third).
    assert re.search(rb'^otp_verifier_check_transactions_total\{kind="batch"\} 1$', metrics,
                     re.M), metrics
    assert re.search(rb"^otp_verifier_checks_deferred_total 6$", metrics, re.M), metrics


# ---- 2. enumeration --------------------------------------------------------------------------

def test_unknown_expired_locked_used_superseded_answer_alike(pipe):
    used, locked, expired, old = issue(pipe, 4)
    assert pipe.verify(used.rid, used.code)[1]["status"] == "verified"
    for _ in range(5):
        pipe.verify(locked.rid, wrong_code(locked.code))
    wait_row(pipe, locked.rid, "status", lambda r: r[0] == "locked")
    # Test-only shortcut: the code's life ends now instead of in 5 minutes.
    pipe.s.psql("UPDATE challenges SET expires_at = now() - interval '1 second'"
                " WHERE request_id = '%s'" % expired.rid)
    [newer] = issue(pipe, users=[old.user])  # same user and purpose: the old one is superseded
    wait_row(pipe, old.rid, "status", lambda r: r[0] == "superseded")
    assert pipe.verify(newer.rid, newer.code)[1]["status"] == "verified"

    kinds = {
        "unknown": lambda: (str(uuid.uuid4()), "%06d" % random.randrange(10 ** 6)),
        "expired": lambda: (expired.rid, expired.code),
        "locked": lambda: (locked.rid, locked.code),
        "used": lambda: (used.rid, used.code),
        "superseded": lambda: (old.rid, old.code),
    }
    # Same status, same body apart from the request_id echoed.
    answers = {}
    for kind, make in kinds.items():
        rid, code = make()
        st, body = pipe.verify(rid, code)
        assert body.get("request_id") == rid, body
        answers[kind] = (st, {k: v for k, v in body.items() if k != "request_id"})
    print("answers:", answers)
    assert all(a == answers["unknown"] for a in answers.values()), answers
    assert answers["unknown"][0] == 404

    # Same timing: interleaved on one keep-alive connection, medians compared.
    rounds = 300
    times = {k: [] for k in kinds}
    conn = http.client.HTTPConnection("127.0.0.1", pipe.verifier_port, timeout=15)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + pipe.api_key}
    order = list(kinds)
    try:
        for _ in range(rounds):
            random.shuffle(order)
            for kind in order:
                rid, code = kinds[kind]()
                body = json.dumps({"request_id": rid, "code": code})
                t0 = time.perf_counter()
                conn.request("POST", "/v1/verify", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                times[kind].append(time.perf_counter() - t0)
                assert r.status == 404, (kind, r.status)
    finally:
        conn.close()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p90 = {k: sorted(v)[int(len(v) * 0.9)] * 1000 for k, v in times.items()}
    for k in kinds:
        print("%-10s median %.3f ms  p90 %.3f ms  (n=%d)" % (k, med[k], p90[k], len(times[k])))
    lo, hi = min(med.values()), max(med.values())
    bound = max(2.0, 0.3 * lo)
    print("largest difference of medians %.3f ms; bound %.3f ms" % (hi - lo, bound))
    assert hi - lo < bound, med


# ---- 3. hostile input ------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE challenges; --",
    '" OR 1=1 --',
    "\u2019 OR \u20181\u2019=\u20181\u201d; --",
    "1; SELECT pg_sleep(10); --",
    "$$; DROP TABLE outbox; $$",
]

# user_id values that are valid and must be stored byte for byte.
ODD_USER_IDS = INJECTIONS + [
    "Robert'); DROP TABLE outbox;--",
    "back\\slash \\' \\\" \\u0000 \\n",
    "%s%s%n%x %d{0} ${jndi:ldap://127.0.0.1/a}",
    "<script>alert('x')</script>&amp;",
    "\U0001F600 \u202etxt.exe \u0645\u0631\u062d\u0628\u0627 \u00a0\u2028\u0085",
    "x" * 128,
    "\u00e9" * 64,
]


def _nest(depth, leaf):
    v = leaf
    for _ in range(depth):
        v = {"d": v}
    return v


ODD_METADATA = {
    "'; DROP TABLE challenges; --": '" OR 1=1 --',
    "\u2019\u201c": ["\u201d", {"%n%s": "$$"}, None, 1.5, True],
    "": "",
    "deep": _nest(30, "'; DROP TABLE calls; --"),
}


def _hostile_invalid_cases():
    """(name, builder(tag, phone) -> bytes, expected DLQ reason)."""
    def ev(tag, ph, /, tag_in="user_id", **kw):
        e = {"request_id": str(uuid.uuid4()), "user_id": tag, "phone": ph,
             "purpose": "login", "requested_at": now_rfc3339()}
        if tag_in == "metadata":
            e["metadata"] = {"tag": tag}
        for k, v in kw.items():
            if v is _DROP:
                e.pop(k)
            else:
                e[k] = v
        return json.dumps(e).encode()

    def field(name, value, reason, tag_in="user_id"):
        return (name, lambda tag, ph: ev(tag, ph, tag_in=tag_in, **{name.split(":")[0]: value}),
                reason)

    cases = [
        field("request_id:sql", "'; DROP TABLE challenges; --", "invalid_request_id"),
        field("request_id:or", '" OR 1=1 --', "invalid_request_id"),
        field("request_id:suffix", str(uuid.uuid4()) + "' OR '1'='1", "invalid_request_id"),
        field("request_id:object", {"$gt": ""}, "invalid_request_id"),
        field("request_id:number", 1, "invalid_request_id"),
        field("request_id:nul", str(uuid.uuid4()) + "\u0000", "invalid_json"),
        field("request_id:missing", _DROP, "missing_request_id"),
        field("user_id:nul", "a\u0000b", "invalid_json", "metadata"),
        field("user_id:newline", "a\nb", "invalid_user_id", "metadata"),
        field("user_id:129", "x" * 129, "invalid_user_id", "metadata"),
        field("user_id:6000", "'" * 6000, "invalid_user_id", "metadata"),
        field("user_id:9000", "x" * 9000, "too_large", "metadata"),
        field("user_id:object", {"$ne": None}, "invalid_user_id", "metadata"),
        field("user_id:array", ["'; DROP TABLE challenges; --"], "invalid_user_id", "metadata"),
        field("user_id:empty", "", "invalid_user_id", "metadata"),
        field("purpose:nul", "login\u0000", "invalid_json"),
        field("purpose:long", "a" * 65, "invalid_purpose"),
        field("locale:sql", "en-US'; DROP TABLE challenges; --", "invalid_locale"),
        field("locale:or", '" OR 1=1 --', "invalid_locale"),
        field("locale:quote", "en\u2019US", "invalid_locale"),
        field("locale:long", "en-" + "a" * 5000, "invalid_locale"),
        field("locale:nested", {"a": {"b": "c"}}, "invalid_locale"),
        field("metadata:key_nul", {"k\u0000": "v"}, "invalid_json"),
        field("metadata:value_nul", {"k": "v\u0000"}, "invalid_json"),
        field("metadata:string", "'; DROP TABLE challenges; --", "invalid_metadata"),
        field("metadata:array", ["'; DROP TABLE challenges; --"], "invalid_metadata"),
        field("metadata:big", {"k": "'" * 1100}, "metadata_too_large"),
        ("metadata:deep_objects",
         lambda tag, ph: ev(tag, ph)[:-1] + b', "metadata": ' + b'{"d":' * 1000 + b"1"
         + b"}" * 1000 + b"}", "metadata_too_large"),
        field("phone:sql", "+1555'; DROP TABLE challenges; --", "invalid_phone"),
        field("requested_at:sql", "2026-01-01T00:00:00Z'; DROP TABLE challenges; --",
              "invalid_requested_at"),
        field("ttl_seconds:sql", "60; DROP TABLE challenges", "invalid_ttl"),
        field("code_length:string", "6' OR 1=1", "invalid_code_length"),
        field("delivery:value", {"gate": "'; DROP TABLE calls; --"}, "invalid_delivery"),
        field("delivery:key", {"'; DROP TABLE calls; --": True}, "invalid_delivery"),
        field("schema_version:sql", "1; DROP TABLE challenges", "unsupported_schema_version"),
        ("unknown_field:sql",
         lambda tag, ph: ev(tag, ph, **{"'; DROP TABLE challenges; --": 1}), "unknown_field"),
        ("metadata:deep_arrays",
         lambda tag, ph: ev(tag, ph)[:-1] + b', "metadata": {"a": ' + b"[" * 3000 + b"]" * 3000
         + b"}}", "invalid_json"),
        ("raw:sql_text", lambda tag, ph: ("'; DROP TABLE challenges; -- %s" % tag).encode(),
         "invalid_json"),
        ("raw:nul_byte", lambda tag, ph: ev(tag + "\x01", ph).replace(b"\\u0001", b"\x00"),
         "invalid_json"),
        ("raw:invalid_utf8", lambda tag, ph: ev(tag + "\x01", ph).replace(b"\\u0001", b"\xff\xfe"),
         "invalid_json"),
        ("raw:array", lambda tag, ph: json.dumps([tag, ph]).encode(), "not_an_object"),
        ("raw:deep", lambda tag, ph: ('["%s",' % tag).encode() + b"[" * 4000 + b"]" * 4000 + b"]",
         "invalid_json"),
    ]
    for i, s in enumerate(INJECTIONS):
        cases.append(field("purpose:inj%d" % i, s, "invalid_purpose"))
    return cases


_DROP = object()


def publish(pipe, values, key=b"sec-hostile"):
    """Publishes raw values in order (one key: one partition, so a stuck one blocks the rest)."""
    produce(pipe.bootstrap, "otp.requested", [(key, v) for v in values],
            **{"message.max.bytes": 1000000})


def test_hostile_requests_are_stored_exactly_or_dead_lettered(pipe):
    import jsonschema
    count_before = int(pipe.s.psql("SELECT count(*) FROM challenges").strip())
    invalid = []
    for name, build, reason in _hostile_invalid_cases():
        tag, phone = new_tag(), new_phone()
        invalid.append((name, tag, phone, build(tag, phone), reason))
    valid = []
    for u in ODD_USER_IDS:
        valid.append({"request_id": str(uuid.uuid4()), "user_id": u, "phone": new_phone(),
                      "purpose": "login", "requested_at": now_rfc3339()})
    valid.append({"request_id": str(uuid.uuid4()), "user_id": new_user(), "phone": new_phone(),
                  "purpose": "a.b-c_d" + "9" * 57, "requested_at": now_rfc3339(),
                  "metadata": ODD_METADATA})
    valid.append({"request_id": str(uuid.uuid4()).upper(), "user_id": new_user(),
                  "phone": new_phone(), "requested_at": now_rfc3339(),
                  "metadata": {"k": INJECTIONS[0]}})
    for v in valid:
        ISSUED_PHONES.add(v["phone"])
    # Bad first, the valid ones behind them on the same partition: nothing may stall it.
    publish(pipe, [b""] + [c[3] for c in invalid]
            + [json.dumps(v, ensure_ascii=False).encode() for v in valid])

    def mine(evs):
        found = {}
        for e in evs:
            orig = dlq_original(e)
            for name, tag, *_ in invalid:
                if tag.encode() in orig:
                    found.setdefault(name, []).append(e)
        return found

    evs = pipe.dlq.wait_for(lambda evs: len(mine(evs)) == len(invalid)
                            and any(e.get("reason") == "empty" for e in evs),
                            timeout=90, what="%d DLQ entries" % (len(invalid) + 1))
    found = mine(evs)
    schema = load_schema("otp.requested.dlq.schema.json")
    wrong = {}
    for name, tag, phone, sent, reason in invalid:
        [e] = found[name]  # exactly one entry each
        jsonschema.validate({k: v for k, v in e.items() if not k.startswith("_")}, schema)
        if e["reason"] != reason:
            wrong[name] = (e["reason"], reason, e.get("error"))
        assert e["error"], e
        assert e["_headers"].get("dlq.reason") == e["reason"].encode()
        # On the topic: the message with its digit runs masked (no phone number leaves).
        assert dlq_original(e) == masked_copy(sent), (name, dlq_original(e)[:200])
        assert phone.encode() not in dlq_original(e)
    assert not wrong, "reason differs (got, expected, error): %r" % wrong
    # In PostgreSQL: the exact bytes, for an operator to fix and re-send.
    exact = dead_letters(pipe, [found[name][0]["dead_letter_id"] for name, *_ in invalid])
    for name, tag, phone, sent, reason in invalid:
        assert exact.get(found[name][0]["dead_letter_id"]) == sent, name
    [empty] = [e for e in evs if e.get("reason") == "empty"]
    assert dlq_original(empty) == b""
    # Where the request_id could be read, the rejection is on the status topic under it.
    named = {}
    for name, tag, phone, sent, reason in invalid:
        try:
            rid = json.loads(sent)["request_id"]
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
        if isinstance(rid, str) and re.fullmatch(r"[0-9a-f-]{36}", rid) and reason not in (
                "invalid_json", "too_large", "invalid_request_id"):
            named[rid] = reason
    pipe.status.wait_for(lambda evs: all(
        any(e["type"] == "rejected" and e.get("reason") == reason for e in pipe.status.of(rid))
        for rid, reason in named.items()), timeout=60, what="%d rejected events" % len(named))
    print("dead-lettered %d hostile events (+1 empty), %d of them also rejected on the status "
          "topic; reasons: %s" % (len(invalid), len(named),
                                  dict(collections.Counter(r for *_, r in invalid))))

    # The valid but odd ones: stored byte for byte, echoed on the topic, and called.
    rids = [v["request_id"].lower() for v in valid]
    def stored():
        return int(pipe.s.psql("SELECT count(*) FROM challenges WHERE request_id IN (%s)" %
                               ",".join("'%s'" % r for r in rids)).strip())
    wait_until(lambda: stored() == len(valid), 60, "%d valid requests stored" % len(valid),
               interval=0.2, state=lambda: "%d stored" % stored())
    for v, rid in zip(valid, rids):
        user_hex, purpose, meta, status = row(
            pipe, rid, "encode(convert_to(user_id, 'UTF8'), 'hex'), purpose, coalesce(metadata::text, ''),"
                       " status")
        assert bytes.fromhex(user_hex) == v["user_id"].encode("utf-8"), (v["user_id"], user_hex)
        assert purpose == v.get("purpose", "login")
        assert (json.loads(meta) if meta else None) == v.get("metadata")
        assert status not in ("rejected", "rate_limited", "blocked"), (v, status)
    pipe.status.wait_for(lambda evs: all("call_requested" in [e["type"] for e in evs
                                                              if e.get("request_id") == rid]
                                         for rid in rids), timeout=60, what="calls for odd requests")
    for v, rid in zip(valid, rids):
        [acc] = [e for e in pipe.status.of(rid) if e["type"] == "accepted"]
        assert acc["user_id"] == v["user_id"] and acc.get("metadata") == v.get("metadata")
    count_after = int(pipe.s.psql("SELECT count(*) FROM challenges").strip())
    print("challenges: %d before, %d after, %d valid odd requests" % (
        count_before, count_after, len(valid)))
    assert count_after == count_before + len(valid)
    assert all(tables_exist(pipe).values()), tables_exist(pipe)
    assert all(all_alive(pipe).values()), all_alive(pipe)


def test_hostile_verify_requests_get_400(pipe):
    rid = str(uuid.uuid4())
    bodies = []
    for s in INJECTIONS:
        bodies.append({"request_id": s, "code": "123456"})
        bodies.append({"request_id": rid, "code": s})
        bodies.append({"request_id": rid, "code": "123456", s: 1})
    for code in ["123456\u0000", "1" * 11, "1" * 5000, "\u0661\u0662\u0663\u0664\u0665\u0666",
                 "\uff11\uff12\uff13\uff14\uff15\uff16", "123 456", " 123456", "-12345", "+12345",
                 "1e5", "", 123456, ["123456"], {"$ne": ""}, None, True]:
        bodies.append({"request_id": rid, "code": code})
    for r in [None, 1, [rid], {"$gt": ""}, rid + "\u0000", rid + "'--", "x" * 5000, ""]:
        bodies.append({"request_id": r, "code": "123456"})
    raw = [json.dumps(b).encode() for b in bodies] + [
        b"[" * 4000 + b"]" * 4000,
        b'{"request_id":"%s","code":"123456"}\x00trailing' % rid.encode(),
        b'{"request_id":"%s","code":"12\xff\xfe56"}' % rid.encode(),
        b'{"request_id":"%s","code":"123456","__proto__":{"admin":true}}' % rid.encode(),
        b"'; DROP TABLE challenges; --",
    ]
    bad = []
    for b in raw:
        st, body = verify_raw(pipe, b)
        if st != 400 or body.get("error", {}).get("code") != "invalid_request":
            bad.append((b[:80], st, body))
    print("%d hostile verify bodies" % len(raw))
    assert not bad, bad
    # The status path too.
    for s in ["'%20OR%201=1--", "%27%3B%20DROP%20TABLE%20challenges%3B--", rid + "'--", "x" * 3000]:
        st, raw_body = http_raw(pipe.verifier_port, "GET", "/v1/requests/" + s,
                                headers={"Authorization": "Bearer " + pipe.api_key})
        assert st == 400, (s[:40], st, raw_body)
    assert all(tables_exist(pipe).values())
    assert pipe.verifier.alive()


def _uuid_in(body):
    try:
        return isinstance(json.loads(body)["data"]["id"], str) and \
            re.fullmatch(r"[0-9a-f-]{36}", json.loads(body)["data"]["id"]) is not None
    except (ValueError, KeyError, TypeError):
        return False


def test_hostile_webhook_bodies_never_break_the_verifier(pipe):
    port, secret = pipe.webhook_port, pipe.webhook_secret
    destination = calling_number(pipe)

    def event(type_="call_hangup", **data):
        d = {"id": str(uuid.uuid4()), "status": "hangup", "hangup_by": "remote",
             "hangup_reason": "normal", "destination": destination}
        for k, v in data.items():
            if v is _DROP:
                d.pop(k)
            else:
                d[k] = v
        return {"type": type_, "data": d}

    # bodies stored for later (unknown call id to a number being called), with what must come
    # back from jsonb
    kept = []
    cases = [  # (body bytes, expected statuses)
        (json.dumps(event("'; DROP TABLE calls; --")).encode(), {200}),
        (json.dumps(event(id="'; DROP TABLE calls; --")).encode(), {400}),
        (json.dumps(event(id={"$ne": None})).encode(), {400}),
        (json.dumps(event(status='" OR 1=1 --')).encode(), {400}),
        (json.dumps(event(hangup_reason="'; DROP TABLE calls; --" * 3)).encode(), {400}),
        (json.dumps(event(hangup_by=["'; DROP"])).encode(), {400}),
        (json.dumps(event(id=str(uuid.uuid4()) + "\u0000")).encode(), {400}),
        (json.dumps({"type": "call_hangup", "data": "'; DROP TABLE calls; --"}).encode(), {400}),
        (json.dumps({"type": {"$ne": 1}, "data": {}}).encode(), {400}),
        (b'{"type":"call_hangup","data":{"id":"\xff\xfe"}}', {400}),
        (b'{"type":"call_hangup","data":{"x":1e400}}', {400}),
        (b"[" * 5000 + b"]" * 5000, {400}),
        (b"'; DROP TABLE calls; --", {400}),
    ]
    for e in [event(hangup_reason="'; DROP--", hangup_by='" OR 1=1'),
              event("call_'; DROP TABLE calls; --"),
              event(**{"'; DROP TABLE webhook_pending; --": "\u2019" * 100}),
              event(extra=_nest(400, "x")),
              event(extra="'" * 50000)]:
        body = json.dumps(e).encode()
        cases.append((body, {200}))
        kept.append(e)
    bad = []
    for body, want in cases:
        st, answer = webhook(port, body, secret)
        if st not in want:
            bad.append((body[:80], st, answer))
    assert not bad, bad
    assert pipe.verifier.alive()
    # Stored for later (call ids nobody knows), and given back equal by jsonb.
    ids = ",".join("'%s'" % e["data"]["id"] for e in kept)
    pending = [l for l in pipe.s.psql("SELECT body::text FROM webhook_pending WHERE call_id IN"
                                      " (%s) ORDER BY id" % ids).split("\n") if l]
    stored = [json.loads(p) for p in pending]
    assert stored == kept, "jsonb gave back something else"
    ids = ",".join("'%s'" % json.loads(b)["data"]["id"] for b, want in cases
                   if want == {400} and b.startswith(b"{") and _uuid_in(b))
    assert pipe.s.psql("SELECT count(*) FROM webhook_pending WHERE call_id::text IN (%s)"
                       % (ids or "''")).strip() == "0", "a refused webhook was stored"
    print("%d signed hostile webhooks; %d kept for later, equal after the jsonb round trip" % (
        len(cases), len(kept)))
    assert all(tables_exist(pipe).values())


# Regression: a kept webhook that PostgreSQL refuses once crashed the verifier (double free).
def test_signed_webhook_that_postgres_refuses_does_not_crash_the_verifier(pipe):
    proc, _ = spawn_verifier(pipe, "verifier-jsonb")
    port = proc.webhook_port
    body = ('{"type":"call_hangup","data":{"id":"%s","status":"hangup","hangup_reason":"normal",'
            '"x":0.%s1}}' % (uuid.uuid4(), "0" * 17000)).encode()
    try:
        st, answer = webhook(port, body, pipe.webhook_secret)
    except (http.client.HTTPException, OSError) as e:
        st, answer = None, repr(e)
    time.sleep(0.5)
    alive, rc, log_tail = proc.alive(), proc.returncode, proc.log()[-300:]
    proc.stop()
    assert st is not None and 400 <= st < 600 and alive, (
        "answer %s %s; verifier alive %s, exit status %s; log: %s" % (st, answer, alive, rc,
                                                                     log_tail))


def test_field_names_cannot_forge_log_lines(pipe):
    # Short enough to survive the 64-byte cut of the field name in the error text.
    forged = "level=info event=verified request_id=%s" % new_tag()[3:15]  # no digits
    tag = new_tag()
    ev = {"request_id": str(uuid.uuid4()), "user_id": tag, "phone": new_phone(),
          "requested_at": now_rfc3339(), "x\n" + forged: 1}
    publish(pipe, [json.dumps(ev).encode()])
    pipe.dlq.wait_for(lambda evs: any(tag.encode() in dlq_original(e) for e in evs),
                      what="DLQ entry")
    lines = []
    for w in pipe.workers:
        lines += w.log().split("\n")
    assert not [l for l in lines if l.startswith(forged)], "a forged log line"
    # The rejection is logged, as one line of its own.
    mine = [l for l in lines if forged[-12:] in l]
    assert len(mine) == 1 and re.match(r"\d{4}-\d\d-\d\dT\S+Z level=warn prog=otp-worker "
                                       r"event=request_rejected ", mine[0]), mine


def test_field_name_cut_inside_a_utf8_character(pipe):
    import jsonschema
    name = "k" * 63 + "\u00e9"
    tag = new_tag()
    rid = str(uuid.uuid4())
    ev = {"request_id": rid, "user_id": tag, "phone": new_phone(),
          "requested_at": now_rfc3339(), name: 1}
    publish(pipe, [json.dumps(ev).encode()])
    evs = pipe.dlq.wait_for(lambda evs: any(tag.encode() in dlq_original(e) for e in evs),
                            what="DLQ entry")
    [e] = [e for e in evs if tag.encode() in dlq_original(e)]
    problems = []
    try:
        jsonschema.validate({k: v for k, v in e.items() if not k.startswith("_")},
                            load_schema("otp.requested.dlq.schema.json"))
    except jsonschema.ValidationError as x:
        problems.append("DLQ: %s" % x.message)
    pipe.status.wait_for(lambda evs: "rejected" in [x["type"] for x in evs
                                                    if x.get("request_id") == rid])
    [rej] = [x for x in pipe.status.of(rid) if x["type"] == "rejected"]
    try:
        jsonschema.validate({k: v for k, v in rej.items() if not k.startswith("_")},
                            load_schema("otp.call_status.schema.json"))
    except jsonschema.ValidationError as x:
        problems.append("status: %s" % x.message)
    st, body = verify_raw(pipe, json.dumps({"request_id": rid, "code": "123456", name: 1}).encode())
    if (st, body.get("error", {}).get("code")) != (400, "invalid_request"):
        problems.append("verifier: %s %s" % (st, body))
    assert not problems, problems


# ---- 4. verifier input -----------------------------------------------------------------------

def test_verifier_refuses_oversize_malformed_and_mistyped_bodies(pipe):
    rid = str(uuid.uuid4())
    good = json.dumps({"request_id": rid, "code": "123456"}).encode()
    # 413: over OTP_MAX_BODY_BYTES (8192); exactly at the limit is still read.
    at_limit = good[:-1] + b" " * (8192 - len(good)) + b"}"
    assert len(at_limit) == 8192
    assert verify_raw(pipe, at_limit)[0] == 404
    for n in (8193, 100000, 2000000):
        st, body = verify_raw(pipe, good[:-1] + b" " * (n - len(good)) + b"}")
        assert (st, body.get("error", {}).get("code")) == (413, "body_too_large"), (n, st, body)
    st, _ = webhook(pipe.webhook_port, b'{"type":"x","data":{"p":"' + b"x" * 70000 + b'"}}',
                    pipe.webhook_secret)
    assert st == 413
    # 400: not JSON, not an object, missing or unexpected fields.
    for b in [b"", b"{bad", b"null", b"[]", b'"str"', b"123", good[:-1],
              b'{"request_id":"%s"}' % rid.encode(), b'{"code":"123456"}',
              b'{"request_id":"%s","code":"123456","extra":1}' % rid.encode(),
              b'{"request_id":"%s","code":"123456","Code":"1"}' % rid.encode(),
              b'{"request_id":"%s","code":"123456","code":"654321"}' % rid.encode()]:
        st, body = verify_raw(pipe, b)
        assert (st, body.get("error", {}).get("code")) == (400, "invalid_request"), (b, st, body)
    # 415: anything but application/json.
    for ct in [None, "text/plain", "application/x-www-form-urlencoded",
               "multipart/form-data; boundary=x", "text/json", "application/xml"]:
        st, body = verify_raw(pipe, good, content_type=ct)
        assert st == 415, (ct, st, body)
    assert verify_raw(pipe, good, content_type="application/json; charset=utf-8")[0] == 404


def test_verifier_api_keys_and_rotation(pipe):
    rid = str(uuid.uuid4())
    body = json.dumps({"request_id": rid, "code": "123456"}).encode()

    def call(port, auth):
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        st, raw = http_raw(port, "POST", "/v1/verify", body, headers)
        return st, as_json(raw)

    key1 = pipe.api_key
    key2 = "otpk_" + secrets.token_urlsafe(24)
    key3 = "otpk_" + secrets.token_urlsafe(24)
    EXTRA_SECRETS["api key 2"] = key2
    EXTRA_SECRETS["api key 3"] = key3
    h1 = hashlib.sha256(key1.encode()).hexdigest()
    h2 = hashlib.sha256(key2.encode()).hexdigest()
    port1 = pipe.verifier_port
    unauthorized = []
    for auth in [None, "", "Bearer", "Bearer ", "Bearer " + key2, "Bearer " + key1[:-1],
                 "Bearer " + key1 + " ", "Bearer  " + key1, "Bearer " + key1.upper(),
                 "Basic " + base64.b64encode(key1.encode()).decode(), key1, "Token " + key1,
                 "Bearer " + h1, "Bearer " + "x" * 5000]:
        st, b = call(port1, auth)
        unauthorized.append((st, json.dumps(b, sort_keys=True)))
        assert st == 401, (auth and auth[:30], st, b)
    assert len(set(unauthorized)) == 1, "every refusal looks the same"
    assert call(port1, "Bearer " + key1)[0] == 404
    st, raw = http_raw(port1, "GET", "/v1/requests/" + rid)
    assert st == 401

    # Rotation: a verifier with two hashes (the second in upper case) takes both keys.
    proc, port2 = spawn_verifier(pipe, "verifier-2keys", OTP_API_KEY_HASHES="%s,%s" % (h1, h2.upper()))
    try:
        assert call(port2, "Bearer " + key1)[0] == 404
        assert call(port2, "Bearer " + key2)[0] == 404
        assert call(port2, "Bearer " + key3)[0] == 401
        assert call(port2, None)[0] == 401
        [ch] = issue(pipe)
        st, b = verify_raw(pipe, {"request_id": ch.rid, "code": ch.code}, api_key=key2, port=port2)
        assert (st, b["status"]) == (200, "verified"), b
    finally:
        proc.stop()
    assert call(port1, "Bearer " + key2)[0] == 401, "the first verifier still takes key 1 only"


def test_webhook_signatures(pipe):
    port = pipe.webhook_port
    call_id = str(uuid.uuid4())
    body = json.dumps({"type": "call_progressing",
                       "data": {"id": call_id, "status": "progressing", "direction": "outgoing",
                                "destination": calling_number(pipe),
                                "tm_progressing": "2026-11-25 10:00:01.000000"}}).encode()
    other_secret = secrets.token_urlsafe(24)
    good = sign(pipe.webhook_secret, body)
    refused = {
        "another secret": sign(other_secret, body),
        "missing": None,
        "empty": "",
        "no prefix": good[len("sha256="):],
        "sha1 prefix": "sha1=" + good[len("sha256="):],
        "truncated": good[:-2],
        "over other bytes": sign(pipe.webhook_secret, body + b" "),
        "zeros": "sha256=" + "0" * 64,
        "secret as signature": pipe.webhook_secret,
    }
    for what, sig in refused.items():
        st, answer = webhook(port, body, signature=sig) if sig is not None else webhook(port, body)
        assert st == 401, (what, st, answer)
    n = pipe.s.psql("SELECT count(*) FROM webhook_pending WHERE call_id = '%s'" % call_id).strip()
    assert n == "0", "a refused webhook was stored"
    st, answer = webhook(port, body, signature=good)
    assert st == 200 and answer == {"applied": "later"}, (st, answer)
    st, answer = webhook(port, body, signature="sha256=" + good[7:].upper())
    assert st == 200, (st, answer)
    n = pipe.s.psql("SELECT count(*) FROM webhook_pending WHERE call_id = '%s'" % call_id).strip()
    assert n == "2"
    other = json.dumps({"type": "message_created", "data": {"id": str(uuid.uuid4())}}).encode()
    assert webhook(port, other, pipe.webhook_secret) == (200, {"applied": False})
    assert webhook(port, other, other_secret)[0] == 401


# ---- 5. hash key rotation --------------------------------------------------------------------

def test_hash_key_rotation(pipe):
    old_key, new_key = pipe.hash_key, secrets.token_hex(32)
    EXTRA_SECRETS["hash key 2"] = new_key
    a, b = issue(pipe, 2)
    for ch in (a, b):
        assert row(pipe, ch.rid, "key_id") == ["1"]
    rotated = dict(OTP_HASH_KEY=new_key, OTP_HASH_KEY_ID=2, OTP_HASH_KEYS_PREVIOUS="1:" + old_key)

    # Without the previous key the old row cannot match: the retired key is what makes it work.
    proc, port = spawn_verifier(pipe, "verifier-newkey-only", OTP_HASH_KEY=new_key,
                                OTP_HASH_KEY_ID=2)
    try:
        st, body = verify_raw(pipe, {"request_id": b.rid, "code": b.code}, port=port)
        assert (st, body["status"]) == (200, "incorrect"), body
    finally:
        proc.stop()

    STOPPED.add(pipe.verifier.pid)
    pipe.verifier.stop()
    pipe.start_verifier(**rotated)
    st, body = pipe.verify(a.rid, a.code)
    assert (st, body["status"]) == (200, "verified"), body
    st, body = pipe.verify(b.rid, wrong_code(b.code))
    assert (st, body["status"]) == (200, "incorrect"), body
    st, body = pipe.verify(b.rid, b.code)
    assert (st, body["status"]) == (200, "verified"), body

    for w in pipe.workers:
        if w.pid not in STOPPED:
            STOPPED.add(w.pid)
            w.stop()
    pipe.start_worker(**rotated)
    [c] = issue(pipe, timeout=90)
    assert row(pipe, c.rid, "key_id") == ["2"]
    st, body = pipe.verify(c.rid, c.code)
    assert (st, body["status"]) == (200, "verified"), body
    keys = pipe.s.psql("SELECT key_id, count(*) FROM challenges WHERE code_hash IS NOT NULL"
                       " GROUP BY key_id ORDER BY key_id").split()
    print("code hashes by key id:", keys)


# ---- 6. secrets and settings at start --------------------------------------------------------

def run_program(prog, env, timeout=5):
    """Runs a program to its exit (or kills it after timeout: rc None); (rc, output)."""
    p = subprocess.Popen([Stack.bin(prog)], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return None, out.decode("utf-8", "replace")


def program_env(pipe, **changes):
    """The pipeline's settings, made harmless: no database, broker or shared port reachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    env.update(pipe.env(OTP_DATABASE_URL=CLOSED_DB, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                        OTP_VERIFIER_LISTEN="127.0.0.1:0", OTP_WORKER_LISTEN="",
                        OTP_STARTUP_TIMEOUT_SECONDS=0))
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


BAD_HEX = secrets.token_hex(31)  # 62 characters: a secret that must not be echoed either

START_REFUSALS = [
    # (programs, changes, setting named)
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": None}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": ""}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": SAMPLE_KEY}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": "0" * 64}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": BAD_HEX}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": "zz" + BAD_HEX}, "OTP_HASH_KEY"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY": None, "OTP_HASH_KEY_FILE": "/nonexistent/k"},
     "OTP_HASH_KEY_FILE"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEYS_PREVIOUS": "1:" + BAD_HEX},
     "OTP_HASH_KEYS_PREVIOUS"),
    (("otp-worker", "otp-verifier"), {"OTP_HASH_KEY_ID": "abc"}, "OTP_HASH_KEY_ID"),
    (("otp-worker",), {"OTP_CODE_LENGTH": 99}, "OTP_CODE_LENGTH"),
    (("otp-worker",), {"OTP_CODE_LENGTH": "six"}, "OTP_CODE_LENGTH"),
    (("otp-worker",), {"OTP_MAX_ATTEMPTS": 0}, "OTP_MAX_ATTEMPTS"),
    (("otp-worker",), {"OTP_TTL_SECONDS": 3600}, "OTP_TTL_SECONDS"),
    (("otp-worker",), {"OTP_VOIPBIN_ACCESS_KEY": None}, "OTP_VOIPBIN_ACCESS_KEY"),
    (("otp-worker",), {"OTP_VOIPBIN_ACCESS_KEY": "vb_demo_access_key_not_secret"},
     "OTP_VOIPBIN_ACCESS_KEY"),
    (("otp-verifier",), {"OTP_API_KEY_HASHES": "nothex"}, "OTP_API_KEY_HASHES"),
    (("otp-verifier",), {"OTP_API_KEY_HASHES": "a" * 63}, "OTP_API_KEY_HASHES"),
    (("otp-verifier",), {"OTP_API_KEY_HASHES": "a" * 65}, "OTP_API_KEY_HASHES"),
    (("otp-verifier",), {"OTP_API_KEY_HASHES": "a" * 64 + ",,"+ "b" * 64}, "OTP_API_KEY_HASHES"),
    (("otp-verifier",), {"OTP_API_KEY_HASHES": "g" * 64}, "OTP_API_KEY_HASHES"),
    (("otp-verifier",), {"OTP_WEBHOOK_SECRET": None}, "OTP_WEBHOOK_SECRET"),
    (("otp-verifier",), {"OTP_WEBHOOK_SECRET": "demo-webhook-secret"}, "OTP_WEBHOOK_SECRET"),
    (("otp-verifier",), {"OTP_MAX_BODY_BYTES": 99}, "OTP_MAX_BODY_BYTES"),
    (("otp-verifier",), {"OTP_VERIFIER_THREADS": 0}, "OTP_VERIFIER_THREADS"),
    (("otp-verifier",), {"OTP_VERIFIER_DB_CONNECTIONS": 65}, "OTP_VERIFIER_DB_CONNECTIONS"),
]


def test_programs_refuse_to_start_with_bad_settings(pipe):
    failures, runs = [], 0
    for programs, changes, setting in START_REFUSALS:
        for prog in programs:
            rc, out = run_program(prog, program_env(pipe, **changes))
            runs += 1
            lines = [l for l in out.splitlines() if l.strip()]
            if rc != 2 or len(lines) != 1 or setting not in lines[0]:
                failures.append((prog, changes, rc, out[-300:]))
            for v in changes.values():  # a refused secret is never echoed
                if v and isinstance(v, str) and len(v) >= 32 and v.lower() in out.lower():
                    failures.append((prog, "echoed its value", out[-300:]))
    print("%d refused starts checked" % runs)
    assert not failures, failures


def test_demo_mode_lets_sample_secrets_through(pipe):
    # The worker passes the secret checks and stops only at the (closed) database.
    rc, out = run_program("otp-worker", program_env(pipe, OTP_HASH_KEY=SAMPLE_KEY, OTP_DEMO_MODE=1))
    assert rc == 2 and "OTP_DATABASE_URL" in out and "OTP_HASH_KEY" not in out, (rc, out)
    port = free_port()
    proc = pipe.s.spawn("verifier-demo", [Stack.bin("otp-verifier")],
                        env=program_env(pipe, OTP_HASH_KEY=SAMPLE_KEY, OTP_DEMO_MODE=1,
                                        OTP_WEBHOOK_SECRET="demo-webhook-secret",
                                        OTP_VERIFIER_LISTEN="127.0.0.1:%d" % port),
                        ready_line=r"event=verifier_started", timeout=15)
    assert proc.alive()
    assert proc.stop() == 0


@pytest.mark.parametrize("prog", ["otp-worker", "otp-verifier"])
def test_sample_key_in_other_spellings_is_refused(pipe, prog):
    results = []
    for changes, setting in [({"OTP_HASH_KEY": SAMPLE_KEY.upper()}, "OTP_HASH_KEY"),
                             ({"OTP_HASH_KEY_ID": 2, "OTP_HASH_KEYS_PREVIOUS": "1:" + SAMPLE_KEY},
                              "OTP_HASH_KEYS_PREVIOUS")]:
        rc, out = run_program(prog, program_env(pipe, **changes), timeout=2)
        results.append((setting, rc, out.strip()[-200:]))
    assert all(rc == 2 and setting in out for setting, rc, out in results), results


# ---- 7. no code, phone or secret in logs and topics ------------------------------------------

def read_topic(bootstrap, topic, timeout=30):
    """Every message of a topic, raw bytes, read from the beginning by assignment."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sec-scan-" + uuid.uuid4().hex,
                  "enable.auto.commit": False, "enable.partition.eof": True})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: OFFSET_BEGINNING
        done, out = set(), []

        def at_end():
            m = c.poll(0.5)
            if m is not None and m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    done.add(m.partition())
            elif m is not None:
                out.append(m.value() or b"")
            return len(done) == len(parts)
        wait_until(at_end, timeout, "the end of every partition of %s" % topic, interval=0)
        return out
    finally:
        c.close()


def _phone_views(e):
    """Where a phone could hide in a DLQ entry: the original bytes (base64 decoded), the whole
    envelope, and the original's JSON with its escapes decoded."""
    orig = dlq_original(e)
    views = [("original", orig),
             ("envelope", json.dumps({k: v for k, v in e.items() if not k.startswith("_")},
                                     ensure_ascii=False).encode())]
    try:
        views.append(("original, JSON-decoded",
                      json.dumps(json.loads(orig), ensure_ascii=False).encode()))
    except ValueError:
        pass
    return views


DLQ_PHONE_CASES = {
    "plain": lambda ph, tag: json.dumps({"request_id": str(uuid.uuid4()), "user_id": tag,
                                         "phone": ph, "locale": "'; DROP",
                                         "requested_at": now_rfc3339()}).encode(),
    "escaped": lambda ph, tag: json.dumps({"request_id": str(uuid.uuid4()), "user_id": tag,
                                           "phone": ph, "locale": "'; DROP",
                                           "requested_at": now_rfc3339()}).encode()
    .replace(ph[6:7].encode() + ph[7:].encode(), b"\\u%04x" % ord(ph[6]) + ph[7:].encode()),
    "duplicate_key": lambda ph, tag: b'{"request_id":"%s","user_id":"%s","phone":"%s",'
    b'"phone":"+12015550999","requested_at":"%s"}' % (
        str(uuid.uuid4()).encode(), tag.encode(), ph.encode(), now_rfc3339().encode()),
    "truncated_json": lambda ph, tag: b'{"user_id":"%s","phone":"%s","requested_at":"' % (
        tag.encode(), ph.encode()),
    "nul_byte": lambda ph, tag: b'{"user_id":"%s","phone":"%s"}\x00' % (tag.encode(), ph.encode()),
    # Cut right after the phone: the JSON parser's error text quotes the token it stopped in.
    "cut_after_phone": lambda ph, tag: b'{"user_id":"%s","phone":"%s' % (tag.encode(), ph.encode()),
    # The number as a field name: "unexpected field" quotes it.
    "phone_as_field_name": lambda ph, tag: json.dumps({
        "request_id": str(uuid.uuid4()), "user_id": tag, "phone": ph,
        "requested_at": now_rfc3339(), ph: {"name": "home"}}).encode(),
}

@pytest.mark.parametrize("case", sorted(DLQ_PHONE_CASES))
def test_dlq_and_logs_never_carry_a_full_phone_number(pipe, case):
    ph = "+1201%07d" % (9000000 + next(_seq))  # never called: not in ISSUED_PHONES
    tag = new_tag()
    payload = DLQ_PHONE_CASES[case](ph, tag)
    publish(pipe, [payload], key=None)
    evs = pipe.dlq.wait_for(lambda evs: any(tag.encode() in dlq_original(e) for e in evs),
                            what="DLQ entry of %s" % case)
    [e] = [e for e in evs if tag.encode() in dlq_original(e)]
    digits = re.compile(rb"(?<!\d)" + ph[1:].encode() + rb"(?!\d)")
    views = _phone_views(e)
    try:
        rid = json.loads(payload)["request_id"]
    except (ValueError, KeyError):
        rid = None
    if rid and e["reason"] not in ("invalid_json", "too_large", "invalid_request_id"):
        # The rejection on the status topic, under the id the worker could read.
        pipe.status.wait_for(lambda evs: any(x["type"] == "rejected" for x in pipe.status.of(rid)))
        # Headers (CloudEvents ce_*) included: bytes, searched as text.
        views.append(("otp.call_status", json.dumps(
            pipe.status.of(rid), default=lambda b: b.decode("utf-8", "replace")).encode()))
    for w in pipe.workers:  # the worker's log line about the rejection
        with open(w.log_path, "rb") as f:
            views.append((w.name + " log", f.read()))
    leaks = []
    for view, v in views:
        m = digits.search(v)
        if m:
            leaks.append((view, v[max(0, m.start() - 80):m.end() + 20]))
    assert not leaks, "full phone %s in the DLQ or a log (%s): %r" % (ph, e.get("reason"), leaks)


def _spoken(code):
    """The code as a talk text says it: digits with SSML tags between them."""
    return re.compile(rb"(?<![0-9A-Za-z])" + rb"(?:<[^<>]{0,60}>)+".join(
        d.encode() for d in code) + rb"(?![0-9A-Za-z])")


def _needle(s, word=True):
    b = re.escape(s.encode())
    return re.compile((rb"(?<![0-9A-Za-z])" + b + rb"(?![0-9A-Za-z])") if word else b,
                      re.IGNORECASE)


def test_no_codes_phones_or_secrets_in_logs_or_topics(pipe):
    flow = issue(pipe, 20)
    for ch in flow:
        assert pipe.verify(ch.rid, ch.code)[1]["status"] == "verified"
    rids = {ch.rid for ch in flow}
    pipe.status.wait_for(lambda evs: sum(e["type"] == "verified" for e in evs
                                         if e.get("request_id") in rids) == 20,
                         what="20 verified events")
    time.sleep(1)

    calls = pipe.sim.calls()
    codes = {P.spoken_code(t) for c in calls for t in P.call_texts(c) if P.spoken_code(t or "")}
    phones = set(ISSUED_PHONES) | {c["target"] for c in calls}
    hashes = set(pipe.s.psql("SELECT encode(code_hash, 'hex') FROM challenges"
                             " WHERE code_hash IS NOT NULL").split())
    named = {"hash key": pipe.hash_key, "access key": pipe.access_key,
             "webhook secret": pipe.webhook_secret, "api key": pipe.api_key}
    named.update(EXTRA_SECRETS)
    needles = [("code", c, _needle(c)) for c in codes]
    needles += [("spoken code", c, _spoken(c)) for c in codes]
    needles += [("phone", p, _needle(p, word=False)) for p in phones]
    needles += [("phone digits", p, re.compile(rb"(?<!\d)" + p[1:].encode() + rb"(?!\d)"))
                for p in phones]
    needles += [("code hash", h, _needle(h, word=False)) for h in hashes]
    needles += [(n, v, _needle(v, word=False)) for n, v in named.items()]

    # Positive control: the same search finds every code in the simulator's record of the calls.
    sim_text = json.dumps(calls).encode()
    found_in_sim = sum(1 for kind, v, rx in needles if kind == "spoken code" and rx.search(sim_text))
    assert found_in_sim == len(codes)
    assert _needle("123456").search(b"event=x code=123456 at=1") and \
        not _needle("123456").search(b"request_id=4f123456ab")

    files = sorted(glob.glob(os.path.join(pipe.s.log_dir, "worker*.log")) +
                   glob.glob(os.path.join(pipe.s.log_dir, "verifier*.log")))
    texts, n_lines = [], 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        n_lines += data.count(b"\n")
        texts.append((os.path.basename(f), data))
    n_msgs = 0
    for topic in ("otp.call_status", "otp.requested.dlq"):
        msgs = read_topic(pipe.bootstrap, topic)
        n_msgs += len(msgs)
        texts.append((topic, b"\n".join(msgs)))
        if topic == "otp.requested.dlq":  # the originals, also when they went as base64
            decoded = []
            for m in msgs:
                try:
                    decoded.append(dlq_original(json.loads(m)))
                except ValueError:
                    pass
            texts.append((topic + " (originals)", b"\n".join(decoded)))
    # --help prints the settings, never their values; /metrics and /healthz hold no secret.
    for prog in ("otp-worker", "otp-verifier"):
        out = subprocess.run([Stack.bin(prog), "--help"], env={**os.environ, **pipe.env()},
                             capture_output=True, timeout=10)
        assert out.returncode == 0 and b"OTP_HASH_KEY" in out.stdout
        texts.append((prog + " --help", out.stdout + out.stderr))
    for path in ("/metrics", "/healthz", "/readyz"):
        st, raw = http_raw(pipe.verifier_admin_port, "GET", path)
        assert st == 200
        texts.append(("verifier " + path, raw))
    # The status API answers with the masked phone only.
    answers = []
    for ch in flow:
        st, raw = http_raw(pipe.verifier_port, "GET", "/v1/requests/" + ch.rid,
                           headers={"Authorization": "Bearer " + pipe.api_key})
        assert st == 200 and "*" in json.loads(raw)["phone"], raw
        answers.append(raw)
    texts.append(("GET /v1/requests/{id}", b"\n".join(answers)))
    hits = []
    for kind, value, rx in needles:
        for where, data in texts:
            m = rx.search(data)
            if m:
                line = data[data.rfind(b"\n", 0, m.start()) + 1:data.find(b"\n", m.end())]
                hits.append((kind, value[:12], where, line[:200]))
    print("searched %d codes, %d phone numbers, %d code hashes and %d secrets (%s) in %d log lines "
          "(%s), %d topic messages and %d status answers: %d hits; positive control: %d/%d codes found in the "
          "simulator's call record" % (
              len(codes), len(phones), len(hashes), len(named), ", ".join(sorted(named)), n_lines,
              ", ".join(n for n, _ in texts if n.endswith(".log")), n_msgs, len(answers),
              len(hits),
              found_in_sim, len(codes)))
    assert len(codes) >= 20 and len(phones) >= 20 and n_lines > 50 and n_msgs > 100
    assert not hits, hits
