# SPDX-License-Identifier: Apache-2.0
"""Issue 23: otp-hooks sends each status event, signed, to its service's webhook_url, on the real
local stack (PostgreSQL, the mock Kafka cluster, the VoIPBin simulator, otp-worker, otp-verifier
and otp-hooks as processes, otp-hooks as the least-privilege role otp_hooks). The receivers are
the examples' own (examples/python/webhook_receiver.py, examples/node/webhook_receiver.mjs),
which refuse a wrong signature (that refusal is tested in test_examples.py); the slow receiver
checks signatures with the Python example's signature_ok.

Checked: every event of a few requests arrives, in seq order, without a gap; a receiver down for
two real minutes gets every event afterwards, in order; a receiver answering in 2 s does not
slow another service's; otp-admin webhooks list|replay."""

import importlib.util
import json
import os
import secrets
import subprocess
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import pipeline as P
from stack import Stack, free_port
from testkit import produce, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")
RECEIVERS = {
    "python": ["/usr/bin/python3", os.path.join(EX, "python", "webhook_receiver.py")],
    "node": ["node", os.path.join(EX, "node", "webhook_receiver.mjs")],
}
_spec = importlib.util.spec_from_file_location(
    "webhook_receiver", os.path.join(EX, "python", "webhook_receiver.py"))
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)

HOOKS_ENV = {"OTP_STATUS_TOPIC_PER_SERVICE": "1",
             "KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
             "OTP_HOOKS_RETRY_BASE_MS": "500", "OTP_HOOKS_RETRY_CAP_MS": "5000",
             "OTP_HOOKS_MAX_IN_FLIGHT": "24", "OTP_HOOKS_MAX_IN_FLIGHT_PER_SERVICE": "8",
             "OTP_HOOKS_TIMEOUT_MS": "5000"}


@pytest.fixture(scope="module")
def pipeline_options():
    return {"worker_env": {"OTP_STATUS_TOPIC_PER_SERVICE": "1",
                           "KAFKA_TOPIC_METADATA_REFRESH_INTERVAL_MS": "1000",
                           "OTP_LIMIT_USER_HOUR": "0", "OTP_LIMIT_PHONE_15MIN": "0",
                           "OTP_LIMIT_PHONE_DAY": "0"}}


def admin(pipe, *args, check=True):
    r = subprocess.run([Stack.bin("otp-admin")] + list(args),
                       env={**os.environ, **pipe.env(OTP_DATABASE_URL=pipe.admin_db_url)},
                       text=True, capture_output=True, timeout=60)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


class ExampleReceiver:
    """One of the examples' receivers as a process on a fixed port; stop() and start() again
    to take it down and bring it back on the same address."""

    def __init__(self, lang, secret, out_path):
        self.lang, self.secret, self.out_path = lang, secret, out_path
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.proc = None

    def start(self):
        out = open(self.out_path, "a")
        self.proc = subprocess.Popen(RECEIVERS[self.lang] + ["127.0.0.1:%d" % self.port],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OTP_WEBHOOK_SIGNING_SECRET": self.secret})
        out.close()

        def up():
            req = urllib.request.Request(self.url, data=b"{}", method="POST")
            try:
                urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req, timeout=2)
            except urllib.error.HTTPError as e:
                return e.code == 401
            except OSError:
                return False
        wait_until(up, 20, "the %s receiver listening" % self.lang)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def events(self):
        """Every event the receiver accepted (its signature checked), in arrival order."""
        with open(self.out_path) as f:
            return [json.loads(ln) for ln in f.read().splitlines() if ln.startswith("{")]


class SlowReceiver:
    """A receiver that answers 200 after `delay` seconds, checking signatures with the Python
    example's signature_ok; several requests at once (a thread each)."""

    def __init__(self, secret, delay):
        got, lock = [], threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not example.signature_ok(secret, self.headers.get("OTP-Signature"), body):
                    self.send_response(401)
                    self.end_headers()
                    return
                time.sleep(delay)
                with lock:
                    got.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.got, self._lock = got, lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        with self._lock:
            return list(self.got)

    def close(self):
        self.server.shutdown()


