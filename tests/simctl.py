# SPDX-License-Identifier: Apache-2.0
"""Drive the VoIPBin simulator (bin/voipbin-sim, sources in tests/sim/) from Python tests.
Stdlib only. Stack.start_sim() (tests/stack.py) starts it like every other program, through
Stack.spawn, and returns a Sim:

    with Stack() as s:
        sim = s.start_sim(extra_args=["--whitelist", "us,gb", "--numbers", "+15550100000",
                                      "--time-scale", "0.05"],
                          webhook_uri="http://127.0.0.1:8123/hooks")
        sim.script("+15551230001", outcome="busy")
        ...

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
import urllib.error
import urllib.parse
import urllib.request

from testkit import wait_until

DEFAULT_ACCESS_KEY = "vb_SIMxSIMxSIMxSIMxSIMxSIMxSIMxSIMx"
DEFAULT_WEBHOOK_SECRET = "c2ltdWxhdG9yLXdlYmhvb2stc2VjcmV0"

# The line voipbin-sim prints once it listens; group 1 is the port.
READY_LINE = r"^voipbin-sim listening on http://[^ ]+:(\d+)$"


def sim_argv(bin_path, extra_args=(), access_key=DEFAULT_ACCESS_KEY,
             webhook_secret=DEFAULT_WEBHOOK_SECRET, webhook_uri=None):
    """The command line of a simulator on a free loopback port."""
    args = [bin_path, "--listen", "127.0.0.1:0", "--access-key", access_key,
            "--webhook-secret", webhook_secret]
    if webhook_uri:
        args += ["--webhook-uri", webhook_uri]
    return args + list(extra_args)


class SimError(Exception):
    pass


class Sim:
    """A running simulator. proc: its stack.Proc (log_path, alive(), kill(), stop())."""

    def __init__(self, proc, port, access_key, webhook_secret):
        self.proc = proc
        self.port = port
        self.base_url = "http://127.0.0.1:%d" % port
        self.api_url = self.base_url + "/v1.0"
        self.access_key = access_key
        self.webhook_secret = webhook_secret
        self.log_path = proc.log_path

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

    def wait_for(self, predicate, timeout=10.0, interval=0.02, what="a simulator condition"):
        """Polls predicate() until it returns something truthy; returns it (testkit.wait_until)."""
        return wait_until(predicate, timeout, what, interval=interval)

    def wait_call_ended(self, call_id, timeout=10.0):
        return self.wait_for(lambda: (lambda c: c if c["status"] == "hangup" else None)(self.call(call_id)),
                             timeout, what="call %s to reach hangup" % call_id)

    # --- lifetime -------------------------------------------------------------------------
    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout seconds; returns the exit status."""
        return self.proc.stop(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
