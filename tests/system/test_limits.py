"""Issue 5 (part): calls as a paid resource, and the per-user cap on wrong codes.

Real stack; the worker runs with a country allowlist and a small global hourly cap, the
verifier with a small cap on wrong codes per user per hour.
"""

import os
import re
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from stack import Stack  # noqa: E402
import pipeline as P  # noqa: E402

GLOBAL_CAP = 30


@pytest.fixture(scope="module")
def pipe():
    with Stack() as s:
        p = P.Pipeline(s)
        p.start_verifier(OTP_MAX_FAILED_VERIFY_PER_HOUR=7)
        p.metrics_port = P.free_port()
        p.start_worker(OTP_COUNTRY_ALLOWLIST="us,gb,de", OTP_LIMIT_GLOBAL_HOUR=GLOBAL_CAP,
                       OTP_WORKER_LISTEN="127.0.0.1:%d" % p.metrics_port)
        yield p
        p.close()


def final_type(p, rid, types, timeout=30):
    evs = p.status.wait_for(lambda evs: any(e["type"] in types for e in evs
                                            if e.get("request_id") == rid),
                            timeout=timeout, what="one of %s for %s" % (types, rid))
    return [e for e in evs if e.get("request_id") == rid and e["type"] in types][0]


def test_number_budget_counts_every_request(pipe):
    ph = "+15554000001"
    # The first call is hung up on before the code is read: it still counts.
    pipe.sim.script(ph, outcome="failed", times=1)
    ids = pipe.produce([{"phone": ph, "user_id": "phone-budget-%d" % i} for i in range(4)])
    got = [final_type(pipe, rid, {"accepted", "rate_limited", "blocked"}) for rid in ids]
    assert [e["type"] for e in got] == ["accepted"] * 3 + ["rate_limited"]
    assert got[3]["reason"] == "phone_15min"
    # No call for the refused one.
    pipe.status.wait_for(lambda evs: sum(e["type"] == "call_requested" for e in evs
                                         if e.get("request_id") in ids) >= 3)
    assert all(e["type"] != "call_requested" for e in pipe.status.of(ids[3]))
    st, body = pipe.http("GET", "/v1/requests/" + ids[3])
    assert body["status"] == "rate_limited"


def test_user_budget(pipe):
    ids = pipe.produce([{"phone": "+1555401%04d" % i, "user_id": "busy-user"} for i in range(11)])
    # Different numbers land on different partitions: which one is refused is not fixed.
    got = [final_type(pipe, rid, {"accepted", "rate_limited"}) for rid in ids]
    assert sorted(e["type"] for e in got) == ["accepted"] * 10 + ["rate_limited"]
    assert [e["reason"] for e in got if e["type"] == "rate_limited"] == ["user_hour"]


def test_blocked_destinations(pipe):
    premium, foreign = "+19005550100", "+33612345678"
    ids = pipe.produce([{"phone": premium, "user_id": "fraud-1"}, {"phone": foreign, "user_id": "fraud-2"}])
    a = final_type(pipe, ids[0], {"accepted", "blocked", "rate_limited"})
    b = final_type(pipe, ids[1], {"accepted", "blocked", "rate_limited"})
    assert (a["type"], a["reason"]) == ("blocked", "premium_rate_prefix")
    assert (b["type"], b["reason"]) == ("blocked", "country_not_allowed")
    assert not pipe.calls_to(premium) and not pipe.calls_to(foreign)


def test_wrong_codes_capped_per_user_across_challenges(pipe):
    ids = pipe.produce([{"phone": "+4915112340%03d" % i, "user_id": "guesser", "purpose": "p%d" % i}
                        for i in range(2)])
    calls = {}
    for rid, i in zip(ids, range(2)):
        ph = "+4915112340%03d" % i
        [c] = pipe.wait_calls(1, pred=lambda c, ph=ph: c["target"] == ph and c["talks"])
        calls[rid] = P.spoken_code(P.call_texts(c)[0])
    first, second = ids
    wrong = lambda code: "%06d" % ((int(code) + 1) % 10**6)  # noqa: E731
    assert [pipe.verify(first, wrong(calls[first]))[1]["status"] for _ in range(5)] == ["incorrect"] * 5
    assert [pipe.verify(second, wrong(calls[second]))[1]["status"] for _ in range(2)] == ["incorrect"] * 2
    # 7 wrong codes this hour: even the right code of the second challenge is refused now.
    st, body = pipe.verify(second, calls[second])
    assert (st, body["status"]) == (404, "rejected")


def test_global_cap_opens_the_circuit(pipe):
    n = GLOBAL_CAP + 5
    ids = pipe.produce([{"phone": "+4420790%05d" % i, "user_id": "g-%d" % i} for i in range(n)])
    got = [final_type(pipe, rid, {"accepted", "rate_limited"}) for rid in ids]
    limited = [e for e in got if e["type"] == "rate_limited"]
    assert limited and all(e["reason"] == "global_hourly_cap" for e in limited)
    accepted_total = int(pipe.s.psql("SELECT count(*) FROM challenges WHERE status NOT IN "
                                     "('rate_limited','blocked')"))
    assert accepted_total == GLOBAL_CAP
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % pipe.metrics_port, timeout=5) as r:
        metrics = r.read().decode()
    assert re.search(r"^otp_worker_circuit_open 1$", metrics, re.M), metrics
    with open(pipe.workers[0].log_path) as f:
        assert "event=circuit_open" in f.read()
