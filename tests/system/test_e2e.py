# SPDX-License-Identifier: Apache-2.0
"""Issue 3: a voice OTP end to end on the real local stack.

PostgreSQL server, the Kafka protocol broker (librdkafka mock cluster), the VoIPBin simulator,
otp-worker and otp-verifier are real processes on loopback; requests go in with otp-produce;
status events and the DLQ are read back with an independent Kafka client (confluent_kafka).
"""

import json
import re
import time
import uuid


import pipeline as P
from testkit import dlq_visible_uuid, load_schema


def phone(i, base=2025550000):
    return "+1%010d" % (base + i)


types_of = P.types_of


def test_fifty_requests_called_read_and_verified(pipe):
    import jsonschema
    reqs = [{"phone": phone(i), "user_id": "user-%d" % i, "metadata": {"n": i}} for i in range(50)]
    ids = pipe.produce(reqs)
    assert len(ids) == 50
    by_phone = {r["phone"]: rid for r, rid in zip(reqs, ids)}

    # Each call is answered, then its message is spoken: two talks around the heard marker
    # (the first reading, then the rest), so wait for both.
    calls = pipe.wait_calls(50, pred=lambda c: c["target"] in by_phone and len(c["talks"]) >= 2)
    assert len(calls) == 50, "one call per request"
    for c in calls:
        body = P.call_request(c)
        # Faithful to the real API: destinations plural with type tel, caller ID as source,
        # inline actions: talk (language, text valid in <speak>) then hangup.
        assert body["source"] == {"type": "tel", "target": P.CALLER_ID}
        assert body["destinations"] == [{"type": "tel", "target": c["target"]}]
        assert "destination" not in body
        types = [a["type"] for a in body["actions"]]
        assert types[-1] == "hangup" and "talk" in types
        talk = [a for a in body["actions"] if a["type"] == "talk"][0]["option"]
        assert talk["language"] == "en-US"
        assert talk["text"].startswith("<speak>") and talk["text"].endswith("</speak>")
        assert "gender" not in talk
        texts = P.call_texts(c)
        assert texts and not any(t.get("failed") for t in c["talks"]), c["talks"]
        code = P.spoken_code(texts[0])
        assert code and len(code) == 6
        # The message is two talks around the heard marker (webhook_send otp_heard): the first
        # reading, then the rest.
        assert types[types.index("talk") + 1] == "webhook_send", types
        first = re.sub(r"<[^>]*>", "", texts[0])
        plain = first + re.sub(r"<[^>]*>", "", texts[1])
        assert first.count(code) == 1, "the first talk reads the code once: %r" % first
        assert plain.count(code) == 2, "the code is said twice: %r" % plain
        assert "Acme will never ask you for this code." in plain, plain

    # Status: accepted + call_requested for every request, valid against the schema.
    schema = load_schema("otp.call_status.schema.json")
    evs = pipe.status.wait_for(
        lambda evs: all({"accepted", "call_requested"} <= {e["type"] for e in evs
                                                            if e.get("request_id") == rid}
                        for rid in ids), timeout=60, what="accepted + call_requested x50")
    for e in evs:
        jsonschema.validate({k: v for k, v in e.items() if not k.startswith("_")}, schema)
        assert e["_key"] == e["request_id"]
    for rid in ids:
        ts = types_of(pipe, rid)
        assert ts.count("accepted") == 1 and ts.count("call_requested") == 1, ts
        assert ts.index("accepted") < ts.index("call_requested")

    # Verify every code taken from the spoken text; a second use is refused.
    for c in calls:
        rid = by_phone[c["target"]]
        code = P.spoken_code(P.call_texts(c)[0])
        st, body = pipe.verify(rid, code)
        assert (st, body["status"], body["valid"]) == (200, "verified", True), body
        st2, body2 = pipe.verify(rid, code)
        assert (st2, body2["status"], body2["valid"]) == (404, "rejected", False), body2
    pipe.status.wait_for(lambda evs: sum(e["type"] == "verified" for e in evs
                                         if e.get("request_id") in ids) == 50,
                         what="50 verified events")
    # The call webhooks reached the verifier: progress is on the topic.
    pipe.status.wait_for(lambda evs: sum(e["type"] == "delivered" for e in evs
                                         if e.get("request_id") in ids) == 50,
                         timeout=60, what="50 delivered events from webhooks")
    for rid in ids[:5]:
        ts = types_of(pipe, rid)
        assert "answered" in ts and "delivered" in ts, ts


