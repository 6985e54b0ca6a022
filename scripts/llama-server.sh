#!/usr/bin/env bash
# Serve a registry model with llama.cpp's llama-server on loopback, in the foreground:
#   scripts/llama-server.sh ALIAS --port PORT [llama-server flags...]
# e.g. scripts/llama-server.sh smollm2-135m --port 8080 --parallel 4 --ctx-size 8192
# The server is built first if needed (scripts/build-llama-server.sh). The entry's LoRA adapter,
# if it names one, is passed as --lora-scaled. A models.toml entry with
# server = "http://127.0.0.1:PORT" then runs its agents on it (see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: scripts/llama-server.sh ALIAS --port PORT [llama-server flags...]" >&2
  exit 2
fi
alias="$1"
shift
arguments="$(.venv/bin/memgpt-local models path --llama-server "$alias")"
readarray -t model_arguments <<<"$arguments"
binary="$(scripts/build-llama-server.sh | tail -n 1)"
exec "$binary" "${model_arguments[@]}" --host 127.0.0.1 "$@"
