# SPDX-License-Identifier: Apache-2.0
"""Issue 11, part 3: how long ingest stalls around a `kill -9` of one of three workers.

A producer publishes one request every 50 ms (a new number each time, so every partition gets
some); one worker is killed and started again at once under the same OTP_WORKER_ID. For every
request, the time from publishing it to its `accepted` event on the status topic; the figure is
the worst of those around the kill. Run twice: the eager assignor without static membership (the
old set-up), then the worker's defaults (group.instance.id from OTP_WORKER_ID, cooperative-sticky).

    /usr/bin/python3 tests/bench/ingest_gap.py
"""

import json
import os
import statistics
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "system"))
from stack import Stack  # noqa: E402
import pipeline as P  # noqa: E402
import reliability_util as R  # noqa: E402

MODES = {
    "before (eager assignor, no static membership)":
        dict(KAFKA_PARTITION_ASSIGNMENT_STRATEGY="range,roundrobin", static=False),
    "after (static membership, cooperative-sticky)": dict(static=True),
}


class Accepted:
    """Reads the status topic and notes when each request's `accepted` arrived."""

    def __init__(self, bootstrap):
        from confluent_kafka import Consumer
        self.at = {}
        self.stop = False
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": "gap-" + uuid.uuid4().hex,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe(["otp.call_status"])
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop:
            m = self.c.poll(0.05)
            if m is None or m.error():
                continue
            ev = json.loads(m.value())
            if ev.get("type") == "accepted":
                self.at.setdefault(ev["request_id"], time.time())

    def close(self):
        self.stop = True
        self.t.join(5)
        self.c.close()


def run(title, env):
    static = env.pop("static")
    with Stack() as s:
        p = P.Pipeline(s)
        p.start_verifier()
        acc = Accepted(p.bootstrap)
        ids = ["gap-%d" % i for i in range(3)]

        def start(i):
            return p.start_worker(OTP_WORKER_ID=ids[i] if static else "", **env)
        workers = [start(i) for i in range(3)]
        from confluent_kafka import Producer
        prod = Producer({"bootstrap.servers": p.bootstrap, "linger.ms": 0})
        sent, part = {}, {}
        stop = threading.Event()

        def delivered(err, msg, rid):
            if not err:
                part[rid] = msg.partition()

        def publish():
            i = 0
            while not stop.is_set():
                rid = str(uuid.uuid4())
                ph = R.phone(i, 900000)
                prod.produce("otp.requested", key=ph, value=json.dumps({
                    "request_id": rid, "user_id": "gap-%d" % i, "phone": ph,
                    "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}),
                    on_delivery=lambda err, msg, rid=rid: delivered(err, msg, rid))
                prod.poll(0)
                sent[rid] = time.time()
                i += 1
                time.sleep(0.05)
            prod.flush(10)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        time.sleep(12)  # the group settles (the mock's first join takes ~3 s)
        kill_at = time.time()
        workers[0].kill()
        workers[0].wait(10)
        workers[0] = start(0)
        time.sleep(25)
        stop.set()
        t.join(15)
        deadline = time.time() + 60
        while time.time() < deadline and len(set(sent) - set(acc.at)) > 0:
            time.sleep(0.2)
        around = [acc.at[r] - t0 for r, t0 in sent.items()
                  if r in acc.at and kill_at - 2 <= t0 <= kill_at + 20]
        steady = [acc.at[r] - t0 for r, t0 in sent.items()
                  if r in acc.at and kill_at - 7 <= t0 < kill_at - 2]
        # Per partition, the worst wait around the kill: the killed worker's partitions stall
        # until the group gives them out again; with cooperative-sticky the others should not.
        worst = {}
        for r, t0 in sent.items():
            if r in acc.at and r in part and kill_at - 2 <= t0 <= kill_at + 20:
                worst[part[r]] = max(worst.get(part[r], 0), acc.at[r] - t0)
        stalled = sorted(round(v, 1) for v in worst.values())
        fig = dict(published=len(sent), accepted=len(acc.at), missing=len(set(sent) - set(acc.at)),
                   worst_s_around_kill=round(max(around), 2),
                   p50_s_around_kill=round(statistics.median(around), 3),
                   worst_s_in_the_5_s_before=round(max(steady), 2),
                   partitions_worst_s=stalled,
                   partitions_over_1s=sum(1 for v in stalled if v > 1.0))
        print("[ingest gap] %s: %s" % (title, json.dumps(fig, sort_keys=True)), flush=True)
        acc.close()
        p.close()
        return fig


if __name__ == "__main__":
    for title, env in MODES.items():
        run(title, dict(env))
