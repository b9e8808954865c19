# SPDX-License-Identifier: Apache-2.0
"""Helpers for tests/system/test_reliability.py (issue 4): counting what the stack did.

Ground truth comes from three independent places: the simulator's call records (what VoIPBin
was asked to do), PostgreSQL (stack.psql) and the status topic read with confluent_kafka.
"""

import bisect
import collections
import datetime
import random
import threading

from testkit import produce, wait_until

TERMINAL = ("delivered", "failed", "expired")
# Events that end a request on the status topic (verify events are not used here).
TERMINAL_EVENTS = ("delivered", "failed", "expired")


def ts(text):
    """Epoch seconds of an RFC 3339 time with any number of fraction digits (sim, topic, PG)."""
    t = text.strip().replace(" ", "T")
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    elif t.endswith("+00"):
        t = t + ":00"
    if "." in t:
        head, rest = t.split(".", 1)
        frac, tz = rest[:rest.index("+")], rest[rest.index("+"):]
        t = "%s.%s%s" % (head, (frac + "000000")[:6], tz)
    return datetime.datetime.fromisoformat(t).timestamp()


def phone(i, base=0):
    """Distinct valid US numbers (libphonenumber refuses the 555 area code): +1201xxxxxxx."""
    return "+1201%07d" % (2000000 + base + i)


# ---- the simulator -------------------------------------------------------------------------

def post_times(calls):
    """Sorted creation times (epoch s) of the calls the simulator placed = accepted POSTs."""
    return sorted(ts(c["call"]["tm_create"]) for c in calls)


def max_in_window(times, window=1.0):
    """Largest number of times inside any half-open window [t, t + window)."""
    best = 0
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + window, lo=i)
        best = max(best, j - i)
    return best


def calls_by_target(calls):
    by = collections.defaultdict(list)
    for c in calls:
        by[c["target"]].append(c)
    for v in by.values():
        v.sort(key=lambda c: ts(c["call"]["tm_create"]))
    return by


def doubled(calls, targets=None):
    """{target: [calls]} for every target called more than once."""
    by = calls_by_target(calls)
    return {t: cs for t, cs in by.items() if len(cs) > 1 and (targets is None or t in targets)}


class FaultLoop:
    """Runs fn(sim) every `every` seconds in a thread until stop()."""

    def __init__(self, sim, fn, every=0.05):
        self.sim, self.fn, self.every = sim, fn, every
        self._stop = threading.Event()
        self.errors = []
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.fn(self.sim)
            except Exception as e:  # noqa: BLE001 - reported by stop()
                self.errors.append(repr(e))
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)
        return self.errors


class CallFaultShare:
    """Keeps about `share` of POST /v1.0/calls answered by an injected fault, alternating the
    kinds given (dicts of sim.fault keywords, e.g. fail_next=1/status=500 or drop_next=1/
    drop="after"). Each tick counts the POSTs the simulator has seen (calls it created plus
    the injected failures already used up) and tops the injected faults up to share of them,
    one ahead."""

    def __init__(self, share, kinds):
        self.share = share
        self.kinds = kinds
        self.injected = collections.Counter()  # kind name -> count
        self._n = 0

    @staticmethod
    def _name(kind):
        return "500" if "fail_next" in kind else "drop_after_placing"

    def __call__(self, sim):
        rules = sim.request("GET", "/_sim/faults")[2]["rules"]
        pending_fail = sum(1 for r in rules if r["kind"] == "fail")
        posts = sim.stats()["calls_created"] + self.injected["500"] - pending_fail
        want = int(posts * self.share) + 1
        while self._n < want:
            kind = self.kinds[self._n % len(self.kinds)]
            sim.fault(path="/v1.0/calls", method="POST", **kind)
            self.injected[self._name(kind)] += 1
            self._n += 1


def webhook_shuffler(rng=None, lo_ms=30, hi_ms=1500):
    """Every tick: the next webhook event is duplicated and held back a random time, so later
    events overtake it (the simulator holds back 'the next N events' by reorder_ms)."""
    rng = rng or random.Random(4)

    def tick(sim):
        sim.fault(webhook_reorder=1, reorder_ms=rng.randint(lo_ms, hi_ms))
    return tick


# ---- PostgreSQL -----------------------------------------------------------------------------

def rows(stack, sql):
    out = stack.psql(sql)
    return [line.split("|") for line in out.splitlines() if line]


def status_counts(stack):
    return {s: int(n) for s, n in rows(stack, "SELECT status, count(*) FROM challenges GROUP BY 1")}


