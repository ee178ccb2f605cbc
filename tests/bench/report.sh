#!/usr/bin/env bash
# The report image in docs/monitoring.md, from a real run: ollama-sim paced like a small
# model on a desktop (20 ms per token, 2 s loads, a 30 s keep-alive, 2 % of
# generations failing), `warmline serve` in front with llama3.2 warm, and three
# minutes of streaming chat traffic in phases (a steady load with repeated
# questions, a second model that starts cold, a burst), then
# `warmline report --window 4m`.
#
#   tests/bench/report.sh [OUT]      (default docs/report.png)
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
OUT_FILE=${1:-docs/report.png}
OUT=bench-out/report
mkdir -p "$OUT"

OLLAMA_HOST=127.0.0.1:0 OLLAMA_KEEP_ALIVE=30s OLLAMA_NUM_PARALLEL=4 SIM_QUIET=1 \
  SIM_LOAD_DELAY_MS=2000 SIM_TOKEN_DELAY_MS=20 SIM_TOKENS=24 SIM_ERROR_RATE=0.02 \
  "$BIN/ollama-sim" serve 2>"$OUT/sim.log" >/dev/null &
spawned $!
SIM=$(sim_url "$OUT/sim.log")
printf '[warmth]\nmodels = ["llama3.2"]\n' >"$OUT/warmline.toml"
rm -f "$OUT/state.json"
"$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$SIM parallel=4" --config "$OUT/warmline.toml" \
  --state-file "$OUT/state.json" >"$OUT/gw.out" 2>"$OUT/gw.log" &
spawned $!
GW=$(wait_line "$OUT/gw.out" 'http://[0-9.:]*')

# The day starts once the warm model is loaded (at login, before the first chat).
warm_loaded() {
  admin_curl -fs "$GW/warmline/models" | grep -q '"name":"llama3.2:latest","warm":true,"loading":false,"loaded":true'
}
wait_until 20 "llama3.2 to be warm and loaded" warm_loaded
bench() { "$BIN/warmline" bench --url "$GW" --scenario chat-stream --warmup 0s --timeout 30s "$@" >/dev/null; }
echo "phase 1/3: 90 s of llama3.2 at 8 req/s, 70 % repeated questions" >&2
bench --model llama3.2 --rate 8 --repeat 0.7 --distinct 40 --duration 90s
echo "phase 2/3: 60 s with qwen3 joining cold at 4 req/s" >&2
bench --model llama3.2 --rate 6 --repeat 0.7 --distinct 40 --duration 60s &
b=$!
bench --model qwen3:0.6b --rate 4 --repeat 0.3 --distinct 20 --duration 60s
wait "$b"
echo "phase 3/3: 30 s burst at 30 req/s" >&2
bench --model llama3.2 --rate 30 --repeat 0.8 --distinct 60 --duration 30s
sleep 2
"$BIN/warmline" report --url "$GW" --out "$OUT_FILE" --window 4m
echo "wrote $OUT_FILE" >&2
