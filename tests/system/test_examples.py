# SPDX-License-Identifier: Apache-2.0
"""Issue 23: the examples in examples/ run against the local stack, so they cannot rot: the curl,
Python (urllib) and Node (fetch) clients ask for a call, follow it by long-poll, and verify the
code the simulated callee heard; the Kafka producers (confluent-kafka, kafkajs) publish an
otp.requested event that is exactly the contract (key, headers, payload) and becomes a call; the
Python and Node webhook receivers accept a signed event and refuse a wrong signature and a
timestamp older than 5 minutes. The reference web page has its own module (test_web.py)."""

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import zlib

import jsonschema
import pytest
import yaml

import pipeline as P
from stack import free_port
from testkit import load_schema, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EX = os.path.join(ROOT, "examples")
CLIENTS = {
    "curl": ["sh", os.path.join(EX, "curl", "client.sh")],
    "python": ["/usr/bin/python3", os.path.join(EX, "python", "client.py")],
    "node": ["node", os.path.join(EX, "node", "client.mjs")],
}
PRODUCERS = {
    "python": ["/usr/bin/python3", os.path.join(EX, "python", "producer.py")],
    "node": ["node", "--preserve-symlinks", "--preserve-symlinks-main"],
}
RECEIVERS = {
    "python": ["/usr/bin/python3", os.path.join(EX, "python", "webhook_receiver.py")],
    "node": ["node", os.path.join(EX, "node", "webhook_receiver.mjs")],
}


