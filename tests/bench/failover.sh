#!/usr/bin/env bash
# Failover when a host dies: two ollama-sim hosts behind warmline, open-loop chat
# traffic, one host SIGKILLed mid-run and started again later on the same port.
# Measures what clients saw (errors, latency percentiles and maximum) and how long
# the dead host took to leave the rotation and to come back.
#
#   tests/bench/failover.sh [RATE] [ROUNDS]
#   tests/bench/failover.sh 1000 3        (the default)
#
# Prints a Markdown table (for BENCHMARKS.md) and leaves raw JSON in bench-out/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
RATE=${1:-1000}
ROUNDS=${2:-3}
OUT=bench-out/failover
mkdir -p "$OUT"

start_sim() { # name → starts a simulator on a free port; its pid goes to $OUT/name.pid
  OLLAMA_HOST=127.0.0.1:0 SIM_QUIET=1 "$BIN/ollama-sim" serve 2>"$OUT/$1.log" >/dev/null &
  echo $! >"$OUT/$1.pid"
}

for round in $(seq "$ROUNDS"); do
  start_sim a; A_PID=$(cat "$OUT/a.pid"); pids+=("$A_PID"); A=$(sim_url "$OUT/a.log")
  start_sim b; pids+=("$(cat "$OUT/b.pid")"); B=$(sim_url "$OUT/b.log")
  "$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$A" --upstream "$B" --no-cache \
    >"$OUT/gw.out" 2>"$OUT/gw.log" &
  GW_PID=$!; pids+=("$GW_PID")
  GW=$(wait_line "$OUT/gw.out" 'http://[0-9.:]*')

  "$BIN/warmline" bench --url "$GW" --scenario chat --rate "$RATE" --duration 12s --warmup 1s \
    --json >"$OUT/bench-$round.json" &
  BENCH_PID=$!
  sleep 4
  # Kill host A, then time how long until the gateway stops sending to it, start it
  # again on the same port after 3 s, and time how long until it is back.
  python3 - "$GW" "$A" "$A_PID" "$BIN/ollama-sim" "$OUT" "$round" <<'PY'
import json, os, signal, subprocess, sys, time, urllib.request
gw, a, pid, sim, out, rnd = sys.argv[1:]
def reachable():
    with urllib.request.urlopen(f"{gw}/warmline/health", timeout=1) as r:
        hosts = json.load(r)["upstreams"]
    return next(h for h in hosts if h["url"] == a)["reachable"]
def until(want, limit=10.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if reachable() == want:
            return (time.monotonic() - start) * 1000
        time.sleep(0.005)
    return float("nan")
os.kill(int(pid), signal.SIGKILL)
leave = until(False)
time.sleep(3)
env = dict(os.environ, OLLAMA_HOST=a.removeprefix("http://"), SIM_QUIET="1")
log = open(f"{out}/a-again.log", "w")
started = time.monotonic()
proc = subprocess.Popen([sim, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
rejoin = until(True)
json.dump({"leave_ms": leave, "rejoin_ms": rejoin, "pid": proc.pid}, open(f"{out}/times-{rnd}.json", "w"))
PY
  pids+=("$(python3 -c "import json;print(json.load(open('$OUT/times-$round.json'))['pid'])")")
  wait "$BENCH_PID"
  cleanup; pids=()
  echo "round $round done" >&2
done

python3 - "$OUT" "$ROUNDS" "$RATE" <<'PY'
import json, sys
out, rounds, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print("| round | requests | client errors | p50 ms | p99 ms | max ms | dead host out of rotation after (ms) | back in rotation after restart (ms) |")
print("|---|---|---|---|---|---|---|---|")
for r in range(1, rounds + 1):
    b = json.load(open(f"{out}/bench-{r}.json"))
    t = json.load(open(f"{out}/times-{r}.json"))
    errors = sum(b["errors"].values())
    l = b["latency_ms"]
    print(f"| {r} | {b['requests']} | {errors} | {l['p50']:.3f} | {l['p99']:.3f} | {l['max']:.1f} | {t['leave_ms']:.1f} | {t['rejoin_ms']:.0f} |")
print()
print(f"Open loop at {rate} req/s for 12 s per round; host A SIGKILLed 4 s in, started again 3 s later.")
PY
