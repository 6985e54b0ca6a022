#!/usr/bin/env python
"""The memory estimate (llm/fit.py, from the GGUF header) against the buffers llama.cpp
reports loading the model: each packaged model at 2k and 8k, Gemma at 32k too. Prints JSON.

    .venv/bin/python scripts/bench_fit.py [--model ALIAS:N_CTX ...] [--gpu-layers N]
"""

import argparse
import json

from memgpt_local.bench.fit_check import compare
from memgpt_local.llm.models import Registry

DEFAULT = ["smollm2-135m:2048", "smollm2-135m:8192", "gemma3-270m:2048", "gemma3-270m:8192",
           "gemma3-270m:32768"]


def main() -> None:
    """Compare each model and window; the largest gap is printed last."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="ALIAS:N_CTX (repeatable).")
    parser.add_argument("--gpu-layers", type=int, default=0)
    args = parser.parse_args()
    registry, rows = Registry.load(), []
    for item in args.model or DEFAULT:
        alias, _, n_ctx = item.partition(":")
        rows.append({"alias": alias, **compare(registry.get(alias).locate(), int(n_ctx),
                                               args.gpu_layers)})
    worst = max(abs(1 - r) for row in rows for r in row["ratio"].values() if r)
    print(json.dumps({"runs": rows, "largest_gap": round(worst, 3)}, indent=2))


if __name__ == "__main__":
    main()
