#!/usr/bin/env bash
# Cache hits and coalescing, measured side by side in one run:
#
# 1. Cache-hit throughput (closed loop, wrk) and latency at a fixed rate (open
#    loop, warmline bench) of warmline vs nginx proxy_cache, both in front of the
#    same ollama-sim, both answering the same POST /api/chat from cache. nginx is
#    configured as the latency report describes — upstream keepalive 16, least_conn,
#    500 ms connect timeout, a 1-minute cache on POST bodies, gzip — minus its
#    10 r/s-per-IP limit, which would cap a throughput test at 10 req/s.
# 2. Coalescing: N identical concurrent streaming requests for an uncached
#    generation: upstream generations run (from the simulator's counters) and the
#    time to first token of all N vs a single request straight to the simulator.
#
#   tests/bench/cache.sh [SECONDS] [ROUNDS]      (defaults 10 and 3)
#
# Needs nginx and wrk (Debian packages; installed here if missing). Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
SECS=${1:-10}
ROUNDS=${2:-3}
OUT=bench-out/cache
rm -rf "$OUT"; mkdir -p "$OUT"

need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${need[@]}" >&2
fi

OLLAMA_HOST=127.0.0.1:0 SIM_QUIET=1 SIM_TOKENS=8 "$BIN/ollama-sim" serve 2>"$OUT/sim.log" >/dev/null &
spawned $!
SIM=$(sim_url "$OUT/sim.log")
"$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$SIM" >"$OUT/gw.out" 2>"$OUT/gw.log" &
spawned $!
GW=$(wait_line "$OUT/gw.out" 'http://[0-9.:]*')

