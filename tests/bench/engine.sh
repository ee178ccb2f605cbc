#!/usr/bin/env bash
# The latency report's workload on a real inference engine, side by side: two
# llama-cpp-python servers (the tiny self-made model of tests/engine/, one
# thread each: real tokenization, sampling, SSE streaming, one request at a
# time per engine) served straight, through the LiteLLM proxy with its cache,
# and through Warmline with its defaults (the engines as `kind=openai`
# upstreams, nothing else stated). All on loopback, all measured in one run.
#
# The workload is `warmline bench --scenario report --model tiny --max-tokens
# 16`: streaming /v1/chat/completions at temperature 0, 70 % of prompts
# repeating one of 40; an open-loop phase at RATE req/s for OPEN seconds, then
# a closed loop of 8 clients for CLOSED seconds. Generations are counted from
# the engines' own access logs, so the hit rate is measured the same way for
# every system.
#
# Then what Warmline adds to a stream that is not cached: 60 streaming
# requests with new prompts (32 tokens each), alternating straight to one
# engine and through Warmline, timed to each content chunk: time to first
# token and the gaps between tokens, p50 and p99 of each side.
#
#   tests/bench/engine.sh [OPEN] [CLOSED] [RATE]     (default 30 20 10)
#
# Installs what it needs when missing: the engine (tests/engine/setup.sh: built
# once per machine, about 6 minutes) and LiteLLM 1.108.7 in a venv under
# ~/.cache/warmline-bench. Prints Markdown tables for BENCHMARKS.md and leaves
# raw JSON and logs in bench-out/engine/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
OPEN=${1:-30}
CLOSED=${2:-20}
RATE=${3:-10}
OUT=$ROOT/bench-out/engine
rm -rf "$OUT"
mkdir -p "$OUT"
KEY="sk-warmline-bench"

eval "$(tests/engine/setup.sh)"
litellm_setup
trap cleanup EXIT

# --- two engines ----------------------------------------------------------------
start_engine() { # NAME → ENGINE (host:port); its access log in $OUT/engine-NAME.log
  local name=$1 port
  port=$(free_port)
  "$WARMLINE_ENGINE_PYTHON" -m llama_cpp.server --model "$WARMLINE_ENGINE_MODEL" --model_alias tiny \
    --host 127.0.0.1 --port "$port" --n_threads 1 --interrupt_requests false --verbose false \
    >"$OUT/engine-$name.log" 2>&1 &
  spawned $!
  wait_until 60 "engine $name to answer" curl -fs -o /dev/null "http://127.0.0.1:$port/v1/models"
  ENGINE="127.0.0.1:$port"
}
start_engine a
A=$ENGINE
start_engine b
B=$ENGINE

# --- LiteLLM with its cache, the engines as two deployments of one model -----------
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
spawned $!
LITELLM_PORT=$(free_port)
mkdir -p "$OUT/litellm"
sed -e "s|@HOST_A@|$A|g" -e "s|@HOST_B@|$B|g" -e "s|@CACHE_TYPE@|redis|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g" \
  -e "s|llama3.2|tiny|g" tests/bench/scenario/litellm.yaml.tmpl >"$OUT/litellm/litellm.yaml"
LITELLM_TELEMETRY_DISABLED=true LITELLM_LOCAL_MODEL_COST_MAP=True \
  "$LITELLM" --config "$OUT/litellm/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
  --num_workers 2 >"$OUT/litellm/litellm.log" 2>&1 &
spawned $!

# --- Warmline, defaults ---------------------------------------------------------------
env -u WARMLINE_CONFIG "$BIN/warmline" serve --listen 127.0.0.1:0 --state-file "$OUT/warmline-state.json" \
  --upstream "http://$A kind=openai" --upstream "http://$B kind=openai" \
  >"$OUT/warmline.out" 2>"$OUT/warmline.log" &
spawned $!
WARMLINE=$(wait_line "$OUT/warmline.out" 'http://[0-9.:]*')

litellm_workers_up() { [ "$(grep -c 'Application startup complete' "$OUT/litellm/litellm.log" || true)" -ge 2 ]; }
wait_until 120 "both LiteLLM workers to start" litellm_workers_up
models_known() { curl -fs "$WARMLINE/warmline/health" | grep -q '"loaded":\["tiny:latest"\].*"loaded":\["tiny:latest"\]'; }
wait_until 30 "Warmline to know both engines' model" models_known
echo "engines A=$A B=$B; LiteLLM :$LITELLM_PORT; Warmline $WARMLINE" >&2

python3 - "$BIN/warmline" "$OUT" "$A" "$B" "$LITELLM_PORT" "$WARMLINE" "$OPEN" "$CLOSED" "$RATE" "$KEY" <<'PY'
import json, statistics, subprocess, sys, time, urllib.request, uuid

warmline, out, A, B, litellm_port, gw, OPEN, CLOSED, RATE, KEY = sys.argv[1:]
OPEN, CLOSED, RATE = int(OPEN), int(CLOSED), float(RATE)
SYSTEMS = [
    ("direct", [f"http://{A}", f"http://{B}"], "engines direct (clients spread over both)"),
    ("litellm", [f"http://127.0.0.1:{litellm_port}"], "LiteLLM proxy + cache"),
    ("warmline", [gw], "**Warmline (defaults)**"),
]

