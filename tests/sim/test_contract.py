# SPDX-License-Identifier: Apache-2.0
"""Contract tests of the VoIPBin simulator: each test pins one fact of
shared/reference/voipbin-api.md (section in the docstring). Run with /usr/bin/python3 -m pytest."""
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import wave
from datetime import datetime

import pytest

from stack import Stack
from testkit import Receiver, webhook_signature as signature

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIM_BIN = os.environ.get("VOIPBIN_SIM_BIN", os.path.join(ROOT, "bin", "voipbin-sim"))
OWNED = ["+15550100000", "+15550100001"]
FAST_ARGS = ["--whitelist", "us,gb", "--numbers", ",".join(OWNED), "--time-scale", "0.05",
             "--rate", "100000", "--burst", "100000"]

DEST = "+15557770001"
UK = "+447700900123"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
TOKEN6 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
NIL = "00000000-0000-0000-0000-000000000000"

OTP_FLOW = [
    {"type": "talk", "option": {"text": "Your code is 4 8 2 9 1 3", "language": "en-US"}},
    {"type": "hangup"},
]


@pytest.fixture(scope="module")
def sim_stack(tmp_path_factory):
    """Every simulator of the suite runs in this stack; logs stay in pytest's tmp dir."""
    if not os.access(SIM_BIN, os.X_OK):
        pytest.fail("%s is not built (make bin/voipbin-sim)" % SIM_BIN)
    with Stack(root=tmp_path_factory.mktemp("sim")) as s:
        yield s


@pytest.fixture(scope="module")
def launch(sim_stack):
    """launch(name, args, **start_sim keywords): one more simulator, stopped by the test."""
    def start(name, args, **kw):
        return sim_stack.start_sim(extra_args=args, name=name, bin_path=SIM_BIN, **kw)
    return start


@pytest.fixture(scope="module")
def recv():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def sim(launch, recv):
    s = launch("fast", FAST_ARGS, webhook_uri=recv.url("/hooks"),
               access_key="vb_contractTestKey0123456789abcdefgh",
               webhook_secret="s3cr3t-for-contract-tests")
    yield s
    assert s.stop() == 0, "simulator did not exit cleanly on SIGTERM"


@pytest.fixture(autouse=True)
def clean(request, recv):
    recv.clear()
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").reset()
    yield


def body(dest=DEST, actions=None, src=OWNED[0], **extra):
    b = {"source": {"type": "tel", "target": src}, "destinations": [{"type": "tel", "target": dest}],
         "actions": OTP_FLOW if actions is None else actions}
    b.update(extra)
    return b


def place(sim, dest=DEST, actions=None, **extra):
    st, _, res = sim.api("POST", "/calls", body(dest, actions, **extra))
    assert st == 200, res
    return res["calls"][0]


def assert_envelope(res, hdrs, status, reason):
    assert set(res) == {"error"}, res
    err = res["error"]
    assert err["status"] == status and err["reason"] == reason, err
    assert err["message"]
    assert err["request_id"] == hdrs["X-Request-Id"]


def parse_ts(s):
    assert RFC3339.match(s), s
    base, _, frac = s[:-1].partition(".")
    return datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(microsecond=int(frac.ljust(6, "0") or 0))


