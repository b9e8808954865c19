#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A webhook receiver for the `hooks` bench phase: checks each OTP-Signature with the Python
example's signature_ok (examples/python/webhook_receiver.py), answers 200 after --delay
seconds, many requests at once (a thread each, HTTP/1.1 keep-alive, so the receiver is not what
is measured).
    OTP_WEBHOOK_SIGNING_SECRET=... hook_receiver.py 127.0.0.1:9000 [--delay 2]"""
import importlib.util
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "webhook_receiver", os.path.join(HERE, "..", "..", "examples", "python", "webhook_receiver.py"))
example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    delay = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--delay" else 0.0
    secret = os.environ["OTP_WEBHOOK_SIGNING_SECRET"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ok = example.signature_ok(secret, self.headers.get("OTP-Signature"), body)
            if ok and delay:
                time.sleep(delay)
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        # socketserver's listen backlog is 5: 16 new connections at once overflow it, and the
        # ones dropped wait for a SYN retransmit (1 s, 3 s, 7 s), which is then measured.
        request_queue_size = 1024

    server = Server((host, int(port)), Handler)
    server.daemon_threads = True
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
