#!/usr/bin/env bash
# The Debian package as a user meets it: built with packaging/build-deb.sh,
# installed with apt, the app started from its desktop entry's Exec line and
# checked end to end (tests/e2e/run.sh: window, gateway, supervised daemon),
# installed again over itself as an upgrade (settings kept), then purged, leaving
# no process and no file outside the user's own data.
#
#   tests/package/run.sh [BIN_DIR]     (default target/debug; built if missing)
#
# Needs root (or sudo) for apt, and what the test command installs (Xvfb, dbus,
# WebKitWebDriver, npm). SKIP_E2E=1 replaces the WebDriver run with a plain
# launch of the installed app. Installs and purges the package `warmline` on
# this machine: it refuses to run if a `warmline` package is already installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${1:-$ROOT/target/debug}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
say() { printf 'package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }
apt() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -q "$@"; }
# The newest process running the installed binary NAME, by its command line (a
# GTK app may rename its main thread, so the process name is not reliable).
running() { pgrep -n -f -x "/usr/bin/$1( .*)?"; }

if dpkg-query -W -f='${Status}' warmline 2>/dev/null | grep -q "install ok installed"; then
  fail "a warmline package is already installed here; remove it first (apt-get purge warmline)"
fi
if [[ -x $BIN/warmline && -x $BIN/warmline-app ]]; then
  deb=$(packaging/build-deb.sh --no-build)
else
  deb=$(packaging/build-deb.sh)
fi
say "built $deb ($(du -h "$deb" | cut -f1))"

