#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Benchmark of the VoIPBin simulator: wrk posts valid POST /v1.0/calls (OTP flow) with the rate
# limit raised; every call then runs its state machine at real speed (ring, answer, talk, sleep,
# talk, hangup) on the scheduler thread. Prints requests/s and what the simulator did with them.
# Usage: tests/bench/sim_bench.sh [seconds] [connections] [wrk threads]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DUR=${1:-10}
CONNS=${2:-64}
THREADS=${3:-2}
SIM=${VOIPBIN_SIM_BIN:-$ROOT/bin/voipbin-sim}
KEY=vb_benchBenchBenchBenchBenchBenchBe

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
[ -x "$SIM" ] || make -C "$ROOT" bin/voipbin-sim >/dev/null

TMP=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
"$SIM" --listen 127.0.0.1:0 --port-file "$TMP/port" --access-key "$KEY" --whitelist all \
    --numbers +15550100000 --rate 1000000000 --burst 1000000000 --max-calls 20000 \
    >"$TMP/sim.log" 2>&1 &
PID=$!
i=0
while [ ! -s "$TMP/port" ]; do
    i=$((i + 1)); [ $i -lt 200 ] || { cat "$TMP/sim.log" >&2; exit 1; }; sleep 0.05
done
PORT=$(cat "$TMP/port")
BASE="http://127.0.0.1:$PORT"

echo "voipbin-sim bench: ${DUR}s, $CONNS connections, $THREADS wrk threads, $(nproc) cores"
wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" -s "$ROOT/tests/bench/sim_bench.lua" "$BASE/v1.0/calls?accesskey=$KEY" \
    | tee "$TMP/wrk.out"
grep -q "Non-2xx" "$TMP/wrk.out" && { echo "FAIL: some requests were not answered 200" >&2; exit 1; }
sleep 5 # let the calls placed last play their flow to the end
STATS=$(curl -s "$BASE/_sim/stats")
echo "simulator: $STATS"
echo "simulator memory: peak $(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status), now $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status) (ended calls kept: --max-calls 20000)"
/usr/bin/python3 - "$STATS" "$BASE" <<'PY'
import json, sys, urllib.request
st = json.loads(sys.argv[1])
calls = json.load(urllib.request.urlopen(sys.argv[2] + "/_sim/calls"))
ended = [c for c in calls if c["status"] == "hangup"]
ok = [c for c in ended if c["call"].get("hangup_reason") == "normal" and len(c["talks"]) == 2]
print("calls created %d, kept %d (--max-calls), dropped %d, still live %d, timers pending %d"
      % (st["calls_created"], st["calls_stored"], st["calls_dropped"], st["calls_live"], st["timers_pending"]))
print("of the kept calls: %d ended, %d with both talks and hangup local/normal" % (len(ended), len(ok)))
sys.exit(0 if ok and st["calls_live"] < st["calls_created"] else 1)
PY
