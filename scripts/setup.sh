#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch and every
# dependency (packaged models included). Fast when nothing changed.
# --tests: also Debian's Chromium, for the web page's browser tests (as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

install_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  local as_root=()
  if [ "$(id -u)" != 0 ]; then
    if ! sudo -n true 2>/dev/null; then
      echo "memgpt-local: the browser tests need Chromium: sudo apt-get install chromium" >&2
      return 0
    fi
    as_root=(sudo)
  fi
  echo "memgpt-local: installing Chromium (Debian's) for the browser tests" >&2
  local install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
  "${install[@]}" >/dev/null || { "${as_root[@]}" apt-get update -qq && "${install[@]}" >/dev/null; }
}

# llama.cpp's build options for this machine (llama_cmake_args).
source scripts/llama-build-options.sh

if [ "${1:-}" = "--tests" ]; then
  install_chromium
fi

VENV=.venv
STAMP="$VENV/.memgpt-local-installed"
want="$(cat pyproject.toml scripts/setup.sh scripts/llama-build-options.sh | sha256sum | cut -d' ' -f1)"
LLAMA_VERSION="$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)"
# From llama-cpp-python's source package, kept in $LLAMA_SOURCES: llama.cpp's chat templates
# (models/templates, read in place by the tests of native tool-call formats) and its LoRA
# converter with what it imports (convert_lora_to_gguf.py, conversion/, gguf-py/), which
# scripts/train_adapter.py runs.
LLAMA_SOURCES="$VENV/share/llama-cpp-python-$LLAMA_VERSION"
KEPT=(models/templates convert_lora_to_gguf.py conversion gguf-py)
keep_llama_sources() {
  local missing=() part
  for part in "${KEPT[@]}"; do [ -e "$LLAMA_SOURCES/$part" ] || missing+=("$part"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local work; work="$(mktemp -d)"
  local root="llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp"
  echo "memgpt-local: fetching llama.cpp's templates and LoRA converter (llama-cpp-python" \
    "$LLAMA_VERSION)" >&2
  "$VENV/bin/python" -m pip download --disable-pip-version-check --quiet --no-binary \
    llama-cpp-python --no-deps --dest "$work" "llama-cpp-python==$LLAMA_VERSION"
  tar -xzf "$work/llama_cpp_python-$LLAMA_VERSION.tar.gz" -C "$work" \
    "${missing[@]/#/$root/}"
  for part in "${missing[@]}"; do
    mkdir -p "$(dirname "$LLAMA_SOURCES/$part")"
    mv "$work/$root/$part" "$LLAMA_SOURCES/$part"
  done
  rm -rf "$work"
}

# The tests' extras: the adapter pipeline's packages (peft, accelerate, gguf, faker: the tune
# extra, not part of the chat install) and llama.cpp's sources above.
for_tests() {
  "$VENV/bin/python" -c "import peft, accelerate, gguf, faker" 2>/dev/null ||
    "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[tune]"
  keep_llama_sources
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  if [ "${1:-}" = "--tests" ]; then for_tests; fi
  exit 0
fi

PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "memgpt-local: creating virtual environment in $VENV" >&2
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# torch: the CPU build only. A local wheel directory (PIP_FIND_LINKS) is used when present,
# otherwise PyTorch's CPU index. Never the default PyPI wheel, which is a CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "memgpt-local: installing torch 2.13.0 (CPU build)" >&2
  if ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1; then
    "${PIP[@]}" --find-links "${PIP_FIND_LINKS:-/opt/wheels}" "torch==2.13.0"
  else
    "${PIP[@]}" --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
  fi
fi

# llama-cpp-python compiles from source (about 3 minutes on 2 cores), once per set of build
# options: the wheel is kept in ~/.cache/memgpt-local/wheels/<options>/ (pip's own wheel cache
# would hand back a wheel built with other options).
export CMAKE_ARGS="${CMAKE_ARGS:-$(llama_cmake_args)}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/memgpt-local/wheels/$(echo "$LLAMA_VERSION $CMAKE_ARGS" | sha256sum | cut -c1-16)"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "memgpt-local: compiling llama-cpp-python $LLAMA_VERSION ($CMAKE_ARGS): several minutes" >&2
  "$VENV/bin/python" -m pip wheel --disable-pip-version-check --no-deps --no-cache-dir \
    --wheel-dir "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
if [ "$(cat "$VENV/.llama-cmake-args" 2>/dev/null)" != "$CMAKE_ARGS" ]; then
  "${PIP[@]}" --force-reinstall --no-deps "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl
  echo "$CMAKE_ARGS" > "$VENV/.llama-cmake-args"
fi
echo "memgpt-local: installing dependencies (first time: several minutes)" >&2
"${PIP[@]}" --find-links "$WHEELS" -e ".[test]"
if [ "${1:-}" = "--tests" ]; then for_tests; fi
echo "$want" > "$STAMP"
