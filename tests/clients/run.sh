#!/usr/bin/env bash
# Client-compatibility suite: the official Python `ollama` and `openai` clients
# (pytest) and the official JS `ollama` client (node --test), each pointed at
# warmline and directly at ollama-sim, results compared; and the same Python
# clients through warmline in front of a real inference engine
# (llama-cpp-python's server, set up by tests/engine/setup.sh: built once per
# machine, about 6 minutes, then seconds).
#
# Assumes the binaries are built (`cargo build -p ollama-sim -p warmline-cli`);
# WARMLINE_BIN_DIR overrides where they are (default <repo>/target/debug).
# WARMLINE_VENV overrides the virtualenv (default <repo>/.venv).
# Closing line: "clients: N passed, N failed, N skipped" over both runners.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${WARMLINE_VENV:-$repo/.venv}"
export WARMLINE_BIN_DIR="${WARMLINE_BIN_DIR:-$repo/target/debug}"
# Hard ceilings so a hung daemon or client cannot stall CI; the suites take
# well under a minute each.
suite_timeout="${WARMLINE_CLIENTS_TIMEOUT:-600}"

die() { echo "clients: $*" >&2; exit 2; }

for bin in ollama-sim warmline; do
  [[ -x "$WARMLINE_BIN_DIR/$bin" ]] || die "$WARMLINE_BIN_DIR/$bin missing: run cargo build -p ollama-sim -p warmline-cli"
done
command -v node >/dev/null || die "node not found (Node.js 20 needed)"

echo "== setup: venv $venv, npm ci"
# (Re)create the venv when missing or broken, e.g. its base Python is gone.
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  python3 -m venv --clear "$venv" || die "python3 -m venv $venv failed"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/python/requirements.txt" \
  || die "pip install failed"
(cd "$here/js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
echo "== setup: the real inference engine (tests/engine/setup.sh)"
engine_env="$("$repo/tests/engine/setup.sh")" || die "engine setup failed"
eval "$engine_env"

reports="$(mktemp -d)"
trap 'rm -rf "$reports"' EXIT

echo "== python: ollama + openai clients, against ollama-sim and a real engine (pytest)"
(cd "$here/python" && timeout --signal=TERM --kill-after=10 "$suite_timeout" \
  "$venv/bin/python" -m pytest -q --junitxml="$reports/pytest.xml")
py_rc=$?

echo "== js: ollama client (node --test)"
(cd "$here/js" && timeout --signal=TERM --kill-after=10 "$suite_timeout" \
  node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$reports/node.tap" compat.test.mjs)
js_rc=$?

# One total over both runners, as the closing line.
"$venv/bin/python" - "$reports" "$py_rc" "$js_rc" <<'EOF'
import re, sys, xml.etree.ElementTree as ET
from pathlib import Path

reports, py_rc, js_rc = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
passed = failed = skipped = 0
try:
    for suite in ET.parse(reports / "pytest.xml").getroot().iter("testsuite"):
        n, f, e, s = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        passed += n - f - e - s
        failed += f + e
        skipped += s
except (OSError, ET.ParseError):
    failed += 1  # pytest died before writing its report
try:
    tap = (reports / "node.tap").read_text()
    count = lambda k: int(m.group(1)) if (m := re.search(rf"^# {k} (\d+)$", tap, re.M)) else 0
    passed += count("pass")
    failed += count("fail") + count("cancelled")
    skipped += count("skipped") + count("todo")
    if not re.search(r"^# pass \d+$", tap, re.M):
        failed += 1  # node's runner died before its summary
except OSError:
    failed += 1
# A runner that failed without a counted failure (e.g. a fixture error at
# session teardown) still fails the suite.
if failed == 0 and (py_rc or js_rc):
    failed = 1
print(f"clients: {passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
EOF
