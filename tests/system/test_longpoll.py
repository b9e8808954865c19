# SPDX-License-Identifier: Apache-2.0
"""Issue 23: the application's side of GET /v1/requests/{id} on the real local stack: a request
accepted by POST /v1/requests is readable at once (`queued`, never 404), `?wait=N` answers as
soon as the state changes (connections suspended, not parked on HTTP threads), and the CORS
policy (OPTIONS preflight without a key, OTP_CORS_ORIGINS allowlist, none by default)."""

import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

import pipeline as P
from testkit import wait_until

ORIGIN = "http://app.test:8080"


@pytest.fixture(scope="module")
def pipeline_options():
    # Few HTTP threads, so that the waiting test below outnumbers them.
    return {"verifier_env": {"OTP_CORS_ORIGINS": "https://other.test, " + ORIGIN,
                             "OTP_VERIFIER_THREADS": "2"}}


def phone(i):
    return "+1202555%04d" % (6000 + i)


def get(pipe, rid, query=""):
    return pipe.http("GET", "/v1/requests/%s%s" % (rid, query))


def raw(pipe, method, path, headers):
    """(status, headers, body) of a request sent with exactly these headers."""
    url = "http://127.0.0.1:%d%s" % (pipe.verifier_port, path)
    req = urllib.request.Request(url, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_accepted_request_is_readable_at_once_never_404(pipe):
    seen = []
    for i in range(20):
        st, body = pipe.http("POST", "/v1/requests", {"user_id": "lp-q-%d" % i, "phone": phone(i)})
        assert st == 202, body
        st, state = get(pipe, body["request_id"])
        assert st == 200, (i, state)
        assert state["request_id"] == body["request_id"] and state["version"], state
        seen.append(state["status"])
    assert "queued" in seen, seen
    queued = [s for s in seen if s == "queued"]
    print("immediate reads: %d queued, others %s" % (len(queued), sorted(set(seen) - {"queued"})))


def test_queued_shows_the_masked_phone_and_ends_when_a_worker_reads_it(pipe):
    st, body = pipe.http("POST", "/v1/requests", {"user_id": "lp-q2", "phone": phone(30)})
    assert st == 202, body
    rid = body["request_id"]
    st, state = get(pipe, rid)
    if state["status"] == "queued":
        assert state == {"request_id": rid, "status": "queued", "phone": "+12*******30",
                         "service": "default", "version": state["version"]}, state
    # Long-poll from whatever it is now: answered with another state, before the wait ends.
    t0 = time.monotonic()
    st, nxt = get(pipe, rid, "?wait=25&since=" + state["version"])
    took = time.monotonic() - t0
    assert st == 200 and nxt["version"] != state["version"], (state, nxt)
    assert took < 20, took


def call_of(pipe, number):
    [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == number)
    wait_until(lambda: P.call_texts(pipe.calls_to(number)[0]), 30, "the call's spoken text")
    return pipe.calls_to(number)[0]


def test_wait_answers_as_soon_as_the_state_changes(pipe):
    number = phone(31)
    st, body = pipe.http("POST", "/v1/requests", {"user_id": "lp-w", "phone": number})
    assert st == 202, body
    rid = body["request_id"]
    code = P.spoken_code(P.call_texts(call_of(pipe, number))[0])
    assert code
    st, state = wait_until(lambda: (lambda r: r if r[1].get("status") == "delivered" else None)(
        get(pipe, rid)), 60, "delivered")
    # A waiter on the delivered state; the verify changes it: the answer follows at once.
    result = {}

    def poll():
        t0 = time.monotonic()
        result["answer"] = get(pipe, rid, "?wait=25")
        result["at"] = time.monotonic()
        result["took"] = result["at"] - t0
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(2)
    assert "answer" not in result, result  # still waiting: nothing changed
    st, res = pipe.verify(rid, code)
    assert st == 200 and res["status"] == "verified", res
    verified_at = time.monotonic()
    t.join(30)
    assert not t.is_alive()
    st, after = result["answer"]
    assert st == 200 and after["status"] == "verified", after
    assert after["version"] != state["version"]
    lag = result["at"] - verified_at
    print("long-poll answered %.3f s after the verify (waited %.1f s)" % (lag, result["took"]))
    assert lag < 2.0, lag


def test_wait_without_change_ends_at_the_deadline_with_the_same_state(pipe):
    st, body = pipe.http("POST", "/v1/requests", {"resend_of": str(uuid.uuid4())})
    assert st == 202, body
    rid = body["request_id"]
    st, state = wait_until(lambda: (lambda r: r if r[1].get("status") == "rejected" else None)(
        get(pipe, rid)), 60, "rejected")
    t0 = time.monotonic()
    st, again = get(pipe, rid, "?wait=3")
    took = time.monotonic() - t0
    assert st == 200 and again == state, (state, again)
    assert 2.9 <= took < 8, took
    # A `since` that is not the current state answers at once.
    t0 = time.monotonic()
    st, again = get(pipe, rid, "?wait=25&since=0123456789abcdef")
    assert st == 200 and again == state and time.monotonic() - t0 < 2


def test_waiters_do_not_hold_http_threads(pipe):
    """20 waiters on a verifier with 2 HTTP threads: other requests are still answered."""
    st, body = pipe.http("POST", "/v1/requests", {"resend_of": str(uuid.uuid4())})
    rid = body["request_id"]
    wait_until(lambda: get(pipe, rid)[1].get("status") == "rejected", 60, "rejected")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(get(pipe, rid, "?wait=6")))
               for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    t0 = time.monotonic()
    st, res = get(pipe, str(uuid.uuid4()))
    assert st == 404 and res["error"]["code"] == "not_found"
    quick = time.monotonic() - t0
    for t in threads:
        t.join(30)
    assert len(answers) == 20 and all(a[0] == 200 for a in answers), answers
    print("a read beside 20 waiters on 2 threads: %.3f s" % quick)
    assert quick < 1.5, quick


