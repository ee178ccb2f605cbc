#!/usr/bin/env bash
# Builds Warmline's Debian package with Tauri's bundler: the tray app
# (warmline-app), the headless CLI (warmline), a desktop entry, the icon in every
# size desktops use, man pages and shell completions generated from the CLI's
# own definitions, and the systemd units (installed, never enabled).
#
#   packaging/build-deb.sh [--release] [--no-build] [--out DIR]
#
# --release builds with the release profile (what you ship; a few minutes more),
# the default is the debug build the test command already has. --no-build uses the
# binaries in target/PROFILE as they are. The package goes to --out (default
# target/deb), and its path is the last line printed.
#
# Needs cargo, npm (the bundler is @tauri-apps/cli's prebuilt binary, fetched
# once into ${XDG_CACHE_HOME:-~/.cache}/warmline/tauri-cli), gzip and strip. Makes
# no network request besides that npm install; an AppImage, which needs tools
# fetched from GitHub, is not made.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PROFILE=debug
BUILD=1
OUT=$ROOT/target/deb
TAURI_CLI_VERSION=2.12.6
while [[ $# -gt 0 ]]; do
  case "$1" in
    --release) PROFILE=release; shift ;;
    --no-build) BUILD=; shift ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { echo "build-deb: $*" >&2; }

if [[ -n $BUILD ]]; then
  flag=(); [[ $PROFILE == release ]] && flag=(--release)
  say "cargo build ${flag[*]} -p warmline-app -p warmline-cli"
  cargo build --locked "${flag[@]}" -p warmline-app -p warmline-cli
fi
BIN=$ROOT/target/$PROFILE
for b in warmline warmline-app; do
  [[ -x $BIN/$b ]] || { say "missing $BIN/$b (build it, or drop --no-build)"; exit 2; }
done

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/warmline/tauri-cli/$TAURI_CLI_VERSION
TAURI=$CACHE/node_modules/.bin/tauri
if [[ ! -x $TAURI ]]; then
  say "installing @tauri-apps/cli@$TAURI_CLI_VERSION into $CACHE"
  mkdir -p "$CACHE"
  npm install --no-save --no-audit --no-fund --prefix "$CACHE" "@tauri-apps/cli@$TAURI_CLI_VERSION" >&2
fi

# A staging target directory: stripped copies of the binaries (a debug build
# carries hundreds of MB of symbols), the generated docs, and the bundle.
STAGE=$ROOT/target/deb-stage
rm -rf "$STAGE"
mkdir -p "$STAGE/$PROFILE" "$STAGE/files/man" "$STAGE/files/completions"
strip -o "$STAGE/$PROFILE/warmline-app" "$BIN/warmline-app"
strip -o "$STAGE/$PROFILE/warmline" "$BIN/warmline"
"$STAGE/$PROFILE/warmline" manpages "$STAGE/files/man" >&2
gzip -9n "$STAGE"/files/man/*.1
"$STAGE/$PROFILE/warmline" completions bash >"$STAGE/files/completions/warmline"
"$STAGE/$PROFILE/warmline" completions zsh >"$STAGE/files/completions/_warmline"
"$STAGE/$PROFILE/warmline" completions fish >"$STAGE/files/completions/warmline.fish"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
printf 'warmline (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- Warmline developers <warmline@localhost>  %s\n' \
  "$version" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo 'a source tree')" \
  "$(date -uR -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n >"$STAGE/files/changelog.gz"

# The bundle's configuration: tauri.conf.json plus this, merged (JSON merge patch).
python3 - "$ROOT" "$STAGE" "$PROFILE" >"$STAGE/bundle.json" <<'PY'
import json, os, sys
root, stage, profile = sys.argv[1:]
files = {
    "/usr/bin/warmline": f"{stage}/{profile}/warmline",
    "/usr/lib/systemd/system/warmline.service": f"{root}/packaging/systemd/system/warmline.service",
    "/usr/lib/systemd/user/warmline.service": f"{root}/packaging/systemd/user/warmline.service",
    "/usr/share/bash-completion/completions/warmline": f"{stage}/files/completions/warmline",
    "/usr/share/zsh/vendor-completions/_warmline": f"{stage}/files/completions/_warmline",
    "/usr/share/fish/vendor_completions.d/warmline.fish": f"{stage}/files/completions/warmline.fish",
    "/usr/share/doc/warmline/copyright": f"{root}/packaging/deb/copyright",
    "/usr/share/doc/warmline/changelog.gz": f"{stage}/files/changelog.gz",
}
for page in sorted(os.listdir(f"{stage}/files/man")):
    files[f"/usr/share/man/man1/{page}"] = f"{stage}/files/man/{page}"
icons = [f"{root}/icons/{n}" for n in
         ("32x32.png", "48x48.png", "64x64.png", "128x128.png", "icon.png", "512x512.png")]
json.dump({"bundle": {
    "active": True,
    "targets": ["deb"],
    "publisher": "Warmline developers <warmline@localhost>",
    "category": "DeveloperTool",
    "shortDescription": "Makes a local Ollama stack fast: tray app and headless gateway",
    "longDescription": "Warmline is a drop-in gateway in front of Ollama: pooled connections, a deterministic-aware cache, coalescing, failover, warm models and metrics. This package has the tray app (warmline-app) and the headless CLI (warmline serve, ps, pull, run), with systemd units that are installed but not enabled.",
    "icon": icons,
    "linux": {"deb": {
        # The tray's library: the bundler adds it only when it sees tauri's
        # tray feature, which it does not through a workspace dependency.
        "depends": ["adduser", "libayatana-appindicator3-1"],
        "section": "net",
        "priority": "optional",
        "desktopTemplate": f"{root}/packaging/deb/warmline.desktop.hbs",
        "postInstallScript": f"{root}/packaging/deb/postinst",
        "preRemoveScript": f"{root}/packaging/deb/prerm",
        "postRemoveScript": f"{root}/packaging/deb/postrm",
        "files": files,
    }},
}}, sys.stdout, indent=2)
PY

say "tauri bundle --bundles deb ($PROFILE)"
bundle_flag=(); [[ $PROFILE == debug ]] && bundle_flag=(--debug)
(cd src-tauri && CI=true CARGO_TARGET_DIR="$STAGE" "$TAURI" bundle "${bundle_flag[@]}" \
  --bundles deb --no-binary-patching --config "$STAGE/bundle.json" >&2)
mkdir -p "$OUT"
deb=$(ls "$STAGE/$PROFILE"/bundle/deb/*.deb)
cp "$deb" "$OUT/"
echo "$OUT/$(basename "$deb")"
