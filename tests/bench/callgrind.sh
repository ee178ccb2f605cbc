#!/usr/bin/env bash
# User-space instructions per request, counted by valgrind's callgrind: Warmline
# and nginx side by side in front of the same ollama-sim (a real daemon, delays at
# 0, not under valgrind). Instruction counts do not depend on how busy a shared
# machine is, so this compares the two proxies' CPU work where timings cannot.
#
# Each server runs under `valgrind --tool=callgrind --separate-threads=no` (one
# profile holding every thread's instructions). Per request kind, a tiny client
# (python3 http.client) opens ONE keep-alive connection, sends WARMUP requests,
# runs `callgrind_control -z` (zero all counters), sends N requests on the same
# connection, runs `callgrind_control -d` (dump); the "totals:" of every file
# written by that dump, divided by N, is the figure. Connection set-up is outside
# the window; background work inside it (Warmline's 1 s health probe, metrics
# thread, timers) is included, and measured on its own while idle, as a check.
#
#   1. pass-through: POST /api/chat, "stream":false, "temperature":0.8 (sampled,
#      no seed), so Warmline sends every request upstream (x-warmline-cache:
#      bypass). nginx runs the cache configuration below, whose POST cache would
#      store it, so the request carries `X-No-Cache: 1`, which nginx's
#      proxy_cache_bypass/proxy_no_cache test (X-Cache-Status: BYPASS): nginx still
#      reads the body and computes the cache key, as it would for any request that
#      reaches that location. Warmline gets the same bytes (and forwards the header).
#   2. cache hit: the same request with "temperature":0: Warmline answers from its
#      cache (x-warmline-cache: hit), nginx from proxy_cache (X-Cache-Status: HIT).
#
# Warmline: its defaults, `warmline serve --listen 127.0.0.1:PORT --upstream SIM`,
# with XDG_CONFIG_HOME/XDG_STATE_HOME in OUT (no user config, a fresh admin token).
# nginx: the latency report's configuration (upstream keepalive 16, least_conn,
# 500 ms connect timeout, 1-minute proxy_cache of POST bodies, gzip) with its
# 10 r/s-per-IP limit off, as in cache.sh; `worker_processes 1`, `master_process
# off`, `daemon off` so one process does all the work, and keepalive_requests
# raised so the client's one connection is not closed after nginx's default 1000.
# The client sends no Accept-Encoding beyond `identity` (http.client's default), so
# neither side compresses.
#
#   tests/bench/callgrind.sh [N] [WARMUP] [OUT]    (defaults 2000, 200, /tmp/warmline-callgrind)
#
# callgrind slows a server 20-100x: the defaults take about a minute on 2 cores
# (the servers' start under valgrind included). Needs valgrind, c++filt and
# nginx (Debian packages; installed here if missing). Prints Markdown to stdout
# and leaves, per Warmline run, the top 40 functions by inclusive and by self
# cost in OUT (their paths are printed; 300 in *-300.txt), next to the raw
# callgrind files. NO_BUILD=1 BIN_DIR=DIR: use the binaries in DIR, build nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000}
WARMUP=${2:-200}
OUT=${3:-/tmp/warmline-callgrind}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# What an earlier run left (only this script's files: OUT may be any directory).
rm -rf "$OUT"/warmline* "$OUT"/nginx* "$OUT"/xdg-* "$OUT"/sim.log "$OUT"/client.py
export XDG_CONFIG_HOME=$OUT/xdg-config XDG_STATE_HOME=$OUT/xdg-state
mkdir -p "$XDG_CONFIG_HOME" "$XDG_STATE_HOME"
. tests/bench/common.sh
# BIN_DIR: other binaries than target/release (e.g. a copy, with NO_BUILD=1).
BIN=${BIN_DIR:-$BIN}
IDLE_SECS=5