work=$(mktemp -d)
app_pid=""
xvfb_pid=""
cleanup() {
  local status=$?
  [[ -n $app_pid ]] && kill "$app_pid" 2>/dev/null || true
  [[ -n $xvfb_pid ]] && kill "$xvfb_pid" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' warmline 2>/dev/null | grep -q "installed"; then
    apt purge warmline >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# --- install ---------------------------------------------------------------------
say "apt-get install $deb"
apt install "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "install"; }
for path in /usr/bin/warmline /usr/bin/warmline-app /usr/share/applications/Warmline.desktop \
    /usr/share/man/man1/warmline.1.gz /usr/share/man/man1/warmline-serve.1.gz \
    /usr/share/bash-completion/completions/warmline /usr/share/zsh/vendor-completions/_warmline \
    /usr/share/fish/vendor_completions.d/warmline.fish \
    /usr/lib/systemd/system/warmline.service /usr/lib/systemd/user/warmline.service; do
  [[ -e $path ]] || fail "$path is not installed"
done
for size in 32 48 64 128 256 512; do
  [[ -e /usr/share/icons/hicolor/${size}x${size}/apps/warmline-app.png ]] || fail "no ${size}x${size} icon"
done
getent passwd warmline >/dev/null || fail "the warmline system user was not created"
# Installing enables and starts nothing.
[[ ! -e /etc/systemd/system/multi-user.target.wants/warmline.service ]] || fail "the unit was enabled"
running warmline >/dev/null && fail "a warmline process runs after the install"
running warmline-app >/dev/null && fail "the app runs after the install"
[[ "$(warmline --version)" == "warmline $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" ]] ||
  fail "warmline --version: $(warmline --version)"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate /usr/share/applications/Warmline.desktop || fail "the desktop entry is invalid"
fi

# What a launcher runs: the Exec line of the desktop entry, found on PATH.
exec_line=$(sed -n 's/^Exec=//p' /usr/share/applications/Warmline.desktop | head -1)
APP=$(command -v "${exec_line%% *}") || fail "Exec=$exec_line is not on PATH"
say "desktop entry runs $APP"

# --- the installed app, end to end ------------------------------------------------
if [[ -z ${SKIP_E2E:-} ]]; then
  say "tests/e2e/run.sh on the installed app"
  WARMLINE_E2E_SIM=$BIN/ollama-sim tests/e2e/run.sh --app "$APP"
fi

# --- settings survive an upgrade --------------------------------------------------
home=$work/home
mkdir -p "$home/.config/warmline"
# What the window writes when the user changes a setting.
printf '{"version":1,"settings":{"cache":{"max_size":"64MiB"},"daemon":{"supervise":false}}}\n' \
  >"$home/.config/warmline/settings.json"
chmod 600 "$home/.config/warmline/settings.json"
# One virtual display for both launches (starting a second Xvfb right after the
# first has gone can meet its leftovers); the first free display number from 150.
display=150
while [[ -e /tmp/.X$display-lock || -e /tmp/.X11-unix/X$display ]]; do display=$((display + 1)); done
Xvfb ":$display" -screen 0 1280x800x24 -nolisten tcp -noreset >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 100); do [[ -e /tmp/.X11-unix/X$display ]] && break; sleep 0.1; done
launch() { # starts the installed app as a user would, on the default port
  # Emptied here, not by the background job's redirection, which may come late.
  : >"$work/app.out"
  : >"$work/app.err"
  env -i HOME="$home" PATH=/usr/bin:/bin USER=tester LANG=C.UTF-8 DISPLAY=":$display" \
    WARMLINE_UPSTREAMS="http://127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')" \
    dbus-run-session -- "$APP" >>"$work/app.out" 2>>"$work/app.err" &
  wrapper_pid=$!
  for _ in $(seq 300); do
    if grep -q "warmline listening on http://127.0.0.1:11435" "$work/app.out" 2>/dev/null; then
      app_pid=$(running warmline-app) || { cat "$work/app.out" "$work/app.err" >&2; fail "no warmline-app process"; }
      return 0
    fi
    sleep 0.1
  done
  cat "$work/app.err" >&2; fail "the installed app did not start on 127.0.0.1:11435"
}
settings() { # the max_size in force, read through the control plane
  curl -fsS -H "Authorization: Bearer $(cat "$home/.local/state/warmline/admin-token")" \
    http://127.0.0.1:11435/warmline/settings |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["cache"]["max_size"])'
}
quit() { # SIGTERM, as a session logout sends it; the session bus ends with the app
  kill -TERM "$app_pid"
  for _ in $(seq 200); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$wrapper_pid" 2>/dev/null || true
  app_pid=""
  for _ in $(seq 100); do running warmline-app >/dev/null || return 0; sleep 0.1; done
  fail "warmline-app still runs after it was told to quit"
}
launch
[[ $(settings) == 64MiB ]] || fail "the stored setting is not in force: $(settings)"
quit
before=$(sha256sum "$home/.config/warmline/settings.json")
say "apt-get install --reinstall (an upgrade over itself)"
apt install --reinstall "$deb" >"$work/upgrade.log" 2>&1 || { cat "$work/upgrade.log"; fail "upgrade"; }
[[ $(sha256sum "$home/.config/warmline/settings.json") == "$before" ]] || fail "the upgrade changed the settings file"
launch
[[ $(settings) == 64MiB ]] || fail "the setting did not survive the upgrade"
quit
say "the upgrade kept the settings (cache.max_size 64MiB before and after)"

# --- purge ---------------------------------------------------------------------
listed=$(dpkg -L warmline | grep -v '^/usr$\|^/usr/share$\|^/usr/lib$\|^/usr/bin$\|^/\.$' || true)
say "apt-get purge warmline"
apt purge warmline >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "purge"; }
left=()
while read -r path; do
  [[ -f $path ]] && left+=("$path")
done <<<"$listed"
((${#left[@]} == 0)) || fail "files left after the purge: ${left[*]}"
for path in /var/lib/warmline /etc/warmline; do
  [[ ! -e $path ]] || fail "$path left after the purge"
done
getent passwd warmline >/dev/null && fail "the warmline user is left after the purge"
running warmline >/dev/null && fail "a warmline process is left"
running warmline-app >/dev/null && fail "a warmline-app process is left"
[[ -f $home/.config/warmline/settings.json ]] || fail "the purge removed the user's own settings"
say "ok: installed, launched from its desktop entry, upgraded with settings kept, purged clean"