def make_service(pipe, tmp, name, url, secret):
    path = os.path.join(tmp, name + ".secret")
    with open(path, "w") as f:
        f.write(secret + "\n")
    admin(pipe, "service", "create", name, "--webhook-url", url, "--webhook-secret-file", path,
          "--actor", "test-hooks")
    out = admin(pipe, "key", "create", "--service", name, "--scopes", "create,verify,read",
                "--actor", "test-hooks").stdout
    return dict(w.split("=", 1) for w in out.split())["key"]


@pytest.fixture(scope="module")
def hooks(pipe, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("hooks"))
    env = {"recv": {}, "keys": {}, "secrets": {}}
    for lang in ("python", "node"):
        secret = secrets.token_urlsafe(24)
        r = ExampleReceiver(lang, secret, os.path.join(tmp, lang + ".out"))
        r.start()
        env["recv"][lang] = r
        env["keys"][lang] = make_service(pipe, tmp, "hk-" + lang, r.url, secret)
    slow_secret = secrets.token_urlsafe(24)
    env["slow"] = SlowReceiver(slow_secret, 2.0)
    make_service(pipe, tmp, "hk-slow", env["slow"].url, slow_secret)
    env["proc"] = pipe.start_hooks(**HOOKS_ENV)
    env["status"] = {lang: P.StatusReader(pipe.bootstrap, "otp.call_status.hk-" + lang)
                     for lang in ("python", "node")}
    # The verifier hears of the new keys through NOTIFY otp_services.
    wait_until(lambda: pipe.http("GET", "/v1/requests/%s" % uuid.uuid4(), headers={
        "Authorization": "Bearer " + env["keys"]["node"]})[0] == 404 or None, 15,
        "the verifier to load the keys")
    yield env
    for r in env["status"].values():
        r.close()
    for r in env["recv"].values():
        r.stop()
    env["slow"].close()


def create(pipe, key, phone):
    st, out = pipe.http("POST", "/v1/requests", {"phone": phone, "user_id": "u-" + phone[-4:],
                                                 "purpose": "login"},
                        headers={"Authorization": "Bearer " + key})
    assert st == 202, out
    return out["request_id"]


def arrivals(events, rid):
    """The seqs of one request's events in arrival order, copies of an event dropped."""
    seen, seqs = set(), []
    for e in events:
        if e.get("request_id") == rid and e["event_id"] not in seen:
            seen.add(e["event_id"])
            seqs.append(e["seq"])
    return seqs


def wait_all_delivered(status, recv, rids, timeout):
    """Waits until each request reached `delivered` on its status topic and the receiver has
    every one of its events; returns the topic's events by request."""
    def done():
        topic = {rid: status.of(rid) for rid in rids}
        if not all(any(e["type"] == "delivered" for e in evs) for evs in topic.values()):
            return None
        got = {e["event_id"] for e in recv.events()}
        want = {e["event_id"] for evs in topic.values() for e in evs}
        return (topic,) if want <= got else None
    return wait_until(done, timeout, "every event at the receiver",
                      state=lambda: "receiver has %d events" % len(recv.events()))[0]


def check_in_order(recv, topic):
    events = recv.events()
    for rid, evs in topic.items():
        n = max(e["seq"] for e in evs)
        assert arrivals(events, rid) == list(range(1, n + 1)), (rid, arrivals(events, rid))
        # The body is the event exactly as on the topic.
        by_id = {e["event_id"]: e for e in events if e.get("request_id") == rid}
        for e in evs:
            want = {k: v for k, v in e.items() if not k.startswith("_")}
            assert by_id[e["event_id"]] == want


def metric(pipe_or_port, name, labels=""):
    port = pipe_or_port
    text = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        "http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    return None