def raw_request(sim, method, path, payload=None, headers=None):
    """Bypasses urllib: (status, headers, raw body bytes), or raises on a dropped connection."""
    c = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        c.request(method, path, body=payload, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


# ---------------------------------------------------------------- auth, envelope, request id (§1.2, §2)

def test_no_credential_is_401_authentication_required(sim):
    st, h, res = sim.api("GET", "/calls", auth=False)
    assert st == 401
    assert_envelope(res, h, "UNAUTHENTICATED", "AUTHENTICATION_REQUIRED")


def test_access_key_is_accepted_as_query_parameter(sim):
    st, _, res = sim.api("GET", "/calls")
    assert st == 200 and res == {"result": [], "next_page_token": ""}


def test_access_key_sent_as_bearer_is_invalid_credentials(sim):
    st, h, res = sim.api("GET", "/calls", auth=False, headers={"Authorization": "Bearer " + sim.access_key})
    assert st == 401
    assert_envelope(res, h, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_access_key_sent_as_token_parameter_is_invalid_credentials(sim):
    st, h, res = sim.request("GET", "/v1.0/calls?token=" + sim.access_key)
    assert st == 401
    assert_envelope(res, h, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_wrong_access_key_is_invalid_credentials(sim):
    st, h, res = sim.request("GET", "/v1.0/calls?accesskey=vb_wrongwrongwrongwrongwrongwrongwr")
    assert st == 401
    assert_envelope(res, h, "UNAUTHENTICATED", "INVALID_CREDENTIALS")


def test_login_jwt_works_as_bearer_and_token(sim):
    st, _, res = sim.request("POST", "/auth/login", {"username": "sim", "password": "sim"})
    assert st == 200 and res["username"] == "sim" and res["token"].count(".") == 2
    st, _, _ = sim.request("GET", "/v1.0/calls", headers={"Authorization": "Bearer " + res["token"]})
    assert st == 200
    st, _, _ = sim.request("GET", "/v1.0/calls?token=" + res["token"])
    assert st == 200
    # a tampered signature is refused
    st, _, _ = sim.request("GET", "/v1.0/calls", headers={"Authorization": "Bearer " + res["token"][:-2] + "xx"})
    assert st == 401


def test_login_failure_is_bare_400_and_auth_lives_outside_v1(sim):
    st, h, raw = raw_request(sim, "POST", "/auth/login", b'{"username":"sim","password":"nope"}')
    assert st == 400 and raw == b""
    st, h, res = sim.request("POST", "/v1.0/auth/login", {"username": "sim", "password": "sim"})
    assert st == 404
    assert_envelope(res, h, "NOT_FOUND", "ROUTE_NOT_FOUND")


def test_request_id_echoed_when_safe_generated_otherwise(sim):
    st, h, _ = sim.api("GET", "/calls", headers={"X-Request-Id": "client-id_42"})
    assert h["X-Request-Id"] == "client-id_42"
    st, h, res = sim.api("GET", "/calls/not-a-uuid", headers={"X-Request-Id": "bad id!"})
    assert re.match(r"^req_[A-Z2-7]{26}$", h["X-Request-Id"])
    assert res["error"]["request_id"] == h["X-Request-Id"]


def test_unknown_route_is_404_route_not_found(sim):
    st, h, res = sim.api("GET", "/nothing-here")
    assert st == 404
    assert_envelope(res, h, "NOT_FOUND", "ROUTE_NOT_FOUND")


# ---------------------------------------------------------------- POST /v1.0/calls (§3)

def test_create_call_shape(sim):
    st, h, res = sim.api("POST", "/calls", body())
    assert st == 200
    assert set(res) == {"calls", "groupcalls"} and res["groupcalls"] == []
    [c] = res["calls"]
    assert c["status"] == "dialing" and c["direction"] == "outgoing" and c["type"] == "flow"
    assert c["destination"] == {"type": "tel", "target": DEST}
    assert c["source"] == {"type": "tel", "target": OWNED[0]}
    assert c["action"]["id"] == "00000000-0000-0000-0000-000000000001" and "type" not in c["action"]
    assert c["owner_id"] == NIL and c["master_call_id"] == NIL and c["groupcall_id"] == NIL
    for absent in ("hangup_by", "hangup_reason", "tm_ringing", "tm_progressing", "tm_hangup", "tm_delete"):
        assert absent not in c, absent
    parse_ts(c["tm_create"])


def test_singular_destination_key_is_ignored_and_not_placed_is_500(sim):
    b = body()
    b["destination"] = b.pop("destinations")[0]
    st, h, res = sim.api("POST", "/calls", b)
    assert st == 500
    assert_envelope(res, h, "INTERNAL", "INTERNAL")
    assert sim.calls() == []


def test_destination_without_type_is_not_placed(sim):
    b = body()
    del b["destinations"][0]["type"]
    st, h, res = sim.api("POST", "/calls", b)
    assert st == 500 and res["error"]["reason"] == "INTERNAL"


def test_country_outside_whitelist_is_500_until_whitelisted(sim):
    st, h, res = sim.api("POST", "/calls", body(dest="+33612345678"))
    assert st == 500
    assert_envelope(res, h, "INTERNAL", "INTERNAL")
    st, _, cfg = sim.api("PUT", "/outbound_config", {"destination_whitelist": ["us", "FR"]})
    assert st == 200 and cfg["destination_whitelist"] == ["us", "fr"]
    assert place(sim, dest="+33612345678")["status"] == "dialing"
    st, _, _ = sim.api("POST", "/calls", body(dest=UK))  # gb no longer listed
    assert st == 500


def test_unowned_source_is_500_and_default_source_applies(sim):
    st, _, _ = sim.api("POST", "/calls", body(src="+15559999999"))
    assert st == 500
    b = body()
    del b["source"]
    st, _, _ = sim.api("POST", "/calls", b)
    assert st == 500  # no source, no default
    _, _, nums = sim.api("GET", "/numbers")
    num_id = [n["id"] for n in nums["result"] if n["number"] == OWNED[1]][0]
    st, _, _ = sim.api("PUT", "/outbound_config", {"default_outgoing_source_number_id": num_id})
    assert st == 200
    st, _, res = sim.api("POST", "/calls", b)
    assert st == 200 and res["calls"][0]["source"]["target"] == OWNED[1]


def test_no_balance_is_500_and_partial_success_is_200(sim):
    sim.account(balance=0)
    st, _, res = sim.api("POST", "/calls", body())
    assert st == 500 and res["error"]["reason"] == "INTERNAL"
    sim.account(balance=10)
    b = body()
    b["destinations"].append({"type": "tel", "target": "+33612345678"})  # not whitelisted
    st, _, res = sim.api("POST", "/calls", b)
    assert st == 200 and [c["destination"]["target"] for c in res["calls"]] == [DEST]


def test_documented_mode_answers_400_and_402(launch):
    s = launch("documented", ["--error-mode", "documented", "--whitelist", "us",
                                               "--numbers", OWNED[0], "--rate", "1000", "--burst", "1000"])
    try:
        st, h, res = s.api("POST", "/calls", body(dest=UK))
        assert st == 400
        assert_envelope(res, h, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
        s.account(balance=0)
        st, h, res = s.api("POST", "/calls", body())
        assert st == 402
        assert_envelope(res, h, "PAYMENT_REQUIRED", "INSUFFICIENT_BALANCE")
        st, h, res = s.api("POST", "/messages", {"source": {"type": "tel", "target": OWNED[0]},
                                                 "destinations": [{"type": "tel", "target": DEST}], "text": "x"})
        assert st == 402
    finally:
        s.stop()


def test_identity_not_verified_is_403_and_frozen_account_is_403(sim):
    sim.account(identity_verification_status="pending")
    st, h, res = sim.api("POST", "/calls", body())
    assert st == 403
    assert_envelope(res, h, "PERMISSION_DENIED", "IDENTITY_VERIFICATION_REQUIRED")
    sim.account(identity_verification_status="verified", status="frozen")
    st, h, res = sim.api("GET", "/calls")
    assert st == 403 and res["error"]["reason"] == "ACCOUNT_FROZEN" and res["error"]["details"]


def test_unknown_action_type_is_400_invalid_action_type(sim):
    st, h, res = sim.api("POST", "/calls", body(actions=[{"type": "talk", "option": {"text": "x"}},
                                                          {"type": "speak", "option": {"text": "x"}}]))
    assert st == 400
    assert_envelope(res, h, "INVALID_ARGUMENT", "INVALID_ACTION_TYPE")
    assert "speak" in res["error"]["message"]
    assert sim.calls() == []


def test_body_not_json_is_400_invalid_json_body(sim):
    st, h, raw = raw_request(sim, "POST", "/v1.0/calls?accesskey=" + sim.access_key, b"{not json",
                             {"Content-Type": "application/json"})
    res = json.loads(raw)
    assert st == 400
    assert_envelope(res, h, "INVALID_ARGUMENT", "INVALID_JSON_BODY")


def test_too_many_variables_is_400_invalid_variables(sim):
    st, h, res = sim.api("POST", "/calls", body(variables={"k%d" % i: "v" for i in range(101)}))
    assert st == 400 and res["error"]["reason"] == "INVALID_VARIABLES"


def test_request_body_is_recorded_byte_for_byte(sim):
    raw = b'{ "destinations" : [ {"type":"tel","target":"%s"} ],\n "source":{"type":"tel","target":"%s"},' \
          b' "actions":[{"type":"hangup"}] , "x_unknown": 1 }' % (DEST.encode(), OWNED[0].encode())
    st, _, _ = raw_request(sim, "POST", "/v1.0/calls?accesskey=" + sim.access_key, raw)
    assert st == 200
    [rec] = sim.calls()
    assert rec["request_body"].encode() == raw
    assert rec["request"]["x_unknown"] == 1


# ---------------------------------------------------------------- state machine and webhooks (§4.3, §7)

def test_answered_call_goes_through_every_state_with_webhooks_in_order(sim, recv):
    c = place(sim)
    done = sim.wait_call_ended(c["id"])["call"]
    assert done["hangup_by"] == "local" and done["hangup_reason"] == "normal"
    t = [parse_ts(done[k]) for k in ("tm_create", "tm_ringing", "tm_progressing", "tm_hangup")]
    assert t == sorted(t)
    evs = recv.wait(lambda: (lambda e: e if e and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c["id"])))
    types = [e["type"] for e in evs]
    statuses = [e["data"]["status"] for e in evs]
    assert types[:3] == ["call_created", "call_ringing", "call_progressing"], types
    assert types[-2:] == ["call_terminating", "call_hangup"], types
    assert set(types[3:-2]) == {"call_updated"}
    assert statuses[:3] == ["dialing", "ringing", "progressing"] and statuses[-2:] == ["terminating", "hangup"]
    # hangup_* and unset tm_* are omitted until they apply
    assert "hangup_by" not in evs[0]["data"] and "tm_ringing" not in evs[0]["data"]
    assert "tm_progressing" not in evs[1]["data"] and "tm_hangup" not in evs[-2]["data"]
    assert evs[-1]["data"]["hangup_reason"] == "normal"
    assert list(json.loads(recv.got("/hooks")[0]["body"]).keys()) == ["type", "data"]
    rec = sim.call(c["id"])
    assert [e["type"] for e in rec["events"]] == types
    assert all(e["delivered"] and e["status_code"] == 200 and e["attempts"] == 1 for e in rec["events"])


def test_webhook_signature_is_hmac_sha256_of_raw_body(sim, recv):
    place(sim)
    reqs = recv.wait(lambda: recv.got("/hooks") if len(recv.got("/hooks")) >= 3 else None)
    for r in reqs:
        assert r["method"] == "POST"
        assert r["headers"]["content-type"] == "application/json"
        assert r["headers"]["x-voipbin-signature"] == signature(sim.webhook_secret, r["body"])
    # a different secret (e.g. the access key) does not verify
    assert reqs[0]["headers"]["x-voipbin-signature"] != signature(sim.access_key, reqs[0]["body"])


def test_customer_put_replaces_every_field_and_get_shows_secret(sim, recv):
    st, _, cust = sim.api("GET", "/customer")
    assert st == 200 and cust["webhook_secret"] == sim.webhook_secret and cust["webhook_method"] == "POST"
    assert cust["webhook_uri"] == recv.url("/hooks") and cust["name"]
    st, _, cust = sim.api("PUT", "/customer", {"webhook_uri": recv.url("/other"), "webhook_method": "PUT"})
    assert st == 200 and cust["name"] == "" and cust["email"] == "" and cust["webhook_uri"] == recv.url("/other")
    place(sim)
    r = recv.wait(lambda: recv.got("/other"))[0]
    assert r["method"] == "PUT"
    st, _, res = sim.api("PUT", "/customer", {"webhook_uri": "ftp://x"})
    assert st == 400


def test_webhook_below_500_counts_as_delivered_once(sim, recv):
    recv.status["/hooks"] = 404
    c = place(sim, actions=[{"type": "hangup"}])
    sim.wait_call_ended(c["id"])
    time.sleep(0.3)
    created = [r for r in recv.got("/hooks") if json.loads(r["body"])["type"] == "call_created"]
    assert len(created) == 1
    ev = sim.call(c["id"])["events"][0]
    assert ev["attempts"] == 1 and ev["status_code"] == 404 and ev["delivered"]


def test_webhook_network_error_is_retried_three_times(sim):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    st, _, _ = sim.api("PUT", "/customer", {"webhook_uri": "http://127.0.0.1:%d/x" % port,
                                            "webhook_method": "POST"})
    assert st == 200
    c = place(sim, actions=[{"type": "hangup"}])
    ev = sim.wait_for(lambda: (lambda e: e if e["state"] == "failed" else None)(sim.call(c["id"])["events"][0]))
    assert ev["attempts"] == 3 and ev["status_code"] is None and ev["error"]


def test_webhook_retry_on_500_is_three_attempts_one_second_apart(launch):
    """Real time scale: the 1 s spacing is the real one."""
    r = Receiver()
    s = launch("realscale", ["--whitelist", "us", "--numbers", OWNED[0]],
               webhook_uri=r.url("/hooks"))
    try:
        r.status["/hooks"] = 500
        # never rings, never answers within the test: only call_created is sent
        s.script(DEST, outcome="noanswer", ring_ms=-1, end_ms=50000)
        c = place(s)
        reqs = r.wait(lambda: r.got("/hooks") if len(r.got("/hooks")) >= 3 else None, timeout=6)
        time.sleep(1.3)
        reqs = r.got("/hooks")
        assert len(reqs) == 3, "exactly 3 attempts, then the event is dropped"
        assert len({x["body"] for x in reqs}) == 1
        gaps = [b["t"] - a["t"] for a, b in zip(reqs, reqs[1:])]
        assert all(0.9 <= g <= 1.5 for g in gaps), gaps
        ev = s.call(c["id"])["events"][0]
        assert ev["state"] == "failed" and ev["attempts"] == 3 and ev["status_code"] == 500
    finally:
        s.stop()
        r.close()


def test_ssrf_guard_refuses_loopback_when_enabled(launch, recv):
    s = launch("ssrf", ["--ssrf-guard", "--whitelist", "us", "--numbers", OWNED[0],
                                         "--time-scale", "0.05"], webhook_uri=recv.url("/hooks"))
    try:
        c = place(s)
        ev = s.wait_for(lambda: (lambda e: e if e["state"] != "pending" else None)(s.call(c["id"])["events"][0]))
        assert ev["state"] == "failed" and "public" in ev["error"] and recv.got("/hooks") == []
    finally:
        s.stop()


# ---------------------------------------------------------------- list, get, hangup, delete (§4.1, §9.1)

def test_list_pagination_is_like_the_gateway(sim):
    ids = [place(sim, actions=[{"type": "hangup"}])["id"] for _ in range(5)]
    seen, token, pages = [], "", []
    while True:
        st, _, page = sim.api("GET", "/calls?page_size=2" + ("&page_token=" + token if token else ""))
        assert st == 200
        pages.append(len(page["result"]))
        if not page["result"]:
            assert page["next_page_token"] == ""
            break
        assert TOKEN6.match(page["next_page_token"]), page["next_page_token"]
        assert page["next_page_token"] == parse_ts(page["result"][-1]["tm_create"]).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        seen += [c["id"] for c in page["result"]]
        token = page["next_page_token"]
    assert pages == [2, 2, 1, 0], "the last non-empty page still carries a token"
    assert seen == list(reversed(ids)), "newest first"
    for size in ("0", "500", "abc"):
        _, _, page = sim.api("GET", "/calls?page_size=" + size)
        assert len(page["result"]) == 5


def test_get_call_invalid_id_and_not_found(sim):
    st, h, res = sim.api("GET", "/calls/123")
    assert st == 400
    assert_envelope(res, h, "INVALID_ARGUMENT", "INVALID_ID")
    st, h, res = sim.api("GET", "/calls/5e1a4c0e-8a7b-4c61-9a52-3d7f0c1b2a90")
    assert st == 404
    assert_envelope(res, h, "NOT_FOUND", "CALL_NOT_FOUND")


def test_hangup_before_answer_cancels(sim, recv):
    sim.script(DEST, answer_ms=100000)
    c = place(sim)
    st, _, res = sim.api("POST", "/calls/%s/hangup" % c["id"])
    assert st == 200 and res["status"] == "canceling"
    done = sim.wait_call_ended(c["id"])["call"]
    assert done["hangup_by"] == "local" and done["hangup_reason"] == "cancel"
    st, _, again = sim.api("POST", "/calls/%s/hangup" % c["id"])
    assert st == 200 and again["status"] == "hangup", "idempotent"
    evs = recv.wait(lambda: (lambda e: e if len(e) >= 2 and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c["id"])))
    assert "call_canceling" in [e["type"] for e in evs]


def test_hangup_after_answer_terminates(sim):
    c = place(sim, actions=[{"type": "sleep", "option": {"duration": 600000}}])
    sim.wait_for(lambda: sim.call(c["id"])["status"] == "progressing")
    st, _, res = sim.api("POST", "/calls/%s/hangup" % c["id"])
    assert st == 200 and res["status"] == "terminating"
    done = sim.wait_call_ended(c["id"])["call"]
    assert (done["hangup_by"], done["hangup_reason"]) == ("local", "normal")


def test_delete_hangs_up_and_soft_deletes(sim):
    c = place(sim, actions=[{"type": "sleep", "option": {"duration": 600000}}])
    st, _, res = sim.api("DELETE", "/calls/" + c["id"])
    assert st == 200 and "tm_delete" in res
    st, _, again = sim.api("DELETE", "/calls/" + c["id"])
    assert st == 200
    _, _, page = sim.api("GET", "/calls")
    assert page["result"] == []
    assert sim.wait_call_ended(c["id"])["call"]["hangup_reason"] == "cancel"


# ---------------------------------------------------------------- scripted callees (§4.3 scenarios)

def ended_with(sim, recv, outcome, **kw):
    sim.script(DEST, outcome=outcome, **kw)
    c = place(sim)
    done = sim.wait_call_ended(c["id"])["call"]
    evs = recv.wait(lambda: (lambda e: e if e and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c["id"])))
    return done, [e["type"] for e in evs], sim.call(c["id"])


def test_busy_callee(sim, recv):
    done, types, rec = ended_with(sim, recv, "busy")
    assert (done["hangup_by"], done["hangup_reason"]) == ("remote", "busy")
    assert types == ["call_created", "call_ringing", "call_hangup"]
    assert "tm_progressing" not in done and rec["talks"] == []


def test_no_answer_callee(sim, recv):
    done, types, _ = ended_with(sim, recv, "noanswer", end_ms=2000)
    assert (done["hangup_by"], done["hangup_reason"]) == ("remote", "noanswer")
    assert types == ["call_created", "call_ringing", "call_hangup"]


def test_unreachable_callee_fails_without_ringing(sim, recv):
    done, types, _ = ended_with(sim, recv, "failed")
    assert (done["hangup_by"], done["hangup_reason"]) == ("remote", "failed")
    assert types == ["call_created", "call_hangup"] and "tm_ringing" not in done


def test_callee_hangs_up_mid_message(sim, recv):
    sim.script(DEST, callee_hangup_ms=500)
    c = place(sim, actions=[{"type": "talk", "option": {"text": "a very long message " * 20}}, {"type": "hangup"}])
    done = sim.wait_call_ended(c["id"])["call"]
    assert (done["hangup_by"], done["hangup_reason"]) == ("remote", "normal")
    rec = sim.call(c["id"])
    assert rec["talks"][0]["interrupted"]
    types = [e["type"] for e in recv.wait(lambda: (lambda e: e if e and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c["id"])))]
    assert "call_terminating" not in types


