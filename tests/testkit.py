# SPDX-License-Identifier: Apache-2.0
"""Small helpers every test module shares: waiting, webhook signatures and a webhook receiver,
schemas, Kafka publishing.

tests/conftest.py puts this folder on sys.path (pytest's rootdir-relative import), so a test
module under tests/ imports `testkit`, `stack` and `pipeline` directly. Standard library only,
except produce(), which imports confluent_kafka when called.
"""

import hashlib
import hmac
import http.server
import json
import os
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(ROOT, "schema")


class WaitTimeout(AssertionError):
    """wait_until() gave up; the message names what was awaited and the last value seen."""


def wait_until(predicate, timeout, what, interval=0.1, state=None):
    """Calls predicate() until it returns something truthy and returns that value.

    Raises WaitTimeout (an AssertionError) after timeout seconds, naming `what` and what was
    seen last: state() if given (e.g. "have 3 events"), else predicate()'s last value. An
    exception from predicate() is not caught: a condition that may fail for a while (a server
    restarting) catches its own errors and returns None.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            seen = state() if state is not None else "last value: " + _short(got)
            raise WaitTimeout("timed out after %.1fs waiting for %s; %s" % (timeout, what, seen))
        time.sleep(interval)


def _short(value, limit=600):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def webhook_signature(secret, body):
    """The X-VoIPBIN-Signature header for a raw webhook body: sha256=<hex HMAC-SHA256>."""
    if isinstance(secret, str):
        secret = secret.encode()
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Receiver:
    """A small HTTP server on loopback that records every request (method, path, lower-case
    headers, raw body, arrival time) and answers with a status chosen per path (default 200)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.status = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body, "t": time.monotonic()})
                    code = outer.status.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hooks"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def clear(self):
        with self.lock:
            self.requests = []
            self.status = {}

    def got(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r["path"] == path]

    def events(self, path="/hooks", call_id=None):
        """The JSON webhook events received on path (of one call, if call_id is given)."""
        out = []
        for r in self.got(path):
            e = json.loads(r["body"])
            if call_id is None or e["data"].get("id") == call_id:
                out.append(e)
        return out

    def wait(self, pred, timeout=10.0, what="a webhook condition"):
        return wait_until(pred, timeout, what, interval=0.02, state=lambda: "received %r" % [
            (r["path"], r["body"][:120]) for r in self.got()])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def dlq_visible_uuid():
    """A random request id that the DLQ copy shows whole: the copy masks every run of 7 or more
    digits (schema/otp.requested.dlq.schema.json), and about one random UUID in seven has one."""
    import re
    import uuid
    while True:
        rid = str(uuid.uuid4())
        if not re.search(r"\d{7}", rid):
            return rid


def load_schema(name):
    """A JSON document from schema/, by file name ("otp.requested.schema.json")."""
    with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
        return json.load(f)


def produce(bootstrap, topic, items, **conf):
    """Publishes (key, value) pairs in order with an independent confluent_kafka Producer and
    waits until every one is acknowledged (asserts flush() leaves nothing).

    key: str, bytes or None; value: str or bytes. conf: more librdkafka settings, with dots
    spelled as in librdkafka ({"linger.ms": 5} via **{"linger.ms": 5}).
    """
    from confluent_kafka import Producer
    p = Producer(dict({"bootstrap.servers": bootstrap}, **conf))
    for key, value in items:
        if isinstance(key, str):
            key = key.encode()
        while True:
            try:
                p.produce(topic, value=value, key=key)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                p.poll(0.1)
        p.poll(0)
    left = p.flush(30)
    assert left == 0, "%d messages to %s not acknowledged within 30 s" % (left, topic)
