#!/usr/bin/env bash
# The latency report's scenario, end to end, side by side: the same chat
# workload straight to Ollama, through nginx configured as the report describes,
# through the LiteLLM proxy with its cache, and through Warmline: with its
# defaults (nothing stated: it reads the hosts' OLLAMA_NUM_PARALLEL from the
# daemons' environment), with `parallel=4` stated for each host (what the
# defaults must match), and with the hosts treated as remote ones
# (`concurrency.discover = false`: their parallelism is learned from the
# answers). All on loopback, all started here, all measured in one run.
#
# Two ollama-sim hosts behave as the report's machine did: 3 s model loads,
# Ollama's keep-alive expiry, 20 ms per token (16 tokens, 40 ms prefill),
# OLLAMA_NUM_PARALLEL=4, and host A failing 10 % of generations (5 % answered
# 500 by a dying runner, 5 % with the connection dropped before an answer).
#
# Each system is measured in steady state (the model loaded on both hosts
# first), with the same workload (`warmline bench --scenario report`: streaming
# /v1/chat/completions, temperature 0, 70 % of prompts repeating one of 40):
#   1. open loop: 20 req/s for OPEN seconds (latency, TTFT, hit rate, errors);
#   2. closed loop: 48 clients back to back for CLOSED seconds (throughput;
#      counted only with its error rate beside it);
# then, separately, one cold start per system: the model unloaded on both
# hosts, one streaming request, timed to its first byte and first token.
# Hit rate is measured the same way for all: requests answered without a
# generation upstream (from the simulators' own counters), next to the best
# possible for the workload (every repeat after its first occurrence).
#
#   tests/bench/scenario.sh [OPEN] [CLOSED]        (default 60 30)
#
# Installs what it needs when missing: nginx-light (apt), and LiteLLM 1.108.7
# in a venv under ~/.cache/warmline-bench (about 60 s, 750 MB). Prints the
# report's table (Markdown, for BENCHMARKS.md) and leaves raw JSON, logs and
# Warmline's charts (report.png) in bench-out/scenario/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
OPEN=${1:-60}
CLOSED=${2:-30}
OUT=$ROOT/bench-out/scenario
rm -rf "$OUT"
mkdir -p "$OUT"
KEY="sk-warmline-bench"

# --- what the comparison needs ---------------------------------------------------
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx-light" >&2
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends nginx-light >&2
fi
litellm_setup

# nginx runs as a master and workers; its pid file names the master.
stop_nginx() { [ -f "$OUT/nginx/nginx.pid" ] && kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true; }
trap 'stop_nginx; cleanup' EXIT

# --- the two Ollama hosts ----------------------------------------------------------
start_sim() { # name extra-env... → its log in $OUT/sim-NAME.log
  local name=$1; shift
  env OLLAMA_HOST=127.0.0.1:0 OLLAMA_NUM_PARALLEL=4 SIM_QUIET=1 \
    SIM_LOAD_DELAY_MS=3000 SIM_PREFILL_DELAY_MS=40 SIM_TOKEN_DELAY_MS=20 SIM_TOKENS=16 "$@" \
    "$BIN/ollama-sim" serve 2>"$OUT/sim-$name.log" >/dev/null &
  spawned $!
}
start_sim a SIM_ERROR_RATE=0.05 SIM_DROP_RATE=0.05
start_sim b
A=$(sim_url "$OUT/sim-a.log" | sed 's|http://||')
B=$(sim_url "$OUT/sim-b.log" | sed 's|http://||')

# --- nginx, as the report configures it -------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$OUT/nginx/cache"
sed -e "s|@HOST_A@|$A|g" -e "s|@HOST_B@|$B|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@DIR@|$OUT/nginx|g" \
  tests/bench/scenario/nginx.conf.tmpl >"$OUT/nginx/nginx.conf"
/usr/sbin/nginx -e "$OUT/nginx/error.log" -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" &
spawned $!

# --- LiteLLM with its cache (two workers sharing it through Redis) -----------------
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
spawned $!
LITELLM_PORT=$(free_port)
mkdir -p "$OUT/litellm"
sed -e "s|@HOST_A@|$A|g" -e "s|@HOST_B@|$B|g" -e "s|@CACHE_TYPE@|redis|g" -e "s|@REDIS_PORT@|$REDIS_PORT|g" \
  tests/bench/scenario/litellm.yaml.tmpl >"$OUT/litellm/litellm.yaml"
LITELLM_TELEMETRY_DISABLED=true LITELLM_LOCAL_MODEL_COST_MAP=True \
  "$LITELLM" --config "$OUT/litellm/litellm.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
  --num_workers 2 >"$OUT/litellm/litellm.log" 2>&1 &
spawned $!

