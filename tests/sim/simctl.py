"""Start and drive the VoIPBin simulator (bin/voipbin-sim) from Python tests. Stdlib only.

    from simctl import start_sim
    sim = start_sim("bin/voipbin-sim", "/tmp/sim.log",
                    extra_args=["--whitelist", "us,gb", "--numbers", "+15550100000", "--time-scale", "0.05"],
                    webhook_uri="http://127.0.0.1:8123/hooks")
    sim.script("+15551230001", outcome="busy")
    ...
    sim.stop()

REST base: sim.api_url (http://127.0.0.1:PORT/v1.0); the access key goes as ?accesskey=sim.access_key.
Note: like the real service the outbound whitelist is empty by default, so every PSTN call is
refused (500 INTERNAL) unless you pass --whitelist (e.g. "us,gb" or "all").

Sim.script(target, **outcome) — POST /_sim/script; target is an E.164 number or "*" (any other).
  outcome="answer"       answers (default): ring after ring_ms=300, answer at answer_ms=1000 (from creation)
          "busy"         rings, then hangup remote/busy at end_ms (default ring_ms + 1500)
          "noanswer"     rings, then hangup remote/noanswer at end_ms (default 20000)
          "failed"       hangup remote/failed at end_ms (default 500), no ringing
          "machine"      (alias "voicemail") answers like a human; an `amd` action with
                         machine_handle "hangup" then ends the call local/amd after amd_ms (1500)
          "dialout"      (alias "timeout") rings until the 60 s dial timeout: remote/dialout
  callee_hangup_ms=N     the callee hangs up N ms after answering (remote/normal)
  digits="123456#"       keys pressed digits_at_ms (default 1500) after answer, digit_interval_ms (150) apart
  dtmf=[{"at_ms": 2000, "keys": "12"}, ...]   several bursts of keys
  amd_ms=N               how long an amd action takes to decide
  sms="delivered"|"sent"|"failed"|"gw_timeout"|"dlr_timeout"   final status of SMS to this target
  times=N                apply to the next N calls to the target only (default: until reset)
  Every duration is in simulated ms and is multiplied by --time-scale.

Sim.fault(**kw) — POST /_sim/faults (REST routes only; /_sim/ is never faulted).
  fail_next=N, status=503, reason="...", message="..."   the next N requests get that error envelope
  drop_next=N, drop="before"|"after"   close the connection without a response; "after" first
                                       processes the request (the call IS placed)
  latency_ms=300 or latency_ms=[100, 800], latency_next=N   added delay (N requests, default all)
  path="/v1.0/calls", method="POST"    restrict the rules above (default path "/v1.0/", any method)
  webhook_duplicate=N    the next N webhook events are delivered twice
  webhook_reorder=N, reorder_ms=500    the next N webhook events are held back so later ones overtake
  rate=100000, burst=100000            change the account rate limit (default 16.7/s, burst 33)
  clear=True                           drop every fault first (also Sim.clear_faults())

Sim.calls() — every call: id, status, target, request_body (exact bytes) and request, call (as the
  API shows it), talks [{text, language, started_at, ended_at, duration_ms, failed, error, wav,
  seconds}], digits, digits_received, actions_executed, events [{type, call_status, state,
  delivered, attempts, status_code, error, duplicate}], webhook_sends [{uri, body, ...}].
Sim.messages() — every SMS: id, text, request_body, message, events.
Sim.account(balance=0, status="frozen", identity_verification_status="pending", webhook_secret=...)
Sim.reset() — forget calls, messages, flows, scripts and faults; restore the startup settings.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_ACCESS_KEY = "vb_SIMxSIMxSIMxSIMxSIMxSIMxSIMxSIMx"
DEFAULT_WEBHOOK_SECRET = "c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0"


class SimError(Exception):
    pass


class Sim:
    def __init__(self, proc, port, access_key, webhook_secret, log_path, port_file):
        self.proc = proc
        self.port = port
        self.base_url = "http://127.0.0.1:%d" % port
        self.api_url = self.base_url + "/v1.0"
        self.access_key = access_key
        self.webhook_secret = webhook_secret
        self.log_path = log_path
        self._port_file = port_file

    # --- raw HTTP -------------------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers, parsed JSON or raw text) for any path under base_url."""
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, hdrs, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, dict(e.headers), e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, hdrs, parsed

    def api(self, method, path, body=None, headers=None, auth=True):
        """Call /v1.0<path> with ?accesskey= added."""
        if auth:
            path += ("&" if "?" in path else "?") + "accesskey=" + urllib.parse.quote(self.access_key)
        return self.request(method, "/v1.0" + path, body, headers)

    def _control(self, method, path, body=None):
        status, _, parsed = self.request(method, "/_sim" + path, body)
        if status != 200:
            raise SimError("%s /_sim%s -> %s %s" % (method, path, status, parsed))
        return parsed

    # --- control API ----------------------------------------------------------------------
    def script(self, target, **outcome):
        outcome["target"] = target
        return self._control("POST", "/script", outcome)

    def clear_scripts(self):
        return self._control("DELETE", "/script")

    def fault(self, **kw):
        return self._control("POST", "/faults", kw)

    def clear_faults(self):
        return self._control("DELETE", "/faults")

    def account(self, **kw):
        return self._control("POST", "/account", kw)

    def calls(self, target=None):
        q = "?target=" + urllib.parse.quote(target) if target else ""
        return self._control("GET", "/calls" + q)

    def call(self, call_id):
        return self._control("GET", "/calls/" + call_id)

    def press(self, call_id, digits):
        """The callee presses keys now."""
        return self._control("POST", "/calls/%s/digits" % call_id, {"digits": digits})

    def callee_hangup(self, call_id, reason="normal"):
        return self._control("POST", "/calls/%s/callee_hangup" % call_id, {"reason": reason})

    def messages(self):
        return self._control("GET", "/messages")

    def stats(self):
        return self._control("GET", "/stats")

    def reset(self):
        return self._control("POST", "/reset")

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Polls predicate() until it returns something truthy; returns it or raises."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate()
            if got:
                return got
            if time.monotonic() > deadline:
                raise SimError("condition not met within %.1fs" % timeout)
            time.sleep(interval)

    def wait_call_ended(self, call_id, timeout=10.0):
        return self.wait_for(lambda: (lambda c: c if c["status"] == "hangup" else None)(self.call(call_id)),
                             timeout)

    # --- lifetime -------------------------------------------------------------------------
    def stop(self, timeout=5.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self._port_file)
        except OSError:
            pass
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _alive(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_sim(bin_path, log_path, extra_args=(), access_key=DEFAULT_ACCESS_KEY,
              webhook_secret=DEFAULT_WEBHOOK_SECRET, webhook_uri=None, timeout=10.0):
    """Starts voipbin-sim on a free loopback port and waits until it answers."""
    fd, port_file = tempfile.mkstemp(prefix="voipbin-sim-", suffix=".port")
    os.close(fd)
    os.unlink(port_file)
    args = [bin_path, "--listen", "127.0.0.1:0", "--port-file", port_file,
            "--access-key", access_key, "--webhook-secret", webhook_secret]
    if webhook_uri:
        args += ["--webhook-uri", webhook_uri]
    args += list(extra_args)
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SimError("voipbin-sim exited with %s; see %s" % (proc.returncode, log_path))
        try:
            with open(port_file) as f:
                text = f.read().strip()
            if text:
                port = int(text)
                if _alive(port):
                    return Sim(proc, port, access_key, webhook_secret, log_path, port_file)
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise SimError("voipbin-sim did not start within %.0fs; see %s" % (timeout, log_path))
        time.sleep(0.02)
