# SPDX-License-Identifier: Apache-2.0
"""Issue 20: HTTPS on the verifier's own listeners (libmicrohttpd with GnuTLS). A verifier with a
test certificate on its API listener and another on its webhook listener answers an API request
and a signed VoIPBin webhook over TLS, refuses plain HTTP there, loads a new certificate on
SIGHUP without dropping the listener, keeps the one in use when the new file is bad, and refuses
to start with a certificate and no key, naming the setting."""

import hashlib
import json
import os
import signal
import socket
import ssl
import http.client
import subprocess
import uuid

import pytest

from stack import Stack, free_port
from testkit import wait_until, webhook_signature


def make_cert(folder, name, cn):
    cert, key = os.path.join(folder, name + ".crt"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=" + cn,
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def served_cert(port):
    """The DER certificate a TLS handshake on 127.0.0.1:port presents (no verification)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            return s.getpeercert(binary_form=True)


def fingerprint_of(pem_path):
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return hashlib.sha256(der).hexdigest()


def https(port, ca, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=ca)
    conn_headers = {"Content-Type": "application/json", **(headers or {})}
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers=conn_headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data or b"{}")


@pytest.fixture(scope="module")
def pipeline_options():
    return {}


def test_https_on_both_listeners_and_reload_on_sighup(pipe, tmp_path):
    api_cert, api_key = make_cert(str(tmp_path), "api", "otp-api-1")
    hook_cert, hook_key = make_cert(str(tmp_path), "hook", "otp-hooks-1")
    api_port, hook_port = free_port(), free_port()
    env = pipe.env(OTP_VERIFIER_LISTEN="127.0.0.1:%d" % api_port,
                   OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % hook_port,
                   OTP_VERIFIER_ADMIN_LISTEN="127.0.0.1:0",
                   OTP_VERIFIER_TLS_CERT_FILE=api_cert, OTP_VERIFIER_TLS_KEY_FILE=api_key,
                   OTP_WEBHOOK_TLS_CERT_FILE=hook_cert, OTP_WEBHOOK_TLS_KEY_FILE=hook_key)
    v = pipe.s.spawn("verifier-tls", [Stack.bin("otp-verifier")], env=env,
                     ready_line=r"event=verifier_started")
    # The API over TLS: the key checked, an unknown id answered 404 as on plain HTTP.
    st, body = https(api_port, api_cert, "GET", "/v1/requests/%s" % uuid.uuid4(),
                     headers={"Authorization": "Bearer " + pipe.api_key})
    assert st == 404 and body["error"]["code"] == "not_found", body
    st, body = https(api_port, api_cert, "GET", "/v1/requests/%s" % uuid.uuid4())
    assert st == 401, body
    # The webhook listener with its own certificate: a signed event for no call of ours.
    event = {"type": "call_progressing", "data": {"id": str(uuid.uuid4()), "status": "progressing",
                                                  "direction": "outgoing",
                                                  "destination": {"type": "tel",
                                                                  "target": "+12025550100"}}}
    raw = json.dumps(event)
    st, body = https(hook_port, hook_cert, "POST", "/v1/webhooks/voipbin", json.loads(raw),
                     headers={"X-VoIPBIN-Signature":
                              webhook_signature(pipe.webhook_secret, raw.encode())})
    assert st == 200 and "applied" in body, body
    assert hashlib.sha256(served_cert(api_port)).hexdigest() == fingerprint_of(api_cert)
    assert hashlib.sha256(served_cert(hook_port)).hexdigest() == fingerprint_of(hook_cert)
    # Plain HTTP on a TLS listener gets no HTTP answer.
    with socket.create_connection(("127.0.0.1", api_port), timeout=5) as s:
        s.sendall(b"GET /v1/requests/x HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            answer = s.recv(100)
        except (socket.timeout, ConnectionResetError):
            answer = b""
    assert not answer.startswith(b"HTTP/"), answer

    # A new certificate in the same files, then SIGHUP: new handshakes get it, no restart.
    new_cert, new_key = make_cert(str(tmp_path), "api2", "otp-api-2")
    os.replace(new_cert, api_cert)
    os.replace(new_key, api_key)
    v.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: hashlib.sha256(served_cert(api_port)).hexdigest() ==
               fingerprint_of(api_cert) or None, 10, "the new certificate after SIGHUP")
    assert v.alive()
    # A bad file on the next SIGHUP: logged, the certificate in use stays.
    good = fingerprint_of(api_cert)
    with open(api_cert, "w") as f:
        f.write("not a certificate\n")
    v.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "tls_reload_failed" in open(v.log_path, errors="replace").read() or None,
               10, "tls_reload_failed")
    assert hashlib.sha256(served_cert(api_port)).hexdigest() == good
    assert v.alive()
    assert v.stop() == 0


def test_a_certificate_without_its_key_stops_the_start(pipe, tmp_path):
    cert, _ = make_cert(str(tmp_path), "lonely", "otp-lonely")
    env = pipe.env(OTP_VERIFIER_LISTEN="127.0.0.1:%d" % free_port(),
                   OTP_WEBHOOK_LISTEN="127.0.0.1:%d" % free_port(),
                   OTP_VERIFIER_ADMIN_LISTEN="", OTP_WEBHOOK_TLS_CERT_FILE=cert)
    out = subprocess.run([Stack.bin("otp-verifier")], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "OTP_WEBHOOK_TLS_KEY_FILE" in out.stderr, out.stderr
    env["OTP_WEBHOOK_TLS_KEY_FILE"] = cert  # a certificate is no key
    out = subprocess.run([Stack.bin("otp-verifier")], env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2 and "OTP_WEBHOOK_TLS_KEY_FILE" in out.stderr, out.stderr
