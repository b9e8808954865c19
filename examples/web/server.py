#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The reference web flow "we call you and read a code", Python standard library only.

The backend holds the verifier's API key; the browser never sees it. It serves one page
(static/), keeps a session per browser (cookie `otp_web`: HttpOnly, SameSite=Strict, Secure
behind HTTPS) and answers the page's own calls:

    POST /api/call     {"phone"}            ask for a call (POST /v1/requests)
    POST /api/resend   {"channel"}          "Call again" (voice) / "Send SMS instead" (sms):
                                            POST /v1/requests {"resend_of", "delivery"}
    POST /api/verify   {"code"}             POST /v1/verify
    GET  /api/events                        Server-Sent Events: the request's state, pushed as it
                                            changes (the backend long-polls
                                            GET /v1/requests/{id}?wait=25&since=<version>)

Every POST must carry the session's CSRF token (X-CSRF-Token, from the page's <meta>), a JSON
body, and, when the browser sends one, this site's Origin; the cookie is SameSite=Strict too.

    OTP_URL=http://127.0.0.1:8080 OTP_API_KEY=... python3 server.py [127.0.0.1:8000]

Settings: OTP_URL, OTP_API_KEY (or OTP_API_KEY_FILE), WEB_LISTEN (host:port, default
127.0.0.1:8000), WEB_COOKIE_SECURE=1 when the page is served over HTTPS (a proxy in front),
WEB_FALLBACK_AFTER_S (20: when the page offers "Didn't receive the call?" if the verifier has not
said fallback_available by then). A real application takes the user from its own login: here a
session is a user (`web-<random>`), which is what the per-user limits and supersede key on.
"""
import hmac
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http import cookies
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(HERE, "static")
OTP_URL = os.environ.get("OTP_URL", "http://127.0.0.1:8080").rstrip("/")
FALLBACK_AFTER_S = int(os.environ.get("WEB_FALLBACK_AFTER_S", "20"))
COOKIE_SECURE = os.environ.get("WEB_COOKIE_SECURE") == "1"
COOKIE = "otp_web"
SESSION_IDLE_S = 1800
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# States after which no call, text or check will change anything.
FINAL = {"verified", "locked", "expired", "superseded", "cancelled", "rejected", "rate_limited",
         "blocked"}


def api_key():
    path = os.environ.get("OTP_API_KEY_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ["OTP_API_KEY"]


API_KEY = api_key()


def otp(method, path, body=None, timeout=35):
    """(status, JSON) of a verifier call, with the API key. Network errors: (503, {})."""
    req = urllib.request.Request(OTP_URL + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + API_KEY,
                                          "Content-Type": "application/json"})
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {}
    except (OSError, ValueError):
        return 503, {}


class Session:
    def __init__(self):
        self.id = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.user_id = "web-" + secrets.token_hex(8)
        self.request_id = None
        self.started = 0.0       # when the current request was asked for (monotonic)
        self.channel = "voice"
        self.verified = False
        self.seen = time.monotonic()


SESSIONS = {}
LOCK = threading.Lock()


def session_of(handler, create=False):
    jar = cookies.SimpleCookie(handler.headers.get("Cookie") or "")
    sid = jar[COOKIE].value if COOKIE in jar else None
    now = time.monotonic()
    with LOCK:
        for k in [k for k, s in SESSIONS.items() if now - s.seen > SESSION_IDLE_S]:
            del SESSIONS[k]
        s = SESSIONS.get(sid) if sid else None
        if s is None and create:
            s = Session()
            SESSIONS[s.id] = s
        if s is not None:
            s.seen = now
        return s


def normalise_phone(text):
    """"+1 (202) 555-0100" -> "+12025550100"; None when it is not E.164 in form. The workers
    judge the number itself (libphonenumber) and answer `rejected` for a number that is none."""
    p = re.sub(r"[\s().-]", "", text or "")
    return p if re.fullmatch(r"\+[1-9][0-9]{6,14}", p) else None


def public_state(s, state):
    """What the page needs of GET /v1/requests/{id}: never more (no user id, no service)."""
    st = state.get("status", "unknown")
    elapsed = time.monotonic() - s.started
    return {
        "status": st,
        "channel": s.channel,
        "phone": state.get("phone"),  # masked by the verifier
        "reason": state.get("reason"),
        "attempts_left": state.get("attempts_left"),
        "final": st in FINAL,
        # "Didn't receive the call?": when the verifier says so, or after FALLBACK_AFTER_S.
        "offer_fallback": (s.channel == "voice" and st not in FINAL and
                           (bool(state.get("fallback_available")) or elapsed >= FALLBACK_AFTER_S)),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "otp-web-example"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request, never a body
        sys.stderr.write("web %s %s\n" % (self.address_string(), fmt % args))

    # ---- responses ----
    def _headers(self, code, ctype, length=None, extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "connect-src 'self'; img-src 'self'; base-uri 'none'; "
                         "form-action 'self'; frame-ancestors 'none'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, code, body, ctype="application/json", extra=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._headers(code, ctype, len(data), extra)
        self.wfile.write(data)

    # ---- routes ----
    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            return self._page()
        if path in ("/app.js", "/style.css"):
            with open(os.path.join(STATIC, path[1:]), "rb") as f:
                return self._send(200, f.read(), "text/javascript; charset=utf-8"
                                  if path.endswith(".js") else "text/css; charset=utf-8")
        if path == "/api/events":
            return self._events()
        self._send(404, {"error": "not_found"})

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        routes = {"/api/call": self._call, "/api/resend": self._resend,
                  "/api/verify": self._verify}
        if path not in routes:
            return self._send(404, {"error": "not_found"})
        s, body = self._checked_post()
        if s is not None:
            routes[path](s, body)

    def _page(self):
        s = session_of(self, create=True)
        with open(os.path.join(STATIC, "index.html"), encoding="utf-8") as f:
            page = f.read().replace("{{csrf}}", s.csrf).encode()
        attrs = "HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if COOKIE_SECURE else "")
        self._send(200, page, "text/html; charset=utf-8",
                   {"Set-Cookie": "%s=%s; %s" % (COOKIE, s.id, attrs)})

    def _checked_post(self):
        """The session and JSON body of a POST that passed the CSRF checks, else (None, None)
        after answering 403/400/415."""
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        raw = self.rfile.read(n) if 0 < n <= 4096 else b""
        if n > 4096 or n < 0:
            self.close_connection = True  # the body was not read
        s = session_of(self)
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != host:
            self._send(403, {"error": "cross_origin"})
            return None, None
        token = self.headers.get("X-CSRF-Token", "")
        if s is None or not hmac.compare_digest(token.encode(), s.csrf.encode()):
            self._send(403, {"error": "csrf"})
            return None, None
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            self._send(415, {"error": "json_only"})
            return None, None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            self._send(400, {"error": "bad_json"})
            return None, None
        return s, body

    def _ask(self, s, payload, channel):
        st, res = otp("POST", "/v1/requests", payload)
        if st != 202:
            msg = {429: "Too many attempts. Wait a minute and try again.",
                   400: "That does not look like a phone number."}.get(
                       st, "We could not place the call. Try again in a moment.")
            return self._send(502 if st >= 500 else 400, {"error": "not_accepted",
                                                         "message": msg})
        with LOCK:
            s.request_id, s.started, s.channel, s.verified = res["request_id"], \
                time.monotonic(), channel, False
        self._send(200, {"ok": True, "channel": channel})

    def _call(self, s, body):
        phone = normalise_phone(body.get("phone"))
        if phone is None:
            return self._send(400, {"error": "phone", "message":
                                    "Enter your number with its country code, "
                                    "for example +1 202 555 0100."})
        self._ask(s, {"phone": phone, "user_id": s.user_id, "purpose": "login"}, "voice")

    def _resend(self, s, body):
        channel = body.get("channel")
        if channel not in ("voice", "sms") or s.request_id is None:
            return self._send(400, {"error": "resend", "message": "Ask for a call first."})
        self._ask(s, {"resend_of": s.request_id, "delivery": {"channel": channel}}, channel)

    def _verify(self, s, body):
        code = re.sub(r"\s", "", str(body.get("code") or ""))
        if s.request_id is None:
            return self._send(400, {"error": "no_request", "message": "Ask for a call first."})
        if not re.fullmatch(r"[0-9]{4,10}", code):
            return self._send(400, {"error": "code", "message":
                                    "Enter the digits of the code you heard."})
        st, res = otp("POST", "/v1/verify", {"request_id": s.request_id, "code": code})
        status = res.get("status")
        if st == 200 and status == "verified":
            with LOCK:
                s.verified = True
            return self._send(200, {"verified": True})
        if st == 200 and status == "incorrect":
            left = res.get("attempts_left", 0)
            msg = ("That code is not right. %d %s left." % (left, "try" if left == 1 else "tries")
                   if left else "That code is not right, and no tries are left. "
                                "Ask for a new code.")
            return self._send(200, {"verified": False, "attempts_left": left, "message": msg})
        if st == 404:
            return self._send(200, {"verified": False, "attempts_left": 0, "message":
                                    "This code can no longer be used. Ask for a new code."})
        self._send(502, {"verified": False, "message": "We could not check the code. "
                                                       "Try again in a moment."})

    def _events(self):
        """Server-Sent Events: one `state` event per change of the session's request (the
        backend long-polls the verifier), a comment every 15 s, until the request is final or
        the session asks for another request (the page then opens a new stream). One upstream
        long-poll per open page: the stream is the wait."""
        s = session_of(self)
        if s is None or s.request_id is None:
            return self._send(404, {"error": "no_request"})
        rid = s.request_id
        self._headers(200, "text/event-stream", extra={"Connection": "close"})
        self.close_connection = True
        version, last = None, None
        try:
            while s.request_id == rid:
                # The state now, then a wait of up to 25 s for its next change; a shorter one
                # when "Didn't receive the call?" comes due by time before that.
                due = FALLBACK_AFTER_S - (time.monotonic() - s.started)
                wait = 25
                if last is not None and not last["offer_fallback"] and due > 0:
                    wait = max(1, min(25, int(due + 0.999)))
                q = "?wait=%d&since=%s" % (wait, version) if version else ""
                st, state = otp("GET", "/v1/requests/%s%s" % (rid, q))
                if st != 200:
                    state = {"status": "unavailable"}
                    time.sleep(1)
                version = state.get("version", version)
                out = public_state(s, state)
                if out != last:
                    self.wfile.write(b"event: state\ndata: " + json.dumps(out).encode() +
                                     b"\n\n")
                    last = out
                else:
                    self.wfile.write(b": still\n\n")
                self.wfile.flush()
                if out["final"] or s.verified:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    listen = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("WEB_LISTEN", "127.0.0.1:8000")
    host, port = listen.rsplit(":", 1)
    httpd = ThreadingHTTPServer((host, int(port)), Handler)
    httpd.daemon_threads = True
    print("otp web example on http://%s:%d/" % httpd.server_address[:2], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
