#!/usr/bin/env bash
# Usage traces (`warmline bench --trace`) replayed, time-compressed, against three
# setups at once, each in front of its own identical ollama-sim with Ollama's
# default keep-alive of 5 minutes and real (uncompressed) model loads:
#
#   direct     Ollama's defaults, no Warmline;
#   explicit   `warmline serve` with the person's daily models marked warm and
#              automatic warmth off (what a person had to configure before);
#   auto       `warmline serve` with nothing configured (automatic warmth on,
#              nothing learned yet: a fresh state file).
#
# The gateways learn on the trace's clock (WARMLINE_TRACE_CLOCK: Monday 09:00,
# the same time scale), so a week replays in minutes. Counts the cold starts
# each setup paid, each message's first token, the peak memory of loaded models
# (the simulator's /api/ps, sampled every 0.2 s) against the budget Warmline
# reports, and the loads Warmline made for a prediction that no request used.
#
#   tests/bench/trace.sh [TRACE] [TIME_SCALE]
#     desktop-day  8 h, mostly one model, some a second, a few a third (120x, ~4 min)
#     week         Mon-Fri 09:00-17:30; two daily models, one on Fridays only
#                  (600x, ~11 min; 1 s loads so a load stays short of a planning step)
#     switcher     8 h among five models, of which Ollama keeps three loaded (120x)
#     burst-day    two rushes of short gaps on two models, idle around them (120x)
#
# Prints Markdown (for BENCHMARKS.md) and leaves raw JSON in bench-out/trace-TRACE/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
TRACE=${1:-desktop-day}
LOAD_MS=3000
case $TRACE in
  desktop-day) SCALE=${2:-120}; MODELS=llama3.2,qwen3:0.6b,tinyllama; ARGS=(--hours 8) ;;
  week) SCALE=${2:-600}; LOAD_MS=1000; MODELS=llama3.2,qwen3:0.6b,tinyllama; ARGS=() ;;
  switcher) SCALE=${2:-120}; MODELS=llama3.2,qwen3:0.6b,tinyllama,gemma3:1b,phi3:mini; ARGS=(--hours 8) ;;
  burst-day) SCALE=${2:-120}; MODELS=llama3.2,qwen3:0.6b; ARGS=() ;;
  *) echo "unknown trace $TRACE (desktop-day, week, switcher, burst-day)" >&2; exit 2 ;;
esac
OUT=bench-out/trace-$TRACE
rm -rf "$OUT"
mkdir -p "$OUT"
# The first two models are the person's daily ones: what `explicit` marks warm.
DAILY=$(python3 -c "import sys; print(', '.join(f'\"{m}\"' for m in sys.argv[1].split(',')[:2]))" "$MODELS")
# Monday 2026-12-07 09:00 UTC: where every built-in trace starts (trace::TRACE_START).
TRACE_START=1796634000

# Ollama's default keep-alive (5 min) at the trace's scale.
KEEP_ALIVE_MS=$(python3 -c "print(max(1, round(300000 / $SCALE)))")
SIDES=(direct explicit auto)
for side in "${SIDES[@]}"; do
  OLLAMA_HOST=127.0.0.1:0 OLLAMA_KEEP_ALIVE="${KEEP_ALIVE_MS}ms" SIM_QUIET=1 \
    SIM_LOAD_DELAY_MS=$LOAD_MS SIM_TOKEN_DELAY_MS=15 SIM_TOKENS=30 SIM_MODELS=$MODELS \
    "$BIN/ollama-sim" serve 2>"$OUT/sim-$side.log" >/dev/null &
  spawned $!
done
declare -A SIM URL
for side in "${SIDES[@]}"; do SIM[$side]=$(sim_url "$OUT/sim-$side.log"); done
URL[direct]=${SIM[direct]}

# Each gateway with its own XDG directories: no config file but the one given,
# a fresh state file, its own admin credential.
for side in explicit auto; do
  mkdir -p "$OUT/$side/config" "$OUT/$side/state"
  if [ "$side" = explicit ]; then
    printf '[warmth]\nmodels = [%s]\nauto = false\n' "$DAILY" >"$OUT/$side/config/warmline.toml"
    config=(--config "$OUT/$side/config/warmline.toml")
  else
    config=()
  fi
  XDG_CONFIG_HOME=$OUT/$side/config XDG_STATE_HOME=$OUT/$side/state \
    WARMLINE_TRACE_CLOCK="$TRACE_START:$SCALE:0" RUST_LOG=warmline=info \
    "$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "${SIM[$side]}" "${config[@]}" \
    >"$OUT/gw-$side.out" 2>"$OUT/gw-$side.log" &
  spawned $!
  URL[$side]=$(wait_line "$OUT/gw-$side.out" 'http://[0-9.:]*')
done

# The day starts once the marked models are loaded (at login, before the first chat).
python3 - "${URL[explicit]}" "$OUT/explicit/state/warmline/admin-token" <<'PY'
import json, sys, time, urllib.request
gw, token_file = sys.argv[1], sys.argv[2]
for _ in range(300):
    try:
        with open(token_file) as f:
            request = urllib.request.Request(f"{gw}/warmline/models",
                                             headers={"Authorization": f"Bearer {f.read().strip()}"})
        with urllib.request.urlopen(request, timeout=2) as r:
            if sum(1 for m in json.load(r) if m["warm"] and m["loaded"]) == 2:
                break
    except OSError:
        pass
    time.sleep(0.1)
