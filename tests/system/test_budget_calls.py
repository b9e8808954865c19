# SPDX-License-Identifier: Apache-2.0
"""Issue 20 (part): budgets count what costs money. A request counts once against the number,
user, country and global limits when it is accepted (its first call); every further call placed
for it, and the text sent when its calls failed, counts too (sql/032_budget_calls.sql).

Real stack; the worker calls up to 3 times per request, with a budget of 4 per number per
15 minutes and 5 per user per hour.
"""

import time

import pytest

import pipeline as P


@pytest.fixture(scope="module")
def pipeline_options():
    return {"worker_env": {"OTP_MAX_CALL_ATTEMPTS": 3, "OTP_LIMIT_PHONE_15MIN": 4,
                           "OTP_LIMIT_USER_HOUR": 5, "OTP_RETRY_BASE_MS": 100,
                           "OTP_RETRY_CAP_MS": 300}}


def types(p, rid):
    return P.types_of(p, rid)


def wait_types(p, rid, pred, what, timeout=90):
    p.status.wait_for(lambda evs: pred([e["type"] for e in evs if e.get("request_id") == rid]),
                      timeout=timeout, what="%s for %s" % (what, rid))
    return types(p, rid)


def outcome(p, rid):
    """accepted, rate_limited or blocked: the request's decision at ingest."""
    got = wait_types(p, rid, lambda ts: {"accepted", "rate_limited", "blocked"} & set(ts),
                     "its decision")
    return [t for t in got if t in ("accepted", "rate_limited", "blocked")][0]


def budget(p, scope, key, service="default"):
    """A budget's count; the number, user and country budgets are per service."""
    if scope != "g":
        key = "%s:%s" % (service, key)
    return int(p.s.psql("SELECT coalesce(sum(n), 0) FROM budget_counts WHERE scope = '%s'"
                        " AND key = '%s'" % (scope, key)))


def test_every_call_placed_counts_against_the_number(pipe):
    ph = "+12014700001"
    pipe.sim.script(ph, outcome="busy")  # every call: three calls, none heard
    [first] = pipe.produce([{"phone": ph, "user_id": "calls-1"}])
    assert outcome(pipe, first) == "accepted"
    wait_types(pipe, first, lambda ts: ts.count("call_requested") >= 3 and "failed" in ts,
               "three calls and the end")
    assert len(pipe.calls_to(ph)) == 3
    # Three calls cost three: one more request fits the 4 a number may have ...
    [second] = pipe.produce([{"phone": ph, "user_id": "calls-2"}])
    assert outcome(pipe, second) == "accepted"
    # ... and its first call is the fourth: the next one is refused, though only two
    # requests were ever accepted for the number.
    [third] = pipe.produce([{"phone": ph, "user_id": "calls-3"}])
    assert outcome(pipe, third) == "rate_limited"
    refused = [e for e in pipe.status.of(third) if e["type"] == "rate_limited"][0]
    assert refused["reason"] == "phone_15min", refused


def test_calls_count_against_the_user(pipe):
    user = "calls-user"
    phones = ["+12014700011", "+12014700012"]
    for ph in phones:
        pipe.sim.script(ph, outcome="noanswer", end_ms=300)
    rids = pipe.produce([{"phone": ph, "user_id": user, "purpose": "p%d" % i}
                         for i, ph in enumerate(phones)])
    for rid in rids:
        assert outcome(pipe, rid) == "accepted"
        wait_types(pipe, rid, lambda ts: ts.count("call_requested") >= 3 and "failed" in ts,
                   "three calls and the end")
    # Two requests, six calls: over the user's 5 an hour.
    [more] = pipe.produce([{"phone": "+12014700013", "user_id": user, "purpose": "p9"}])
    assert outcome(pipe, more) == "rate_limited"
    assert [e for e in pipe.status.of(more) if e["type"] == "rate_limited"][0]["reason"] == \
        "user_hour"
    assert budget(pipe, "u", user) == 6
