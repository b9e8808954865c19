"""Fixtures for the simulator's own contract tests: the binary, a webhook receiver, simulators."""
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import simctl  # noqa: E402

SIM_BIN = os.environ.get("VOIPBIN_SIM_BIN", os.path.join(ROOT, "bin", "voipbin-sim"))
OWNED = ["+15550100000", "+15550100001"]


class Receiver:
    """A small HTTP server on loopback that records every request (raw body, headers, time)
    and answers with a status chosen per path (default 200)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.status = {}
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.requests.append({"method": self.command, "path": self.path,
                                           "headers": {k.lower(): v for k, v in self.headers.items()},
                                           "body": body, "t": time.monotonic()})
                    code = outer.status.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
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
        out = []
        for r in self.got(path):
            e = json.loads(r["body"])
            if call_id is None or e["data"].get("id") == call_id:
                out.append(e)
        return out

    def wait(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.02)
        raise AssertionError("receiver: condition not met; got %r" % [
            (r["path"], r["body"][:120]) for r in self.got()])

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture(scope="session")
def sim_bin():
    if not os.access(SIM_BIN, os.X_OK):
        pytest.fail("%s is not built (make bin/voipbin-sim)" % SIM_BIN)
    return SIM_BIN


@pytest.fixture(scope="session")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("simlogs")


@pytest.fixture(scope="module")
def recv():
    r = Receiver()
    yield r
    r.close()


def launch(sim_bin, logdir, name, args, **kw):
    return simctl.start_sim(sim_bin, str(logdir / (name + ".log")), extra_args=args, **kw)


FAST_ARGS = ["--whitelist", "us,gb", "--numbers", ",".join(OWNED), "--time-scale", "0.05",
             "--rate", "100000", "--burst", "100000"]


@pytest.fixture(scope="module")
def sim(sim_bin, logdir, recv):
    s = launch(sim_bin, logdir, "fast", FAST_ARGS, webhook_uri=recv.url("/hooks"),
               access_key="vb_contractTestKey0123456789abcdefgh", webhook_secret="s3cr3t-for-contract-tests")
    yield s
    assert s.stop() == 0, "simulator did not exit cleanly on SIGTERM"


@pytest.fixture(autouse=True)
def clean(request, recv):
    recv.clear()
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()
    yield