NGINX_PORT=$(free_port)
mkdir -p "$OUT/nginx/cache"
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
  proxy_cache_path $PWD/$OUT/nginx/cache levels=1:2 keys_zone=llm:10m max_size=256m inactive=60m use_temp_path=off;
  upstream ollama { least_conn; server ${SIM#http://}; keepalive 16; }
  gzip on;
  gzip_types application/json application/x-ndjson;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://ollama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost;
      proxy_connect_timeout 500ms;
      proxy_cache llm;
      proxy_cache_methods POST;
      proxy_cache_key "\$request_method\$request_uri\$request_body";
      proxy_cache_valid 200 1m;
      proxy_cache_lock on;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
CONF
/usr/sbin/nginx -c "$PWD/$OUT/nginx/nginx.conf" -p "$PWD/$OUT/nginx" 2>"$OUT/nginx/stderr.log" &
spawned $!
NGINX="http://127.0.0.1:$NGINX_PORT"
wait_until 10 "nginx to answer at $NGINX" curl -fs -o /dev/null "$NGINX/"

BODY='{"model":"llama3.2","messages":[{"role":"user","content":"Say hello in five words."}],"stream":false,"options":{"temperature":0}}'
cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
# Prime both caches and check that both really answer from cache.
for url in "$GW" "$NGINX"; do
  for _ in 1 2 3; do curl -fs -o /dev/null -X POST -d "$BODY" "$url/api/chat"; done
done
gw_cache=$(curl -fs -D - -o /dev/null -X POST -d "$BODY" "$GW/api/chat" | tr -d '\r' | sed -n 's/^x-warmline-cache: //Ip')
ng_cache=$(curl -fs -D - -o /dev/null -X POST -d "$BODY" "$NGINX/api/chat" | tr -d '\r' | sed -n 's/^x-cache-status: //Ip')
echo "cache check: warmline=$gw_cache nginx=$ng_cache" >&2
[ "$gw_cache" = hit ] && [ "$ng_cache" = HIT ] || { echo "a cache is not serving hits" >&2; exit 1; }
generations() { curl -fs "$SIM/_sim/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generations"]["started"])'; }
declare -A gens=([warmline]=0 [nginx]=0)
for round in $(seq "$ROUNDS"); do
  for side in warmline nginx; do
    url=$GW; [ $side = nginx ] && url=$NGINX
    before=$(generations)
    wrk -t1 -c32 -d"${SECS}s" --latency -s "$OUT/post.lua" "$url/api/chat" >"$OUT/wrk-$side-$round.txt"
    "$BIN/warmline" bench --url "$url" --body "$BODY" --path /api/chat --rate 5000 \
      --duration "${SECS}s" --warmup 1s --json >"$OUT/open-$side-$round.json"
    gens[$side]=$(( ${gens[$side]} + $(generations) - before ))
    echo "round $round $side done" >&2
  done
done

# Coalescing: N identical streaming requests at once for a generation that is not
# cached yet (40 tokens, 20 ms apart), vs one request straight to the simulator.
curl -fs -X PUT -d '{"token_delay_ms":20,"tokens_per_reply":40}' "$SIM/_sim/knobs" >/dev/null
coalesce_rows=()
for n in 10 100; do
  admin_curl -fs -X DELETE "$GW/warmline/cache" >/dev/null
  prompt="coalesce-$n-$RANDOM"
  stream_body="{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"$prompt\"}],\"options\":{\"temperature\":0}}"
  before=$(generations)
  "$BIN/warmline" bench --url "$GW" --body "$stream_body" --path /api/chat --concurrency "$n" \
    --requests "$n" --warmup 0s --duration 60s --json >"$OUT/coalesce-$n.json"
  after=$(generations)
  direct_body="{\"model\":\"llama3.2\",\"messages\":[{\"role\":\"user\",\"content\":\"$prompt-direct\"}],\"options\":{\"temperature\":0}}"
  "$BIN/warmline" bench --url "$SIM" --body "$direct_body" --path /api/chat --concurrency 1 \
    --requests 1 --warmup 0s --duration 60s --json >"$OUT/coalesce-direct-$n.json"
  coalesce_rows+=("$n $((after - before))")
done

python3 - "$OUT" "$ROUNDS" "${gens[warmline]}" "${gens[nginx]}" "${coalesce_rows[@]}" <<'PY'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
gens = {"warmline": int(sys.argv[3]), "nginx": int(sys.argv[4])}
coalesce = [row.split() for row in sys.argv[5:]]
def wrk(path):
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    def lat(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, lat(50), lat(99), int(errors.group(1)) if errors else 0
print("### Cache hits: warmline vs nginx proxy_cache\n")
print("Closed loop (wrk, 1 thread, 32 connections), median of rounds:\n")
print("| system | hits/s | p50 ms | p99 ms | non-2xx | upstream generations |")
print("|---|---|---|---|---|---|")
for side in ("warmline", "nginx"):
    runs = [wrk(f"{out}/wrk-{side}-{r}.txt") for r in range(1, rounds + 1)]
    med = [statistics.median(x[i] for x in runs) for i in range(3)]
    print(f"| {side} | {med[0]:,.0f} | {med[1]:.3f} | {med[2]:.3f} | {sum(x[3] for x in runs)} | {gens[side]} |")
print("\nOpen loop at 5,000 req/s (warmline bench), median of rounds:\n")
print("| system | requests | errors | p50 ms | p99 ms | p99.9 ms | max ms |")
print("|---|---|---|---|---|---|---|")
for side in ("warmline", "nginx"):
    runs = [json.load(open(f"{out}/open-{side}-{r}.json")) for r in range(1, rounds + 1)]
    q = {k: statistics.median(run["latency_ms"][k] for run in runs) for k in ("p50", "p99", "p999", "max")}
    reqs = sum(run["requests"] for run in runs); errs = sum(sum(run["errors"].values()) for run in runs)
    print(f"| {side} | {reqs} | {errs} | {q['p50']:.3f} | {q['p99']:.3f} | {q['p999']:.3f} | {q['max']:.3f} |")
print("\nUpstream generations: requests that went to the simulator during each system's")
print("measured traffic (all rounds, both loops); nginx's entries expire after the")
print("report's 1 minute and are fetched again.\n")
print("### Coalescing\n")
print("| identical concurrent requests | upstream generations | TTFT p50 ms | TTFT p99 ms | TTFT max ms | one request direct, TTFT ms |")
print("|---|---|---|---|---|---|")
for n, g in coalesce:
    r = json.load(open(f"{out}/coalesce-{n}.json")); d = json.load(open(f"{out}/coalesce-direct-{n}.json"))
    print(f"| {n} | {g} | {r['ttft_ms']['p50']:.2f} | {r['ttft_ms']['p99']:.2f} | {r['ttft_ms']['max']:.2f} | {d['ttft_ms']['p50']:.2f} |")
PY