def test_every_event_reaches_the_example_receivers_in_order(pipe, hooks):
    for lang in ("python", "node"):
        base = 7300 + (0 if lang == "python" else 10)
        rids = [create(pipe, hooks["keys"][lang], "+1202555%04d" % (base + i)) for i in range(3)]
        topic = wait_all_delivered(hooks["status"][lang], hooks["recv"][lang], rids, 120)
        check_in_order(hooks["recv"][lang], topic)
        print("%s receiver: %s" % (lang, {rid[:8]: arrivals(hooks["recv"][lang].events(), rid)
                                          for rid in rids}))
    port = hooks["proc"].listen_port
    assert metric(port, "otp_hooks_deliveries_total", '{outcome="delivered"}') >= 6
    assert metric(port, "otp_hooks_oldest_undelivered_seconds") is not None
    assert urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        "http://127.0.0.1:%d/healthz" % port, timeout=5).status == 200


def test_receiver_down_two_minutes_gets_everything_after_in_order(pipe, hooks):
    recv, status = hooks["recv"]["python"], hooks["status"]["python"]
    recv.stop()
    down_at = time.monotonic()
    rids = [create(pipe, hooks["keys"]["python"], "+1202555%04d" % (7320 + i)) for i in range(3)]
    # Attempts fail meanwhile and are recorded; the list shows them as failing.
    wait_until(lambda: pipe.s.psql(
        "SELECT count(DISTINCT request_id) FROM hook_deliveries WHERE request_id IN (%s)"
        " AND attempts >= 2 AND last_error IS NOT NULL AND delivered_at IS NULL"
        % ",".join("'%s'" % r for r in rids)).strip() == "3" or None, 90,
        "failed attempts for each request")
    out = admin(pipe, "webhooks", "list", "--service", "hk-python", "--failed").stdout
    assert all(rid in out for rid in rids) and "failing" in out, out
    time.sleep(max(0, 120 - (time.monotonic() - down_at)))
    # Still nothing delivered for them while the receiver was away.
    assert not any(e.get("request_id") in rids for e in recv.events())
    recv.start()
    up_at = time.monotonic()
    topic = wait_all_delivered(status, recv, rids, 60)
    print("after a %.0f s outage, every event in %.1f s" % (up_at - down_at,
                                                             time.monotonic() - up_at))
    check_in_order(recv, topic)
    attempts = pipe.s.psql("SELECT max(attempts) FROM hook_deliveries WHERE request_id IN (%s)"
                           % ",".join("'%s'" % r for r in rids)).strip()
    assert int(attempts) >= 5, attempts
    assert metric(hooks["proc"].listen_port, "otp_hooks_failures_total",
                  '{cause="transport"}') > 0