AMD_FLOW = [{"type": "amd", "option": {"machine_handle": "hangup", "async": False}},
            {"type": "talk", "option": {"text": "Your code is 1 2 3", "language": "en-US"}},
            {"type": "hangup"}]


def test_machine_with_amd_hangup_ends_local_amd(sim, recv):
    sim.script(DEST, outcome="machine")
    c = place(sim, actions=AMD_FLOW)
    done = sim.wait_call_ended(c["id"])["call"]
    assert (done["hangup_by"], done["hangup_reason"]) == ("local", "amd")
    rec = sim.call(c["id"])
    assert rec["talks"] == [] and rec["amd_result"] == "MACHINE"
    assert "call_terminating" in [e["type"] for e in rec["events"]]


def test_human_passes_amd_and_hears_the_code(sim):
    c = place(sim, actions=AMD_FLOW)
    done = sim.wait_call_ended(c["id"])["call"]
    assert done["hangup_reason"] == "normal"
    rec = sim.call(c["id"])
    assert rec["amd_result"] == "HUMAN" and [t["text"] for t in rec["talks"]] == ["Your code is 1 2 3"]


def test_script_times_applies_to_next_calls_only(sim):
    sim.script(DEST, outcome="busy", times=1)
    a = place(sim, actions=[{"type": "hangup"}])
    b = place(sim, actions=[{"type": "hangup"}])
    assert sim.wait_call_ended(a["id"])["call"]["hangup_reason"] == "busy"
    assert sim.wait_call_ended(b["id"])["call"]["hangup_reason"] == "normal"


