#!/usr/bin/env bash
# Gateway overhead, measured as a paired run: the same ollama-sim, the same arrival
# rate, direct vs through warmline, alternating in one run so the shared machine's
# noise hits every side alike. Open loop (warmline bench --rate), non-streaming
# small chat requests, simulator delays at 0 so only HTTP and proxy costs remain.
#
# Four sides: `direct` (the simulator itself), `nginx` (nginx's plain proxy with
# the latency report's upstream settings: keepalive 16, least_conn, 500 ms connect
# timeout; no cache, no rate limit, two workers), `bare` (warmline with every
# optional layer switched off: rate limit, breaker, per-model slots, compression,
# failover; no token) and `layers` (all of them on and doing their work: a bearer
# token checked on every request, loopback clients rate-limited at a rate they
# never reach, breaker and slots counting every request).
#
#   tests/bench/overhead.sh [RATES] [SECONDS] [ROUNDS]
#   tests/bench/overhead.sh "1000 5000" 10 3      (the default)
#
# BASELINE=/path/to/an/older/warmline adds a fourth side, `baseline`: that
# binary with its defaults and --no-cache, to compare two builds in one run.
#
# Prints a Markdown table (for BENCHMARKS.md) and leaves raw JSON in bench-out/.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
RATES=${1:-"1000 5000"}
SECONDS_PER_RUN=${2:-10}
ROUNDS=${3:-3}
OUT=bench-out/overhead
mkdir -p "$OUT"

OLLAMA_HOST=127.0.0.1:0 SIM_QUIET=1 "$BIN/ollama-sim" serve 2>"$OUT/sim.log" >/dev/null &
spawned $!
SIM=$(sim_url "$OUT/sim.log")
# --no-cache: this measures pass-through; the chat scenario (temperature 0)
# would otherwise be answered from the cache after its first request.
cat >"$OUT/bare.toml" <<TOML
[rate_limit]
enabled = false
[breaker]
enabled = false
[concurrency]
enabled = false
[compression]
enabled = false
[failover]
enabled = false
TOML
cat >"$OUT/layers.toml" <<TOML
[rate_limit]
loopback = true
per_second = 1000000
burst = 1000000
[concurrency]
per_model = 64
[auth]
token = "overhead-bench-token"
TOML
declare -A URL=([direct]=$SIM)

[ -x /usr/sbin/nginx ] || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
  install -y -q --no-install-recommends nginx-light >&2
NGINX_PORT=$(free_port)
mkdir -p "$OUT/nginx"
cat >"$OUT/nginx/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/error.log warn;
user root;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $PWD/$OUT/nginx/body;
  proxy_temp_path $PWD/$OUT/nginx/proxy;
  fastcgi_temp_path $PWD/$OUT/nginx/fastcgi;
  uwsgi_temp_path $PWD/$OUT/nginx/uwsgi;
  scgi_temp_path $PWD/$OUT/nginx/scgi;
  upstream ollama { least_conn; server ${SIM#http://}; keepalive 16; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    keepalive_requests 1000000;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://ollama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost;
      proxy_connect_timeout 500ms;
    }
  }
}
CONF
/usr/sbin/nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx" 2>"$OUT/nginx/stderr.log" &
spawned $!
URL[nginx]="http://127.0.0.1:$NGINX_PORT"
wait_until 10 "nginx to answer at ${URL[nginx]}" curl -fs -o /dev/null "${URL[nginx]}/"
for side in bare layers; do
  "$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$SIM" --no-cache --config "$OUT/$side.toml" \
    >"$OUT/$side.out" 2>"$OUT/$side.log" &
  spawned $!
  URL[$side]=$(wait_line "$OUT/$side.out" 'http://[0-9.:]*')
done
SIDES=(direct nginx bare layers)
if [ -n "${BASELINE:-}" ]; then
  "$BASELINE" serve --listen 127.0.0.1:0 --upstream "$SIM" --no-cache \
    >"$OUT/baseline.out" 2>"$OUT/baseline.log" &
  spawned $!
  URL[baseline]=$(wait_line "$OUT/baseline.out" 'http://[0-9.:]*')
  SIDES+=(baseline)
fi
echo "simulator $SIM, nginx ${URL[nginx]}, bare ${URL[bare]}, layers ${URL[layers]}${BASELINE:+, baseline ${URL[baseline]}}" >&2

for rate in $RATES; do
  for round in $(seq "$ROUNDS"); do
    for side in "${SIDES[@]}"; do
      auth=(); [ "$side" = layers ] && auth=(--header "Authorization: Bearer overhead-bench-token")
      "$BIN/warmline" bench --url "${URL[$side]}" --scenario chat --rate "$rate" "${auth[@]}" \
        --duration "${SECONDS_PER_RUN}s" --warmup 1s --json >"$OUT/$side-$rate-$round.json"
      echo "rate $rate round $round $side done" >&2
    done
  done
done

python3 - "$OUT" "$RATES" "$ROUNDS" "${SIDES[*]}" <<'PY'
import json, sys, statistics
out, rates, rounds, sides = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4].split()
print("| rate (req/s) | side | requests | errors | p50 ms | p95 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|---|---|---|")
summary = []
for rate in rates:
    med = {}
    for side in sides:
        runs = [json.load(open(f"{out}/{side}-{rate}-{r}.json")) for r in range(1, rounds + 1)]
        q = {k: statistics.median(run["latency_ms"][k] for run in runs) for k in ("p50", "p95", "p99", "p999")}
        reqs = sum(run["requests"] for run in runs)
        errs = sum(sum(run["errors"].values()) for run in runs)
        med[side] = q
        print(f"| {rate} | {side} | {reqs} | {errs} | {q['p50']:.3f} | {q['p95']:.3f} | {q['p99']:.3f} | {q['p999']:.3f} |")
    for side in sides[1:]:
        d = {k: (med[side][k] - med["direct"][k]) * 1000 for k in ("p50", "p95", "p99")}
        summary.append(f"| {rate} | {side} | {d['p50']:+.0f} | {d['p95']:+.0f} | {d['p99']:+.0f} |")
print()
print("Added by the gateway (median over rounds of gateway minus direct, microseconds):")
print()
print("| rate (req/s) | gateway | p50 µs | p95 µs | p99 µs |")
print("|---|---|---|---|---|")
print("\n".join(summary))
PY