def test_wrong_codes_lock_the_challenge(pipe):
    [rid] = pipe.produce([{"phone": phone(100), "user_id": "locker"}])
    [call] = pipe.wait_calls(1, pred=lambda c: c["target"] == phone(100) and c["talks"])
    code = P.spoken_code(P.call_texts(call)[0])
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    lefts = []
    for _ in range(5):
        st, body = pipe.verify(rid, wrong)
        assert (st, body["status"]) == (200, "incorrect"), body
        lefts.append(body["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    # Locked: even the right code is refused now, with the same answer as an unknown request.
    st, body = pipe.verify(rid, code)
    st_unknown, body_unknown = pipe.verify(str(uuid.uuid4()), code)
    assert st == st_unknown == 404
    assert {k: v for k, v in body.items() if k != "request_id"} == \
        {k: v for k, v in body_unknown.items() if k != "request_id"}
    evs = pipe.status.wait_for(lambda evs: "locked" in [e["type"] for e in evs
                                                        if e.get("request_id") == rid],
                               what="locked event")
    assert types_of(pipe, rid).count("verify_failed") == 5
    st, body = pipe.http("GET", "/v1/requests/" + rid)
    assert st == 200 and body["status"] == "locked" and body["attempts_left"] == 0
    assert "*" in body["phone"]


def test_duplicate_request_id_makes_no_second_call(pipe):
    rid = str(uuid.uuid4())
    req = {"request_id": rid, "phone": phone(200), "user_id": "dup"}
    pipe.produce([req])
    pipe.wait_calls(1, pred=lambda c: c["target"] == phone(200))
    pipe.produce([req, req])  # redelivered / re-sent in a batch
    pipe.status.wait_for(lambda evs: "call_requested" in [e["type"] for e in evs
                                                          if e.get("request_id") == rid])
    time.sleep(3)  # time for a wrong second call to show up
    assert len(pipe.calls_to(phone(200))) == 1
    assert types_of(pipe, rid).count("accepted") == 1


def test_invalid_event_goes_to_dlq_and_the_next_is_served(pipe):
    import jsonschema
    bad_rid = dlq_visible_uuid()
    bad = json.dumps({"request_id": bad_rid, "user_id": "x", "phone": "0049151",
                      "requested_at": "2026-01-01T00:00:00Z"}).encode()
    # Same key as the valid one: same partition, so the bad one must not stall it.
    pipe.raw_kafka([bad, b"{not json"], key=phone(300).encode())
    [good] = pipe.produce([{"phone": phone(300), "user_id": "after-bad"}])
    pipe.wait_calls(1, pred=lambda c: c["target"] == phone(300))
    dl = pipe.dlq.wait_for(lambda evs: len([e for e in evs if bad_rid in e.get("original", "")
                                            or e.get("original") == "{not json"]) == 2,
                           what="2 DLQ entries")
    schema = load_schema("otp.requested.dlq.schema.json")
    mine = [e for e in dl if bad_rid in e.get("original", "") or e.get("original") == "{not json"]
    for e in mine:
        jsonschema.validate({k: v for k, v in e.items() if not k.startswith("_")}, schema)
    reasons = sorted(e["reason"] for e in mine)
    assert reasons == ["invalid_json", "invalid_phone"]
    assert all(e["_headers"].get("dlq.reason") for e in mine)
    # The rejection is on the status topic too, under the request's id.
    pipe.status.wait_for(lambda evs: any(e.get("request_id") == bad_rid and e["type"] == "rejected"
                                         and e["reason"] == "invalid_phone" for e in evs))
    pipe.status.wait_for(lambda evs: "call_requested" in [e["type"] for e in evs
                                                          if e.get("request_id") == good])


def test_verifier_refuses_bad_requests_clearly(pipe):
    rid = str(uuid.uuid4())
    assert pipe.http("POST", "/v1/verify", {"request_id": rid, "code": "123456"}, auth=False)[0] == 401
    assert pipe.http("POST", "/v1/verify", {"request_id": rid, "code": "123456"},
                     headers={"Authorization": "Bearer not-a-key-at-all"})[0] == 401
    st, body = pipe.http("POST", "/v1/verify", raw=b"{bad json")
    assert st == 400 and "JSON" in body["error"]["message"]
    st, body = pipe.http("POST", "/v1/verify", {"request_id": rid, "code": "123456", "x": 1})
    assert st == 400 and "unexpected field" in body["error"]["message"]
    st, body = pipe.http("POST", "/v1/verify", {"request_id": "nope", "code": "123456"})
    assert st == 400 and "request_id" in body["error"]["message"]
    st, body = pipe.http("POST", "/v1/verify", {"request_id": rid, "code": "12ab56"})
    assert st == 400 and "digits" in body["error"]["message"]
    st, _ = pipe.http("POST", "/v1/verify", raw=b"{" + b" " * 20000 + b"}")
    assert st == 413
    st, _ = pipe.http("POST", "/v1/verify", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert st == 415
    # Webhooks: wrong or missing signature is refused.
    st, body = pipe.http("POST", "/v1/webhooks/voipbin", {"type": "call_hangup", "data": {}},
                         auth=False, headers={"X-VoIPBIN-Signature": "sha256=" + "0" * 64},
                         port=pipe.webhook_port)
    assert st == 401
    st, _ = pipe.http("POST", "/v1/webhooks/voipbin", {"type": "call_hangup"}, auth=False,
                      port=pipe.webhook_port)
    assert st == 401


def test_migrations_apply_once(pipe):
    before = pipe.s.psql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    out = pipe.migrate()
    assert re.search(r"0 applied, \d+ already current", out), out
    assert pipe.s.psql("SELECT version, applied_at FROM schema_migrations ORDER BY version") == before


def test_new_request_supersedes_the_older_one(pipe):
    first, = pipe.produce([{"phone": phone(400), "user_id": "twice", "purpose": "login"}])
    [c1] = pipe.wait_calls(1, pred=lambda c: c["target"] == phone(400) and c["talks"])
    old_code = P.spoken_code(P.call_texts(c1)[0])
    second, = pipe.produce([{"phone": phone(401), "user_id": "twice", "purpose": "login"}])
    pipe.status.wait_for(lambda evs: any(e.get("request_id") == first and e["type"] == "superseded"
                                         and e["by"] == second for e in evs), what="superseded")
    [c2] = pipe.wait_calls(1, pred=lambda c: c["target"] == phone(401) and c["talks"])
    st, body = pipe.verify(first, old_code)
    assert (st, body["status"]) == (404, "rejected")
    st, body = pipe.verify(second, P.spoken_code(P.call_texts(c2)[0]))
    assert body["status"] == "verified"