# ---------------------------------------------------------------- flow runner (§5, §6)

def test_talk_records_text_language_and_takes_time_by_length(sim):
    short = place(sim, actions=[{"type": "talk", "option": {"text": "Hi", "language": "de-DE"}}])
    long_ = place(sim, dest=UK, actions=[{"type": "talk", "option": {"text": "Hello there " * 30,
                                                                      "language": "en-GB"}}])
    for c in (short, long_):
        sim.wait_call_ended(c["id"])
    ts, tl = sim.call(short["id"])["talks"][0], sim.call(long_["id"])["talks"][0]
    assert (ts["text"], ts["language"]) == ("Hi", "de-DE") and tl["language"] == "en-GB"
    parse_ts(ts["started_at"])
    assert tl["duration_ms"] > 5 * ts["duration_ms"]
    span = lambda t: (parse_ts(t["ended_at"]) - parse_ts(t["started_at"])).total_seconds()
    assert span(tl) > 3 * span(ts)
    assert span(tl) == pytest.approx(tl["duration_ms"] * 0.05 / 1000, abs=0.1)


def test_talk_text_that_is_not_xml_fails_the_talk_and_the_flow_moves_on(sim):
    c = place(sim, actions=[{"type": "talk", "option": {"text": "Code 1 & 2 < 3", "language": "en-US"}},
                            {"type": "talk", "option": {"text": "Code 1 &amp; 2 &lt; 3", "language": "en-US"}},
                            {"type": "talk", "option": {"text": '<speak>Code <say-as interpret-as="characters">'
                                                                '123</say-as><break time="300ms"/></speak>'}}])
    done = sim.wait_call_ended(c["id"])["call"]
    assert done["hangup_reason"] == "normal"
    t = sim.call(c["id"])["talks"]
    assert [x["failed"] for x in t] == [True, False, False]
    assert "XML" in t[0]["error"] and t[0]["duration_ms"] == 0


