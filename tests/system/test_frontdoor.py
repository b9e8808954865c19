# SPDX-License-Identifier: Apache-2.0
"""Issue 13: the HTTP front door on the verifier, on the real local stack (otp-verifier and
otp-worker as processes, the mock Kafka cluster, PostgreSQL, the VoIPBin simulator):
POST /v1/requests (API key, validated like the otp.requested topic, published keyed by the
phone, 202 with the URL to poll) and GET /v1/requests/{id} (the request's public state, masked).
The same request_id twice places one call; bad input is a 4xx with a clear JSON message; Kafka
down is a 503 with nothing left half-done; the abuse limits of the workers apply."""

import json
import time
import urllib.request
import uuid

import pytest

import pipeline as P
from testkit import wait_until


@pytest.fixture(scope="module")
def pipeline_options():
    return {"worker_env": {"OTP_LIMIT_PHONE_15MIN": "2"},
            "verifier_env": {"OTP_FRONT_DOOR_TIMEOUT_MS": "1500"}}


@pytest.fixture(scope="module")
def requested(pipe):
    """Every message on otp.requested, read by an independent client."""
    r = P.StatusReader(pipe.bootstrap, "otp.requested")
    yield r
    r.close()


def phone(i):
    return "+1202555%04d" % (5000 + i)


def post(pipe, body, **kw):
    return pipe.http("POST", "/v1/requests", body, **kw)


def get(pipe, rid):
    return pipe.http("GET", "/v1/requests/%s" % rid)


def wait_state(pipe, rid, pred, timeout=60):
    last = []

    def reached():
        last[:] = get(pipe, rid)
        return tuple(last) if pred(*last) else None
    return wait_until(reached, timeout, "GET %s to reach the state" % rid, interval=0.2,
                      state=lambda: "%s %s" % tuple(last))


def messages(requested, rid):
    return [e for e in requested.snapshot() if e.get("request_id") == rid]


def test_post_publishes_and_get_shows_masked_state(pipe, requested):
    rid = str(uuid.uuid4())
    st, body = post(pipe, {"request_id": rid, "user_id": "fd-1", "phone": phone(1),
                           "locale": "en-US", "metadata": {"order": "A-1"}})
    assert st == 202, body
    assert body == {"request_id": rid, "status": "accepted", "status_url": "/v1/requests/" + rid}
    # On the topic, keyed by the phone like every request for that number.
    requested.wait_for(lambda evs: messages(requested, rid), what="the message")
    [m] = messages(requested, rid)
    assert m["_key"] == phone(1) and m["user_id"] == "fd-1" and m["requested_at"]
    assert m["_headers"].get("otp.source") == b"http"
    pipe.wait_calls(1, pred=lambda c: c["target"] == phone(1))
    st, state = wait_state(pipe, rid, lambda s, b: s == 200 and b["status"] in
                           ("call_requested", "ringing", "answered", "delivered"))
    assert state["phone"] == "+12*******01" and state["request_id"] == rid
    text = json.dumps(state)
    assert phone(1) not in text and "code" not in state and "reason" not in state
    pipe.status.wait_for(lambda evs: any(e.get("request_id") == rid and e["type"] == "accepted"
                                         for e in evs), what="accepted event")

    # Without a request_id, one is made; the answer names it.
    st, body = post(pipe, {"user_id": "fd-2", "phone": phone(2)})
    assert st == 202 and uuid.UUID(body["request_id"]), body
    assert body["status_url"] == "/v1/requests/" + body["request_id"]
    wait_state(pipe, body["request_id"], lambda s, b: s == 200)


def test_same_request_id_twice_is_one_call(pipe, requested):
    rid = str(uuid.uuid4())
    req = {"request_id": rid, "user_id": "fd-3", "phone": phone(3)}
    # Twice at once (before any worker has it): both accepted, ingest keeps one.
    answers = [post(pipe, req), post(pipe, req)]
    assert answers[0] == answers[1] and answers[0][0] == 202, answers
    pipe.wait_calls(1, pred=lambda c: c["target"] == phone(3))
    wait_state(pipe, rid, lambda s, b: s == 200)
    # Both answers came after the broker's acknowledgement: the independent reader has both
    # messages once it has caught up (it may still be behind when the worker has called).
    wait_until(lambda: messages(requested, rid), 30, "the message on otp.requested")
    time.sleep(2)
    published = len(messages(requested, rid))
    # Again once the worker has it: the same answer, and nothing is published.
    assert post(pipe, req) == answers[0]
    assert post(pipe, dict(req, user_id="someone-else")) == answers[0]
    time.sleep(3)
    assert len(messages(requested, rid)) == published <= 2
    assert len(pipe.calls_to(phone(3))) == 1


