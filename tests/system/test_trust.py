# SPDX-License-Identifier: Apache-2.0
"""Trust boundaries (issue 20): what the service believes comes from its own clock, its own
calls and its own listeners, never from a producer's or a caller's say-so.

Runs on the local stack (tests/pipeline.py): PostgreSQL, the Kafka mock broker, the VoIPBin
simulator, one verifier and one worker.
"""

import hashlib
import http.client
import itertools
import json
import os
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
import time
import urllib.request
import uuid

import psycopg
import pytest

from stack import Stack, free_port
import pipeline as P
from testkit import wait_until, webhook_signature

KEYPAD_CODE = "482913"
# States in which a challenge waits on its current call.
ON_CALL = {"call_requested", "ringing", "answered"}


@pytest.fixture(scope="module")
def pipe():
    with Stack() as s:
        p = P.Pipeline(s)
        keys = dict(line.split("=", 1) for line in subprocess.run(
            [Stack.bin("otp-worker"), "--keygen"], capture_output=True, text=True,
            check=True).stdout.split())
        p.keypad_public = keys["OTP_KEYPAD_PUBLIC_KEY"]
        p.start_verifier()
        # One call per request: a call's end is the challenge's end.
        p.start_worker(OTP_MAX_CALL_ATTEMPTS=1, OTP_KEYPAD_SECRET_KEY=keys["OTP_KEYPAD_SECRET_KEY"])
        yield p
        p.close()

_seq = itertools.count(1)


def new_phone():
    return "+1201%07d" % (4700000 + next(_seq))


def new_user():
    return "trust-" + uuid.uuid4().hex[:12]


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def row(pipe, rid, cols):
    out = pipe.s.psql("SELECT %s FROM challenges WHERE request_id = '%s'" % (cols, rid)).strip()
    return out.split("|") if out else None


def wait_row(pipe, rid, cols, timeout=60):
    return wait_until(lambda: row(pipe, rid, cols), timeout, "challenge %s stored" % rid)


# ---- time from the server --------------------------------------------------------------------

def test_request_dated_a_day_ahead_goes_to_the_dlq(pipe):
    rid = str(uuid.uuid4())
    pipe.produce([{"request_id": rid, "phone": new_phone(), "user_id": new_user(),
                   "requested_at": rfc3339(time.time() + 86400)}])
    # The DLQ copy masks long digit runs (a UUID may have one): found by its dead letter's id.
    [dl_id] = wait_until(lambda: pipe.s.psql(
        "SELECT id FROM dead_letters WHERE request_id = '%s'" % rid).split(), 90,
        "the dead letter of the future-dated request")
    evs = pipe.dlq.wait_for(
        lambda evs: any(e.get("dead_letter_id") == int(dl_id) for e in evs), timeout=90,
        what="its copy on the DLQ")
    dl = [e for e in evs if e.get("dead_letter_id") == int(dl_id)]
    assert [e["reason"] for e in dl] == ["requested_at_in_future"], dl
    assert dl[0]["_headers"].get("dlq.reason") == b"requested_at_in_future", dl[0]["_headers"]
    assert row(pipe, rid, "status") is None
    rejected = pipe.status.wait_for(
        lambda evs: any(e.get("request_id") == rid and e["type"] == "rejected" for e in evs),
        what="the rejected event")
    assert [e.get("reason") for e in rejected
            if e.get("request_id") == rid] == ["requested_at_in_future"]


def test_code_life_starts_at_acceptance_not_at_requested_at(pipe):
    rid = str(uuid.uuid4())
    pipe.produce([{"request_id": rid, "phone": new_phone(), "user_id": new_user(),
                   "requested_at": rfc3339(time.time() + 30)}])
    life, ahead = wait_row(pipe, rid, "extract(epoch FROM expires_at - created_at),"
                                      " extract(epoch FROM requested_at - created_at)")
    # Dated 30 s ahead (whole seconds, so 29-31 s), and still 300 s from acceptance.
    assert 28 <= float(ahead) <= 31, ahead
    assert abs(float(life) - 300) < 5, life