def test_digits_are_substituted_into_webhook_send(sim, recv):
    sim.script(DEST, digits="482913")
    flow = [{"type": "talk", "option": {"text": "Enter the code", "language": "en-US"}},
            {"type": "digits_receive", "option": {"duration": 20000, "length": 6}},
            {"type": "webhook_send", "option": {"sync": True, "uri": recv.url("/send"), "method": "POST",
                                                "data_type": "application/json",
                                                "data": '{"call":"${voipbin.call.id}","digits":"${voipbin.call.digits}"'
                                                        ',"to":"${voipbin.call.destination.target}","r":"${rid}"}'}},
            {"type": "hangup"}]
    c = place(sim, actions=flow, variables={"rid": "req-1", "voipbin.call.digits": "ignored"})
    r = recv.wait(lambda: recv.got("/send"))[0]
    assert json.loads(r["body"]) == {"call": c["id"], "digits": "482913", "to": DEST, "r": "req-1"}
    assert r["headers"]["content-type"] == "application/json"
    assert r["headers"]["x-voipbin-signature"] == signature(sim.webhook_secret, r["body"])
    sim.wait_call_ended(c["id"])
    rec = sim.call(c["id"])
    assert rec["digits"] == "482913" and [d["digit"] for d in rec["digits_received"]] == list("482913")
    assert rec["webhook_sends"][0]["delivered"]