need=()
command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || need+=(valgrind)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v c++filt >/dev/null || need+=(binutils)
if ((${#need[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${need[@]}" >&2
fi

OLLAMA_HOST=127.0.0.1:0 SIM_QUIET=1 "$BIN/ollama-sim" serve 2>"$OUT/sim.log" >/dev/null &
spawned $!
SIM=$(sim_url "$OUT/sim.log")

MODEL=llama3.2
body() { # TEMPERATURE → the request body
  printf '{"model":"%s","messages":[{"role":"user","content":"Say hello in five words."}],"stream":false,"options":{"temperature":%s}}' "$MODEL" "$1"
}

# The client: one keep-alive connection; WARMUP requests, zero, N requests, dump.
# Fails unless every answer is 200 and every measured one carries the expected
# cache header value, and the connection was the same throughout.
cat >"$OUT/client.py" <<'PY'
import http.client, json, subprocess, sys, time
port, pid, body, warm, n, header, expect = sys.argv[1:8]
port, warm, n = int(port), int(warm), int(n)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
headers = {"Content-Type": "application/json", "X-No-Cache": "1"} if expect.lower() == "bypass" else {"Content-Type": "application/json"}
local_ports, values = set(), {}
def one(measured):
    conn.request("POST", "/api/chat", body, headers)
    r = conn.getresponse()
    data = r.read()
    local_ports.add(conn.sock.getsockname()[1])
    if r.status != 200:
        sys.exit(f"HTTP {r.status}: {data[:200]!r}")
    if measured:
        v = r.getheader(header, "(none)")
        values[v] = values.get(v, 0) + 1
    return r.getheader(header, "(none)")
for _ in range(max(warm, 1)):
    last = one(False)
if last.lower() != expect.lower():
    sys.exit(f"after warm-up, {header}: {last} (expected {expect})")
quiet = dict(stdout=subprocess.DEVNULL, check=True)
subprocess.run(["callgrind_control", "-z", str(pid)], **quiet)
t0 = time.monotonic()
for _ in range(n):
    one(True)
secs = time.monotonic() - t0
subprocess.run(["callgrind_control", "-d", str(pid)], **quiet)
if len(local_ports) != 1:
    sys.exit(f"the client needed {len(local_ports)} connections, not one")
if sum(c for v, c in values.items() if v.lower() == expect.lower()) != n:
    sys.exit(f"measured {header} values {values}, expected {n} x {expect}")
print(json.dumps({"seconds": secs, "values": values}))
PY

ir_of_dump() { # FILES... → the sum of their totals (all threads)
  python3 - "$@" <<'PY'
import sys
total = 0
for path in sys.argv[1:]:
    found = {}
    for line in open(path, errors="replace"):
        for key in ("totals:", "summary:"):
            if line.startswith(key):
                found[key] = int(line.split()[1])
    total += found.get("totals:", found.get("summary:", 0))
print(total)
PY
}

# Run CMD (a callgrind_control call or the client) and set DUMP_FILES to the
# callgrind files it made appear under PREFIX, once each is complete.
new_dumps() { # PREFIX BEFORE → the files under PREFIX not in BEFORE (one a line)
  local f
  for f in "$1".*; do [ -e "$f" ] && ! grep -qxF "$f" <<<"$2" && echo "$f"; done; true
}
some_new_dump() { [ -n "$(new_dumps "$@")" ]; }
dumped() { # PREFIX CMD... → DUMP_FILES
  local prefix=$1 before f
  shift
  before=$(ls "$prefix".* 2>/dev/null || true)
  "$@"
  wait_until 60 "a callgrind dump at $prefix" some_new_dump "$prefix" "$before"
  mapfile -t DUMP_FILES < <(new_dumps "$prefix" "$before")
  for f in "${DUMP_FILES[@]}"; do wait_until 60 "the end of $f" grep -q '^totals:' "$f"; done
}

# Warmline runs with --demangle=no, so that each monomorphization of a generic
# stays its own function (demangled, the nested tower/axum futures share names
# and look recursive), and --separate-recs=30, so that the same boxed service
# nested at several levels (axum's Route, BoxCloneSyncService) is one function per
# level (f'2, f'3...): inclusive costs of recursive functions count each call
# again. The listings are made from a copy of the dump where:
# - calls that began before the zeroing (thread entry points, the runtime's loop),
#   dumped as `calls=0`, become `calls=1`: callgrind_annotate would count them as
#   their callers' self cost;
# - `fi=`/`fe=` (code inlined from another source file) become `jfi=`, which
#   callgrind_annotate reads and ignores: a function's cost is one row, with what
#   was inlined into it counted as its self cost, not one row per source file.
# c++filt demangles; hashes and registry/toolchain path prefixes are dropped.
top_functions() { # CALLGRIND-FILE DEST ROWS [--inclusive=yes] → DEST: the costliest functions
  local file=$1 dest=$2 rows=$3
  shift 3
  sed -E 's/^calls=0 /calls=1 /; s/^f[ie]=/jfi=/' "$file" >"$dest.callgrind"
  callgrind_annotate --threshold=100 "$@" "$dest.callgrind" 2>/dev/null | c++filt |
    sed -E 's/::h[0-9a-f]{16}//g; s/\[[0-9a-f]{16}\]//g; s#/root/\.cargo/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/library/#<rust>/#' |
    awk -v rows="$rows" '
      /^Ir +file:function/ { body = 1; print; getline; print; next }
      body && NF {
        # A function reached through code inlined from another file is listed
        # twice in the inclusive view, with the same cost: once is enough.
        key = $0; sub(/ \[[^]]*\]$/, "", key); cost = $1
        sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", key); key = cost " " substr(key, index(key, ":") + 1)
        if (!(key in seen) && n < rows) { print; n++ }
        seen[key] = 1; next
      }
      !body { print }' >"$dest"
  rm -f "$dest.callgrind"
}

declare -A IR SECS IDLE VALUES
declare -a REPORT_FILES
VG=(valgrind --tool=callgrind --separate-threads=no -q)
for side in warmline nginx; do
  prefix=$OUT/$side.callgrind
  port=$(free_port)
  if [ $side = warmline ]; then
    env -u WARMLINE_CONFIG -u WARMLINE_LISTEN -u WARMLINE_UPSTREAMS -u WARMLINE_REDIS -u WARMLINE_TOKEN \
      "${VG[@]}" --demangle=no --separate-recs=30 --callgrind-out-file="$prefix" \
      "$BIN/warmline" serve --listen "127.0.0.1:$port" --upstream "$SIM" >"$OUT/warmline.out" 2>"$OUT/warmline.log" &
    pid=$!
    header=x-warmline-cache; expect_pass=bypass; expect_hit=hit
  else
    ng=$OUT/nginx
    mkdir -p "$ng/cache"
    cat >"$ng/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ng/body;
  proxy_temp_path $ng/proxy;
  fastcgi_temp_path $ng/fastcgi;
  uwsgi_temp_path $ng/uwsgi;
  scgi_temp_path $ng/scgi;
  proxy_cache_path $ng/cache levels=1:2 keys_zone=llm:10m max_size=256m inactive=60m use_temp_path=off;
  upstream ollama { least_conn; server ${SIM#http://}; keepalive 16; }
  gzip on;
  gzip_types application/json application/x-ndjson;
  # The report's "limit_req zone=perip (10r/s)" is left out: it would answer 503s.
  server {
    listen 127.0.0.1:$port;
    keepalive_requests 1000000;
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
      proxy_cache_bypass \$http_x_no_cache;
      proxy_no_cache \$http_x_no_cache;
      add_header X-Cache-Status \$upstream_cache_status;
    }
  }
}
CONF
    "${VG[@]}" --callgrind-out-file="$prefix" \
      /usr/sbin/nginx -c "$ng/nginx.conf" -p "$ng" >"$OUT/nginx.out" 2>"$OUT/nginx.log" &
    pid=$!
    header=X-Cache-Status; expect_pass=BYPASS; expect_hit=HIT
  fi
  spawned $pid
  wait_until 180 "$side (under valgrind) to answer on port $port" \
    curl -fs -o /dev/null -X POST -H 'X-No-Cache: 1' -d "$(body 0.8)" "http://127.0.0.1:$port/api/chat"
  echo "$side up under callgrind (pid $pid, port $port)" >&2

  for kind in pass hit; do
    if [ $kind = pass ]; then b=$(body 0.8) expect=$expect_pass; else b=$(body 0) expect=$expect_hit; fi
    dumped "$prefix" python3 "$OUT/client.py" "$port" "$pid" "$b" "$WARMUP" "$N" "$header" "$expect" >"$OUT/$side-$kind.json"
    total=$(ir_of_dump "${DUMP_FILES[@]}")
    IR[$side-$kind]=$((total / N))
    SECS[$side-$kind]=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["seconds"], 1))' "$OUT/$side-$kind.json")
    VALUES[$side-$kind]=$(python3 -c 'import json,sys; print(", ".join(f"{c} {v}" for v, c in json.load(open(sys.argv[1]))["values"].items()))' "$OUT/$side-$kind.json")
    echo "$side $kind: ${IR[$side-$kind]} instructions/request over $N requests in ${SECS[$side-$kind]} s (${DUMP_FILES[*]})" >&2
    if [ $side = warmline ]; then
      main=${DUMP_FILES[0]}
      top_functions "$main" "$OUT/warmline-$kind-inclusive.txt" 40 --inclusive=yes
      top_functions "$main" "$OUT/warmline-$kind-self.txt" 40
      top_functions "$main" "$OUT/warmline-$kind-inclusive-300.txt" 300 --inclusive=yes
      top_functions "$main" "$OUT/warmline-$kind-self-300.txt" 300
      REPORT_FILES+=("$OUT/warmline-$kind-inclusive.txt" "$OUT/warmline-$kind-self.txt")
    fi
  done

  # Background: the same server left idle for IDLE_SECS.
  callgrind_control -z "$pid" >/dev/null
  sleep "$IDLE_SECS"
  dumped "$prefix" callgrind_control -d "$pid" >/dev/null
  IDLE[$side]=$(( $(ir_of_dump "${DUMP_FILES[@]}") / IDLE_SECS ))
  echo "$side idle: ${IDLE[$side]} instructions/s" >&2
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done