# --- Warmline: defaults; parallel=4 stated; hosts learned as if remote ---------------
start_warmline() { # NAME [CONFIG-FILE] UPSTREAM... → its URL
  local name=$1 config=$2; shift 2
  local args=(serve --listen 127.0.0.1:0 --state-file "$OUT/warmline-$name-state.json")
  [ -n "$config" ] && args+=(--config "$config")
  for upstream in "$@"; do args+=(--upstream "$upstream"); done
  env -u WARMLINE_CONFIG "$BIN/warmline" "${args[@]}" >"$OUT/warmline-$name.out" 2>"$OUT/warmline-$name.log" &
  spawned $!
  wait_line "$OUT/warmline-$name.out" 'http://[0-9.:]*'
}
WARMLINE=$(start_warmline defaults "" "http://$A" "http://$B")
STATED=$(start_warmline stated "" "http://$A parallel=4" "http://$B parallel=4")
printf '[concurrency]\ndiscover = false\n' >"$OUT/remote.toml"
REMOTE=$(start_warmline remote "$OUT/remote.toml" "http://$A" "http://$B")

python3 - "$NGINX_PORT" "$LITELLM_PORT" <<'PY'
import sys, time, urllib.request
nginx, litellm = sys.argv[1:]
def up(url):
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except Exception:
        return False
deadline = time.monotonic() + 120
for url in (f"http://127.0.0.1:{nginx}/api/version", f"http://127.0.0.1:{litellm}/health/liveliness"):
    while not up(url):
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} never answered")
        time.sleep(0.2)
PY
# Both LiteLLM workers up, not just the first.
litellm_workers_up() { [ "$(grep -c 'Application startup complete' "$OUT/litellm/litellm.log" || true)" -ge 2 ]; }
wait_until 120 "both LiteLLM workers to start" litellm_workers_up
echo "hosts A=$A (flaky) B=$B; nginx :$NGINX_PORT; LiteLLM :$LITELLM_PORT; Warmline $WARMLINE, stated $STATED, remote $REMOTE" >&2

# --- the run ------------------------------------------------------------------------
python3 - "$BIN/warmline" "$OUT" "$A" "$B" "$NGINX_PORT" "$LITELLM_PORT" "$WARMLINE" "$OPEN" "$CLOSED" "$KEY" "$STATED" "$REMOTE" <<'PY'
import json, subprocess, sys, time, urllib.request

warmline, out, A, B, nginx_port, litellm_port, gw, OPEN, CLOSED, KEY, stated, remote = sys.argv[1:]
OPEN, CLOSED = int(OPEN), int(CLOSED)
HOSTS = [f"http://{A}", f"http://{B}"]
SYSTEMS = [
    ("direct", [f"http://{A}", f"http://{B}"], "Ollama direct (clients spread over both hosts)"),
    ("nginx", [f"http://127.0.0.1:{nginx_port}"], "nginx (the report's config)"),
    ("litellm", [f"http://127.0.0.1:{litellm_port}"], "LiteLLM proxy + cache"),
    ("warmline", [gw], "Warmline (defaults: nothing stated)"),
    ("stated", [stated], "Warmline (`parallel=4` stated)"),
    ("remote", [remote], "Warmline (hosts as remote: learned)"),
]

def parallelism(url):
    """How each host's parallelism is known to a gateway, as it says in its health."""
    return [(u["parallel"], u["parallel_source"], u.get("parallel_learned", {}))
            for u in call(f"{url}/warmline/health")["upstreams"]]
HEADERS = ["Content-Type: application/json", f"Authorization: Bearer {KEY}"]