def _marker_flow(recv, first="<speak>Your code is 4 8 2 9</speak>"):
    """A reading, a marker webhook_send right after it (as the product's heard marker), a
    second reading: the marker leaves only if the callee stayed through the first."""
    return [{"type": "talk", "option": {"text": first, "language": "en-US"}},
            {"type": "webhook_send", "option": {"sync": False, "uri": recv.url("/mark"),
                                                "method": "POST", "data_type": "application/json",
                                                "data": '{"type":"otp_heard","data":'
                                                        '{"id":"${voipbin.call.id}"}}'}},
            {"type": "talk", "option": {"text": "Again: 4 8 2 9", "language": "en-US"}},
            {"type": "hangup"}]


def test_webhook_send_after_a_talk_only_when_the_talk_ended(sim, recv):
    # Through the first talk: the marker leaves, signed, with the call's id substituted.
    c = place(sim, actions=_marker_flow(recv))
    r = recv.wait(lambda: recv.got("/mark"))[0]
    assert json.loads(r["body"]) == {"type": "otp_heard", "data": {"id": c["id"]}}
    assert r["headers"]["x-voipbin-signature"] == signature(sim.webhook_secret, r["body"])
    first_end = sim.call(c["id"])["talks"][0]["ended_at"]
    # As times: the simulator writes RFC 3339 with the fraction's trailing zeros dropped
    # (".4347Z" for .434700), so the strings do not compare in time order.
    assert first_end and \
        parse_ts(sim.call(c["id"])["webhook_sends"][0]["at"]) >= parse_ts(first_end)
    sim.wait_call_ended(c["id"])
    # The callee hangs up during the first talk: the flow stops there, no marker.
    recv.clear()
    sim.script(DEST, callee_hangup_ms=300)
    c = place(sim, actions=_marker_flow(recv))
    done = sim.wait_call_ended(c["id"])
    assert (done["call"]["hangup_by"], done["call"]["hangup_reason"]) == ("remote", "normal")
    assert not done.get("webhook_sends") and not recv.got("/mark")


def test_hangup_request_during_a_talk_stops_the_flow(sim, recv):
    # POST /calls/{id}/hangup while the code is being read: terminating → hangup local/normal,
    # nothing after the talk runs (no marker). A long first talk (~48 s simulated) leaves time.
    c = place(sim, actions=_marker_flow(recv, "<speak>%s</speak>" % ("Your code is 4 8 2 9. " * 40)))
    sim.wait_for(lambda: sim.call(c["id"])["status"] == "progressing")
    st, _, res = sim.api("POST", "/calls/%s/hangup" % c["id"])
    assert st == 200 and res["status"] == "terminating"
    done = sim.wait_call_ended(c["id"])
    assert (done["call"]["hangup_by"], done["call"]["hangup_reason"]) == ("local", "normal")
    assert not done.get("webhook_sends") and not recv.got("/mark")


def test_digits_receive_times_out_and_key_ends_collection(sim, recv):
    # no key pressed: collection ends at duration, digits empty
    flow = [{"type": "digits_receive", "option": {"duration": 1000, "length": 4}},
            {"type": "webhook_send", "option": {"uri": recv.url("/send"), "data": "[${voipbin.call.digits}]"}}]
    c = place(sim, actions=flow)
    assert recv.wait(lambda: recv.got("/send"))[0]["body"] == b"[]"
    sim.wait_call_ended(c["id"])
    recv.clear()
    # "#" ends it and is kept in the variable
    sim.script(DEST, digits="12#9")
    flow[0]["option"] = {"duration": 20000, "length": 10, "key": "#"}
    place(sim, actions=flow)
    assert recv.wait(lambda: recv.got("/send"))[0]["body"] == b"[12#]"


def test_key_during_talk_with_digits_handle_next_interrupts_and_types_ahead(sim, recv):
    sim.script(DEST, dtmf=[{"at_ms": 300, "keys": "7"}])
    flow = [{"type": "talk", "option": {"text": "press a key " * 20, "digits_handle": "next"}},
            {"type": "digits_receive", "option": {"duration": 5000, "length": 1}},
            {"type": "webhook_send", "option": {"uri": recv.url("/send"), "data": "${voipbin.call.digits}"}}]
    c = place(sim, actions=flow)
    assert recv.wait(lambda: recv.got("/send"))[0]["body"] == b"7"
    sim.wait_call_ended(c["id"])
    talk = sim.call(c["id"])["talks"][0]
    assert talk["interrupted"]


def test_branch_condition_and_goto(sim):
    a, b, top = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", \
        "33333333-3333-4333-8333-333333333333"
    flow = [{"id": top, "type": "talk", "option": {"text": "menu"}},
            {"type": "goto", "option": {"target_id": top, "loop_count": 1}},
            {"type": "digits_receive", "option": {"duration": 20000, "length": 1}},
            {"type": "condition_variable", "option": {"condition": "==", "variable": "${voipbin.call.digits}",
                                                      "value_type": "string", "value_string": "2",
                                                      "false_target_id": a}},
            {"type": "branch", "option": {"target_ids": {"2": b}, "default_target_id": a}},
            {"id": a, "type": "talk", "option": {"text": "option a"}},
            {"type": "hangup"},
            {"id": b, "type": "talk", "option": {"text": "option b"}},
            {"type": "hangup"}]
    sim.script(DEST, digits="2", digits_at_ms=400)
    c = place(sim, actions=flow)
    sim.wait_call_ended(c["id"])
    rec = sim.call(c["id"])
    assert [t["text"] for t in rec["talks"]] == ["menu", "menu", "option b"]
    assert rec["actions_executed"].count("goto") == 2
    sim.script(DEST, digits="5", digits_at_ms=400)
    c = place(sim, actions=flow)
    sim.wait_call_ended(c["id"])
    assert [t["text"] for t in sim.call(c["id"])["talks"]][-1] == "option a"


