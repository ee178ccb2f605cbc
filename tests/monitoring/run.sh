#!/usr/bin/env bash
# Monitoring as an operator sets it up: the shipped Prometheus files pass
# `promtool`, and a real Prometheus server (Debian's package) scrapes a running
# `warmline serve` through its monitoring listener, whose counters then come back
# from Prometheus's own query API.
#
#   tests/monitoring/run.sh [BIN_DIR]     (default target/debug)
#
# Needs prometheus/promtool (the test command installs Debian's `prometheus`),
# curl, python3, and the `warmline` and `ollama-sim` binaries. Everything runs on
# loopback, in a temporary directory, and is stopped on exit. About 20 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${1:-$ROOT/target/debug}
say() { printf 'monitoring: %s\n' "$*"; }

say "promtool check rules docs/prometheus/alerts.yml"
promtool check rules docs/prometheus/alerts.yml
say "promtool check config docs/prometheus/prometheus.yml"
promtool check config docs/prometheus/prometheus.yml

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "monitoring: timed out waiting for $what" >&2
  return 1
}

SIM_PORT=$(free_port)
OLLAMA_HOST=127.0.0.1:$SIM_PORT SIM_QUIET=1 "$BIN/ollama-sim" serve >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "ollama-sim" 20 curl -fsS "http://127.0.0.1:$SIM_PORT/api/version"

# The gateway as a server runs it: a config file with a monitoring listener, its
# own XDG directories.
GW_PORT=$(free_port); MON_PORT=$(free_port)
mkdir -p "$work/config/warmline" "$work/state"
cat >"$work/config/warmline/config.toml" <<TOML
listen = "127.0.0.1:$GW_PORT"
upstreams = ["http://127.0.0.1:$SIM_PORT"]

[monitoring]
listen = "127.0.0.1:$MON_PORT"
TOML
XDG_CONFIG_HOME=$work/config XDG_STATE_HOME=$work/state RUST_LOG=warn \
  "$BIN/warmline" serve >"$work/warmline.out" 2>"$work/warmline.err" &
pids+=($!)
wait_for "warmline" 20 grep -q "warmline listening on" "$work/warmline.out"
wait_for "the monitoring listener" 10 curl -fsS "http://127.0.0.1:$MON_PORT/warmline/ready"

# Traffic to count: five generations and a listing.
for i in 1 2 3 4 5; do
  curl -fsS "http://127.0.0.1:$GW_PORT/api/generate" \
    -d "{\"model\":\"qwen3:0.6b\",\"prompt\":\"count $i\",\"stream\":false}" >/dev/null
done
curl -fsS "http://127.0.0.1:$GW_PORT/api/tags" >/dev/null

# Prometheus with the shipped rules, scraping the monitoring listener each second.
PROM_PORT=$(free_port)
cp docs/prometheus/alerts.yml "$work/alerts.yml"
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $work/alerts.yml
scrape_configs:
  - job_name: warmline
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$MON_PORT"]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$work/prometheus.log" 2>&1 &
pids+=($!)
wait_for "prometheus" 30 curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready"

query() { # query PROMQL -> the first sample's value, or nothing
  curl -fsS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
at_least() { # at_least PROMQL N: the query's value is >= N
  local v; v=$(query "$1"); [ -n "$v" ] && python3 -c "import sys; sys.exit(0 if float('$v') >= $2 else 1)"
}
wait_for "the scrape to be up" 30 at_least 'up{job="warmline"}' 1
wait_for "the generate counter" 30 at_least 'sum(warmline_requests_total{route="generate"})' 5
wait_for "the per-host upstream counter" 30 at_least "sum(warmline_upstream_requests_total{upstream=\"http://127.0.0.1:$SIM_PORT\"})" 5
say "generate requests counted by Prometheus: $(query 'sum(warmline_requests_total{route="generate"})')"
say "build: $(curl -fsS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=warmline_build_info' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["result"][0]["metric"]["version"])')"
at_least 'process_resident_memory_bytes{job="warmline"}' 1000000
# The rules loaded and evaluate (none fires on a healthy gateway).
rules=$(curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/rules" |
  python3 -c 'import json,sys; g=json.load(sys.stdin)["data"]["groups"]; print(sum(len(x["rules"]) for x in g))')
[ "$rules" -ge 10 ] || { echo "monitoring: only $rules rules loaded" >&2; exit 1; }
firing=$(curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/alerts" |
  python3 -c 'import json,sys; print(",".join(a["labels"]["alertname"] for a in json.load(sys.stdin)["data"]["alerts"] if a["state"]=="firing"))')
[ -z "$firing" ] || { echo "monitoring: alerts firing on a healthy gateway: $firing" >&2; exit 1; }
say "ok: $rules rules loaded, none firing; Prometheus scraped Warmline's counters"