def call(url, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")

def counters():
    return [call(f"{h}/_sim/counters")["generations"] for h in HOSTS]

def load_model():
    """Loads the model on both hosts (the flaky one may need a few tries)."""
    for host in HOSTS:
        for _ in range(20):
            try:
                call(f"{host}/api/generate", {"model": "llama3.2", "keep_alive": "30m"})
                break
            except Exception:
                time.sleep(0.1)

def unload_model():
    """Unloads the model on both hosts (the flaky one may drop a few tries)."""
    for host in HOSTS:
        for _ in range(20):
            try:
                call(f"{host}/api/generate", {"model": "llama3.2", "keep_alive": 0})
                break
            except Exception:
                time.sleep(0.1)
    # As after an idle spell: long enough for a gateway that reads /api/ps
    # (every 2 s) to know, as it would have after Ollama's keep-alive expired.
    time.sleep(2.5)

def bench(name, urls, phase, args):
    cmd = [warmline, "bench", "--scenario", "report", "--model", "llama3.2", "--warmup", "0s",
           "--timeout", "30s", "--tag", f"[{phase} {name}] ", "--json"]
    for url in urls:
        cmd += ["--url", url]
    for header in HEADERS:
        cmd += ["--header", header]
    before = counters()
    report = json.loads(subprocess.run(cmd + args, check=True, capture_output=True, text=True).stdout)
    after = counters()
    report["generations"] = sum(a["completed"] - b["completed"] for a, b in zip(after, before))
    report["generations_started"] = sum(a["started"] - b["started"] for a, b in zip(after, before))
    json.dump(report, open(f"{out}/{name}-{phase}.json", "w"), indent=1)
    return report

def cold(name, urls):
    """One streaming request for an unloaded model: first byte, first token."""
    unload_model()
    body = json.dumps({"model": "llama3.2", "stream": True, "temperature": 0,
                       "messages": [{"role": "user", "content": f"cold start through {name}"}]}).encode()
    req = urllib.request.Request(f"{urls[-1]}/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    sent = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as r:
        first_byte = time.monotonic() - sent
        first_chunk = None
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            if first_chunk is None:
                first_chunk = time.monotonic() - sent
    total = time.monotonic() - sent
    load_model()
    return {"first_byte_ms": first_byte * 1000, "first_token_ms": (first_chunk or total) * 1000,
            "total_ms": total * 1000}

results = {}
load_model()
for name, urls, label in SYSTEMS:
    print(f"{label}: open loop {OPEN}s at 20 req/s", file=sys.stderr)
    open_loop = bench(name, urls, "open", ["--rate", "20", "--duration", f"{OPEN}s"])
    print(f"{label}: closed loop {CLOSED}s, 48 clients", file=sys.stderr)
    closed = bench(name, urls, "closed", ["--concurrency", "48", "--duration", f"{CLOSED}s"])
    print(f"{label}: one cold start", file=sys.stderr)
    results[name] = {"open": open_loop, "closed": closed, "cold": cold(name, urls)}
    if name in ("warmline", "stated", "remote"):
        results[name]["parallelism"] = parallelism(urls[0])
    if name == "warmline":
        subprocess.run([warmline, "report", "--url", gw, "--out", f"{out}/report.png",
                        "--window", f"{OPEN + CLOSED + 30}s"], check=True)
json.dump(results, open(f"{out}/results.json", "w"), indent=1)

# --- the report's table -------------------------------------------------------------
def errors(r):
    return sum(r["errors"].values())

def cell(name, row):
    r = results[name]
    o, c, k = r["open"], r["closed"], r["cold"]
    ok = o["requests"] - errors(o)
    # Latency of the answers clients got: refusals (nginx's 429s) are not fast answers.
    if row == "avg":
        return f"{o['ok_latency_ms']['mean']:,.0f} ms"
    if row == "p95":
        return f"{o['ok_latency_ms']['p95']:,.0f} ms"
    if row == "ttft":
        return f"{o['ok_ttft_ms']['p50']:,.0f} / {o['ok_ttft_ms']['p95']:,.0f} ms"
    if row == "hits":
        hit = max(0, ok - o["generations"]) / max(1, o["requests"])
        return f"{100 * hit:.1f} %"
    if row == "errors":
        return f"{100 * errors(o) / max(1, o['requests']):.2f} %"
    if row == "rps":
        good = (c["requests"] - errors(c)) / c["elapsed_s"]
        rate = 100 * errors(c) / max(1, c["requests"])
        return f"{good:,.1f} req/s at {rate:.2f} % errors"
    if row == "cold":
        return f"{k['first_byte_ms']:,.0f} / {k['first_token_ms']:,.0f} ms"

rows = [
    ("Average latency (successful answers)", "avg", "4,563 ms", "200–500 ms"),
    ("P95 latency (successful answers)", "p95", "–", "< 1 s"),
    ("Time to first token, p50 / p95", "ttft", "–", "–"),
    ("Cache hit rate", "hits", "0 %", "≥ 70 %"),
    ("Error rate (client-visible)", "errors", "10 %", "< 1 %"),
    ("Throughput (closed loop, successful answers)", "rps", "2 RPS", "50+ RPS"),
    ("Cold start: first byte / first token", "cold", "2–4 s", "–"),
]
names = [s[0] for s in SYSTEMS]
print("| | the report | its target | " + " | ".join(s[2] for s in SYSTEMS) + " |")
print("|---|---|---|" + "---|" * len(SYSTEMS))
for label, key, measured, target in rows:
    print(f"| {label} | {measured} | {target} | " + " | ".join(cell(n, key) for n in names) + " |")
o = results["warmline"]["open"]
best = 100 * o["repeats"] / max(1, o["requests"])
c = results["warmline"]["closed"]
miss = 1 - c["repeats"] / max(1, c["requests"])
generation_s = 0.040 + 16 * 0.020
ceiling = 8 / generation_s / max(miss, 1e-9)
print()
print(f"Best hit rate possible for the open-loop workload: {best:.1f} % "
      f"({o['repeats']} of {o['requests']} requests repeated an earlier one).")
print(f"Generation slots: 2 hosts x 4 = 8, about {1000 * generation_s:.0f} ms per generation, "
      f"so at the closed loop's miss share ({100 * miss:.1f} %) the hosts allow about {ceiling:.0f} req/s.")
for name in ("warmline", "stated", "remote"):
    hosts = "; ".join(f"{p} ({source}{', per model ' + json.dumps(learned) if learned else ''})"
                      for p, source, learned in results[name]["parallelism"])
    print(f"Parallelism as {name} knew it at the end, per host: {hosts}.")
PY
echo "raw results and Warmline's charts (report.png) in ${OUT#"$ROOT"/}/" >&2