def test_variables_are_substituted_and_reserved_names_ignored(sim):
    c = place(sim, actions=[{"type": "talk", "option": {"text": "Code ${code}, ${voipbin.call.source.target}"}}],
              variables={"code": "4 2", "voipbin.call.id": "spoofed"})
    sim.wait_call_ended(c["id"])
    rec = sim.call(c["id"])
    assert rec["talks"][0]["text"] == "Code 4 2, " + OWNED[0]
    assert rec["variables"] == {"code": "4 2"}


def test_stored_flow_by_flow_id(sim):
    st, _, flow = sim.api("POST", "/flows", {"name": "otp", "actions": OTP_FLOW})
    assert st == 200 and all(a["id"] for a in flow["actions"])
    b = body()
    del b["actions"]
    b["flow_id"] = flow["id"]
    st, _, res = sim.api("POST", "/calls", b)
    assert st == 200 and res["calls"][0]["flow_id"] == flow["id"]
    sim.wait_call_ended(res["calls"][0]["id"])
    assert sim.call(res["calls"][0]["id"])["talks"][0]["text"] == OTP_FLOW[0]["option"]["text"]


# ---------------------------------------------------------------- messages (§8)

def test_sms_is_queued_then_delivered_with_webhooks(sim, recv):
    st, _, res = sim.api("POST", "/messages", {"source": {"type": "tel", "target": OWNED[0]},
                                               "destinations": [{"type": "tel", "target": DEST}],
                                               "text": "Your code is 482913"})
    assert st == 200 and res["type"] == "sms" and res["direction"] == "outbound"
    assert res["targets"][0]["status"] == "queued" and res["tm_delete"] is None
    evs = recv.wait(lambda: (lambda e: e if len(e) >= 3 else None)(recv.events(call_id=res["id"])))
    assert [e["type"] for e in evs] == ["message_created", "message_updated", "message_updated"]
    assert [e["data"]["targets"][0]["status"] for e in evs] == ["queued", "sent", "delivered"]
    [m] = sim.messages()
    assert m["text"] == "Your code is 482913" and m["events"][0]["delivered"]
    st, h, res = sim.api("POST", "/messages", {"source": {"type": "tel", "target": OWNED[0]},
                                               "destinations": [], "text": "x"})
    assert st == 400 and res["error"]["reason"] == "INVALID_ARGUMENT"


def test_sms_scripted_failure_and_500_on_no_balance(sim, recv):
    sim.script(DEST, sms="failed")
    st, _, res = sim.api("POST", "/messages", {"source": {"type": "tel", "target": OWNED[0]},
                                               "destinations": [{"type": "tel", "target": DEST}], "text": "x"})
    evs = recv.wait(lambda: (lambda e: e if len(e) >= 2 else None)(recv.events(call_id=res["id"])))
    assert evs[-1]["data"]["targets"][0]["status"] == "failed"
    sim.account(balance=0)
    st, _, res = sim.api("POST", "/messages", {"source": {"type": "tel", "target": OWNED[0]},
                                               "destinations": [{"type": "tel", "target": DEST}], "text": "x"})
    assert st == 500 and res["error"]["reason"] == "INTERNAL"


# ---------------------------------------------------------------- rate limit (§9.2)

def test_rate_limit_default_is_burst_33_then_429_with_retry_after(launch):
    s = launch("ratelimit", ["--whitelist", "us"])
    try:
        results = [s.api("GET", "/calls") for _ in range(40)]
        codes = [r[0] for r in results]
        ok = codes.count(200)
        assert 33 <= ok <= 35, codes
        assert codes[:33] == [200] * 33
        st, h, res = next(r for r in results if r[0] == 429)
        assert_envelope({"error": {k: v for k, v in res["error"].items() if k != "details"}}, h,
                        "RESOURCE_EXHAUSTED", "RATE_LIMIT_EXCEEDED")
        assert res["error"]["details"] == [{"limited_by": "customer"}]
        assert int(h["Retry-After"]) >= 1
        time.sleep(int(h["Retry-After"]))
        assert s.api("GET", "/calls")[0] == 200
        # the control API is never limited
        assert s.calls() == []
    finally:
        s.stop()


