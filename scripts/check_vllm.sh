#!/usr/bin/env bash
# Check the remote runtime against a real vLLM on a GPU machine:
#   scripts/check_vllm.sh [MODEL] [PORT]
# MODEL: what `vllm serve` loads (default HuggingFaceTB/SmolLM2-135M-Instruct, the model the
# packaged SmolLM2 GGUF was made from: the same vocabulary, so our token ids mean the same
# there); a local folder works offline. Needs `vllm` (pip install vllm) and a GPU. Starts vLLM
# on loopback, runs tests/test_vllm_real.py against it, stops it; its log is in vllm.log.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-HuggingFaceTB/SmolLM2-135M-Instruct}"
port="${2:-8011}"
python="${PYTHON:-.venv/bin/python}"
command -v vllm >/dev/null || { echo "vllm is not installed: pip install vllm (needs a GPU)" >&2; exit 2; }
vllm serve "$model" --host 127.0.0.1 --port "$port" --max-model-len 4096 \
  --enable-prefix-caching --enable-prompt-tokens-details --gpu-memory-utilization 0.3 \
  >vllm.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break
  kill -0 $server 2>/dev/null || { echo "vLLM exited; see vllm.log" >&2; tail -20 vllm.log >&2; exit 1; }
  sleep 1
done
MEMGPT_LOCAL_VLLM_URL="http://127.0.0.1:$port" MEMGPT_LOCAL_VLLM_MODEL="$model" \
  "$python" -m pytest -q tests/test_vllm_real.py -p no:cacheprovider "${@:3}"
