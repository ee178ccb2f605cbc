#!/usr/bin/env bash
# End-to-end test of the Warmline desktop app under Xvfb, in front of ollama-sim
# linked as `ollama` (the app supervises it).
#
#   tests/e2e/run.sh [--venv DIR] [--app BINARY] [--release] [--timeout SECONDS] [PATH...]
#
# A bare PATH is the app if it is an executable file, else the venv directory.
# Builds the app (`cargo build -p warmline-app`) unless a binary is given,
# installs what it needs if missing (tauri-driver 2.1.0 with cargo, selenium in a
# Python venv: --venv or $WARMLINE_E2E_VENV, default tests/e2e/.venv), then runs
# smoke.py inside `xvfb-run -a` + `dbus-run-session` with a throwaway HOME and
# XDG directories (start at login writes ~/.config/autostart) and
# WARMLINE_LISTEN on a free loopback port (smoke.py says what it checks). Screenshots go to tests/e2e/screenshots/ (gitignored).
#
# System packages (installed by the top-level test command, only checked here):
#   apt-get install -y xvfb xauth dbus webkit2gtk-driver
#
# Exit status: 0 pass, 1 failed check, 2 missing prerequisite or bad usage.
# Every process it starts is ended before it exits, on failure and on Ctrl-C too.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

VENV="${WARMLINE_E2E_VENV:-$HERE/.venv}"
APP="${WARMLINE_E2E_APP:-}"
PROFILE="debug"
TIMEOUT=240
TAURI_DRIVER_VERSION="2.1.0"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --app) APP="$2"; shift 2 ;;
    --release) PROFILE="release"; shift ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "e2e: unknown option: $1 (see --help)" >&2; exit 2 ;;
    # A bare path: an executable is the app, a directory the venv.
    *)
      if [[ -f "$1" && -x "$1" ]]; then APP="$1"
      elif [[ "$1" == *warmline-app ]]; then
        echo "e2e: app binary not found: $1 (build it, or pass no path to build it here)" >&2; exit 2
      elif [[ -d "$1" || ! -e "$1" ]]; then VENV="$1"
      else echo "e2e: $1 is neither an executable nor a directory" >&2; exit 2
      fi
      shift ;;
  esac
done

say() { echo "e2e: $*"; }
die() { echo "e2e: $1" >&2; exit "${2:-2}"; }

# --- system tools -------------------------------------------------------------
missing=()
for tool in xvfb-run xauth Xvfb dbus-run-session WebKitWebDriver python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  die "missing: ${missing[*]}; install with: apt-get install -y xvfb xauth dbus webkit2gtk-driver"
fi

# --- tauri-driver ----------------------------------------------------------------
TAURI_DRIVER="$(command -v tauri-driver || true)"
if [[ -z "$TAURI_DRIVER" && -x "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver" ]]; then
  TAURI_DRIVER="${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"
fi
if [[ -z "$TAURI_DRIVER" ]]; then
  say "installing tauri-driver $TAURI_DRIVER_VERSION (cargo install)"
  cargo install tauri-driver --version "$TAURI_DRIVER_VERSION" --locked
  TAURI_DRIVER="${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver"
fi
[[ -x "$TAURI_DRIVER" ]] || die "tauri-driver not found after install"

# --- Python venv with selenium -------------------------------------------------
if ! "$VENV/bin/python" -c 'import selenium' >/dev/null 2>&1; then
  say "creating a venv with selenium in $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'selenium>=4.20,<5'
fi

# --- the app -------------------------------------------------------------------
if [[ -z "$APP" ]]; then
  build=(cargo build -p warmline-app)
  [[ "$PROFILE" == release ]] && build+=(--release)
  say "building: ${build[*]}"
  (cd "$ROOT" && "${build[@]}")
  target_dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  APP="$target_dir/$PROFILE/warmline-app"
fi
[[ -x "$APP" ]] || die "app binary not found or not executable: $APP"
# The Ollama simulator the app supervises (linked as `ollama` by smoke.py).
SIM_BIN="${WARMLINE_E2E_SIM:-$(dirname "$APP")/ollama-sim}"
if [[ ! -x "$SIM_BIN" ]]; then
  say "building ollama-sim"
  (cd "$ROOT" && cargo build -p ollama-sim)
fi
[[ -x "$SIM_BIN" ]] || die "ollama-sim not found next to the app: $SIM_BIN"

# --- a private run: temp dirs, free ports, a marker for cleanup ------------------
RUN_DIR="$(mktemp -d -t warmline-e2e.XXXXXX)"
mkdir -p "$RUN_DIR/data" "$RUN_DIR/config" "$RUN_DIR/cache" "$RUN_DIR/home"

cleanup() {
  local status=$?
  # Anything still carrying this run's marker was started by this run (the
  # driver, WebKitWebDriver, the app, WebKit helpers): end exactly those.
  local pids=()
  for environ in /proc/[0-9]*/environ; do
    local pid="${environ#/proc/}"; pid="${pid%/environ}"
    [[ "$pid" == "$$" ]] && continue
    if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qxF "WARMLINE_E2E_RUN=$RUN_DIR"; then
      pids+=("$pid")
    fi
  done
  if [[ ${#pids[@]} -gt 0 ]]; then
    say "ending leftover processes: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  rm -rf "$RUN_DIR"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

APP_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
SHOTS="$HERE/screenshots"
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png

say "app=$APP listen=127.0.0.1:$APP_PORT timeout=${TIMEOUT}s"
set +e
env \
  WARMLINE_E2E_RUN="$RUN_DIR" \
  XDG_DATA_HOME="$RUN_DIR/data" \
  XDG_CONFIG_HOME="$RUN_DIR/config" \
  XDG_CACHE_HOME="$RUN_DIR/cache" \
  HOME="$RUN_DIR/home" \
  timeout --kill-after=10 "$TIMEOUT" \
  xvfb-run -a -s "-screen 0 1280x800x24" \
  dbus-run-session -- \
  "$VENV/bin/python" "$HERE/smoke.py" \
    --app "$APP" \
    --port "$APP_PORT" \
    --tauri-driver "$TAURI_DRIVER" \
    --log-dir "$RUN_DIR" \
    --screenshots "$SHOTS" \
    --ollama-sim "$SIM_BIN"
status=$?
set -e

if [[ $status -eq 124 || $status -eq 137 ]]; then
  say "FAIL: the run did not finish within ${TIMEOUT}s"
  status=1
elif [[ $status -ne 0 ]]; then
  say "FAIL (exit $status)"
else
  say "PASS; screenshots in ${SHOTS#"$ROOT"/}/"
fi
exit "$status"
