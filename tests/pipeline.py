# SPDX-License-Identifier: Apache-2.0
"""The whole OTP pipeline on the local stack, for system tests, benchmarks and the demo.

    with Stack() as s:
        p = Pipeline(s)                 # PostgreSQL, Kafka broker, simulator, migrations
        p.start_verifier()
        p.start_worker()
        ids = p.produce([{"phone": "+12015550001", "user_id": "u1"}])
        events = p.status.wait_for(lambda evs: ...)
        p.verify(request_id, code)

Every secret is random per run: nothing secret is in the repository.
Runs under Debian's /usr/bin/python3 (confluent_kafka, psycopg).
"""

import json
import os
import re
import secrets
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
import hashlib

from stack import Stack, free_port  # noqa: F401  (re-exported for tests)
from testkit import produce, wait_until

CALLER_ID = "+15550100000"
CALLER_ID_GB = "+442071230000"  # a second number the simulated account owns


def spoken_code(text):
    """The code read in a talk text: the first run of 4-10 digits once the SSML tags are gone."""
    plain = re.sub(r"<[^>]*>", "", text)
    m = re.search(r"(?<!\d)(\d{4,10})(?!\d)", plain)
    return m.group(1) if m else None


class StatusReader:
    """Reads a topic from the beginning in a background thread and keeps every event."""

    def __init__(self, bootstrap, topic):
        from confluent_kafka import Consumer
        self.events = []
        self._lock = threading.Lock()
        self._stop = False
        self._c = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": "reader-" + uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        })
        self._c.subscribe([topic])
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            m = self._c.poll(0.2)
            if m is None or m.error():
                continue
            try:
                ev = json.loads(m.value())
            except ValueError:
                ev = {"_raw": m.value()}
            ev["_key"] = m.key().decode() if m.key() else None
            ev["_partition"] = m.partition()
            ev["_headers"] = dict(m.headers() or [])
            with self._lock:
                self.events.append(ev)

    def snapshot(self):
        with self._lock:
            return list(self.events)

    def wait_for(self, pred, timeout=60, what="events"):
        """Waits until pred(all events so far) holds; returns those events."""
        def ready():
            evs = self.snapshot()
            return (evs,) if pred(evs) else None
        return wait_until(ready, timeout, what,
                          state=lambda: "have %d events" % len(self.snapshot()))[0]

    def of(self, request_id):
        return [e for e in self.snapshot() if e.get("request_id") == request_id]

    def close(self):
        self._stop = True
        self._t.join(timeout=5)
        self._c.close()


def local_program(name, env):
    """How a Pipeline runs a program by default: the one built in bin/, with env."""
    return [Stack.bin(name)], env