@pytest.mark.parametrize("query,code", [("?wait=26", "invalid_wait"), ("?wait=abc", "invalid_wait"),
                                        ("?wait=-1", "invalid_wait"), ("?wait=5x", "invalid_wait"),
                                        ("?wait=5&since=xyz", "invalid_since")])
def test_bad_wait_is_a_400_with_a_message(pipe, query, code):
    st, res = get(pipe, str(uuid.uuid4()), query)
    assert st == 400 and res["error"]["code"] == code and res["error"]["message"], res


def test_cors_preflight_and_allowlist(pipe):
    rid = str(uuid.uuid4())
    path = "/v1/requests/" + rid
    pre = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "authorization"}
    st, h, body = raw(pipe, "OPTIONS", path, pre)
    assert st == 204, (st, body)
    assert h["Access-Control-Allow-Origin"] == ORIGIN and "Origin" in h["Vary"]
    assert "GET" in h["Access-Control-Allow-Methods"]
    assert "authorization" in h["Access-Control-Allow-Headers"].lower()
    st, h, body = raw(pipe, "OPTIONS", "/v1/verify", dict(pre, Origin="https://other.test"))
    assert st == 204 and h["Access-Control-Allow-Origin"] == "https://other.test"
    # Not on the list (a prefix of an allowed one too): 403 with a message, no CORS header.
    for origin in ("http://evil.test", "http://app.test:808", ORIGIN + ".evil"):
        st, h, body = raw(pipe, "OPTIONS", path, dict(pre, Origin=origin))
        assert st == 403 and b"OTP_CORS_ORIGINS" in body, (origin, st, body)
        assert "Access-Control-Allow-Origin" not in h
    # The real request still needs the key; its answers carry the header for the allowed origin.
    auth = {"Authorization": "Bearer " + pipe.api_key}
    st, h, body = raw(pipe, "GET", path, {"Origin": ORIGIN, **auth})
    assert st == 404 and h["Access-Control-Allow-Origin"] == ORIGIN
    st, h, body = raw(pipe, "GET", path, {"Origin": ORIGIN})
    assert st == 401 and h["Access-Control-Allow-Origin"] == ORIGIN
    st, h, body = raw(pipe, "GET", path, {"Origin": "http://evil.test", **auth})
    assert st == 404 and "Access-Control-Allow-Origin" not in h
