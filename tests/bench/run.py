"""make bench: benchmarks that print figures (not timed tests).

1. the VoIPBin simulator alone (tests/bench/sim_bench.sh, wrk);
2. the pipeline: N requests through otp-produce → Kafka → otp-worker → PostgreSQL → simulator,
   with the account rate limit lifted, on the crash-safe PostgreSQL settings (fsync on):
   ingest rate (accepted events/s), call rate (call_requested/s), worker peak memory;
3. otp-verifier: POST /v1/verify requests/s with wrk (rejected path: the DB statement + hash).
"""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from stack import Stack  # noqa: E402
import pipeline as P  # noqa: E402

N = int(os.environ.get("OTP_BENCH_REQUESTS", "5000"))


def peak_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))


def bench_pipeline():
    with Stack() as s:
        p = P.Pipeline(s, time_scale=0.02)
        p.sim.fault(rate=1000000, burst=1000000)
        p.start_verifier(OTP_VERIFIER_THREADS=2)
        w = p.start_worker(OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000, OTP_MAX_IN_FLIGHT=256,
                           OTP_LIMIT_PHONE_15MIN=0, OTP_LIMIT_PHONE_DAY=0, OTP_LIMIT_USER_HOUR=0,
                           OTP_LIMIT_COUNTRY_HOUR=0, OTP_LIMIT_GLOBAL_HOUR=0)
        reqs = [{"phone": "+1555%07d" % i, "user_id": "bench-%d" % i} for i in range(N)]
        t0 = time.monotonic()
        ids = set(p.produce(reqs))
        t_produced = time.monotonic() - t0

        def count(t):
            return sum(1 for e in p.status.snapshot() if e["type"] == t and e["request_id"] in ids)
        while count("accepted") < N and time.monotonic() - t0 < 600:
            time.sleep(0.05)
        t_accepted = time.monotonic() - t0
        while count("call_requested") < N and time.monotonic() - t0 < 600:
            time.sleep(0.05)
        t_called = time.monotonic() - t0
        print("pipeline: %d requests; otp-produce %.2f s (%.0f/s); all accepted after %.2f s "
              "(%.0f/s); all calls placed after %.2f s (%.0f calls/s end to end)" % (
                  N, t_produced, N / t_produced, t_accepted, N / t_accepted, t_called, N / t_called))
        print("pipeline: otp-worker peak RSS %.1f MiB" % (peak_kib(w.proc.pid) / 1024))

        env = dict(os.environ, OTP_BENCH_API_KEY=p.api_key)
        out = subprocess.run(["wrk", "-t2", "-c32", "-d5s", "-s", os.path.join(HERE, "verify_bench.lua"),
                              "http://127.0.0.1:%d/v1/verify" % p.verifier_port],
                             capture_output=True, text=True, env=env, timeout=60).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        lat = re.search(r"Latency\s+(\S+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print("verifier: POST /v1/verify (unknown request, rejected path): %s requests/s, mean latency %s, "
              "2 HTTP threads, %s answered 404 as designed" % (
                  rps.group(1) if rps else "?", lat.group(1) if lat else "?",
                  non2xx.group(1) if non2xx else "0"))
        p.close()


def main():
    print("== VoIPBin simulator", flush=True)
    subprocess.run([os.path.join(HERE, "sim_bench.sh"), "5"], check=True)
    print("== pipeline and verifier (%d cores)" % os.cpu_count(), flush=True)
    bench_pipeline()


if __name__ == "__main__":
    main()