ratio() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):.2f}")' "$1" "$2"; }
num() { python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"; }
echo "### Instructions per request (callgrind, user space, all threads)"
echo
echo "| request kind | Warmline instructions/request | nginx instructions/request | ratio (Warmline / nginx) |"
echo "|---|---|---|---|"
for kind in pass hit; do
  label="pass-through chat (temperature 0.8, stream false)"; [ $kind = hit ] && label="cache hit (temperature 0, stream false)"
  printf '| %s | %s | %s | %s |\n' "$label" "$(num "${IR[warmline-$kind]}")" \
    "$(num "${IR[nginx-$kind]}")" "$(ratio "${IR[warmline-$kind]}" "${IR[nginx-$kind]}")"
done
echo
echo "$N measured requests per row on one keep-alive connection after $WARMUP warm-up requests on it;"
echo "cache headers seen: Warmline pass-through ${VALUES[warmline-pass]}, hit ${VALUES[warmline-hit]};"
echo "nginx pass-through ${VALUES[nginx-pass]}, hit ${VALUES[nginx-hit]}."
bg() { python3 -c 'import sys; print(f"{float(sys.argv[1]) * float(sys.argv[2]) / int(sys.argv[3]):,.0f}")' "${IDLE[$1]}" "${SECS[$1-$2]}" "$N"; }
echo "Measured windows (under callgrind): Warmline ${SECS[warmline-pass]} s / ${SECS[warmline-hit]} s,"
echo "nginx ${SECS[nginx-pass]} s / ${SECS[nginx-hit]} s. Idle, over ${IDLE_SECS} s, Warmline runs"
echo "$(num "${IDLE[warmline]}") instructions/s (health probes, metrics thread, timers), nginx $(num "${IDLE[nginx]}"):"
echo "about $(bg warmline pass) / $(bg warmline hit) (Warmline) and $(bg nginx pass) / $(bg nginx hit) (nginx) of the"
echo "instructions per request above (pass-through / hit) are that background."
echo
echo "- command: \`${NO_BUILD:+NO_BUILD=1 }${BIN_DIR:+BIN_DIR=$BIN_DIR }tests/bench/callgrind.sh $N $WARMUP $OUT\`"
echo "- $(/usr/sbin/nginx -v 2>&1), $(valgrind --version), $("$BIN/warmline" --version 2>/dev/null || echo warmline)" \
  "(binary of $(date -u -r "$BIN/warmline" +%FT%TZ)), git $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ modified in the working tree)')"
echo "- Warmline's 40 costliest functions (callgrind_annotate, inclusive and self; 300 in the *-300.txt next to them):"
for f in "${REPORT_FILES[@]}"; do echo "  - $f"; done
