#!/usr/bin/env bash
# Ten thousand idle connections: does Warmline keep answering?
#
#   tests/bench/idle.sh [CONNECTIONS] [PROBES]      (defaults 10000, 2000)
#
# Starts the simulator and `warmline serve` with its defaults (nothing stated:
# the connection cap is derived from the fd limit, which this script raises the
# way a server's unit or shell would, to its hard limit), then measures
# `GET /warmline/health` on one keep-alive connection, PROBES times in a row:
# first with no other client, then with CONNECTIONS keep-alive connections open
# and idle (each sent one request, then nothing). Prints p50/p99/max for both,
# how many idle connections were still open at the end, and Warmline's RSS.
# Loopback only; bounded in count and time.
set -euo pipefail
. "$(dirname "$0")/common.sh"
CONNECTIONS=${1:-10000}
PROBES=${2:-2000}
ulimit -n "$(ulimit -Hn)"

out=$(mktemp -d)
"$BIN/ollama-sim" serve >"$out/sim.log" 2>&1 &
spawned $!
sim=$(sim_url "$out/sim.log")
"$BIN/warmline" serve --listen 127.0.0.1:0 --upstream "$sim" --state-file "$out/state.json" \
  >"$out/gw.out" 2>"$out/gw.log" &
gw_pid=$!
spawned $gw_pid
gw=$(wait_line "$out/gw.out" 'http://[0-9.:]*')

python3 - "$gw" "$CONNECTIONS" "$PROBES" "$gw_pid" <<'PY'
import asyncio, socket, statistics, sys, time
from urllib.parse import urlparse

url, connections, probes, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host, port = urlparse(url).hostname, urlparse(url).port
REQUEST = b"GET /warmline/health HTTP/1.1\r\nHost: localhost\r\n\r\n"

def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200"), head

def probe(n):
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    took = []
    for _ in range(n):
        start = time.perf_counter()
        sock.sendall(REQUEST)
        read_response(sock)
        took.append((time.perf_counter() - start) * 1000)
    sock.close()
    took.sort()
    return took[len(took) // 2], took[int(len(took) * 0.99) - 1], took[-1]

async def open_idle(n):
    held, gate = [], asyncio.Semaphore(256)
    async def one():
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(REQUEST)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            held.append((reader, writer))
    await asyncio.gather(*(one() for _ in range(n)))
    return held

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

async def main():
    probe(200)  # warm-up
    alone = probe(probes)
    rss_before = rss_mib()
    started = time.perf_counter()
    held = await open_idle(connections)
    opened_in = time.perf_counter() - started
    loaded = await asyncio.get_running_loop().run_in_executor(None, probe, probes)
    # Still open? A closed connection reads EOF at once.
    await asyncio.sleep(0.2)
    still = sum(1 for reader, _ in held if not reader.at_eof())
    rss_after = rss_mib()
    print(f"idle connections opened: {len(held)} in {opened_in:.1f} s; still open after the probes: {still}")
    print(f"{'/warmline/health':<34}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    print(f"{'no other client':<34}{alone[0]:>8.3f}{alone[1]:>8.3f}{alone[2]:>8.3f}")
    print(f"{f'{connections} idle connections open':<34}{loaded[0]:>8.3f}{loaded[1]:>8.3f}{loaded[2]:>8.3f}")
    print(f"warmline RSS: {rss_before:.0f} MiB before, {rss_after:.0f} MiB with the idle connections")
    for _, writer in held:
        writer.close()

asyncio.run(main())
PY