def generations():
    """Chat requests the engines received, from their own access logs."""
    return sum(open(f"{out}/engine-{n}.log").read().count('"POST /v1/chat/completions HTTP/1.1"') for n in "ab")

def bench(name, urls, phase, args):
    cmd = [warmline, "bench", "--scenario", "report", "--model", "tiny", "--max-tokens", "16",
           "--warmup", "0s", "--timeout", "60s", "--tag", f"[{phase} {name}] ", "--json",
           "--header", "Content-Type: application/json", "--header", f"Authorization: Bearer {KEY}"]
    for url in urls:
        cmd += ["--url", url]
    before = generations()
    report = json.loads(subprocess.run(cmd + args, check=True, capture_output=True, text=True).stdout)
    time.sleep(0.5)  # the access log line of the last request
    report["generations"] = generations() - before
    json.dump(report, open(f"{out}/{name}-{phase}.json", "w"), indent=1)
    return report

results = {}
for name, urls, label in SYSTEMS:
    print(f"{label}: open loop {OPEN}s at {RATE} req/s", file=sys.stderr)
    open_loop = bench(name, urls, "open", ["--rate", str(RATE), "--duration", f"{OPEN}s"])
    print(f"{label}: closed loop {CLOSED}s, 8 clients", file=sys.stderr)
    closed = bench(name, urls, "closed", ["--concurrency", "8", "--duration", f"{CLOSED}s"])
    results[name] = {"open": open_loop, "closed": closed}

# --- what a stream pays for going through Warmline (nothing cached) ----------------
def stream(base, prompt):
    body = json.dumps({"model": "tiny", "stream": True, "temperature": 0, "max_tokens": 32,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(f"{base}/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    sent = time.monotonic()
    stamps, buf = [], b""
    with urllib.request.urlopen(req, timeout=60) as r:
        while chunk := r.read1(65536):
            now = time.monotonic()
            buf += chunk
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                data = event.strip().removeprefix(b"data: ")
                if data and data != b"[DONE]":
                    delta = json.loads(data)["choices"][0].get("delta", {})
                    if delta.get("content"):
                        stamps.append(now)
    ttft = (stamps[0] - sent) * 1000 if stamps else float("nan")
    gaps = [(b - a) * 1000 for a, b in zip(stamps, stamps[1:])]
    return ttft, gaps

timing = {"direct": ([], []), "warmline": ([], [])}
for i in range(60):
    for side, base in (("direct", f"http://{A}"), ("warmline", gw)):
        ttft, gaps = stream(base, f"{side} stream {i} {uuid.uuid4().hex}")
        timing[side][0].append(ttft)
        timing[side][1].extend(gaps)
json.dump({"results": results, "timing": timing}, open(f"{out}/results.json", "w"), indent=1)

# --- tables -------------------------------------------------------------------------
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

def errors(r):
    return sum(r["errors"].values())

rows = [
    ("Average latency (successful answers)", lambda o, c: f"{o['ok_latency_ms']['mean']:,.0f} ms"),
    ("P95 latency (successful answers)", lambda o, c: f"{o['ok_latency_ms']['p95']:,.0f} ms"),
    ("Time to first token, p50 / p95", lambda o, c: f"{o['ok_ttft_ms']['p50']:,.0f} / {o['ok_ttft_ms']['p95']:,.0f} ms"),
    ("Hit rate (answered without a generation)",
     lambda o, c: f"{100 * max(0, o['requests'] - errors(o) - o['generations']) / max(1, o['requests']):.1f} %"),
    ("Error rate", lambda o, c: f"{100 * errors(o) / max(1, o['requests']):.2f} %"),
    ("Throughput (closed loop, successful answers)",
     lambda o, c: f"{c['ok'] / c['elapsed_s']:.1f} req/s at {100 * errors(c) / max(1, c['requests']):.2f} % errors"),
]
print(f"Open loop: {RATE:g} req/s for {OPEN} s; closed loop: 8 clients for {CLOSED} s.\n")
print("| | " + " | ".join(label for _, _, label in SYSTEMS) + " |")
print("|---|" + "---|" * len(SYSTEMS))
for title, f in rows:
    print(f"| {title} | " + " | ".join(f(results[n]["open"], results[n]["closed"]) for n, _, _ in SYSTEMS) + " |")
print()
print("Streams that are not cached (60 each, 32 tokens, alternating), ms:\n")
print("| side | TTFT p50 | TTFT p99 | inter-token gap p50 | inter-token gap p99 |")
print("|---|---|---|---|---|")
for side in ("direct", "warmline"):
    t, g = timing[side]
    print(f"| {side} | {pct(t, 50):.2f} | {pct(t, 99):.2f} | {pct(g, 50):.3f} | {pct(g, 99):.3f} |")
(dt, dg), (wt, wg) = timing["direct"], timing["warmline"]
print(f"| Warmline adds | {pct(wt, 50) - pct(dt, 50):+.2f} | {pct(wt, 99) - pct(dt, 99):+.2f} | "
      f"{pct(wg, 50) - pct(dg, 50):+.3f} | {pct(wg, 99) - pct(dg, 99):+.3f} |")
PY
