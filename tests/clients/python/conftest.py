"""Process fixtures for the client-compatibility suite.

Topology (one pytest session):

    client ──────────────────────────────► ollama-sim  "direct"
    client ──► warmline ─────────────────► ollama-sim  "upstream"

The engine tests (test_engine.py) start their own: llama-cpp-python's server
with a tiny self-made model (see tests/engine/), and warmline in front of it
as an upstream of `kind=openai`.

Two simulators, not one, because pull/copy/delete mutate simulator state: every
test performs the same call on both endpoints in the same order, so both
simulators go through identical histories and any difference in what a client
sees is the gateway's doing. Both start from the same built-in model set.

Every process is started on port 0 and its real address is read from its ready
line (sim: stderr `msg="Listening on HOST:PORT (version …)"`; warmline: stdout
`warmline listening on http://HOST:PORT`) with a bounded wait. Processes are
stopped with SIGTERM (SIGKILL after a grace period) at session end, whether
tests passed or not; on Linux they also get a parent-death signal so that even a
SIGKILLed pytest leaves nothing behind.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN_DIR = Path(os.environ.get("WARMLINE_BIN_DIR") or REPO / "target" / "debug")
READY_TIMEOUT_S = float(os.environ.get("WARMLINE_READY_TIMEOUT", "30"))
STOP_GRACE_S = 5.0
SIM_TOKENS = 200

SIM_READY = re.compile(r'msg="Listening on (?P<addr>[^ ]+:\d+) \(version [^)]*\)"')
WARMLINE_READY = re.compile(r"^warmline listening on (?P<url>http://\S+:\d+)\s*$")


class Daemon:
    """One child process whose ready line announces where it listens.

    Both pipes are drained for the whole life of the process by reader threads
    (a chatty child must never block on a full pipe); the last lines are kept
    for the failure message.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready_stream: str, ready: re.Pattern[str]):
        self.name = name
        self.argv = argv
        self.env = env
        self.ready_stream = ready_stream
        self.ready = ready
        self.proc: subprocess.Popen[str] | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=200)
        # Every line, for tests that count what a daemon logged (requests).
        self.lines: list[str] = []
        self._ready_lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> re.Match[str]:
        exe = Path(self.argv[0])
        if not exe.is_file():
            pytest.exit(
                f"{self.name}: binary {exe} not found; build it with "
                "`cargo build -p ollama-sim -p warmline-cli` or set WARMLINE_BIN_DIR",
                returncode=2,
            )
        # setpriv execs the binary in place (same pid), after arranging SIGTERM
        # on parent death: no preexec_fn, which is unsafe once threads exist.
        prefix = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        self.proc = subprocess.Popen(
            prefix + self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        for stream_name in ("stdout", "stderr"):
            threading.Thread(
                target=self._drain,
                args=(stream_name, getattr(self.proc, stream_name)),
                name=f"{self.name}-{stream_name}",
                daemon=True,
            ).start()

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {READY_TIMEOUT_S:.0f}s\n{self.output()}")
            try:
                line = self._ready_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=STOP_GRACE_S)
                raise RuntimeError(f"{self.name} exited with {code} before its ready line\n{self.output()}")
            if m := self.ready.search(line):
                return m

    def _drain(self, stream_name: str, pipe) -> None:
        for line in pipe:
            line = line.rstrip("\n")
            self.tail.append(f"[{stream_name}] {line}")
            self.lines.append(line)
            if stream_name == self.ready_stream:
                self._ready_lines.put(line)
        if stream_name == self.ready_stream:
            self._ready_lines.put(None)

    def count(self, needle: str) -> int:
        """How many lines logged so far contain `needle`."""
        return sum(needle in line for line in list(self.lines))

    def output(self) -> str:
        return f"--- {self.name} ({' '.join(self.argv)}) last output ---\n" + "\n".join(self.tail)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_GRACE_S)


@dataclasses.dataclass(frozen=True)
class Endpoints:
    direct: str
    """Base URL of the simulator that clients talk to directly."""
    gateway: str
    """Base URL of warmline."""
    upstream: str
    """Base URL of the simulator behind warmline (for raw byte comparisons)."""

    def pair(self) -> list[tuple[str, str]]:
        """(label, url) in the fixed order every test uses: direct first."""
        return [("direct", self.direct), ("gateway", self.gateway)]


def _sim(name: str, workdir: Path) -> Daemon:
    home = workdir / name
    home.mkdir()
    env = {
        # The simulator reads OLLAMA_* and SIM_* (fault rates, delays, model
        # set): none may leak in from the caller's environment.
        **{k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "SIM_"))},
        "OLLAMA_HOST": "127.0.0.1:0",
        "SIM_QUIET": "1",
        # Replies long enough that streams have many chunks (default is 8).
        "SIM_TOKENS": str(SIM_TOKENS),
        # Keep each simulator's state (if it persists any) apart from the
        # other's and from the user's real ~/.ollama.
        "HOME": str(home),
        "OLLAMA_MODELS": str(home / "models"),
    }
    return Daemon(name, [str(BIN_DIR / "ollama-sim"), "serve"], env, "stderr", SIM_READY)


@pytest.fixture(scope="session")
def endpoints() -> Iterator[Endpoints]:
    daemons: list[Daemon] = []
    workdir = Path(tempfile.mkdtemp(prefix="warmline-clients-"))
    try:
        direct_sim = _sim("sim-direct", workdir)
        daemons.append(direct_sim)
        direct = "http://" + direct_sim.start()["addr"]

        upstream_sim = _sim("sim-upstream", workdir)
        daemons.append(upstream_sim)
        upstream = "http://" + upstream_sim.start()["addr"]

        gateway_home = workdir / "warmline"
        gateway_home.mkdir()
        gateway = Daemon(
            "warmline",
            [str(BIN_DIR / "warmline"), "serve", "--listen", "127.0.0.1:0", "--upstream", upstream],
            {**os.environ, "HOME": str(gateway_home)},
            "stdout",
            WARMLINE_READY,
        )
        daemons.append(gateway)
        gateway_url = gateway.start()["url"]

        yield Endpoints(direct=direct, gateway=gateway_url, upstream=upstream)

        for d in daemons:
            if d.proc is not None and d.proc.poll() is not None:
                pytest.fail(f"{d.name} died during the session (exit {d.proc.returncode})\n{d.output()}")
    finally:
        # Gateway first, so it never sees its upstream vanish mid-request.
        for d in reversed(daemons):
            d.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def pytest_sessionstart(session: pytest.Session) -> None:
    # A SIGTERM (e.g. from `timeout`) would otherwise end pytest without running
    # fixture finalizers; as KeyboardInterrupt, pytest tears the session down.
    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
