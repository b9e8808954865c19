#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Receives signed status webhooks (Python standard library only) and checks them before use:
header `OTP-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>`, refused
(401) when the signature does not match or t is more than 5 minutes away (a replay).
    OTP_WEBHOOK_SIGNING_SECRET=... python3 webhook_receiver.py 127.0.0.1:9000
Prints each accepted event as one JSON line."""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE = 300


def signature_ok(secret, header, body, now=None):
    """True when header signs body with secret, its time within 5 minutes of now."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > TOLERANCE:
        return False
    want = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not signature_ok(os.environ["OTP_WEBHOOK_SIGNING_SECRET"],
                            self.headers.get("OTP-Signature"), body):
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error":"bad or old signature"}')
            return
        print(json.dumps(json.loads(body)), flush=True)  # use the event here (dedup by event_id)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    HTTPServer((host, int(port)), Handler).serve_forever()