def test_bad_input_is_a_clear_4xx(pipe):
    cases = [
        ({"user_id": "fd-4"}, 400, "missing_phone"),
        ({"phone": phone(4)}, 400, "missing_user_id"),
        ({"user_id": "fd-4", "phone": "+15551234567"}, 400, "invalid_phone"),  # no 555 area
        ({"user_id": "fd-4", "phone": phone(4), "colour": "red"}, 400, "unknown_field"),
        ({"user_id": "fd-4", "phone": phone(4), "ttl_seconds": 3600}, 400, "invalid_ttl"),
        ({"user_id": "fd-4", "phone": phone(4), "request_id": "nope"}, 400, "invalid_request_id"),
        ([1, 2], 400, "invalid_request"),
    ]
    for body, want, code in cases:
        st, res = post(pipe, body)
        assert (st, res["error"]["code"]) == (want, code), (body, st, res)
        assert res["error"]["message"] and "1555" not in json.dumps(res)
    st, res = post(pipe, None, raw=b"{not json")
    assert st == 400 and res["error"]["code"] == "invalid_request", res
    st, res = post(pipe, None, raw=b'{"user_id":"a","phone":"+12025555004"}',
                   headers={"Content-Type": "text/plain"})
    assert st == 415, res
    st, res = post(pipe, {"user_id": "fd-4", "phone": phone(4)}, auth=False)
    assert st == 401, res
    st, res = post(pipe, {"user_id": "fd-4", "phone": phone(4)},
                   headers={"Authorization": "Bearer wrong-key-0123456789"})
    assert st == 401, res
    st, res = pipe.http("GET", "/v1/requests")
    assert st == 405, res
    st, res = post(pipe, None, raw=json.dumps({"user_id": "x" * 9000, "phone": phone(4)}).encode())
    assert st == 413, res
    assert pipe.calls_to(phone(4)) == []
    st, res = get(pipe, str(uuid.uuid4()))
    assert st == 404 and res["error"]["code"] == "not_found"


def test_limits_apply_and_rejections_show_in_get(pipe):
    ids = []
    for i in range(3):  # three users, one number: the third is over OTP_LIMIT_PHONE_15MIN=2
        st, body = post(pipe, {"user_id": "fd-lim-%d" % i, "phone": phone(5)})
        assert st == 202, body
        ids.append(body["request_id"])
    st, state = wait_state(pipe, ids[2], lambda s, b: s == 200 and b["status"] == "rate_limited")
    assert state["reason"] == "phone_15min" and state["phone"] == "+12*******05", state
    time.sleep(1)
    assert len(pipe.calls_to(phone(5))) == 2

    # Valid in form, refused by ingest (resend_of names no request): rejected, with the reason.
    st, body = post(pipe, {"resend_of": str(uuid.uuid4())})
    assert st == 202, body
    st, state = wait_state(pipe, body["request_id"], lambda s, b: s == 200 and
                           b["status"] != "queued")
    assert state["status"] == "rejected" and state["reason"] == "unknown_resend_of", state
    assert "message" in state


def test_kafka_down_is_503_and_nothing_half_done(pipe, requested):
    rid = str(uuid.uuid4())
    req = {"request_id": rid, "user_id": "fd-6", "phone": phone(6)}
    assert pipe.s.kafka.control("down 1").startswith("ok")
    try:
        t0 = time.monotonic()
        st, res = post(pipe, req)
        took = time.monotonic() - t0
    finally:
        assert pipe.s.kafka.control("up 1").startswith("ok")
    assert st == 503 and res["error"]["code"] == "unavailable", res
    assert "same request_id" in res["error"]["message"]
    assert took < 8, took
    time.sleep(4)
    assert messages(requested, rid) == []
    assert get(pipe, rid)[0] == 404
    assert pipe.calls_to(phone(6)) == []

    # Sent again with the same request_id once Kafka is back: one request, one call.
    last = []

    def accepted():
        last[:] = post(pipe, req)
        return last[0] == 202
    wait_until(accepted, 30, "202 once Kafka is back", interval=1,
               state=lambda: "%s %s" % tuple(last))
    pipe.wait_calls(1, pred=lambda c: c["target"] == phone(6))
    time.sleep(2)
    assert len(pipe.calls_to(phone(6))) == 1


def test_metrics_count_the_front_door(pipe):
    url = "http://127.0.0.1:%d/metrics" % pipe.verifier_admin_port
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    text = opener.open(url, timeout=10).read().decode()
    assert 'otp_verifier_front_door_total{result="queued"}' in text
    assert 'otp_verifier_front_door_total{result="repeated"}' in text
