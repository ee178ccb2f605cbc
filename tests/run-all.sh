#!/usr/bin/env bash
# Runs every Warmline test on a fresh Debian (bookworm) machine, installing what it
# needs first. This is the command README.md gives and .ci/run calls.
#
#   ./tests/run-all.sh              everything
#   ./tests/run-all.sh --deps-only  only install the system packages (for running the app)
#   SKIP_E2E=1 ./tests/run-all.sh   everything but the webview end-to-end test (the
#                                   package is still built, installed, launched and purged)
#
# Stages: system packages → format and lint → structure → core has no GUI dependency → build →
# cargo tests (unit, integration, Tauri mock runtime) → fuzzing → official client libraries
# (Python ollama/openai, JavaScript ollama; against ollama-sim and a real llama-cpp-python
# engine) → monitoring (promtool, a real Prometheus) → the Debian package, installed,
# with the installed desktop app end to end under Xvfb, upgraded and purged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# One build of each profile, never rebuilt in place: incremental state would only
# take disk (it doubled the target directory).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Each stage line also says how much disk is left, so a full disk shows where it filled.
stage() { printf '\n==> %s (%s, %s free)\n' "$1" "$(date +%T)" "$(df -h --output=avail . | tail -1 | tr -d ' ')"; }

# Debian packages: Tauri's build dependencies, the headless display and WebDriver
# for the end-to-end test, Python's venv, and servers the tests start themselves
# (redis-server, and prometheus with promtool for the monitoring stage).
APT_PACKAGES=(
  build-essential pkg-config curl file libssl-dev
  libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev
  libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  xvfb xauth dbus webkit2gtk-driver
  python3-venv nodejs npm redis-server
  prometheus
)
stage "system packages"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  # nodejs/npm may come from elsewhere (the image ships Node 20): accept the command.
  case "$pkg" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=300 update -q
  $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi
[ "${1:-}" = "--deps-only" ] && exit 0

stage "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "structure: no import cycles, no file over 800 lines, 15 % doc lines in the core"
python3 tests/structure.py

stage "the core crate has no GUI dependency"
if cargo tree -p warmline -e normal --prefix none --locked | grep -Eq '^(tauri|wry|tao|gtk|webkit2gtk)[ -]'; then
  echo "crates/warmline depends on a GUI crate:" >&2
  cargo tree -p warmline -e normal -i tauri >&2 || true
  exit 1
fi
echo "ok: crates/warmline pulls in no tauri/wry/tao/gtk/webkit"

stage "build"
cargo build --workspace --bins --locked

stage "cargo tests"
cargo test --workspace --locked

stage "fuzzing (every target, 45 s each)"
./tests/fuzz.sh 45

stage "official client libraries (ollama-sim and a real engine)"
WARMLINE_BIN_DIR="$ROOT/target/debug" ./tests/clients/run.sh

stage "monitoring: promtool and a real Prometheus scraping Warmline"
./tests/monitoring/run.sh "$ROOT/target/debug"

stage "webview helpers (node --test)"
node --test tests/ui/

# The app end to end runs on the installed package: what a user runs is what is tested.
stage "Debian package: build, install, the installed app end to end (Xvfb + WebDriver), upgrade, purge"
./tests/package/run.sh "$ROOT/target/debug"

stage "all tests passed"