else:
    raise SystemExit("the marked models did not load")
PY

# Sampling while the trace plays: loaded memory per simulator, Warmline's budget.
python3 - "$OUT" "${SIM[direct]}" "${SIM[explicit]}" "${SIM[auto]}" "${URL[explicit]}" "${URL[auto]}" <<'PY' &
import json, sys, time, urllib.request
out, sims, gws = sys.argv[1], dict(zip(("direct", "explicit", "auto"), sys.argv[2:5])), dict(zip(("explicit", "auto"), sys.argv[5:7]))
peak = {s: {"loaded_bytes": 0, "budget_min": None, "warm_used_max": 0, "over_budget_samples": 0} for s in sims}
def get(url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
        return json.load(r)
while True:
    for side, sim in sims.items():
        try:
            loaded = sum(m.get("size", 0) for m in get(f"{sim}/api/ps")["models"])
            peak[side]["loaded_bytes"] = max(peak[side]["loaded_bytes"], loaded)
            if side in gws:
                token = open(f"{out}/{side}/state/warmline/admin-token").read().strip()
                w = get(f"{gws[side]}/warmline/warmth", token)
                p = peak[side]
                p["budget_min"] = w["budget"] if p["budget_min"] is None else min(p["budget_min"], w["budget"])
                p["warm_used_max"] = max(p["warm_used_max"], w["used"])
                p["over_budget_samples"] += int(w["used"] > w["budget"])
                p["loads"], p["wasted_loads"] = w["loads"], w["wasted_loads"]
        except (OSError, ValueError, KeyError):
            pass
    with open(f"{out}/memory.json.tmp", "w") as f:
        json.dump(peak, f)
    import os; os.replace(f"{out}/memory.json.tmp", f"{out}/memory.json")
    time.sleep(0.2)
PY
spawned $!

bench_pids=()
for side in "${SIDES[@]}"; do
  "$BIN/warmline" bench --url "${URL[$side]}" --trace "$TRACE" "${ARGS[@]}" --models "$MODELS" \
    --time-scale "$SCALE" --timeout 60s --json >"$OUT/$side.json" &
  spawned $!
  bench_pids+=($!)
done
for p in "${bench_pids[@]}"; do wait "$p"; done
sleep 0.5
cp "$OUT/memory.json" "$OUT/memory-final.json"

python3 - "$OUT" "$TRACE" "$SCALE" "$LOAD_MS" "$MODELS" <<'PY'
import json, sys
out, trace, scale, load_ms, models = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sides = ("direct", "explicit", "auto")
runs = {s: json.load(open(f"{out}/{s}.json")) for s in sides}
mem = json.load(open(f"{out}/memory-final.json"))
def f(v, digits=0):
    return "–" if v is None else f"{v:,.{digits}f}"
def gb(v):
    return "–" if v is None else f"{v / 1e9:.2f} GB"
d = runs["direct"]
print(f"Trace `{trace}`: {d['messages']} messages, replayed {scale:g}x faster "
      f"(Ollama's 5-minute keep-alive → {300 / scale:.1f} s; loads {load_ms / 1000:g} s, not compressed).")
print()
print("| | Ollama defaults | Warmline, daily models marked warm | Warmline, nothing configured |")
print("|---|---|---|---|")
rows = [
    ("messages (errors)", *(f"{runs[s]['messages']} ({runs[s]['errors']})" for s in sides)),
    ("cold starts paid", *(f(runs[s]["cold_starts"]) for s in sides)),
    ("mean time to first token, ms", *(f(runs[s]["ttft_mean_ms"]) for s in sides)),
    ("p95 time to first token, ms", *(f(runs[s]["ttft_p95_ms"]) for s in sides)),
    ("peak memory of loaded models", *(gb(mem[s]["loaded_bytes"]) for s in sides)),
    ("warm models' memory, peak / budget", "–",
     *(f"{gb(mem[s]['warm_used_max'])} / {gb(mem[s]['budget_min'])}" for s in ("explicit", "auto"))),
    ("samples over the budget", "–", *(f(mem[s]["over_budget_samples"]) for s in ("explicit", "auto"))),
    ("loads made for a prediction (unused)", "–", "–",
     f"{f(mem['auto'].get('loads'))} ({f(mem['auto'].get('wasted_loads'))})"),
]
for row in rows:
    print("| " + " | ".join(row) + " |")
print()
per_model = {}
for side, run in runs.items():
    for m in run["each"]:
        entry = per_model.setdefault(m["model"], {s: [0, 0] for s in sides})
        entry[side][0] += 1
        entry[side][1] += int(m["cold"])
first_uses = len(per_model)
print("| model | messages | cold: Ollama | cold: marked warm | cold: nothing configured |")
print("|---|---|---|---|---|")
for model, v in sorted(per_model.items(), key=lambda kv: -kv[1]["direct"][0]):
    print(f"| {model} | {v['direct'][0]} | " + " | ".join(str(v[s][1]) for s in sides) + " |")
print()
a = runs["auto"]["cold_starts"]
print(f"Nothing configured: {a} cold starts, of which {first_uses} can only be each model's first use; "
      f"Ollama's defaults paid {d['cold_starts']}, the marked warm set {runs['explicit']['cold_starts']}.")
PY