def test_rate_limit_change_through_faults(sim):
    sim.fault(rate=0.5, burst=2)
    codes = [sim.api("GET", "/calls")[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    sim.clear_faults()
    assert sim.api("GET", "/calls")[0] == 200


# ---------------------------------------------------------------- faults

def test_fault_fail_next_n_requests(sim):
    sim.fault(fail_next=2, status=503, path="/v1.0/calls", method="POST")
    r1 = sim.api("POST", "/calls", body())
    r2 = sim.api("POST", "/calls", body())
    r3 = sim.api("POST", "/calls", body())
    assert r1[0] == 503 and r2[0] == 503 and r3[0] == 200
    assert_envelope(r1[2], r1[1], "UNAVAILABLE", "SERVICE_UNAVAILABLE")
    assert len(sim.calls()) == 1, "failed requests place no call"
    assert sim.api("GET", "/calls")[0] == 200


def test_fault_added_latency(sim):
    sim.fault(latency_ms=400, latency_next=1)
    t0 = time.monotonic()
    assert sim.api("GET", "/calls")[0] == 200
    assert time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    sim.api("GET", "/calls")
    assert time.monotonic() - t0 < 0.3
    sim.fault(latency_ms=[100, 200], latency_next=3)
    for _ in range(3):
        t0 = time.monotonic()
        sim.api("GET", "/calls")
        assert 0.09 <= time.monotonic() - t0 < 0.5


def test_fault_dropped_connection_before_and_after_processing(sim):
    sim.fault(drop_next=1, path="/v1.0/calls", method="POST")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        raw_request(sim, "POST", "/v1.0/calls?accesskey=" + sim.access_key, json.dumps(body()).encode())
    assert sim.calls() == []
    sim.fault(drop_next=1, drop="after", path="/v1.0/calls", method="POST")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        raw_request(sim, "POST", "/v1.0/calls?accesskey=" + sim.access_key, json.dumps(body()).encode())
    assert len(sim.calls()) == 1, "dropped after processing: the call was placed"


def test_fault_duplicated_webhooks(sim, recv):
    sim.fault(webhook_duplicate=1)
    c = place(sim, actions=[{"type": "hangup"}])
    sim.wait_call_ended(c["id"])
    evs = recv.wait(lambda: (lambda e: e if e and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c["id"])))
    assert [e["type"] for e in evs].count("call_created") == 2
    assert [e["duplicate"] for e in sim.call(c["id"])["events"]].count(True) == 1


def test_fault_reordered_webhooks(sim, recv):
    sim.fault(webhook_reorder=1, reorder_ms=600)
    c = place(sim, actions=[{"type": "hangup"}])
    evs = recv.wait(lambda: (lambda e: e if len(e) >= 6 else None)(recv.events(call_id=c["id"])))
    types = [e["type"] for e in evs]
    assert len(types) == 6 and types[-1] == "call_created" and types[0] == "call_ringing", types


def test_fault_dropped_webhooks(sim, recv):
    """webhook_drop_pct=100 sends no call webhook at all; the call still plays and GET shows it;
    0 sends them again."""
    sim.fault(webhook_drop_pct=100)
    c = place(sim, actions=[{"type": "hangup"}])
    rec = sim.wait_call_ended(c["id"])
    assert rec["call"]["status"] == "hangup"
    st, _, got = sim.api("GET", "/calls/" + c["id"])
    assert st == 200 and got["status"] == "hangup" and got["hangup_reason"] == "normal", got
    evs = sim.call(c["id"])["events"]
    assert len(evs) >= 3 and all(e["error"] == "dropped (webhook_drop_pct)" and not e["delivered"]
                                 for e in evs), evs
    time.sleep(0.5)
    assert recv.events(call_id=c["id"]) == []
    sim.fault(webhook_drop_pct=0)
    c2 = place(sim, actions=[{"type": "hangup"}])
    recv.wait(lambda: (lambda e: e if e and e[-1]["type"] == "call_hangup" else None)(
        recv.events(call_id=c2["id"])))
    st, _, res = sim.request("POST", "/_sim/faults", {"webhook_drop_pct": 101})
    assert st == 400, res


# ---------------------------------------------------------------- control API, retention, process

def test_reset_forgets_calls_scripts_and_faults(sim):
    sim.script("*", outcome="busy")
    sim.fault(fail_next=5)
    sim.reset()
    assert sim.calls() == [] and sim.api("GET", "/calls")[0] == 200
    c = place(sim, actions=[{"type": "hangup"}])
    assert sim.wait_call_ended(c["id"])["call"]["hangup_reason"] == "normal"


def test_max_calls_drops_oldest_ended_calls(launch):
    s = launch("retention", ["--whitelist", "us", "--numbers", OWNED[0], "--max-calls", "3",
                                              "--time-scale", "0.02", "--rate", "1000", "--burst", "1000"])
    try:
        s.script("*", outcome="failed", end_ms=100)
        ids = [place(s, dest="+1555777%04d" % i)["id"] for i in range(6)]
        s.wait_for(lambda: s.stats()["calls_dropped"] == 3)
        assert [c["id"] for c in s.calls()] == ids[3:]
        assert s.api("GET", "/calls/" + ids[0])[0] == 404
    finally:
        s.stop()


@pytest.mark.skipif(not any(os.access(os.path.join(p, "espeak-ng"), os.X_OK)
                            for p in os.environ.get("PATH", "").split(":")), reason="espeak-ng not installed")
def test_audio_dir_renders_each_talk_to_wav(launch, tmp_path):
    s = launch("audio", ["--whitelist", "us", "--numbers", OWNED[0], "--time-scale", "0.05",
                                          "--audio-dir", str(tmp_path)])
    try:
        c = place(s, actions=[{"type": "talk", "option": {
            "text": 'Your code is <say-as interpret-as="characters">482913</say-as>', "language": "fr-FR"}}])
        talk = s.wait_for(lambda: (lambda t: t[0] if t and t[0]["wav"] else None)(s.call(c["id"])["talks"]),
                          timeout=20)
        assert os.path.dirname(talk["wav"]) == str(tmp_path)
        with wave.open(talk["wav"]) as w:
            secs = w.getnframes() / w.getframerate()
        assert secs > 1.0 and talk["seconds"] == pytest.approx(secs, rel=0.01)
    finally:
        s.stop()


def test_sigterm_exits_cleanly_with_calls_in_flight(launch):
    s = launch("sigterm", ["--whitelist", "us", "--numbers", OWNED[0]],
               webhook_uri="http://127.0.0.1:9/none")
    place(s, actions=[{"type": "sleep", "option": {"duration": 60000}}])
    s.fault(latency_ms=5000)
    outcome = []

    def held_request():
        try:
            outcome.append(s.api("GET", "/calls")[0])
        except (OSError, http.client.HTTPException) as e:
            outcome.append(type(e).__name__)

    t = threading.Thread(target=held_request, daemon=True)
    t.start()
    time.sleep(0.3)  # that request is now held by the injected latency
    t0 = time.monotonic()
    assert s.stop() == 0
    t.join(3)
    assert outcome, "the held request was released at shutdown"
    assert time.monotonic() - t0 < 3
