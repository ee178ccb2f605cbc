# Shared by the benchmark scripts in this folder: sourced, not run.
#
#   . "$(dirname "$0")/common.sh"
#
# Sets ROOT (the repository) and BIN (release binaries, built unless NO_BUILD
# is set), and gives: `spawned PID` to have a background process killed when the
# script exits, `wait_line FILE PATTERN` (the first match of PATTERN in FILE,
# within 20 s), `free_port`, `sim_url LOG` (the URL an ollama-sim prints), and
# `admin_curl ARGS...` (curl with the admin credential, for Warmline's control
# routes; ADMIN_TOKEN_FILE is where `warmline serve` keeps it).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=$ROOT/target/release
[ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --locked -q -p warmline-cli -p ollama-sim)

pids=()
spawned() { pids+=("$1"); }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_line() { # FILE PATTERN → first match, within 20 s
  for _ in $(seq 200); do
    if line=$(grep -m1 -o "$2" "$1" 2>/dev/null); then echo "$line"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

wait_until() { # SECONDS WHAT COMMAND... → polls COMMAND every 0.1 s until it succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

sim_url() { # LOG → http://HOST:PORT of the ollama-sim writing LOG
  echo "http://$(wait_line "$1" 'Listening on [0-9.:]*' | sed 's/Listening on //')"
}

# Control routes (/warmline/settings, daemon, models, cache, logs, requests,
# reload) need the admin credential from loopback too: the token `warmline serve`
# writes to its state directory on first start. Read at each call (the file
# appears when the gateway starts) and passed on stdin, not in curl's arguments.
ADMIN_TOKEN_FILE=${XDG_STATE_HOME:-$HOME/.local/state}/warmline/admin-token
admin_curl() { # ARGS... → curl ARGS... with Authorization: Bearer <admin token>
  local token
  token=$(tr -d '[:space:]' <"$ADMIN_TOKEN_FILE") || return
  printf 'Authorization: Bearer %s\n' "$token" | curl -H @- "$@"
}

# LiteLLM with its proxy extras, pinned, in a venv kept under ~/.cache (about 60 s
# and 750 MB the first time), and redis-server for its shared cache: what the
# side-by-side benchmarks compare against. Sets LITELLM (the venv's litellm).
LITELLM_VERSION=1.108.7
litellm_setup() {
  local venv=${LITELLM_VENV:-$HOME/.cache/warmline-bench/litellm-$LITELLM_VERSION}
  command -v redis-server >/dev/null || {
    echo "installing redis-server" >&2
    apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends redis-server >&2
  }
  if ! "$venv/bin/litellm" --version >/dev/null 2>&1; then
    echo "installing LiteLLM $LITELLM_VERSION into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION" >&2
  fi
  LITELLM=$venv/bin/litellm
}
