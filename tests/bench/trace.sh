#!/usr/bin/env bash
# A replayed desktop day: one person chatting in bursts with idle gaps of 20 s to
# 45 min (`warmline bench --trace desktop-day`), time-compressed, against two
# identical simulators with Ollama's default keep-alive of 5 minutes and 3 s
# model loads: one used directly, the other behind `warmline serve` with the two
# models the person uses daily marked warm. Both replays run at the same time, so
# they see the same machine. Counts the cold starts each side paid, and each
# message's first byte and first token.
#
#   tests/bench/trace.sh [HOURS] [TIME_SCALE]
#   tests/bench/trace.sh 8 120        (the default: 8 h of trace in about 4 min)
#
# Prints a Markdown table (for BENCHMARKS.md) and leaves raw JSON in bench-out/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
HOURS=${1:-8}
SCALE=${2:-120}
OUT=bench-out/trace
mkdir -p "$OUT"

# Ollama's default keep-alive (5 min) and a 3 s model load, at the trace's scale.
KEEP_ALIVE_MS=$(python3 -c "print(round(300000 / $SCALE))")
for side in direct warmline; do
  OLLAMA_HOST=127.0.0.1:0 OLLAMA_KEEP_ALIVE="${KEEP_ALIVE_MS}ms" SIM_QUIET=1 \
    SIM_LOAD_DELAY_MS=3000 SIM_TOKEN_DELAY_MS=15 SIM_TOKENS=30 \
    SIM_MODELS=llama3.2,qwen3:0.6b,tinyllama \
    "$BIN/ollama-sim" serve 2>"$OUT/sim-$side.log" >/dev/null &
  spawned $!
done
DIRECT=$(sim_url "$OUT/sim-direct.log")
BEHIND=$(sim_url "$OUT/sim-warmline.log")

# Warmline with its defaults, and the person's two daily models in the warm set.
cat >"$OUT/warmline.toml" <<TOML
[warmth]
models = ["llama3.2", "qwen3:0.6b"]
TOML
rm -f "$OUT/state.json"
"$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$BEHIND" --config "$OUT/warmline.toml" \
  --state-file "$OUT/state.json" >"$OUT/gw.out" 2>"$OUT/gw.log" &
spawned $!
GW=$(wait_line "$OUT/gw.out" 'http://[0-9.:]*')

# The day starts once the warm models are loaded (at login, before the first chat).
python3 - "$GW" "$ADMIN_TOKEN_FILE" <<'PY'
import json, sys, time, urllib.request
gw, token_file = sys.argv[1], sys.argv[2]
def admin(url):  # a control route: the admin credential, read when sent
    with open(token_file) as f:
        return urllib.request.Request(url, headers={"Authorization": f"Bearer {f.read().strip()}"})
for _ in range(300):
    with urllib.request.urlopen(admin(f"{gw}/warmline/models"), timeout=2) as r:
        models = json.load(r)
    if sum(1 for m in models if m["warm"] and m["loaded"]) == 2:
        break
    time.sleep(0.1)
else:
    raise SystemExit("the warm models did not load")
PY

bench_pids=()
for side in direct warmline; do
  url=$DIRECT; [ "$side" = warmline ] && url=$GW
  "$BIN/warmline" bench --url "$url" --trace desktop-day --hours "$HOURS" --time-scale "$SCALE" \
    --timeout 60s --json >"$OUT/$side.json" &
  spawned $!
  bench_pids+=($!)
done
for p in "${bench_pids[@]}"; do wait "$p"; done

python3 - "$OUT" "$HOURS" "$SCALE" <<'PY'
import json, sys
out, hours, scale = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {side: json.load(open(f"{out}/{side}.json")) for side in ("direct", "warmline")}
d, w = runs["direct"], runs["warmline"]
def f(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"
print(f"Replayed: {d['messages']} messages, {hours} h of a desktop day at {scale}x "
      f"(Ollama's 5-minute keep-alive → {300/float(scale):.1f} s, loads 3 s).")
print()
print("| | Ollama direct (default keep-alive) | through Warmline (2 models warm) |")
print("|---|---|---|")
rows = [
    ("messages (errors)", f"{d['messages']} ({d['errors']})", f"{w['messages']} ({w['errors']})"),
    ("cold starts paid", f(d["cold_starts"]), f(w["cold_starts"])),
    ("mean time to first token, ms", f(d["ttft_mean_ms"]), f(w["ttft_mean_ms"])),
    ("p95 time to first token, ms", f(d["ttft_p95_ms"]), f(w["ttft_p95_ms"])),
    ("cold starts: mean first byte, ms", f(d["cold_first_byte_mean_ms"], 1), f(w["cold_first_byte_mean_ms"], 1)),
    ("cold starts: worst first byte, ms", f(d["cold_first_byte_max_ms"], 1), f(w["cold_first_byte_max_ms"], 1)),
]
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
fewer = 100 * (1 - w["cold_starts"] / d["cold_starts"]) if d["cold_starts"] else 0
print(f"Cold starts: {fewer:.0f} % fewer through Warmline (goal ≥ 90 %).")
per_model = {}
for side, run in runs.items():
    for m in run["each"]:
        per_model.setdefault(m["model"], {"direct": [0, 0], "warmline": [0, 0]})[side][0] += 1
        per_model[m["model"]][side][1] += int(m["cold"])
print()
print("| model | messages | cold direct | cold through Warmline |")
print("|---|---|---|---|")
for model, v in sorted(per_model.items(), key=lambda kv: -kv[1]["direct"][0]):
    print(f"| {model} | {v['direct'][0]} | {v['direct'][1]} | {v['warmline'][1]} |")
PY
