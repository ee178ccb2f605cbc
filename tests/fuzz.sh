#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) and fails on any
# crash, panic or failed assertion. The test command runs it; a longer run for
# the record: `./tests/fuzz.sh 600`; only some targets: `./tests/fuzz.sh 60 "config cache_key"`.
#
# Builds with cargo-fuzz (installed here if missing) on the nightly toolchain,
# or on stable with RUSTC_BOOTSTRAP=1 where no nightly is installed; without a
# sanitizer (the core has no unsafe code: `unsafe_code` is denied) but with debug
# assertions and overflow checks, so an arithmetic overflow is a crash. Each
# target starts from its seeds in fuzz/seeds/ and writes what it finds to a
# temporary corpus, never into the repository. Prints one line per target:
# executions, seconds, crashes.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
EACH="${1:-60}"
ONLY="${2:-}"

if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz() { cargo +nightly fuzz "$@"; }
else
  fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; }
fi

FLAGS=(--sanitizer none --debug-assertions)
fuzz build "${FLAGS[@]}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0
for target in ${ONLY:-$(fuzz list)}; do
  mkdir -p "$work/$target" "$work/artifacts/$target"
  log="$work/$target.log"
  if fuzz run "${FLAGS[@]}" "$target" "$work/$target" "seeds/$target" -- \
      -max_total_time="$EACH" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="$work/artifacts/$target/" >"$log" 2>&1; then
    runs="$(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | grep -Eo '[0-9]+' | head -1 || true)"
    echo "fuzz $target: ${runs:-?} executions in ${EACH}s, crashes: 0"
  else
    failed=1
    echo "fuzz $target: FAILED" >&2
    grep -m1 -A8 'panicked at' "$log" >&2 || tail -40 "$log" >&2
    for crash in "$work/artifacts/$target"/*; do
      [ -e "$crash" ] || continue
      echo "crashing input ($crash), base64:" >&2
      base64 -w0 "$crash" >&2; echo >&2
    done
  fi
done
exit "$failed"
