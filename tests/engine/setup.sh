#!/usr/bin/env bash
# Sets up the real inference engine for the engine tests, and prints two lines
# for the caller to eval: WARMLINE_ENGINE_PYTHON (the venv's python, which runs
# `python -m llama_cpp.server`) and WARMLINE_ENGINE_MODEL (a tiny GGUF model
# made here, no download).
#
# llama-cpp-python is built from its sdist once and the wheel kept in
# ${XDG_CACHE_HOME:-~/.cache}/warmline/wheels: the first run on a machine takes
# about 6 minutes on 2 cores, later ones seconds.
#
#   eval "$(tests/engine/setup.sh)"
#
# WARMLINE_ENGINE_VENV overrides the venv (default <repo>/.venv-engine).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${WARMLINE_ENGINE_VENV:-$repo/.venv-engine}"
wheels="${XDG_CACHE_HOME:-$HOME/.cache}/warmline/wheels"
version=0.3.36

log() { echo "engine setup: $*" >&2; }

if ! "$venv/bin/python" -c '' 2>/dev/null; then
  python3 -m venv --clear "$venv" >&2
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
mkdir -p "$wheels"
if ! compgen -G "$wheels/llama_cpp_python-$version-*.whl" >/dev/null; then
  log "building llama-cpp-python $version (once per machine, about 6 minutes)"
  # Only the library: no examples, tests, tools or llama.cpp's own server.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_NATIVE=ON" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "${pip[@]}" wheel --no-deps -w "$wheels" "llama-cpp-python==$version" >&2
fi
"${pip[@]}" install --find-links "$wheels" -r "$here/requirements.txt" >&2
model_dir="$venv/models"
mkdir -p "$model_dir"
"$venv/bin/python" "$here/make_model.py" "$model_dir/tiny.gguf"
log "ready: $("$venv/bin/python" -c 'import llama_cpp; print("llama-cpp-python", llama_cpp.__version__)'), model $(du -h "$model_dir/tiny.gguf" | cut -f1)"
printf 'export WARMLINE_ENGINE_PYTHON=%q\n' "$venv/bin/python"
printf 'export WARMLINE_ENGINE_MODEL=%q\n' "$model_dir/tiny.gguf"