def synthetic(service, n_requests, n_events):
    """Status events as the relay writes them, n_events per request, on the service's topic."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    items, rids = [], []
    for _ in range(n_requests):
        rid = str(uuid.uuid4())
        rids.append(rid)
        for seq in range(1, n_events + 1):
            items.append((rid, json.dumps({"event_id": str(uuid.uuid4()), "schema_version": 1,
                                           "type": "ringing", "request_id": rid, "seq": seq,
                                           "at": now, "service": service})))
    return rids, items


def test_a_slow_receiver_does_not_slow_another_service(pipe, hooks):
    slow, fast = hooks["slow"], hooks["recv"]["python"]
    # Both topics exist and are assigned to otp-hooks before the clock starts (a new topic
    # is found at the next metadata refresh, then the group rebalances).
    warm = [synthetic(svc, 1, 1) for svc in ("hk-slow", "hk-python")]
    produce(pipe.bootstrap, "otp.call_status.hk-slow", warm[0][1])
    produce(pipe.bootstrap, "otp.call_status.hk-python", warm[1][1])
    wait_until(lambda: (any(e["request_id"] == warm[0][0][0] for e in slow.events()) and
                        any(e["request_id"] == warm[1][0][0] for e in fast.events())) or None,
               60, "one event at each receiver")
    slow.got.clear()
    slow_rids, slow_items = synthetic("hk-slow", 48, 2)
    fast_rids, fast_items = synthetic("hk-python", 40, 5)
    t0 = time.monotonic()
    produce(pipe.bootstrap, "otp.call_status.hk-slow", slow_items)
    produce(pipe.bootstrap, "otp.call_status.hk-python", fast_items)

    def fast_done():
        got = [e for e in fast.events() if e.get("request_id") in set(fast_rids)]
        return len({e["event_id"] for e in got}) == len(fast_items) or None
    wait_until(fast_done, 60, "the fast receiver's 200 events")
    fast_s = time.monotonic() - t0
    slow_then = len(slow.events())
    print("fast service: %d events in %.1f s; the 2 s receiver had %d of %d by then" % (
        len(fast_items), fast_s, slow_then, len(slow_items)))
    # At most 8 of the 24 POSTs in flight go to the slow one (4 a second: about 24 s for its
    # 96 events). Were the slots first come, first served, its older events would hold all 24
    # for about 8 s before the fast service had one.
    assert fast_s < 6, fast_s
    assert slow_then < len(slow_items) // 2, slow_then
    for rid in fast_rids:
        assert arrivals(fast.events(), rid) == [1, 2, 3, 4, 5]
    wait_until(lambda: len({e["event_id"] for e in slow.events()}) == len(slow_items) or None,
               90, "the slow receiver's 96 events")
    for rid in slow_rids:
        assert arrivals(slow.events(), rid) == [1, 2]


def test_admin_webhooks_list_and_replay(pipe, hooks):
    recv = hooks["recv"]["node"]
    rid = next(e["request_id"] for e in recv.events())
    out = admin(pipe, "webhooks", "list", "--request", rid).stdout
    rows = [ln.split() for ln in out.splitlines()[1:]]
    assert rows and all(r[2] == rid and r[5] == "delivered" for r in rows), out
    first = min(rows, key=lambda r: int(r[3]))
    before = recv.events()
    count = sum(1 for e in before if e["request_id"] == rid and e["seq"] == int(first[3]))
    # One delivery by id: that event again (the same event_id: receivers drop the copy).
    assert admin(pipe, "webhooks", "replay", first[0], "--actor", "ops-1").stdout.strip() == \
        "replayed: deliveries=1"
    wait_until(lambda: sum(1 for e in recv.events() if e["request_id"] == rid and
                           e["seq"] == int(first[3])) == count + 1 or None, 30, "the replay")
    # A whole request: all of it again, in order.
    n = len(before)
    out = admin(pipe, "webhooks", "replay", "--request", rid, "--actor", "ops-1").stdout
    assert out.strip() == "replayed: deliveries=%d" % len(rows)
    wait_until(lambda: len(recv.events()) >= n + 1 + len(rows) or None, 30, "the replay")
    again = [e["seq"] for e in recv.events()[n + 1:] if e["request_id"] == rid]
    assert again == sorted(again) and len(again) == len(rows), again
    # A service since a time; and nothing matched is exit 1.
    out = admin(pipe, "webhooks", "replay", "--service", "hk-node", "--since",
                "2000-01-01T00:00:00Z").stdout
    assert int(out.strip().split("=")[1]) >= len(rows)
    r = admin(pipe, "webhooks", "replay", "--service", "hk-node", "--since",
              "2999-01-01T00:00:00Z", check=False)
    assert r.returncode == 1 and "deliveries=0" in r.stdout, r
    for bad in (["replay"], ["replay", "x1"], ["replay", "--service", "hk-node"],
                ["replay", "1", "--request", rid], ["list", "extra"], ["nothing"]):
        assert admin(pipe, "webhooks", *bad, check=False).returncode == 2, bad
    audit = pipe.s.psql("SELECT actor, selector::text, deliveries FROM hook_replays ORDER BY id")
    lines = audit.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("ops-1 (role otp_admin_login)"), audit
    assert '"request_id": "%s"' % rid in lines[1], audit