def test_supersede_follows_acceptance_order_not_requested_at(pipe):
    user = new_user()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    pipe.produce([{"request_id": first, "phone": new_phone(), "user_id": user,
                   "requested_at": rfc3339(time.time() + 50)}])
    wait_row(pipe, first, "status")
    # Accepted later though dated earlier: it is the newer request.
    pipe.produce([{"request_id": second, "phone": new_phone(), "user_id": user,
                   "requested_at": rfc3339(time.time() - 5)}])
    wait_row(pipe, second, "status")
    assert row(pipe, first, "status") == ["superseded"]
    assert row(pipe, second, "status") != ["superseded"]


# ---- keypad codes are proven only by the call ------------------------------------------------

def keypad_request(pipe, phone):
    """A keypad-mode request (the app shows KEYPAD_CODE, sealed to the workers); its id."""
    out = subprocess.run(
        [Stack.bin("otp-produce"), "--phone", phone, "--user", new_user(), "--keypad-code",
         KEYPAD_CODE], capture_output=True, text=True, timeout=60,
        env={**os.environ, **pipe.env(OTP_KEYPAD_PUBLIC_KEY=pipe.keypad_public)})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def keypad_webhook(pipe, rid, call_id, digits=KEYPAD_CODE + "#"):
    """What the call's webhook_send posts, signed with the webhook secret: (status, body)."""
    body = json.dumps({"type": "otp_keypad", "data": {"request_id": rid, "id": call_id,
                                                      "digits": digits}}).encode()
    req = urllib.request.Request(pipe.webhook_uri, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-VoIPBIN-Signature": webhook_signature(pipe.webhook_secret, body)})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=15) as r:
        return r.status, json.loads(r.read() or b"{}")


def unknown_answer(pipe):
    """POST /v1/verify for an id nobody issued: (status, body without the echoed id)."""
    rid = str(uuid.uuid4())
    st, body = pipe.verify(rid, KEYPAD_CODE)
    assert body.get("request_id") == rid, body
    return st, {k: v for k, v in body.items() if k != "request_id"}


def verify_like_unknown(pipe, rid):
    st, body = pipe.verify(rid, KEYPAD_CODE)
    assert body.get("request_id") == rid, body
    got = (st, {k: v for k, v in body.items() if k != "request_id"})
    assert got == unknown_answer(pipe), got
    assert got[0] == 404


def test_keypad_code_never_verifies_through_post_verify(pipe):
    # A call that rings for a long while: the challenge waits on a live call.
    live_ph, ended_ph, blocked_ph = new_phone(), new_phone(), "+19005550100"
    pipe.sim.script(live_ph, outcome="answer", ring_ms=100, answer_ms=120000)
    pipe.sim.script(ended_ph, outcome="answer")  # no key pressed: the call ends by itself
    live, ended, blocked = (keypad_request(pipe, ph) for ph in (live_ph, ended_ph, blocked_ph))

    wait_until(lambda: (row(pipe, live, "status") or [""])[0] in ON_CALL, 60, "the live call")
    wait_until(lambda: (row(pipe, blocked, "status") or [""])[0] == "blocked", 60, "blocked")
    # The keypad code's hash is stored at ingest, even for a blocked number.
    assert row(pipe, blocked, "code_hash IS NOT NULL") == ["t"]
    # The call ended without digits: the challenge waits on no call any more.
    wait_until(lambda: (lambda r: r and r[0] not in ON_CALL | {"pending", "calling"})(
        row(pipe, ended, "status")), 90, "the call without digits to end",
        state=lambda: "it is %r" % (row(pipe, ended, "status"),))

    for rid in (live, ended, blocked):
        before = row(pipe, rid, "attempts, status")
        verify_like_unknown(pipe, rid)
        # Nothing was counted or changed: the API never reached the challenge.
        assert row(pipe, rid, "attempts, status") == before, rid
        assert before[1] != "verified"
    # The refusal is not a wrong code: the same digits keyed into the live call verify.
    [call_id] = row(pipe, live, "call_id")
    assert keypad_webhook(pipe, live, call_id)[0] == 200
    wait_until(lambda: row(pipe, live, "status") == ["verified"], 30, "keypad verified",
               state=lambda: "it is %r" % (row(pipe, live, "status"),))
    # The digits of an ended call verify nothing either.
    ended_call, attempts, status = row(pipe, ended, "call_id, attempts, status")
    assert keypad_webhook(pipe, ended, ended_call)[0] == 200
    assert row(pipe, ended, "attempts, status") == [attempts, status] and status != "verified"


def test_keypad_webhook_naming_another_call_is_refused(pipe):
    ph, other_ph = new_phone(), new_phone()
    pipe.sim.script(ph, outcome="answer", ring_ms=100, answer_ms=120000)
    pipe.sim.script(other_ph, outcome="answer", ring_ms=100, answer_ms=120000)
    rid, other = keypad_request(pipe, ph), keypad_request(pipe, other_ph)
    for r in (rid, other):
        wait_until(lambda: (row(pipe, r, "status") or [""])[0] in ON_CALL, 60, "a live call")
    [own_call] = row(pipe, rid, "call_id")
    [other_call] = row(pipe, other, "call_id")
    assert own_call != other_call
    # Signed, the right digits, the right request, but another call (ours, or nobody's).
    for call_id in (other_call, str(uuid.uuid4())):
        assert keypad_webhook(pipe, rid, call_id)[0] == 200
    attempts, status = row(pipe, rid, "attempts, status")
    assert attempts == "0" and status in ON_CALL, (attempts, status)
    # Its own call's digits verify it.
    assert keypad_webhook(pipe, rid, own_call)[0] == 200
    wait_until(lambda: row(pipe, rid, "status") == ["verified"], 30, "keypad verified",
               state=lambda: "it is %r" % (row(pipe, rid, "status"),))
    assert row(pipe, other, "status")[0] in ON_CALL


# ---- listeners -------------------------------------------------------------------------------

def http_raw(port, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_webhook_and_api_listeners_serve_only_their_own_routes(pipe):
    signed = json.dumps({"type": "call_hangup", "data": {}}).encode()
    hook_headers = {"Content-Type": "application/json",
                    "X-VoIPBIN-Signature": webhook_signature(pipe.webhook_secret, signed)}
    api_headers = {"Content-Type": "application/json", "Authorization": "Bearer " + pipe.api_key}
    rid = str(uuid.uuid4())
    api_routes = [("POST", "/v1/verify", json.dumps({"request_id": rid, "code": "123456"})),
                  ("POST", "/v1/requests", json.dumps({"phone": new_phone(), "user_id": "x"})),
                  ("GET", "/v1/requests/" + rid, ""), ("GET", "/healthz", ""),
                  ("GET", "/metrics", ""), ("GET", "/", "")]
    # The webhook listener: VoIPBin's webhook only (a signed event with no call is 400).
    assert http_raw(pipe.webhook_port, "POST", "/v1/webhooks/voipbin", signed,
                    hook_headers)[0] == 400
    for method, path, body in api_routes:
        st, raw = http_raw(pipe.webhook_port, method, path, body.encode(), api_headers)
        assert st == 404, (method, path, st, raw)
    # The API listener: the API (each route answers as usual), never the webhook.
    assert http_raw(pipe.verifier_port, "POST", "/v1/verify", api_routes[0][2].encode(),
                    api_headers)[0] == 404  # rejected: an unknown id
    assert http_raw(pipe.verifier_port, "GET", "/v1/requests/" + rid, b"",
                    api_headers)[0] == 404
    for method in ("POST", "GET"):
        st, raw = http_raw(pipe.verifier_port, method, "/v1/webhooks/voipbin",
                           signed if method == "POST" else b"", hook_headers)
        assert st == 404 and b"not_found" in raw, (method, st, raw)


def test_api_key_is_checked_before_the_body_is_read(pipe):
    """A request announcing 64 MiB without a key is answered 401 at once: not one byte of the
    body is sent (or read)."""
    for key in (None, "otpk_" + "x" * 30):
        s = socket.create_connection(("127.0.0.1", pipe.verifier_port), timeout=15)
        try:
            head = ("POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n" % (64 << 20))
            if key:
                head += "Authorization: Bearer %s\r\n" % key
            s.sendall((head + "\r\n").encode())
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        assert got.startswith(b"HTTP/1.1 401"), got[:200]
    # With the key, the same request is read (and refused for its size, 413).
    st, _ = http_raw(pipe.verifier_port, "POST", "/v1/verify", b"{" + b" " * (1 << 20) + b"}",
                     {"Content-Type": "application/json", "Authorization": "Bearer " + pipe.api_key})
    assert st == 413


def test_front_door_holds_no_thread_while_kafka_acknowledges(pipe):
    """One HTTP thread: while a POST /v1/requests waits for a broker that is down, the same
    thread still answers other requests at once."""
    port, hooks = free_port(), free_port()
    proc = pipe.s.spawn("verifier-1thread", [Stack.bin("otp-verifier")], env=pipe.env(
        OTP_DATABASE_URL=pipe.verifier_db_url, OTP_VERIFIER_LISTEN="127.0.0.1:%d" % port,
        OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % hooks, OTP_VERIFIER_THREADS=1, OTP_FRONT_DOOR_TIMEOUT_MS=4000),
        ready_line=r"event=verifier_started")
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + pipe.api_key}
    held = {}

    def post():
        t0 = time.monotonic()
        held["answer"] = http_raw(port, "POST", "/v1/requests", json.dumps(
            {"phone": new_phone(), "user_id": new_user()}).encode(), headers)
        held["took"] = time.monotonic() - t0

    try:
        assert pipe.s.kafka.control("down 1").startswith("ok")
        try:
            t = threading.Thread(target=post)
            t.start()
            time.sleep(1)  # the POST is waiting on the broker by now
            assert t.is_alive(), held
            took = []
            for _ in range(5):
                t0 = time.monotonic()
                st, _ = http_raw(port, "POST", "/v1/verify", json.dumps(
                    {"request_id": str(uuid.uuid4()), "code": "123456"}).encode(), headers)
                took.append(time.monotonic() - t0)
                assert st == 404
            assert t.is_alive(), held  # still waiting: the answers did not wait for it
            assert max(took) < 1.5, took
            t.join(30)
        finally:
            assert pipe.s.kafka.control("up 1").startswith("ok")
        assert held["answer"][0] == 503 and held["took"] >= 3.5, held
    finally:
        proc.stop()


def test_per_key_and_per_address_limits_answer_429_with_retry_after(pipe):
    other_key = "otpk_" + uuid.uuid4().hex
    hashes = ",".join(hashlib.sha256(k.encode()).hexdigest() for k in (pipe.api_key, other_key))
    procs = []

    def verifier(name, **limits):
        port, hooks = free_port(), free_port()
        procs.append(pipe.s.spawn(name, [Stack.bin("otp-verifier")], env=pipe.env(
            OTP_DATABASE_URL=pipe.verifier_db_url, OTP_VERIFIER_LISTEN="127.0.0.1:%d" % port,
            OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % hooks, OTP_API_KEY_HASHES=hashes, **limits), ready_line=r"event=verifier_started"))
        return port, hooks

    def get(port, key):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            c.request("GET", "/v1/requests/" + str(uuid.uuid4()),
                      headers={"Authorization": "Bearer " + key} if key else {})
            r = c.getresponse()
            return r.status, r.getheader("Retry-After"), as_json(r.read())
        finally:
            c.close()

    def until_limited(port, key, answer):
        """Sends until the first 429 (bounded); the answers before it and the 429."""
        before = []
        for _ in range(200):
            got = get(port, key)
            if got[0] == 429:
                return before, got
            assert got[0] == answer, got
            before.append(got[0])
        raise AssertionError("no 429 after %d requests" % len(before))

    try:
        by_key, _ = verifier("verifier-key-limit", OTP_API_RATE_PER_KEY=3,
                             OTP_API_RATE_PER_ADDRESS=0)
        by_addr, hooks = verifier("verifier-address-limit", OTP_API_RATE_PER_KEY=0,
                                  OTP_API_RATE_PER_ADDRESS=5)
        # Per key: at least the burst of 3 passes, then 429 naming the wait; the other key is
        # apart.
        before, (st, after, body) = until_limited(by_key, pipe.api_key, 404)
        assert len(before) >= 3 and int(after) >= 1, (before, after)
        assert body["error"]["code"] == "rate_limited" and "retry after" in body["error"]["message"]
        assert get(by_key, other_key)[0] == 404
        # Per address, counted before the key is checked: guessing keys is limited too, and a
        # good key from that address waits as well...
        before, (st, after, _) = until_limited(by_addr, None, 401)
        assert len(before) >= 5 and int(after) >= 1, (before, after)
        assert get(by_addr, other_key)[0] == 429
        # ...until the bucket refilled.
        time.sleep(int(after) + 0.2)
        assert get(by_addr, other_key)[0] == 404
        # The webhook listener is not limited (VoIPBin's bursts are its own).
        for _ in range(12):
            assert http_raw(hooks, "POST", "/v1/webhooks/voipbin", b"{}",
                            {"Content-Type": "application/json"})[0] == 401
    finally:
        for p in procs:
            p.stop()


def as_json(raw):
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"_raw": raw.decode("utf-8", "replace")}


