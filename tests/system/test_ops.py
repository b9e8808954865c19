# SPDX-License-Identifier: Apache-2.0
"""Issue 12: the service as operators run it. Health (/healthz alive, /readyz ready) and
Prometheus metrics (checked by `promtool check metrics`) on the worker and on the verifier's own
admin address, --healthcheck for container healthchecks, and the bounded, logged wait for
PostgreSQL at start. Real stack (PostgreSQL, mock Kafka broker, VoIPBin simulator).
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pipeline as P
from stack import Stack, free_port
from testkit import wait_until

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def get(port, path, timeout=10):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_status(port, path, want, timeout=30):
    """Polls GET path until it answers want; returns (status, body)."""
    return wait_until(lambda: (lambda r: r if r[0] == want else None)(get(port, path)), timeout,
                      "GET :%d%s to answer %d" % (port, path, want), interval=0.2,
                      state=lambda: "it answers %r" % (get(port, path),))


def worker_metric(pipe, name, labels=""):
    """(value of one sample or None, the whole text) of the pipeline worker's /metrics."""
    st, text = get(pipe.workers[0].listen_port, "/metrics")
    return sample(text, name, labels), text


def promtool_check(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), \
        "promtool check metrics: %s%s" % (r.stdout, r.stderr)


def sample(text, name, labels=""):
    """The value of one sample line `name{labels} value`; None when absent."""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def test_worker_is_alive_and_ready(pipe):
    st, body = get(pipe.workers[0].listen_port, "/healthz")
    assert st == 200 and json.loads(body)["status"] == "ok", body
    st, body = wait_status(pipe.workers[0].listen_port, "/readyz", 200)
    ready = json.loads(body)
    assert st == 200, body
    assert ready == {"status": "ok", "database": True, "kafka": True,
                     "partitions": ready["partitions"]} and ready["partitions"] > 0, ready


def test_verifier_admin_endpoints_are_on_their_own_port(pipe):
    st, body = get(pipe.verifier_admin_port, "/healthz")
    assert st == 200 and json.loads(body) == {"status": "ok"}
    st, body = get(pipe.verifier_admin_port, "/readyz")
    assert st == 200 and json.loads(body) == {"status": "ok", "database": True}
    for path in ("/metrics", "/healthz", "/readyz"):
        st, _ = get(pipe.verifier_port, path)
        assert st == 404, path


