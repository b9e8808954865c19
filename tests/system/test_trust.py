"""Trust boundaries (issue 20): what the service believes comes from its own clock, its own
calls and its own listeners, never from a producer's or a caller's say-so.

Runs on the local stack (tests/pipeline.py): PostgreSQL, the Kafka mock broker, the VoIPBin
simulator, one verifier and one worker.
"""

import itertools
import json
import time
import uuid

from testkit import wait_until

_seq = itertools.count(1)


def new_phone():
    return "+1201%07d" % (4700000 + next(_seq))


def new_user():
    return "trust-" + uuid.uuid4().hex[:12]


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def row(pipe, rid, cols):
    out = pipe.s.psql("SELECT %s FROM challenges WHERE request_id = '%s'" % (cols, rid)).strip()
    return out.split("|") if out else None


def wait_row(pipe, rid, cols, timeout=60):
    return wait_until(lambda: row(pipe, rid, cols), timeout, "challenge %s stored" % rid)


# ---- time from the server --------------------------------------------------------------------

def test_request_dated_a_day_ahead_goes_to_the_dlq(pipe):
    rid = str(uuid.uuid4())
    pipe.produce([{"request_id": rid, "phone": new_phone(), "user_id": new_user(),
                   "requested_at": rfc3339(time.time() + 86400)}])
    evs = pipe.dlq.wait_for(
        lambda evs: any(rid in (e.get("original") or "") for e in evs), timeout=90,
        what="the dead letter of the future-dated request")
    dl = [e for e in evs if rid in (e.get("original") or "")]
    assert [e["reason"] for e in dl] == ["requested_at_in_future"], dl
    assert dl[0]["_headers"].get("dlq.reason") == b"requested_at_in_future", dl[0]["_headers"]
    assert row(pipe, rid, "status") is None
    rejected = pipe.status.wait_for(
        lambda evs: any(e.get("request_id") == rid and e["type"] == "rejected" for e in evs),
        what="the rejected event")
    assert [e.get("reason") for e in rejected
            if e.get("request_id") == rid] == ["requested_at_in_future"]


def test_code_life_starts_at_acceptance_not_at_requested_at(pipe):
    rid = str(uuid.uuid4())
    pipe.produce([{"request_id": rid, "phone": new_phone(), "user_id": new_user(),
                   "requested_at": rfc3339(time.time() + 30)}])
    life, ahead = wait_row(pipe, rid, "extract(epoch FROM expires_at - created_at),"
                                      " extract(epoch FROM requested_at - created_at)")
    # Dated 30 s ahead (whole seconds, so 29-31 s), and still 300 s from acceptance.
    assert 28 <= float(ahead) <= 31, ahead
    assert abs(float(life) - 300) < 5, life


def test_supersede_follows_acceptance_order_not_requested_at(pipe):
    user = new_user()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    pipe.produce([{"request_id": first, "phone": new_phone(), "user_id": user,
                   "requested_at": rfc3339(time.time() + 50)}])
    wait_row(pipe, first, "status")
    # Accepted later though dated earlier: it is the newer request.
    pipe.produce([{"request_id": second, "phone": new_phone(), "user_id": user,
                   "requested_at": rfc3339(time.time() - 5)}])
    wait_row(pipe, second, "status")
    assert row(pipe, first, "status") == ["superseded"]
    assert row(pipe, second, "status") != ["superseded"]