class Pipeline:
    """program(name, env) -> (argv, env): how otp-migrate, otp-worker and otp-verifier are run
    (tests/test_image.py runs them from the container image)."""

    def __init__(self, stack, sim_args=(), time_scale=0.2, brokers=1, pg_fast=False,
                 program=local_program, topics=None):
        self.s = stack
        self.program = program
        self.hash_key = secrets.token_hex(32)
        self.access_key = "vb_" + secrets.token_urlsafe(24)
        self.webhook_secret = secrets.token_urlsafe(24)
        self.api_key = "otpk_" + secrets.token_urlsafe(24)
        self.verifier_port = free_port()
        self.verifier_admin_port = free_port()
        self.webhook_port = free_port()  # VoIPBin's webhook: a listener of its own
        self.db_url = stack.start_postgres(fast=pg_fast)
        self.bootstrap = stack.start_kafka(brokers=brokers, topics=topics)
        self.webhook_uri = "http://127.0.0.1:%d/v1/webhooks/voipbin" % self.webhook_port
        self.sim = stack.start_sim(
            extra_args=["--numbers", CALLER_ID + "," + CALLER_ID_GB, "--whitelist", "all",
                        "--time-scale", str(time_scale)] + list(sim_args),
            access_key=self.access_key, webhook_secret=self.webhook_secret,
            webhook_uri=self.webhook_uri)
        self.migrate()
        # Each program runs as its own role (sql/031_roles.sql); db_url (the owner) is for the
        # migrations and the tests' own reads.
        self.worker_db_url = stack.login_url("otp_worker")
        self.verifier_db_url = stack.login_url("otp_verifier")
        self.admin_db_url = stack.login_url("otp_admin")
        self.workers = []
        self.hooks = []
        self.verifier = None
        self.status = StatusReader(self.bootstrap, "otp.call_status")
        self.dlq = StatusReader(self.bootstrap, "otp.requested.dlq")

    # ---- settings ----
    def env(self, **extra):
        e = {
            "OTP_DATABASE_URL": self.db_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "OTP_VOIPBIN_BASE_URL": self.sim.api_url,
            "OTP_VOIPBIN_ACCESS_KEY": self.access_key,
            "OTP_CALLER_ID": CALLER_ID,
            "OTP_HASH_KEY": self.hash_key,
            "OTP_WEBHOOK_SECRET": self.webhook_secret,
            "OTP_API_KEY_HASHES": hashlib.sha256(self.api_key.encode()).hexdigest(),
            "OTP_VERIFIER_LISTEN": "127.0.0.1:%d" % self.verifier_port,
            # Any other verifier a test starts takes free admin and webhook ports of its own.
            "OTP_VERIFIER_ADMIN_LISTEN": "127.0.0.1:0",
            "OTP_WEBHOOK_LISTEN": "127.0.0.1:0",
            "OTP_CALLBACK_URL": self.webhook_uri,
            # The tests drive hundreds of API requests a second from one address and key;
            # tests/system/test_trust.py sets the limits on a verifier of its own.
            "OTP_API_RATE_PER_KEY": "0",
            "OTP_API_RATE_PER_ADDRESS": "0",
            "OTP_RETRY_BASE_MS": "200",
            "OTP_RETRY_CAP_MS": "2000",
            "OTP_LOG_LEVEL": "info",
        }
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def migrate(self):
        argv, env = self.program("otp-migrate", self.env())
        out = subprocess.run(argv, env={**os.environ, **env},
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError("otp-migrate failed: %s%s" % (out.stdout, out.stderr))
        return out.stdout.strip()

    # ---- programs ----
    def start_verifier(self, **extra):
        settings = {"OTP_DATABASE_URL": self.verifier_db_url,
                    "OTP_VERIFIER_ADMIN_LISTEN": "127.0.0.1:%d" % self.verifier_admin_port,
                    "OTP_WEBHOOK_LISTEN": "127.0.0.1:%d" % self.webhook_port}
        settings.update(extra)
        argv, env = self.program("otp-verifier", self.env(**settings))
        self.verifier = self.s.spawn(
            "verifier", argv, env=env,
            ready_url="http://127.0.0.1:%d/readyz" % self.verifier_admin_port)
        return self.verifier

    def start_worker(self, **extra):
        n = len(self.workers) + 1
        settings = {"OTP_DATABASE_URL": self.worker_db_url,
                    "OTP_WORKER_LISTEN": "127.0.0.1:%d" % free_port(), "OTP_WORKER_ID": "worker-%d" % n}
        settings.update(extra)
        env = self.env(**settings)
        argv, run_env = self.program("otp-worker", env)
        w = self.s.spawn("worker-%d" % n, argv, env=run_env,
                         ready_line=r"event=worker_started")
        w.listen_port = int(env["OTP_WORKER_LISTEN"].rsplit(":", 1)[1])  # its /metrics
        self.workers.append(w)
        return w

    def start_hooks(self, **extra):
        """Starts an otp-hooks as the otp_hooks role (sql/045), its admin listener on a free
        port (listen_port)."""
        n = len(self.hooks) + 1
        port = free_port()
        settings = {"OTP_DATABASE_URL": self.s.login_url("otp_hooks"),
                    "OTP_HOOKS_LISTEN": "127.0.0.1:%d" % port}
        settings.update(extra)
        argv, run_env = self.program("otp-hooks", self.env(**settings))
        h = self.s.spawn("hooks-%d" % n, argv, env=run_env, ready_line=r"event=hooks_started")
        h.listen_port = port
        self.hooks.append(h)
        return h

    # ---- requests ----
    def produce(self, requests, raw=False, timeout=60):
        """Publishes requests (dicts) with otp-produce --file -; returns their request_ids."""
        lines = "".join(json.dumps(r) + "\n" for r in requests)
        args = [Stack.bin("otp-produce"), "--file", "-"] + (["--raw"] if raw else [])
        out = subprocess.run(args, input=lines, env={**os.environ, **self.env()},
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError("otp-produce failed: %s" % out.stderr)
        # One result per line (LINE, REQUEST_ID, delivered|failed, ...), in delivery order.
        rows = [ln.split("\t") for ln in out.stdout.splitlines() if ln.strip()]
        return [r[1] for r in sorted(rows, key=lambda r: int(r[0]))]

    def produce_many(self, requests, timeout=600):
        """Like produce, for large batches (benchmarks): returns the count published."""
        return len(self.produce(requests, timeout=timeout))

    def raw_kafka(self, values, key=None, topic="otp.requested"):
        """Publishes arbitrary bytes (malformed events) with an independent client."""
        produce(self.bootstrap, topic, [(key, v) for v in values])

    # ---- verifier ----
    def http(self, method, path, body=None, headers=None, auth=True, raw=None, port=None):
        """A request to the verifier's API listener (or to `port`, e.g. webhook_port)."""
        url = "http://127.0.0.1:%d%s" % (port or self.verifier_port, path)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"}
        if auth:
            h["Authorization"] = "Bearer " + self.api_key
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                return e.code, json.loads(payload or b"{}")
            except ValueError:
                return e.code, {"_raw": payload.decode("utf-8", "replace")}

    def verify(self, request_id, code):
        return self.http("POST", "/v1/verify", {"request_id": request_id, "code": code})

    # ---- simulator ----
    def calls_to(self, phone):
        return [c for c in self.sim.calls() if call_target(c) == phone]

    def wait_calls(self, n, timeout=60, pred=None):
        """Waits until the simulator has at least n calls (that pred accepts); returns them."""
        seen = []

        def enough():
            seen[:] = [c for c in self.sim.calls() if pred is None or pred(c)]
            return (list(seen),) if len(seen) >= n else None
        return wait_until(enough, timeout, "%d calls at the simulator" % n, interval=0.2,
                          state=lambda: "have %d" % len(seen))[0]

    def close(self):
        self.status.close()
        self.dlq.close()


def running(worker_env=None, verifier_env=None, **pipeline_kw):
    """A Pipeline with one verifier and one worker on a fresh Stack, for a pytest fixture:
    `yield from P.running(...)`. Everything is stopped afterwards."""
    with Stack() as s:
        p = Pipeline(s, **pipeline_kw)
        p.start_verifier(**(verifier_env or {}))
        p.start_worker(**(worker_env or {}))
        yield p
        p.close()


def types_of(p, rid):
    """The event types of one request on otp.call_status, in order."""
    return [e["type"] for e in sorted(p.status.of(rid), key=lambda e: e["seq"])]


def call_request(call):
    """The JSON body that created a simulator call (GET /_sim/calls → request)."""
    return call.get("request") or {}


def call_target(call):
    return call.get("target")


def call_texts(call):
    """The texts spoken in a call, in order."""
    return [t.get("text") for t in call.get("talks") or []]
