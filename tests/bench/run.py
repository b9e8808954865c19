# SPDX-License-Identifier: Apache-2.0
"""make bench: the product's hot paths beside what PostgreSQL itself does on the same server in
the same run (crash-safe settings: fsync and synchronous_commit on), printed as one table.

Baselines (pgbench -n -c 8 -j 2 -T 10 against copies of the challenges table, same indexes):
  INSERT  one challenge row per transaction, every NOT NULL column filled as ingest fills it;
  UPDATE  `attempts = attempts + 1 ... WHERE k = :i AND attempts < max_attempts AND expires_at >
          now()` over 100,000 seeded rows.
Rows:
  verifier   POST /v1/verify with wrk -t2 -c32 -d10s --latency at the default thread count:
             unknown request ids, wrong codes for 100,000 live challenges (one user each), right
             codes (each used once), locked challenges; p99 at half the wrong-code peak; other
             users' p99 while one user floods wrong codes, against the same load unloaded;
  ingest     N requests waiting in otp.requested, one worker, every abuse limit checked and
             counted: requests made durable per second (first row to last), 5,000 and 50,000
             with the country and global caps above the run (the same work per request), then
             50,000 more with every default (the caps refuse most of them);
  latency    200 requests/s for 15 s, POST /calls answered after 250 ms: accepted -> call_requested
             per request (from the status topic), minus the 250 ms;
  calls      the simulator answers POST /calls after 250 ms (account limit lifted): calls/s of
             one worker and of three;
  idle       two workers, no traffic: commits and row updates per second per worker;
  memory     worker RSS with 2,000 calls in flight; verifier peak RSS;
  backlog    20,000 requests waiting after an outage, half too old: fresh ones called, stale
             ones not, time to the last call against fresh / account rate (250/s here);
  account    two workers at VoIPBin's real per-account limit for 2 minutes: share used, 429s.
  webhooks   one worker's calls with the simulator sending every webhook (answered, the heard
             marker, the hang-up) to the verifier: calls/s, webhooks the verifier applied per
             second, and how far behind the last call the last delivered came.
  hooks      otp-hooks (issue 23) POSTing the status events to a receiver that checks every
             signature (tests/bench/hook_receiver.py): at the calls rate (200 requests/s for
             15 s through one worker, POST /calls answered after 250 ms), deliveries/s and the
             time from each event to its delivery; a backlog of 20,000 events (4,000 requests
             of 5) on the status topic, deliveries/s; the same beside a service whose receiver
             answers in 2 s (1,000 events), the fast one's deliveries/s and the slow one's.
  volume     one worker, 5,000 and then 100,000 requests waiting (BENCH_VOLUME=a,b changes the
             sizes), every per-number and per-user limit checked and counted, the country and
             global caps above the run: ingest/s and calls/s of each size from the worker's own
             counters (polled over HTTP: a count(*) over a growing table would grow with it), the
             ratio, the worker's peak RSS, and what the tables, their indexes and dead tuples
             grew to. The simulator answers at once and sends no webhooks, so calls are looked
             up and offered a fallback only after the run (OTP_CALL_STATUS_TIMEOUT_SECONDS and
             OTP_FALLBACK_AFTER_SECONDS above it): without webhooks every call would be looked up
             45 s on and offered a fallback 20 s on, work that grows with the run's length, not
             with volume. CPU seconds per 1,000 requests of the worker and of PostgreSQL (by
             process, autovacuum included) are the figures a shared machine's load moves least.
             BENCH_VOLUME_BASELINE=<another build's otp-worker> runs each size with it too, side
             by side in the same run.
The VoIPBin simulator alone has its own benchmark (tests/bench/sim_bench.sh), run first. In the
phases it sends no call webhooks (sim_reset says why).
"""

import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from stack import PG_BIN, Stack  # noqa: E402
import pipeline as P  # noqa: E402

ROWS = []  # (section, what, figure, baseline name or "", ratio or "", target)
# BENCH_ONLY=verifier,ingest runs only those sections (with the baselines), for a quick look;
# `make bench` runs them all.
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))


def wanted(section):
    return not ONLY or section in ONLY
BASE = {}


def row(section, what, figure, base="", target=""):
    ratio = ""
    if base and BASE.get(base):
        value = float(re.match(r"[\d.]+", figure).group(0))
        ratio = "%.2f" % (value / BASE[base])
    ROWS.append((section, what, figure, base, ratio, target))
    print("  %-9s %-52s %-26s %-7s %-5s %s" % (section, what, figure, base, ratio, target), flush=True)


def kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(field + r":\s+(\d+)", f.read()).group(1))


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


STACK = None  # the bench's Stack: only its processes are counted
T0 = 0.0  # when the run began


def processes():
    """{component: [pids]} of the bench's own processes (its children and its PostgreSQL)."""
    parent, comm = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        comm[int(pid)] = st[st.index("(") + 1:st.rindex(")")]
        parent[int(pid)] = int(st.rsplit(")", 1)[1].split()[1])
    roots = {os.getpid()}
    try:
        with open(os.path.join(STACK.pg_data, "postmaster.pid")) as f:
            roots.add(int(f.readline()))
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    out = {}
    for pid in comm:
        p, mine = pid, False
        while p > 1 and not mine:
            mine = p in roots
            p = parent.get(p, 0)
        name = {"postgres": "postgres", "otp-worker": "worker", "otp-verifier": "verifier",
                "voipbin-sim": "simulator", "otp-kafka-broke": "broker", "wrk": "wrk"}.get(comm[pid])
        if mine and name:
            out.setdefault(name, []).append(pid)
    return out


class CpuWatch:
    """Cores used by each component between start() and stop(): what saturates."""

    def start(self):
        self.t0 = time.monotonic()
        self.a = {n: {p: cpu_seconds(p) for p in ps} for n, ps in processes().items()}
        with open("/proc/stat") as f:
            self.total0 = [int(x) for x in f.readline().split()[1:]]
        return self

    def stop(self):
        took = time.monotonic() - self.t0
        used = {}
        for n, ps in processes().items():
            before = self.a.get(n, {})
            used[n] = sum(cpu_seconds(p) - before.get(p, 0.0) for p in ps) / took
        self.seconds = {n: c * took for n, c in used.items()}  # CPU seconds of each component
        with open("/proc/stat") as f:
            total1 = [int(x) for x in f.readline().split()[1:]]
        d = [b - a for a, b in zip(self.total0, total1)]
        busy = 1.0 - (d[3] + d[4]) / float(sum(d) or 1)
        parts = ", ".join("%s %.2f" % (n, c) for n, c in sorted(used.items(), key=lambda x: -x[1])
                          if c >= 0.01)
        return "cores used: %s; machine %.0f%% busy of %d" % (parts, 100 * busy, os.cpu_count())


def code_hash(key_hex, rid, code):
    return hashlib.blake2b(b"otp-code-v1\0" + rid.encode() + b"\0" + code.encode(),
                           key=bytes.fromhex(key_hex), digest_size=32).hexdigest()