def version_of(program):
    """The release the program reports (`--version`: scripts/version.sh at build time)."""
    out = subprocess.run([Stack.bin(program), "--version"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == program and out[1], out
    return out[1]


def test_metrics_after_one_otp_pass_promtool_and_count_it(pipe):
    phone = "+12025557120"
    # One 429 first: the worker retries and the call goes through.
    pipe.sim.fault(path="/v1.0/calls", method="POST", fail_next=1, status=429,
                   reason="RATE_LIMIT_EXCEEDED")
    [rid] = pipe.produce([{"phone": phone, "user_id": "ops-metrics"}])
    [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == phone and c["talks"])
    code = P.spoken_code(P.call_texts(call)[0])
    st, body = pipe.verify(rid, code)
    assert (st, body["status"]) == (200, "verified"), body
    pipe.status.wait_for(lambda evs: any(e["type"] == "verified" and e["request_id"] == rid
                                         for e in evs), what="verified event")

    st, text = get(pipe.verifier_admin_port, "/metrics")
    assert st == 200
    promtool_check(text)
    assert sample(text, "otp_verifier_verify_total", '{result="verified"}') >= 1
    assert sample(text, "otp_verifier_verify_duration_seconds_count") >= 1
    assert sample(text, "otp_build_info",
                  '{program="otp-verifier",version="%s"}' % version_of("otp-verifier")) == 1

    # The relay runs after the verifier's event: wait until the worker has counted it.
    _, text = wait_until(
        lambda: (lambda r: r if (r[0] or 0) >= 1 else None)(
            worker_metric(pipe, "otp_worker_status_events_total", '{type="verified"}')),
        30, "the worker to count a verified event", interval=0.3)
    promtool_check(text)
    assert sample(text, "otp_worker_status_events_total", '{type="verified"}') >= 1
    assert sample(text, "otp_worker_status_events_total", '{type="call_requested"}') >= 1
    assert sample(text, "otp_worker_requests_total", '{outcome="accepted"}') >= 1
    assert sample(text, "otp_worker_calls_total", '{outcome="placed"}') >= 1
    assert sample(text, "otp_worker_request_to_call_seconds_count") >= 1
    assert sample(text, "otp_voipbin_request_duration_seconds_count", '{op="create_call"}') >= 2
    assert sample(text, "otp_voipbin_responses_total", '{status="429"}') >= 1
    assert sample(text, "otp_voipbin_rate_limited_total") >= 1
    assert sample(text, "otp_voipbin_responses_total", '{status="2xx"}') >= 1
    assert sample(text, "otp_worker_partitions_assigned") > 0
    assert sample(text, "otp_worker_consumer_lag_messages") >= 0
    assert sample(text, "otp_worker_outbox_backlog") >= 0
    assert sample(text, "otp_worker_calls_in_flight") >= 0
    assert sample(text, "otp_build_info",
                  '{program="otp-worker",version="%s"}' % version_of("otp-worker")) == 1
    # Every family says what it is.
    families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    assert families == helps and len(families) >= 15


def test_dead_letters_are_counted_by_reason(pipe):
    pipe.raw_kafka([b'{"request_id":"not-a-uuid"}'], key=b"+15557120002")
    n, text = wait_until(
        lambda: (lambda r: r if r[0] else None)(
            worker_metric(pipe, "otp_worker_dlq_messages_total", '{reason="invalid_request_id"}')),
        30, "the worker to count the dead letter", interval=0.3)
    assert n == 1, text


def test_healthcheck_flag(pipe):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    ok = subprocess.run([Stack.bin("otp-worker"), "--healthcheck"], capture_output=True, text=True,
                        env=dict(env, OTP_WORKER_LISTEN="0.0.0.0:%d" % pipe.workers[0].listen_port), timeout=10)
    assert ok.returncode == 0, ok.stderr
    ok = subprocess.run([Stack.bin("otp-verifier"), "--healthcheck"], capture_output=True, text=True,
                        env=dict(env, OTP_VERIFIER_ADMIN_LISTEN="127.0.0.1:%d"
                                 % pipe.verifier_admin_port), timeout=10)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([Stack.bin("otp-worker"), "--healthcheck"], capture_output=True, text=True,
                         env=dict(env, OTP_WORKER_LISTEN="127.0.0.1:%d" % free_port()), timeout=10)
    assert bad.returncode == 1 and "not healthy" in bad.stderr


def test_worker_waits_for_postgres_with_a_logged_backoff_then_gives_up(pipe):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTP_", "KAFKA_"))}
    env.update(pipe.env(OTP_DATABASE_URL="postgresql://otp@127.0.0.1:%d/otp" % free_port(),
                        OTP_WORKER_LISTEN="", OTP_STARTUP_TIMEOUT_SECONDS=3, OTP_LOG_FORMAT="json"))
    t = time.monotonic()
    r = subprocess.run([Stack.bin("otp-worker")], capture_output=True, text=True, env=env,
                       timeout=30)
    took = time.monotonic() - t
    assert r.returncode == 2, r.stderr
    assert "OTP_DATABASE_URL" in r.stderr and "gave up" in r.stderr
    waits = [json.loads(l) for l in r.stderr.splitlines() if '"waiting_for"' in l]
    assert [w["attempt"] for w in waits] == list(range(1, len(waits) + 1)) and len(waits) >= 2
    assert [w["retry_in_ms"] for w in waits[:2]] == [500, 1000]
    assert 0 < waits[-1]["retry_in_ms"] <= 2000
    assert all(w["service"] == "database" and w["level"] == "warn" for w in waits)
    assert 2.9 <= took < 15, took


def test_worker_waits_for_postgres_that_comes_up_late(pipe):
    """The database answers only after a few seconds (a TCP relay opened late): the worker waits,
    then starts and reports ready."""
    import socket
    import threading

    port = free_port()
    pg_port = int(re.search(r":(\d+)/", pipe.db_url).group(1))
    stop = threading.Event()

    def relay():
        time.sleep(2.5)
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(16)
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            u = socket.create_connection(("127.0.0.1", pg_port))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=pipe_bytes, args=(a, b), daemon=True).start()
        srv.close()

    def pipe_bytes(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    th = threading.Thread(target=relay, daemon=True)
    th.start()
    url = re.sub(r":\d+/", ":%d/" % port, pipe.db_url, count=1)
    admin = free_port()
    try:
        w = pipe.s.spawn("late-db-worker", [Stack.bin("otp-worker")],
                         env=pipe.env(OTP_DATABASE_URL=url, OTP_WORKER_ID="late-db", OTP_CONSUMER_GROUP="late-db",
                                      OTP_WORKER_LISTEN="127.0.0.1:%d" % admin),
                         ready_line=r"event=worker_started", timeout=30)
        st, body = wait_status(admin, "/healthz", 200)
        assert st == 200, body
        with open(w.log_path, encoding="utf-8", errors="replace") as f:
            log = f.read()
        assert "event=waiting_for service=database attempt=1" in log
        assert "event=service_up service=database" in log
        assert w.stop() == 0
    finally:
        stop.set()
        th.join(5)


def test_worker_not_ready_while_the_broker_is_down(pipe):
    assert pipe.s.kafka.control("down 1").startswith("ok")
    try:
        st, body = wait_status(pipe.workers[0].listen_port, "/readyz", 503, timeout=20)
        assert st == 503 and json.loads(body)["kafka"] is False, body
        st, body = get(pipe.workers[0].listen_port, "/healthz")
        assert st == 200, body
    finally:
        assert pipe.s.kafka.control("up 1").startswith("ok")
    st, body = wait_status(pipe.workers[0].listen_port, "/readyz", 200, timeout=60)
    assert st == 200, body