def wait_all_terminal(stack, n, timeout, poll=0.5, terminal=TERMINAL):
    """Waits until n challenges exist and all are in a terminal status; returns the counts."""
    counts = {}

    def all_terminal():
        try:
            now = status_counts(stack)
        except Exception:  # noqa: BLE001 - PostgreSQL may be restarting
            return None
        counts.clear()
        counts.update(now)
        total = sum(counts.values())
        done = sum(v for k, v in counts.items() if k in terminal)
        return total >= n and done == total
    wait_until(all_terminal, timeout, "every one of %d requests in a terminal status" % n,
               interval=poll, state=lambda: "counts %s" % counts)
    return dict(counts)


# ---- the status topic -----------------------------------------------------------------------

def dedupe(events):
    """Drops redelivered copies (same event_id), keeping topic order; returns (events, dups)."""
    seen, out, dups = set(), [], 0
    for e in events:
        eid = e.get("event_id")
        if eid in seen:
            dups += 1
            continue
        seen.add(eid)
        out.append(e)
    return out, dups


def by_request(events):
    per = collections.defaultdict(list)
    for e in events:
        if e.get("request_id"):
            per[e["request_id"]].append(e)
    return per


# Order of a call's progress on the topic; a hangup outcome ends one call.
CALL_RANK = {"call_requested": 0, "ringing": 1, "answered": 2,
             "delivered": 3, "busy": 3, "no_answer": 3, "call_failed": 3, "voicemail": 3,
             "no_input": 3}
FINAL = {"delivered", "failed", "expired", "rejected", "superseded", "verified", "locked",
         "sms_sent"}
# Events that may follow a final one: verify results, and the note that an SMS could still be
# sent after the last failed call.
AFTER_FINAL = {"verified", "verify_failed", "locked", "fallback_available"}


def order_problems(events):
    """Problems in per-request order of (deduplicated) events in topic order: seq must rise;
    within one call (call_id) the progress rank must not go down; nothing but AFTER_FINAL
    events after a final status. Returns a list of strings (empty = fine)."""
    problems = []
    for rid, evs in by_request(events).items():
        seqs = [e["seq"] for e in evs]
        if seqs != sorted(seqs):
            problems.append("%s: seq out of order %s" % (rid, seqs))
        rank = {}
        final = None
        for e in evs:
            t = e["type"]
            if final and t not in AFTER_FINAL:
                problems.append("%s: %s after final %s" % (rid, t, final))
            if t in FINAL:
                final = t
            cid = e.get("call_id")
            if cid and t in CALL_RANK:
                if CALL_RANK[t] < rank.get(cid, -1) or (CALL_RANK[t] == rank.get(cid) and t != "call_requested"):
                    problems.append("%s: call %s went back to %s" % (rid, cid[:8], t))
                rank[cid] = max(rank.get(cid, -1), CALL_RANK[t])
    return problems


def last_types(events):
    """{request_id: type of its last final event}."""
    out = {}
    for rid, evs in by_request(events).items():
        fin = [e for e in evs if e["type"] in FINAL]
        if fin:
            out[rid] = fin[-1]
    return out


def wait_topic_final(reader, ids, timeout):
    """Waits until every request id has a terminal event on the status topic."""
    ids = set(ids)

    def done(evs):
        have = {e["request_id"] for e in evs if e.get("type") in TERMINAL_EVENTS}
        return ids <= have
    return reader.wait_for(done, timeout=timeout, what="a terminal event for %d requests" % len(ids))


def count_429(events):
    return sum(1 for e in events if e.get("type") == "retry_scheduled"
               and "429" in str(e.get("cause", "")))


# ---- Kafka consumer lag ---------------------------------------------------------------------

def group_lag(bootstrap, group, topic):
    """(total lag, {partition: (committed, high)}) of a consumer group, read with a consumer
    that never joins the group (committed() + get_watermark_offsets())."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        committed = c.committed([TopicPartition(topic, p) for p in parts], timeout=10)
        lag, detail = 0, {}
        for tp in committed:
            _, high = c.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            off = tp.offset if tp.offset >= 0 else 0
            detail[tp.partition] = (tp.offset, high)
            lag += max(0, high - off)
        return lag, detail
    finally:
        c.close()


def wait_lag_zero(bootstrap, group, topic, timeout=30):
    return wait_until(lambda: (lambda r: r if r[0] == 0 else None)(
        group_lag(bootstrap, group, topic)), timeout, "no consumer lag of %s on %s" % (
        group, topic), interval=0.5)[1]


def produce_keyed(bootstrap, topic, items):
    """Publishes (key, value) pairs, keys as text, values as bytes, with an independent client."""
    produce(bootstrap, topic, [(k or None, v) for k, v in items], **{"linger.ms": 5})
