#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp source that ships inside the installed
# llama-cpp-python's source package (the same llama.cpp as the in-process runtime), once:
# the binary is cached under ~/.cache/memgpt-local/llama-server/VERSION/ and its path is the
# last line printed. CMAKE_ARGS is honoured as for llama-cpp-python (e.g. -DGGML_CUDA=on); by
# default, the options setup.sh builds llama-cpp-python with (scripts/llama-build-options.sh).
# About 10 minutes on 2 cores the first time; instant afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

version="$(.venv/bin/python -c 'import llama_cpp; print(llama_cpp.__version__)')"
source scripts/llama-build-options.sh
flags="${CMAKE_ARGS:-$(llama_cmake_args)}"
tag="$version-$(echo "$flags" | sha256sum | cut -c1-8)"
home="${MEMGPT_LOCAL_BUILD_CACHE:-$HOME/.cache/memgpt-local}/llama-server/$tag"
binary="$home/bin/llama-server"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "memgpt-local: fetching the source of llama-cpp-python $version" >&2
.venv/bin/python -m pip download --disable-pip-version-check --quiet --no-binary llama-cpp-python \
  --no-deps --dest "$work" "llama-cpp-python==$version"
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
source_dir="$work/llama_cpp_python-$version/vendor/llama.cpp"

if ! command -v cmake >/dev/null; then  # the registry's cmake and ninja, into the venv
  .venv/bin/python -m pip install --disable-pip-version-check --quiet cmake ninja >&2
  export PATH="$PWD/.venv/bin:$PATH"
fi
echo "memgpt-local: building llama-server (first time: about 10 minutes)" >&2
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
# shellcheck disable=SC2086  # CMAKE_ARGS holds several flags
cmake -S "$source_dir" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF $flags >&2
cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" >&2
mkdir -p "$home/bin"
install -m 755 "$work/build/bin/llama-server" "$binary.tmp"
mv "$binary.tmp" "$binary"
echo "$binary"