# ---- webhook_pending is capped ---------------------------------------------------------------

def call_event(call_id, destination, direction="outgoing", pad=0):
    data = {"id": call_id, "status": "ringing", "direction": direction,
            "source": {"type": "tel", "target": P.CALLER_ID},
            "destination": {"type": "tel", "target": destination}}
    if pad:
        data["x"] = "p" * pad
    return json.dumps({"type": "call_ringing", "data": data}).encode()


def send_signed(port, secret, bodies, threads=4):
    """Posts signed webhook bodies over keep-alive connections; the answers' statuses."""
    def run(chunk):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out = []
        try:
            for b in chunk:
                c.request("POST", "/v1/webhooks/voipbin", body=b, headers={
                    "Content-Type": "application/json",
                    "X-VoIPBIN-Signature": webhook_signature(secret, b)})
                r = c.getresponse()
                r.read()
                out.append(r.status)
        finally:
            c.close()
        return out
    chunks = [bodies[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as ex:
        return [st for part in ex.map(run, chunks) for st in part]


def pending_of(pipe, call_ids):
    with psycopg.connect(pipe.db_url) as db:
        return db.execute("SELECT count(*) FROM webhook_pending WHERE call_id = ANY(%s::uuid[])",
                          (list(call_ids),)).fetchone()[0]


def test_webhook_pending_is_capped_and_keeps_no_call_that_is_not_ours(pipe):
    port, admin = free_port(), free_port()
    proc = pipe.s.spawn("verifier-pending-cap", [Stack.bin("otp-verifier")], env=pipe.env(
        OTP_DATABASE_URL=pipe.verifier_db_url, OTP_VERIFIER_LISTEN="127.0.0.1:%d" % free_port(),
        OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % port, OTP_VERIFIER_ADMIN_LISTEN="127.0.0.1:%d" % admin,
        OTP_WEBHOOK_PENDING_MAX_ROWS=100, OTP_WEBHOOK_PENDING_MAX_BYTES=200000),
        ready_line=r"event=verifier_started")
    calling = new_phone()
    # Test-only shortcut: a challenge whose call request is under way ('calling', leased for an
    # hour), as between a worker's POST /calls and its record of the call.
    pipe.s.psql(
        "INSERT INTO challenges (request_id, user_id, purpose, phone, phone_masked, locale,"
        " code_length, status, max_attempts, max_call_attempts, requested_at, expires_at,"
        " lease_owner, next_attempt_at) VALUES (gen_random_uuid(), 'cap', 'login', '%s',"
        " '+1201*****00', 'en-US', 6, 'calling', 5, 3, now(), now() + interval '5 minutes',"
        " 'test-lease', now() + interval '1 hour')" % calling)
    try:
        before = int(pipe.s.psql("SELECT count(*) FROM webhook_pending"))
        # 10,000 signed events for calls we never recorded, to a number we are calling: kept
        # (they could be ours) up to the cap, the oldest dropped first.
        ids = [str(uuid.uuid4()) for _ in range(10000)]
        t0 = time.monotonic()
        statuses = send_signed(port, pipe.webhook_secret, [call_event(i, calling) for i in ids])
        print("10,000 kept-or-dropped events in %.1f s" % (time.monotonic() - t0))
        assert statuses == [200] * len(ids)
        kept = pending_of(pipe, ids)
        total = int(pipe.s.psql("SELECT count(*) FROM webhook_pending"))
        assert 0 < kept <= 100 and total <= 100, (kept, total, before)
        # The newest are the ones kept (sent one after the other, so their order is known).
        last = [str(uuid.uuid4()) for _ in range(10)]
        send_signed(port, pipe.webhook_secret, [call_event(i, calling) for i in last], threads=1)
        assert pending_of(pipe, last) == 10
        assert int(pipe.s.psql("SELECT count(*) FROM webhook_pending")) <= 100
        # In bytes too: 20 KB bodies, 200,000 bytes at most.
        big = [str(uuid.uuid4()) for _ in range(40)]
        send_signed(port, pipe.webhook_secret, [call_event(i, calling, pad=20000) for i in big],
                    threads=1)
        size = int(pipe.s.psql("SELECT coalesce(sum(octet_length(body::text)), 0)"
                               " FROM webhook_pending"))
        assert size <= 200000 + 25000 and pending_of(pipe, big[-5:]) == 5, size
        # Calls that are not ours are not kept at all: to a number we are not calling, or
        # incoming.
        others = [str(uuid.uuid4()) for _ in range(500)]
        bodies = [call_event(i, new_phone()) for i in others[:250]] + \
                 [call_event(i, calling, direction="incoming") for i in others[250:]]
        answers = send_signed(port, pipe.webhook_secret, bodies)
        assert answers == [200] * 500 and pending_of(pipe, others) == 0
        metrics = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            "http://127.0.0.1:%d/metrics" % admin, timeout=10).read().decode()
        dropped = metric(metrics, 'otp_verifier_webhooks_total{result="dropped"}')
        not_ours = metric(metrics, 'otp_verifier_webhooks_total{result="not_ours"}')
        assert dropped >= 10000 - 100 and not_ours == 500, (dropped, not_ours)
    finally:
        proc.stop()
        pipe.s.psql("DELETE FROM challenges WHERE phone = '%s'" % calling)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no %s in /metrics" % name)


# ---- least privilege -------------------------------------------------------------------------

def denied(url, sql):
    """True when PostgreSQL refuses sql to this login for want of a privilege."""
    try:
        with psycopg.connect(url) as db:
            db.execute(sql)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def test_each_program_runs_as_its_role_with_only_its_grants(pipe):
    # The programs of this module's pipeline are connected as their roles' logins.
    sessions = pipe.s.psql("SELECT DISTINCT usename || ' ' || application_name"
                           " FROM pg_stat_activity WHERE application_name LIKE 'otp-%'").split("\n")
    sessions = {ln for ln in sessions if ln}
    assert "otp_worker_login otp-worker" in sessions, sessions
    assert "otp_verifier_login otp-verifier" in sessions, sessions
    assert not any(ln.startswith("otp ") for ln in sessions), sessions
    worker, verifier, admin = pipe.worker_db_url, pipe.verifier_db_url, pipe.admin_db_url
    # The worker never reads API keys or the audit of service changes, nor rewrites the
    # migrations' ledger.
    for sql in ("SELECT * FROM api_keys", "SELECT * FROM service_changes",
                "DELETE FROM schema_migrations", "DELETE FROM services",
                "INSERT INTO verify_user_failures (service, user_id, at) VALUES ('default', 'x',"
                " ARRAY[now()])"):
        assert denied(worker, sql), ("worker", sql)
    # The verifier deletes no challenge, touches no budget and writes no dead letter.
    for sql in ("DELETE FROM challenges", "SELECT * FROM budget_counts",
                "DELETE FROM dead_letters", "UPDATE services SET disabled = true",
                "INSERT INTO api_keys (id, service, key_hash, scopes) VALUES ('k', 'default',"
                " repeat('a', 64), ARRAY['verify'])", "SELECT * FROM service_changes"):
        assert denied(verifier, sql), ("verifier", sql)
    # What each needs it has (the pipeline's own tests exercise it all).
    assert not denied(worker, "SELECT count(*) FROM budget_counts")
    assert not denied(verifier, "SELECT count(*) FROM api_keys")
    assert not denied(admin, "SELECT count(*) FROM api_keys")
    assert denied(admin, "DELETE FROM schema_migrations")