def copy_rows(s, table, columns, rows):
    """COPY rows (tuples of text) into table through psql."""
    path = tempfile.mktemp(prefix="bench-", suffix=".tsv", dir=s.root_dir)
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.chmod(path, 0o644)
    s.psql("\\copy %s (%s) FROM '%s'" % (table, ", ".join(columns), path))
    os.unlink(path)


# ---- baselines ---------------------------------------------------------------------------------

INSERT_SQL = """INSERT INTO bench_insert (request_id, user_id, purpose, phone, phone_masked, country,
  locale, code_length, max_attempts, max_call_attempts, options, requested_at, expires_at, status,
  next_attempt_at) VALUES (gen_random_uuid(), 'user', 'login', '+15550100000', '+1555****000', 'us',
  'en-US', 6, 5, 3, '{}', now(), now() + interval '5 minutes', 'pending', now());
"""
UPDATE_SQL = """\\set i random(1, 100000)
UPDATE bench_update SET attempts = attempts + 1, updated_at = now()
 WHERE k = :i AND attempts < max_attempts AND expires_at > now();
"""


def script_file(s, name, script):
    """A pgbench script in the stack's folder, readable by the postgres user."""
    path = os.path.join(s.root_dir, name + ".sql")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(path, 0o644)
    return path


def percentiles(values):
    """(p50, p99) of a sorted, non-empty list."""
    return values[len(values) // 2], values[int(len(values) * 0.99)]


def pgbench(s, name, script):
    path = script_file(s, name, script)
    out = subprocess.run([os.path.join(PG_BIN, "pgbench"), "-n", "-c", "8", "-j", "2", "-T", "10",
                          "-h", s.pg_socket_dir, "-p", str(s.pg_port), "-U", "otp", "-f", path,
                          "otp"], capture_output=True, text=True, timeout=120)
    m = re.search(r"tps = ([\d.]+)", out.stdout)
    if not m:
        raise RuntimeError("pgbench failed: %s %s" % (out.stdout, out.stderr))
    return float(m.group(1))


def pgbench_latency(s, name, script, rate, clients):
    """PostgreSQL's own latency for script at a steady rate: (p50 ms, p99 ms), from pgbench's
    per-transaction log, to set beside the verifier's at the same rate and connection count."""
    path = script_file(s, name, script)
    with tempfile.TemporaryDirectory(dir=s.root_dir) as tmp:
        subprocess.run([os.path.join(PG_BIN, "pgbench"), "-n", "-c", str(clients), "-j", "2", "-T",
                        "10", "-R", str(int(rate)), "-l", "-h", s.pg_socket_dir, "-p", str(s.pg_port),
                        "-U", "otp", "-f", path, "otp"], capture_output=True, text=True, timeout=120,
                       cwd=tmp, check=True)
        took = []
        for log in os.listdir(tmp):
            with open(os.path.join(tmp, log)) as f:
                took += [int(line.split()[2]) for line in f if len(line.split()) > 2]
    return tuple(us / 1000.0 for us in percentiles(sorted(took)))


def baselines(s):
    s.psql("CREATE TABLE bench_insert (LIKE challenges INCLUDING ALL)")
    s.psql("CREATE TABLE bench_update (LIKE challenges INCLUDING ALL, k integer UNIQUE)")
    s.psql("INSERT INTO bench_update (k, request_id, user_id, purpose, phone, phone_masked, locale,"
           " code_length, max_attempts, max_call_attempts, requested_at, expires_at, status)"
           " SELECT i, gen_random_uuid(), 'u' || i, 'login', '+15550100000', '+1555****000',"
           " 'en-US', 6, 1000000, 3, now(), now() + interval '1 day', 'delivered'"
           " FROM generate_series(1, 100000) i")
    s.psql("VACUUM ANALYZE bench_update")
    BASE["INSERT"] = pgbench(s, "insert", INSERT_SQL)
    BASE["UPDATE"] = pgbench(s, "update", UPDATE_SQL)
    row("pgbench", "INSERT, one challenge row per transaction", "%.0f/s" % BASE["INSERT"])
    row("pgbench", "UPDATE attempts by key, 100,000 rows", "%.0f/s" % BASE["UPDATE"])


# ---- verifier ----------------------------------------------------------------------------------

def seed_challenges(p, n, prefix, status="delivered", attempts=0, users=None):
    """n live challenges with known codes; returns [(request_id, code)]."""
    out, rows = [], []
    for i in range(n):
        rid = str(uuid.uuid4())
        code = "%06d" % secrets.randbelow(10 ** 6)
        user = users(i) if users else "%s-%d" % (prefix, i)
        out.append((rid, code))
        rows.append((rid, user, "login", "+15550100000", "+1555****000", "us", "en-US", "6",
                     code_hash(p.hash_key, rid, code), "1", status, str(attempts), "5", "3",
                     "2026-01-01T00:00:00Z", "2099-01-01T00:00:00Z"))
    copy_rows(p.s, "challenges", ["request_id", "user_id", "purpose", "phone", "phone_masked",
                                  "country", "locale", "code_length", "code_hash", "key_id",
                                  "status", "attempts", "max_attempts", "max_call_attempts",
                                  "requested_at", "expires_at"],
              [r[:8] + ("\\\\x" + r[8],) + r[9:] for r in rows])
    return out


def wrk(p, mode, ids=None, connections=32, seconds=10, rate=0, threads=2):
    """wrk against POST /v1/verify; returns (requests/s, p50 ms, p99 ms, non-2xx)."""
    env = dict(os.environ, OTP_BENCH_API_KEY=p.api_key, OTP_BENCH_MODE=mode,
               OTP_BENCH_RATE_MS=str(1000.0 * connections / rate if rate else 0))
    if ids is not None:
        path = os.path.join(p.s.root_dir, "ids-%s.txt" % mode)
        with open(path, "w") as f:
            f.write("".join("%s %s\n" % x for x in ids))
        env["OTP_BENCH_IDS"] = path
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds,
                          "--latency", "-s", os.path.join(HERE, "verify_bench.lua"),
                          "http://127.0.0.1:%d/v1/verify" % p.verifier_port],
                         capture_output=True, text=True, env=env, timeout=seconds + 60).stdout

    def ms(label):
        m = re.search(r"\s%s\s+([\d.]+)(us|ms|s)\b" % label, out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, ms("50%"), ms("99%"), int(non2xx.group(1)) if non2xx else 0, out


def bench_verifier(p):
    wrong = seed_challenges(p, 100000, "w")
    right = seed_challenges(p, 120000, "r")
    locked = seed_challenges(p, 20000, "l", status="locked", attempts=5)
    flood_user = seed_challenges(p, 50, "f", users=lambda i: "flooder")
    p.s.psql("VACUUM ANALYZE challenges")
    v = p.start_verifier()

    rps, p50, p99, _, st = wrk(p, "unknown")
    row("verifier", "unknown request id (404)", "%.0f/s p99 %.1f ms" % (rps, p99), "UPDATE", ">= 0.8")
    watch = CpuWatch().start()
    rps_w, p50, p99, _, st = wrk(p, "wrong", wrong)
    row("verifier", "wrong code, existing challenge (200 incorrect)",
        "%.0f/s p99 %.1f ms" % (rps_w, p99), "UPDATE", ">= 0.8")
    print("            " + watch.stop())
    rps, p50, p99, non2xx, st = wrk(p, "right", right)
    row("verifier", "right code, each used once (200 verified)", "%.0f/s p99 %.1f ms" % (rps, p99),
        "UPDATE", ">= 0.8")
    if non2xx:
        print("  (right: %d answers were not 200: the %d ids ran out)" % (non2xx, len(right)))
    rps, p50, p99, _, st = wrk(p, "locked", locked)
    row("verifier", "locked challenge (404)", "%.0f/s p99 %.1f ms" % (rps, p99), "UPDATE", ">= 0.8")
    half = rps_w / 2
    rps, p50, p99, _, st = wrk(p, "wrong", wrong, connections=16, rate=half)
    row("verifier", "wrong code at half the peak (%.0f/s)" % half, "p50 %.2f p99 %.2f ms" % (p50, p99),
        "", "p99 <= 5 ms")
    # The server's own tail at that rate: one UPDATE per transaction, 16 clients (the verifier's
    # 16 connections), no HTTP at all.
    b50, b99 = pgbench_latency(p.s, "update-rate", UPDATE_SQL, half, 16)
    row("pgbench", "UPDATE alone at the same rate, 16 clients", "p50 %.2f p99 %.2f ms" % (b50, b99))

    # Other users at a steady rate, alone and then beside one user's flood of wrong codes.
    _, _, calm, _, _ = wrk(p, "wrong", wrong, connections=8, rate=400)
    env = dict(os.environ, OTP_BENCH_API_KEY=p.api_key, OTP_BENCH_MODE="wrong",
               OTP_BENCH_RATE_MS="0", OTP_BENCH_IDS=os.path.join(p.s.root_dir, "flood.txt"))
    with open(env["OTP_BENCH_IDS"], "w") as f:
        f.write("".join("%s 000000\n" % rid for rid, _ in flood_user))
    flood = subprocess.Popen(["wrk", "-t1", "-c16", "-d14s", "-s", os.path.join(HERE, "verify_bench.lua"),
                              "http://127.0.0.1:%d/v1/verify" % p.verifier_port], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(2)
    _, _, loaded, _, _ = wrk(p, "wrong", wrong, connections=8, rate=400, threads=1)
    flood_out = flood.communicate(timeout=60)[0]
    flood_rps = re.search(r"Requests/sec:\s+([\d.]+)", flood_out)
    row("verifier", "others' p99 at 400/s: alone / beside a flood (%s/s)" % (
        flood_rps.group(1).split(".")[0] if flood_rps else "?"),
        "%.2f / %.2f ms (%.1fx)" % (calm, loaded, loaded / calm if calm else 0), "", "<= 2x")
    row("memory", "verifier peak RSS", "%.1f MiB" % (kib(v.pid, "VmHWM") / 1024), "", "<= 32 MiB")
    v.stop()
    p.verifier = None


# ---- ingest, calls, idle, memory ------------------------------------------------------------------

_COUNT_CONN = {}


def count(p, sql):
    """One number from PostgreSQL over a connection kept open (autocommit): polling 20 times a
    second through a new psql process each time would load the machine being measured."""
    import psycopg
    conn = _COUNT_CONN.get(p.db_url)
    if conn is None or conn.closed:
        conn = _COUNT_CONN[p.db_url] = psycopg.connect(p.db_url, autocommit=True)
    row_ = conn.execute(sql).fetchone()
    return int(row_[0] or 0) if row_ else 0


def drain_outbox(p, timeout):
    """Waits (up to timeout s) until the workers running have relayed every event: a phase then
    measures its own work, not an earlier phase's relay backlog."""
    deadline = time.monotonic() + timeout
    while count(p, "SELECT count(*) FROM outbox") and time.monotonic() < deadline:
        time.sleep(0.5)


def retire(p, tag):
    """Ends a phase's requests that are still due, so the next phase measures only its own."""
    p.s.psql("UPDATE challenges SET status = 'expired', next_attempt_at = NULL"
             " WHERE user_id LIKE '%s-%%' AND next_attempt_at IS NOT NULL" % tag)


COUNTRIES = ["+1201555%04d", "+4420795%05d", "+4930901%05d", "+3314250%04d", "+3491123%04d",
             "+3906482%04d", "+8133123%04d", "+8221234%04d", "+55119123%05d", "+9198100%05d"]


def ingest_rate(p, n, tag, **worker_env):
    """n requests already waiting in the topic, spread over ten countries; one worker (VoIPBin's
    default account rate, so calls barely compete) makes them durable. Counted from the worker's
    own counters (each batch's outcomes, counted after its commit), polled over HTTP: a count(*)
    of the phase's rows would scan the challenges table (240,000 rows after the verifier's
    phase) 20 times a second and load the server being measured."""
    reqs = [{"phone": COUNTRIES[i % 10] % (i // 10), "user_id": "%s-%d" % (tag, i)} for i in range(n)]
    p.produce_many(reqs)
    w = p.start_worker(**worker_env)
    where = "user_id LIKE '%s-%%'" % tag
    first = None
    deadline = time.monotonic() + 600
    watch = None
    while time.monotonic() < deadline:
        c = ingested(w)
        now = time.monotonic()
        if c and first is None:
            first, c0 = now, c
            watch = CpuWatch().start()
        if c >= n:
            break
        time.sleep(0.05)
    took = time.monotonic() - first
    cpu = watch.stop()
    if count(p, "SELECT count(*) FROM challenges WHERE " + where) != n:
        raise SystemExit("ingest %s: the worker counted %d requests, the table has a different"
                         " number" % (tag, n))
    split = p.s.psql("SELECT string_agg(status || '=' || n, ' ') FROM (SELECT status, count(*) n"
                     " FROM challenges WHERE %s AND status IN ('rate_limited', 'blocked', 'expired')"
                     " GROUP BY 1 ORDER BY 1) x" % where).strip()
    w.stop()
    p.workers.remove(w)
    retire(p, tag)
    return (n - c0) / took if took > 0 else float("nan"), split, cpu


# Every per-number, per-user, per-country and global limit off: only the VoIPBin budget paces calls.
NO_LIMITS = dict(OTP_LIMIT_PHONE_15MIN=0, OTP_LIMIT_PHONE_DAY=0, OTP_LIMIT_USER_HOUR=0,
                 OTP_LIMIT_COUNTRY_HOUR=0, OTP_LIMIT_GLOBAL_HOUR=0)

# Every abuse limit checked and counted for every request, the country and global caps set above
# the run so that both sizes do the same work (all accepted): the per-request cost alone.
SAME_WORK = dict(OTP_LIMIT_COUNTRY_HOUR=10000000, OTP_LIMIT_GLOBAL_HOUR=10000000)


def bench_ingest(p):
    r5, split5, cpu5 = ingest_rate(p, 5000, "i5", **SAME_WORK)
    row("ingest", "5,000 waiting, limits on (%s)" % (split5 or "all accepted"), "%.0f/s" % r5,
        "INSERT", ">= 0.5")
    print("            " + cpu5)
    r50, split50, cpu50 = ingest_rate(p, 50000, "i50", **SAME_WORK)
    row("ingest", "50,000 waiting, limits on (%s)" % (split50 or "all accepted"),
        "%.0f/s (%+.0f%%)" % (r50, 100.0 * (r50 - r5) / r5), "INSERT",
        ">= 0.5, within 15% of 5,000")
    print("            " + cpu50)
    rd, splitd, cpud = ingest_rate(p, 50000, "id")
    row("ingest", "50,000 more, every default (%s)" % (splitd or "all accepted"), "%.0f/s" % rd,
        "INSERT", ">= 0.5")
    print("            " + cpud)


def call_rate(p, n, workers, tag):
    reqs = [{"phone": "+1212%07d" % (2000000 + i), "user_id": "%s-%d" % (tag, i)} for i in range(n)]
    env = dict(NO_LIMITS, OTP_MAX_IN_FLIGHT=512, OTP_VOIPBIN_RATE=10000000,
               OTP_VOIPBIN_BURST=100000)
    ws = [p.start_worker(**env) for _ in range(workers)]
    time.sleep(4 + 6 * (workers - 1))  # the group join, and a rebalance per later member
    drain_outbox(p, 180)  # ingest leaves 100,000 events in the outbox
    base = count(p, "SELECT count(*) FROM calls")
    # The CPU from before the requests are produced to the last call: everything the n calls
    # cost the workers and PostgreSQL (ingest, claims, the calls, their records, the relay).
    watch = CpuWatch().start()
    p.produce_many(reqs)
    first = None
    samples = waiting = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        c = count(p, "SELECT count(*) FROM calls") - base
        # Lock waits, sampled: the workers' sessions waiting on a row or table lock now.
        waiting += count(p, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND application_name LIKE 'otp-worker%'")
        samples += 1
        now = time.monotonic()
        if c and first is None:
            first, c0 = now, c
        if c >= n:
            break
        time.sleep(0.05)
    took = time.monotonic() - first
    cpu = watch.stop()
    for w in ws:
        w.stop()
        p.workers.remove(w)
    retire(p, tag)
    per_1000 = {k: 1000.0 * watch.seconds.get(k, 0.0) / n for k in ("worker", "postgres")}
    return ((n - c0) / took if took > 0 else float("nan"), cpu, per_1000,
            waiting / float(samples or 1))


def bench_calls(p):
    """Calls/s of one worker and of three, and what each costs: CPU seconds per 1,000 calls of
    the workers and of PostgreSQL (two cores cannot show three workers' rate scaling; the cost
    per call shows whether it would where cores are not the limit), and the workers' sessions
    seen waiting on a lock (sampled 20 times a second)."""
    p.sim.fault(path="/v1.0/calls", method="POST", latency_ms=250)
    one, cpu1, cost1, wait1 = call_rate(p, 6000, 1, "c1")
    row("calls", "one worker, POST /calls answered after 250 ms", "%.0f calls/s" % one, "", ">= 1000")
    print("            " + cpu1)
    three, cpu3, cost3, wait3 = call_rate(p, 12000, 3, "c3")
    row("calls", "three workers, same setup", "%.0f calls/s (%.1fx)" % (three, three / one), "",
        ">= 2.5x one")
    print("            " + cpu3)
    total1, total3 = cost1["worker"] + cost1["postgres"], cost3["worker"] + cost3["postgres"]
    row("calls", "CPU s per 1,000 calls, workers + PostgreSQL: one / three workers",
        "%.2f + %.2f / %.2f + %.2f (%.2fx)" % (cost1["worker"], cost1["postgres"], cost3["worker"],
                                             cost3["postgres"], total3 / total1 if total1 else 0),
        "", "within 10%")
    row("calls", "  workers' sessions waiting on a lock (mean of samples): one / three",
        "%.3f / %.3f" % (wait1, wait3), "", "near 0")
    # What one core places, from the three workers' cost (the figure for more cores).
    if total3:
        print("            projected: %.0f calls/s per core (1000 / %.2f CPU s)" % (
            1000.0 / total3, total3))
    sim_reset(p)


def bench_latency(p, rate=200, seconds=15, post_ms=250):
    """A steady stream: `rate` requests/s for `seconds` through otp-produce --rate, one worker,
    the simulator answering POST /calls after post_ms. Per request, from the status topic:
    call_requested.at - accepted.at - post_ms (both times are the commits' clocks in PostgreSQL),
    i.e. what the pipeline adds to the provider's own latency."""
    import datetime
    p.sim.fault(path="/v1.0/calls", method="POST", latency_ms=post_ms)
    # The mock broker answers an empty fetch only after fetch.wait.max.ms (500 ms) even when data
    # arrives meanwhile (rdkafka_mock_handlers.c says so); a real broker answers at once. 10 ms
    # here makes the mock deliver a steady stream as a broker would, instead of in half-second
    # bursts that the worker would then queue behind its in-flight window.
    w = p.start_worker(OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000,
                       KAFKA_FETCH_WAIT_MAX_MS=10, **NO_LIMITS)
    # One request through to its call first: the worker has joined the group and holds the
    # partitions, so the stream measures the steady state, not a backlog from the join.
    base = count(p, "SELECT count(*) FROM calls")
    p.produce([{"phone": "+16463000000", "user_id": "lat-warm"}])
    deadline = time.monotonic() + 60
    while count(p, "SELECT count(*) FROM calls") == base and time.monotonic() < deadline:
        time.sleep(0.05)
    reader = P.StatusReader(p.bootstrap, "otp.call_status")
    n = rate * seconds
    lines = "".join(json.dumps({"phone": "+1646%07d" % (2000000 + i), "user_id": "lat-%d" % i})
                    + "\n" for i in range(n))
    subprocess.run([Stack.bin("otp-produce"), "--file", "-", "--rate", "%d/s" % rate],
                   input=lines, env={**os.environ, **p.env()}, capture_output=True, text=True,
                   timeout=seconds * 3 + 60, check=True)

    def at(ev):
        return datetime.datetime.strptime(ev["at"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()

    deadline = time.monotonic() + 120
    while True:
        acc, req = {}, {}
        for ev in reader.snapshot():
            if ev.get("type") == "accepted":
                acc[ev["request_id"]] = at(ev)
            elif ev.get("type") == "call_requested" and ev["request_id"] not in req:
                req[ev["request_id"]] = at(ev)
        took = sorted(1000 * (req[r] - acc[r]) - post_ms for r in req if r in acc)
        if len(took) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    reader.close()
    row("calls", "steady %d/s for %d s: accepted -> call_requested, over the %d ms POST"
        % (rate, seconds, post_ms),
        "p50 %.0f p99 %.0f ms (%d of %d)" % (percentiles(took) + (len(took), n)) if took
        else "no calls",
        "", "p99 <= 50 ms")
    w.stop()
    p.workers.remove(w)
    retire(p, "lat")
    sim_reset(p)


def sim_reset(p):
    """The simulator between phases: no account limit (only the workers' budget paces the calls)
    and no call webhooks. The bench runs no verifier for them to reach outside its own phase, and
    the simulator's three tries of each of a call's events at a closed port took about 0.4 of the
    two cores from what is measured (calls: 840-998/s with them, 1,349/s without, one run each).
    A deployment's webhooks are VoIPBin's work, on VoIPBin's machines, and the verifier's."""
    p.sim.clear_faults()
    p.sim.fault(rate=1000000, burst=1000000, webhook_drop_pct=100)


def metrics_sum(port, name, label=None):
    """The sum of a counter's samples on a program's /metrics (label: only that label value)."""
    text = metrics_text(port)
    pat = r'^%s(\{[^}]*\})? (\d+)' % re.escape(name)
    return sum(int(m.group(2)) for m in re.finditer(pat, text, re.M)
               if label is None or ('"%s"' % label) in (m.group(1) or ""))


def bench_webhooks(p, n=4000):
    """The verifier's webhook path at the calls rate: one worker places n calls as fast as the
    simulator takes them, and the simulator plays each call out and sends VoIPBin's webhooks for
    it (answered, the heard marker that webhook_send reports after the first reading, the
    hang-up) to the verifier's webhook listener, signed. Figures: calls/s, webhooks the verifier
    applied per second over the same span, webhooks per call, and how long after the last call
    was placed the last request was recorded delivered (the webhook path keeping up, or not)."""
    sim_reset(p)
    p.sim.fault(rate=1000000, burst=1000000, webhook_drop_pct=0)
    v = p.start_verifier(**dict(kv.split("=", 1) for kv in
                                os.environ.get("BENCH_WEBHOOK_ENV", "").split(",") if kv))
    w = p.start_worker(OTP_MAX_IN_FLIGHT=512, OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000,
                       **NO_LIMITS)
    time.sleep(4)
    base_hooks = metrics_sum(p.verifier_admin_port, "otp_verifier_webhooks_total", "accepted")
    p.produce_many([{"phone": "+1214%07d" % (2000000 + i), "user_id": "wh-%d" % i}
                    for i in range(n)])
    watch = None
    t_first = t_last_call = None
    deadline = time.monotonic() + 300
    delivered = 0
    while time.monotonic() < deadline:
        _, placed = worker_counters(w)
        now = time.monotonic()
        if placed and t_first is None:
            t_first, watch = now, CpuWatch().start()
        if placed >= n and t_last_call is None:
            t_last_call = now
        # By the (service, user_id) index: a range of this phase's users, not a scan.
        delivered = count(p, "SELECT count(*) FROM challenges WHERE service = 'default'"
                              " AND user_id LIKE 'wh-%' AND status = 'delivered'") if t_last_call else 0
        if delivered >= n:
            break
        time.sleep(0.2)
    t_end = time.monotonic()
    cpu = watch.stop() if watch else ""
    hooks = metrics_sum(p.verifier_admin_port, "otp_verifier_webhooks_total", "accepted") - base_hooks
    calls_rate = n / (t_last_call - t_first) if t_last_call and t_last_call > t_first else float("nan")
    per_call = hooks / n
    hooks_rate = hooks / (t_end - t_first)
    row("webhooks", "calls placed, the simulator sending every webhook", "%.0f calls/s" % calls_rate)
    row("webhooks", "applied by the verifier, all %d calls' (%.0f a call)" % (n, per_call),
        "%.0f webhooks/s" % hooks_rate)
    # VoIPBin lets one account place 16.7 calls a second (bench_account_rate): the webhook path
    # must keep up with every webhook of that many calls, with room for retries.
    row("webhooks", "calls/s whose webhooks that keeps up with", "%.0f calls/s" % (
        hooks_rate / per_call if per_call else 0), "", ">= 16.7 (VoIPBin's account limit)")
    row("webhooks", "last delivered after the last call placed (a backlog: calls came faster)",
        "%.1f s (%d of %d delivered)" % (t_end - (t_last_call or t_end), delivered, n))
    print("            " + cpu)
    w.stop()
    p.workers.remove(w)
    v.stop()
    p.verifier = None
    retire(p, "wh")
    sim_reset(p)


def bench_memory(p):
    p.sim.fault(path="/v1.0/calls", method="POST", latency_ms=20000)
    w = p.start_worker(OTP_MAX_IN_FLIGHT=2048, OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000,
                       OTP_LEASE_SECONDS=60, **NO_LIMITS)
    time.sleep(4)
    p.produce_many([{"phone": "+1213%07d" % (2000000 + i), "user_id": "m-%d" % i} for i in range(2000)])
    deadline = time.monotonic() + 30
    inflight = 0
    while time.monotonic() < deadline:
        inflight = count(p, "SELECT count(*) FROM challenges WHERE user_id LIKE 'm-%' AND status = 'calling'")
        if inflight >= 2000:
            break
        time.sleep(0.2)
    time.sleep(1)
    row("memory", "worker RSS, %d calls in flight" % inflight, "%.1f MiB" % (kib(w.pid, "VmRSS") / 1024),
        "", "<= 64 MiB")
    w.kill()
    p.workers.remove(w)
    retire(p, "m")
    sim_reset(p)


def bench_account_rate(p, seconds=120):
    """VoIPBin's real per-account limit (16.7 requests/s, burst 33) in the simulator; two workers
    at the default shared budget (16/s) with a backlog: the share of the limit used, and 429s."""
    p.sim.fault(rate=16.7, burst=33)
    ws = [p.start_worker(OTP_LIMIT_COUNTRY_HOUR=0, OTP_LIMIT_GLOBAL_HOUR=0) for _ in range(2)]
    time.sleep(10)
    p.produce_many([{"phone": "+1310%07d" % (2000000 + i), "user_id": "a-%d" % i} for i in range(int(seconds * 17) + 200)])
    base = count(p, "SELECT count(*) FROM calls")
    while count(p, "SELECT count(*) FROM calls") == base:
        time.sleep(0.05)
    t0, n0 = time.monotonic(), count(p, "SELECT count(*) FROM calls")
    time.sleep(seconds)
    n1 = count(p, "SELECT count(*) FROM calls")
    rate = (n1 - n0) / (time.monotonic() - t0)
    got429 = sum(len(re.findall(r"cause=http_429", w.log())) for w in ws)
    when = sorted(l[:23] for w in ws for l in w.log().splitlines() if "cause=http_429" in l)
    if when:
        print("  (429s at %s; first call of the run at %s)" % (
            ", ".join(t[11:] for t in when[:12]),
            time.strftime("%H:%M:%S", time.gmtime(time.time() - (time.monotonic() - t0)))))
    row("account", "two workers at the real limit (16.7/s), %d s" % seconds,
        "%.2f calls/s (%.1f%%), %d x 429" % (rate, 100 * rate / 16.7, got429), "", ">= 95%, 0 x 429")
    for w in ws:
        w.kill()
        p.workers.remove(w)
    retire(p, "a")
    p.sim.fault(rate=1000000, burst=1000000)


def bench_backlog(p, n=20000, rate=250):
    """After an outage: n requests waiting in the topic before any worker runs, half of them
    already too old (requested 10 minutes ago, TTL 5 minutes). Every fresh one must be called,
    no stale one, and the last call must come within 1.2x of (fresh / account rate). Scaled down
    from the issue's 100,000 at the real 16.7/s (100 minutes): the account rate here is `rate`
    requests/s, the per-number and per-user caps off so that only the rate paces the calls."""
    p.sim.fault(rate=1000000, burst=1000000)  # only our budget paces: the account is `rate`
    stale_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    reqs = []
    for i in range(n):
        r = {"phone": "+1415%07d" % (2000000 + i), "user_id": "b-%d" % i}
        if i % 2:
            r["requested_at"] = stale_at
            r["user_id"] = "bs-%d" % i
        reqs.append(r)
    p.produce_many(reqs)
    fresh = n - n // 2
    base = count(p, "SELECT count(*) FROM calls")
    t0 = time.monotonic()
    w = p.start_worker(OTP_VOIPBIN_RATE=rate * 1000, OTP_MAX_IN_FLIGHT=256, **NO_LIMITS)
    ideal = fresh / float(rate)
    deadline = t0 + 3 * ideal + 60
    while time.monotonic() < deadline and count(p, "SELECT count(*) FROM calls") - base < fresh:
        time.sleep(0.2)
    took = time.monotonic() - t0
    called = count(p, "SELECT count(DISTINCT c.request_id) FROM calls c JOIN challenges ch"
                      " USING (request_id) WHERE ch.user_id LIKE 'b-%'")
    stale_called = count(p, "SELECT count(*) FROM calls c JOIN challenges ch USING (request_id)"
                            " WHERE ch.user_id LIKE 'bs-%'")
    row("backlog", "%d waiting, half too old, account %d/s" % (n, rate),
        "%d/%d fresh called, %d stale, last after %.0f s (%.2fx ideal)" % (
            called, fresh, stale_called, took, took / ideal), "",
        "all fresh, 0 stale, <= 1.2x")
    w.stop()
    p.workers.remove(w)
    retire(p, "b")


VOLUME = [int(x) for x in os.environ.get("BENCH_VOLUME", "5000,100000").split(",")]


def metrics_text(port):
    """A program's /metrics on 127.0.0.1:port, straight (no proxy)."""
    import urllib.request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def worker_metrics(w):
    return metrics_text(w.listen_port)


def worker_counters(w):
    """(accepted, calls placed) from the worker's /metrics."""
    text = worker_metrics(w)

    def get(name, outcome):
        m = re.search(r'^%s\{outcome="%s"\} (\d+)' % (name, outcome), text, re.M)
        return int(m.group(1)) if m else 0
    return get("otp_worker_requests_total", "accepted"), get("otp_worker_calls_total", "placed")


def ingested(w):
    """Requests the worker has made durable, whatever it decided (its `accepted` counter counts
    every new row: a request refused by a limit, expired on arrival or blocked is counted there
    too, and again under its refusal), from its /metrics."""
    return worker_counters(w)[0]


def table_figures(p):
    """{table: (heap MiB, index MiB, live rows, dead rows)} of the tables that grow with volume."""
    out = p.s.psql("SELECT relname, pg_table_size(relid), pg_indexes_size(relid), n_live_tup,"
                   " n_dead_tup FROM pg_stat_user_tables WHERE relname IN ('challenges', 'calls',"
                   " 'outbox', 'outbox_seq', 'budget_counts') ORDER BY relname")
    res = {}
    for line in out.strip().splitlines():
        name, heap, idx, live, dead = line.split("|")
        res[name] = (int(heap) / 2 ** 20, int(idx) / 2 ** 20, int(live), int(dead))
    return res


class PgCpu:
    """CPU seconds of PostgreSQL's processes by kind (backends, autovacuum, checkpointer, ...),
    sampled while a phase runs so that autovacuum workers that exit are counted too."""

    def __init__(self):
        self.start = {}
        self.last = {}
        self.kind = {}
        self.sample()
        self.start = dict(self.last)

    def sample(self):
        for pid in processes().get("postgres", []):
            if pid not in self.kind:
                try:
                    with open("/proc/%d/cmdline" % pid) as f:
                        cmd = f.read().replace("\0", " ")
                except OSError:
                    continue
                m = re.match(r"postgres: (autovacuum worker|checkpointer|walwriter|background"
                             r" writer)", cmd)
                self.kind[pid] = m.group(1) if m else "backends"
            c = cpu_seconds(pid)
            if c:
                self.last[pid] = c

    def seconds(self):
        """{kind: CPU seconds since the start}."""
        out = {}
        for pid, c in self.last.items():
            k = self.kind.get(pid, "backends")
            out[k] = out.get(k, 0.0) + c - self.start.get(pid, 0.0)
        return out


def start_worker_bin(p, binary, **extra):
    """Pipeline.start_worker with another otp-worker binary (BENCH_VOLUME_BASELINE)."""
    if not binary:
        return p.start_worker(**extra)
    settings = {"OTP_WORKER_LISTEN": "127.0.0.1:%d" % P.free_port(),
                "OTP_WORKER_ID": "worker-%d" % (len(p.workers) + 1)}
    settings.update(extra)
    env = p.env(**settings)
    w = p.s.spawn("worker-base-%d" % (len(p.workers) + 1), [binary], env=env,
                  ready_line=r"event=worker_started")
    w.listen_port = int(env["OTP_WORKER_LISTEN"].rsplit(":", 1)[1])
    p.workers.append(w)
    return w


def volume_run(p, n, tag, first_number, binary=None):
    """n requests waiting (a number and a user each), one worker (binary: another build of
    otp-worker): (ingest/s, calls/s, peak RSS MiB, cores used, (accepted, placed), CPU seconds of
    worker and PostgreSQL per 1,000, PostgreSQL's by process)."""
    reqs = [{"phone": "+1718%07d" % (first_number + i), "user_id": "%s-%d" % (tag, i)}
            for i in range(n)]
    p.produce_many(reqs)
    extra = dict(kv.split("=", 1) for kv in os.environ.get("BENCH_VOLUME_ENV", "").split(",") if kv)
    pg = PgCpu()
    w = start_worker_bin(p, binary, OTP_MAX_IN_FLIGHT=512, OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000,
                       OTP_CALL_STATUS_TIMEOUT_SECONDS=3600, OTP_FALLBACK_AFTER_SECONDS=3600,
                       **dict(SAME_WORK, **extra))
    marks = {}  # what -> (first time, count then, last time)
    watch = None
    deadline = time.monotonic() + 900
    acc = placed = 0
    while time.monotonic() < deadline:
        acc, placed = worker_counters(w)
        now = time.monotonic()
        for what, c in (("ingest", acc), ("calls", placed)):
            if c and what not in marks:
                marks[what] = (now, c, None)
                watch = watch or CpuWatch().start()
            if c >= n and what in marks and marks[what][2] is None:
                marks[what] = marks[what][:2] + (now,)
        pg.sample()
        if placed >= n:
            break
        time.sleep(0.2)
    cpu = watch.stop() if watch else ""
    pg.sample()
    pg_kinds = pg.seconds()
    pg_s = sum(pg_kinds.values())
    w_s = cpu_seconds(w.pid)
    rss = kib(w.pid, "VmHWM") / 1024
    w.stop()
    p.workers.remove(w)
    retire(p, tag)

    def rate(what):
        t0, c0, t1 = marks.get(what, (0, 0, None))
        return (n - c0) / (t1 - t0) if t1 and t1 > t0 else float("nan")
    return (rate("ingest"), rate("calls"), rss, cpu, (acc, placed),
            (1000.0 * w_s / n, 1000.0 * pg_s / n),
            ", ".join("%s %.3f" % (k, 1000.0 * v / n) for k, v in sorted(pg_kinds.items())))


def bench_volume(p):
    """Each size with this build; with BENCH_VOLUME_BASELINE=<another otp-worker>, each size
    with that build too, right after (same database, same run): before and after side by side."""
    builds = [("", None)]
    if os.environ.get("BENCH_VOLUME_BASELINE"):
        builds.append((" [baseline]", os.environ["BENCH_VOLUME_BASELINE"]))
    got = {}
    number = 2000000
    for n in VOLUME:
        for label, binary in builds:
            p.s.psql("CHECKPOINT", user="postgres")  # each run starts with clean buffers
            before = table_figures(p)
            got[n, label] = volume_run(p, n, "v%d%s" % (n, "b" if binary else ""), number, binary)
            number += n
            after = table_figures(p)
            volume_rows(n, label, got, before, after)


def volume_rows(n, label, got, before, after):
    ing, calls, rss, cpu, (acc, placed), (w_s, pg_s), kinds = got[n, label]
    first = got[VOLUME[0], label]
    size = format(n, ",") + label
    ratio = n != VOLUME[0]
    row("volume", "%s waiting: ingest (%d accepted)" % (size, acc), "%.0f/s%s" % (
        ing, " (%.2fx)" % (ing / first[0]) if ratio else ""), "", "within 10%")
    row("volume", "%s waiting: calls (%d placed)" % (size, placed), "%.0f/s%s" % (
        calls, " (%.2fx)" % (calls / first[1]) if ratio else ""), "", "within 10%")
    row("volume", "%s waiting: worker peak RSS" % size, "%.1f MiB" % rss, "", "<= 64 MiB")
    row("volume", "%s waiting: CPU s per 1,000 requests" % size,
        "worker %.2f, postgres %.2f%s" % (w_s, pg_s, " (%.2fx, %.2fx)" % (
            w_s / first[5][0], pg_s / first[5][1]) if ratio else ""), "", "within 10%")
    print("            " + cpu)
    print("            PostgreSQL CPU s per 1,000 by process: " + kinds)
    for t in sorted(after):
        b = before.get(t, (0, 0, 0, 0))
        a = after[t]
        print("            %-13s heap %6.1f MiB (%+.1f) indexes %6.1f MiB (%+.1f) live %7d"
              " dead %7d" % (t, a[0], a[0] - b[0], a[1], a[1] - b[1], a[2], a[3]))


def bench_idle(p):
    ws = [p.start_worker() for _ in range(2)]
    drain_outbox(p, 300)  # the verifier's events
    time.sleep(12)  # joined; every relay and dispatcher back to sleep

    def stats():
        out = p.s.psql("SELECT xact_commit, (SELECT sum(n_tup_upd + n_tup_ins + n_tup_del)"
                       " FROM pg_stat_user_tables) FROM pg_stat_database WHERE datname = 'otp'")
        return [int(x) for x in out.strip().split("|")]
    p.s.psql("SELECT pg_stat_clear_snapshot()")
    a = stats()
    time.sleep(20)
    b = stats()
    # The two probes are transactions of their own.
    commits = (b[0] - a[0] - 2) / 20.0 / len(ws)
    rows = (b[1] - a[1]) / 20.0 / len(ws)
    row("idle", "two workers, no traffic, per worker", "%.2f commits/s, %.2f rows/s" % (commits, rows),
        "", "<= 1 commit/s")
    for w in ws:
        w.stop()
        p.workers.remove(w)


def hook_receiver(p, secret, delay=0.0):
    """tests/bench/hook_receiver.py on a free port; returns (Proc, url)."""
    port = P.free_port()
    argv = [sys.executable, os.path.join(HERE, "hook_receiver.py"), "127.0.0.1:%d" % port]
    if delay:
        argv += ["--delay", str(delay)]
    proc = p.s.spawn("hook-receiver-%d" % port, argv,
                     env={"OTP_WEBHOOK_SIGNING_SECRET": secret}, ready_line=r"^listening$")
    return proc, "http://127.0.0.1:%d/hook" % port


def synthetic_status(service, n_requests, n_events):
    """Status events as the relay writes them (key: request_id)."""
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    items = []
    for _ in range(n_requests):
        rid = str(uuid.uuid4())
        for seq in range(1, n_events + 1):
            items.append((rid, json.dumps({"event_id": str(uuid.uuid4()), "schema_version": 1,
                                           "type": "ringing", "request_id": rid, "seq": seq,
                                           "at": now, "service": service})))
    return items


def hooks_wait(p, since_id, service, n, timeout):
    """Waits until n deliveries of service (id > since_id) are delivered; returns the count."""
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = count(p, "SELECT count(*) FROM hook_deliveries WHERE id > %d AND service = '%s'"
                    " AND delivered_at IS NOT NULL" % (since_id, service))
        if got >= n:
            break
        time.sleep(0.2)
    return got


def hooks_rate(p, since_id, service, since="delivered_at"):
    """Deliveries/s of service's rows above since_id, from the first delivery (or, since=
    "created_at", from the first row written: for a receiver whose answers come in batches of
    its slots, first to last delivery counts one batch more than the time it took) to the last."""
    import psycopg
    with psycopg.connect(p.db_url, autocommit=True) as c:
        n, span = c.execute(
            "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL),"
            "       extract(epoch FROM max(delivered_at) - min(%s))"
            "  FROM hook_deliveries WHERE id > %%s AND service = %%s" % since,
            (since_id, service)).fetchone()
    return n / float(span) if n and span else float("nan")


def bench_hooks(p):
    from testkit import produce
    fast_secret, slow_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    fast, fast_url = hook_receiver(p, fast_secret)
    slow, slow_url = hook_receiver(p, slow_secret, delay=2)
    p.s.psql("UPDATE services SET webhook_url = '%s', webhook_secret = '%s' WHERE name = 'default';"
             " INSERT INTO services (name, webhook_url, webhook_secret) VALUES ('hb-slow', '%s', '%s')"
             " ON CONFLICT (name) DO NOTHING" % (fast_url, fast_secret, slow_url, slow_secret))
    # The status topic holds every earlier phase's events, all the default service's (hundreds
    # of thousands in a full run): the phase measures its own, so the group starts at the end.
    # librdkafka's mock broker holds an empty fetch for the whole fetch.wait.max.ms (500 ms),
    # where a real broker answers as soon as a message arrives: 10 ms, as the workers here.
    h = p.start_hooks(KAFKA_AUTO_OFFSET_RESET="latest", KAFKA_FETCH_WAIT_MAX_MS=10)
    last = count(p, "SELECT coalesce(max(id), 0) FROM hook_deliveries")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # joined the group, partitions assigned
        produce(p.bootstrap, "otp.call_status", synthetic_status("default", 1, 1))
        if hooks_wait(p, last, "default", 1, 3) >= 1:
            break

    # At the calls rate: the real pipeline, 200 requests/s for 15 s.
    rate, seconds, post_ms = 200, 15, 250
    p.sim.fault(path="/v1.0/calls", method="POST", latency_ms=post_ms)
    w = p.start_worker(OTP_VOIPBIN_RATE=10000000, OTP_VOIPBIN_BURST=100000,
                       KAFKA_FETCH_WAIT_MAX_MS=10, **NO_LIMITS)
    time.sleep(4)
    drain_outbox(p, 60)
    last = count(p, "SELECT coalesce(max(id), 0) FROM hook_deliveries")
    n = rate * seconds
    lines = "".join(json.dumps({"phone": "+1646%07d" % (3000000 + i), "user_id": "hk-%d" % i})
                    + "\n" for i in range(n))
    t0 = time.monotonic()
    subprocess.run([Stack.bin("otp-produce"), "--file", "-", "--rate", "%d/s" % rate],
                   input=lines, env={**os.environ, **p.env()}, capture_output=True, text=True,
                   timeout=seconds * 3 + 60, check=True)
    # Every request's accepted and call_requested at least (the simulator sends no call
    # webhooks in the bench): wait for those, then for every event written so far.
    hooks_wait(p, last, "default", 2 * n, 120)
    drain_outbox(p, 60)
    time.sleep(1)
    total = count(p, "SELECT count(*) FROM hook_deliveries WHERE id > %d" % last)
    got = hooks_wait(p, last, "default", total, 60)
    took = time.monotonic() - t0
    lag = p.s.psql(
        "SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY x)),"
        "       round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY x))"
        "  FROM (SELECT extract(epoch FROM delivered_at - (body::jsonb->>'at')::timestamptz) x"
        "          FROM hook_deliveries WHERE id > %d AND delivered_at IS NOT NULL) d" % last
    ).strip().split("|")
    row("hooks", "calls at %d/s for %d s: webhook deliveries" % (rate, seconds),
        "%.0f/s (%d of %d in %.0f s)" % (got / took, got, total, took))
    row("hooks", "  event committed -> webhook answered", "p50 %s p99 %s ms" % tuple(lag))
    w.stop()
    p.workers.remove(w)
    retire(p, "hk")
    sim_reset(p)

    # A backlog on the status topic, every receiver fast.
    last = count(p, "SELECT coalesce(max(id), 0) FROM hook_deliveries")
    produce(p.bootstrap, "otp.call_status", synthetic_status("default", 4000, 5))
    hooks_wait(p, last, "default", 20000, 240)
    row("hooks", "20,000 events waiting (4,000 requests of 5), fast receiver",
        "%.0f deliveries/s" % hooks_rate(p, last, "default"))

    # The same beside a service whose receiver answers in 2 s.
    last = count(p, "SELECT coalesce(max(id), 0) FROM hook_deliveries")
    produce(p.bootstrap, "otp.call_status", synthetic_status("hb-slow", 1000, 1) +
            synthetic_status("default", 4000, 5))
    hooks_wait(p, last, "default", 20000, 240)
    fast_rate = hooks_rate(p, last, "default")
    slow_n = count(p, "SELECT count(*) FROM hook_deliveries WHERE id > %d AND service = 'hb-slow'"
                   " AND delivered_at IS NOT NULL" % last)
    row("hooks", "the same beside a receiver answering in 2 s (1,000 events)",
        "%.0f deliveries/s" % fast_rate)
    row("hooks", "  the 2 s receiver meanwhile (16 in flight at most)",
        "%.1f deliveries/s" % hooks_rate(p, last, "hb-slow", since="created_at"), "", "<= 8/s")
    print("            slow service: %d of 1000 delivered by then" % slow_n)
    h.stop()
    p.hooks.remove(h)
    p.s.psql("UPDATE services SET webhook_url = NULL, webhook_secret = NULL"
             " WHERE name IN ('default', 'hb-slow')")
    fast.stop()
    slow.stop()


def main():
    global T0
    T0 = time.monotonic()
    if not ONLY:
        print("== VoIPBin simulator alone", flush=True)
        subprocess.run([os.path.join(HERE, "sim_bench.sh"), "5"], check=True)
    print("== the product beside PostgreSQL (%d cores; crash-safe PostgreSQL 15)" % os.cpu_count())
    print("  %-9s %-52s %-26s %-7s %-5s %s" % ("", "", "figure", "vs", "ratio", "target"))
    global STACK
    with Stack() as s:
        STACK = s
        # otp.requested with 12 partitions: the mock broker keeps about 5 MiB per partition and
        # silently drops older data, and the volume phase's 100,000 requests are about 25 MiB.
        # The simulator sends webhooks on 32 threads (VoIPBin's own senders are many): the
        # webhooks phase measures the verifier, not a 4-thread load generator.
        p = P.Pipeline(s, time_scale=0.02, sim_args=tuple(os.environ.get(
                           "BENCH_SIM_ARGS", "--webhook-workers 32").split()),
                       topics="otp.requested:12,otp.call_status:6,otp.requested.dlq:1")
        sim_reset(p)
        baselines(s)
        row("bench", "start: stack and baselines", "%.0f s" % (time.monotonic() - T0))
        for name, fn in (("latency", bench_latency), ("verifier", bench_verifier), ("idle", bench_idle),
                         ("ingest", bench_ingest), ("calls", bench_calls),
                         ("memory", bench_memory), ("backlog", bench_backlog),
                         ("account", bench_account_rate), ("webhooks", bench_webhooks),
                         ("hooks", bench_hooks), ("volume", bench_volume)):
            if wanted(name):
                # Each phase starts with the earlier ones' dirty pages written: the verifier's
                # phase leaves most of shared_buffers dirty, and the timed checkpoint then fell
                # inside whichever phase came next (ingest 50,000 at -11% and -18% of 5,000 in two
                # full runs, +6% with no checkpoint inside it).
                s.psql("CHECKPOINT", user="postgres")
                t = time.monotonic()
                fn(p)
                row("bench", "%s took" % name, "%.0f s" % (time.monotonic() - t))
        p.close()
    row("bench", "whole run", "%.1f min" % ((time.monotonic() - T0) / 60), "", "<= 10 min")
    print("\n| path | figure | baseline | ratio | target |\n|---|---|---|---|---|")
    for section, what, figure, base, ratio, target in ROWS:
        print("| %s: %s | %s | %s | %s | %s |" % (section, what, figure, base, ratio, target))


if __name__ == "__main__":
    main()