@pytest.mark.parametrize("lang", sorted(CLIENTS))
def test_client_asks_follows_and_verifies(pipe, lang):
    number = "+1202555%04d" % (7000 + sorted(CLIENTS).index(lang))
    env = {**os.environ, "OTP_URL": "http://127.0.0.1:%d" % pipe.verifier_port,
           "OTP_API_KEY": pipe.api_key}
    p = subprocess.Popen(CLIENTS[lang] + [number, "ex-" + lang], env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rid = json.loads(p.stdout.readline())["request_id"]
        [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == number)
        wait_until(lambda: P.call_texts(pipe.calls_to(number)[0]), 30, "spoken text")
        code = P.spoken_code(P.call_texts(pipe.calls_to(number)[0])[0])
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, (lines, p.stderr.read())
            lines.append(json.loads(line))
            if lines[-1].get("status") == "delivered":
                break
        p.stdin.write(code + "\n")
        p.stdin.flush()
        last = json.loads(p.stdout.readline())
        assert p.wait(30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert last["status"] == "verified", last
    seen = [x["status"] for x in lines]
    print("%s client saw %s" % (lang, seen))
    assert seen[-1] == "delivered" and pipe.http("GET", "/v1/requests/" + rid)[1]["status"] == \
        "verified"


def producer_argv(lang, tmp_path):
    if lang != "node":
        return PRODUCERS[lang]
    # kafkajs is pinned in tests/tools (npm ci by `make test-tools`); the example imports it as an
    # application would. Node resolves an import from the importing file's folder, so the test
    # links the example and that node_modules into one folder and keeps the links' paths.
    os.symlink(os.path.join(ROOT, "tests", "tools", "node_modules"), tmp_path / "node_modules")
    os.symlink(os.path.join(EX, "node", "producer.mjs"), tmp_path / "producer.mjs")
    return PRODUCERS[lang] + [str(tmp_path / "producer.mjs")]


def message_at(bootstrap, topic, partition, offset):
    """The message at (partition, offset) of topic, with the partition count of the topic."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "examples-" + secrets.token_hex(4),
                  "enable.auto.commit": False})
    try:
        count = len(c.list_topics(topic, timeout=10).topics[topic].partitions)
        c.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                return m, count
        raise AssertionError("no message at %s/%d@%d" % (topic, partition, offset))
    finally:
        c.close()


@pytest.mark.parametrize("lang", sorted(PRODUCERS))
def test_kafka_producer_event_is_the_contract_and_calls(pipe, lang, tmp_path):
    number = "+1202555%04d" % (7100 + sorted(PRODUCERS).index(lang))
    out = subprocess.run(producer_argv(lang, tmp_path) + [number, "kafka-" + lang, "en-US"],
                         env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": pipe.bootstrap,
                              "KAFKAJS_NO_PARTITIONER_WARNING": "1"},
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    rid = res["request_id"]

    # The message as it lies on the topic: key, headers and payload as schema/ says.
    m, partitions = message_at(pipe.bootstrap, "otp.requested", res["partition"], res["offset"])
    assert m.key() == number.encode(), m.key()
    event = json.loads(m.value())
    jsonschema.Draft202012Validator(load_schema("otp.requested.schema.json")).validate(event)
    assert event["request_id"] == rid and event["phone"] == number, event
    assert event["user_id"] == "kafka-" + lang and event["locale"] == "en-US", event
    with open(os.path.join(ROOT, "schema", "asyncapi.yaml"), encoding="utf-8") as f:
        declared = yaml.safe_load(f)["components"]["messages"]["otpRequested"]["headers"]
    # The document's headers are the front door's own (otp.source, otp.api_key_id: the API key
    # that sent it, for audit); an application on Kafka sets none of them.
    assert set(declared["properties"]) == {"otp.source", "otp.api_key_id"}, declared
    assert not m.headers(), m.headers()
    # The same partition as librdkafka's default partitioner (otp-produce, the front door):
    # CRC-32 of the key modulo the partition count.
    assert res["partition"] == zlib.crc32(number.encode()) % partitions, (res, partitions)

    # It reaches a call, and the code read in it verifies.
    [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == number)
    wait_until(lambda: P.call_texts(pipe.calls_to(number)[0]), 30, "spoken text")
    code = P.spoken_code(P.call_texts(pipe.calls_to(number)[0])[0])
    pipe.status.wait_for(lambda evs: any(e.get("request_id") == rid and e["type"] == "accepted"
                                         for e in evs), what="accepted for " + rid)
    accepted = [e for e in pipe.status.of(rid) if e["type"] == "accepted"][0]
    assert accepted["user_id"] == "kafka-" + lang and accepted["locale"] == "en-US", accepted
    assert pipe.verify(rid, code)[1]["status"] == "verified"


def sign(secret, body, t):
    return "t=%d,v1=%s" % (t, hmac.new(secret.encode(), b"%d." % t + body,
                                       hashlib.sha256).hexdigest())


def post(port, body, sig):
    req = urllib.request.Request("http://127.0.0.1:%d/" % port, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"OTP-Signature": sig} if sig else {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("lang", sorted(RECEIVERS))
def test_webhook_receiver_checks_signature_and_age(lang, tmp_path):
    secret = secrets.token_urlsafe(24)
    port = free_port()
    out = open(tmp_path / "out", "w+")
    p = subprocess.Popen(RECEIVERS[lang] + ["127.0.0.1:%d" % port], stdout=out,
                         stderr=subprocess.STDOUT,
                         env={**os.environ, "OTP_WEBHOOK_SIGNING_SECRET": secret})
    try:
        event = {"event_id": "0b6e2a52-6d8e-4c8a-9f55-0a3e3f6c1d01", "type": "ringing", "seq": 3}
        body = json.dumps(event).encode()
        now = int(time.time())

        def up():
            try:
                return post(port, body, None) == 401
            except OSError:
                return False
        wait_until(up, 20, "the receiver listening")
        assert post(port, body, sign(secret, body, now)) == 200
        assert post(port, body, sign(secret, body, now - 10)) == 200  # clock skew is fine
        assert post(port, body, sign("wrong-" + secret, body, now)) == 401
        assert post(port, body + b" ", sign(secret, body, now)) == 401  # body changed
        assert post(port, body, sign(secret, body, now - 360)) == 401  # replayed, too old
        assert post(port, body, sign(secret, body, now + 360)) == 401
        assert post(port, body, "t=%d,v1=" % now) == 401
        assert post(port, body, "garbage") == 401
    finally:
        p.terminate()
        p.wait(10)
    out.seek(0)
    printed = [json.loads(ln) for ln in out.read().splitlines() if ln.startswith("{")]
    assert printed == [event, event], printed
