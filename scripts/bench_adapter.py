#!/usr/bin/env python
"""What an adapter costs in generation speed: the same prompt completed greedily in process by
a model with and without its LoRA adapter, alternating, several rounds; tokens per second of
each and their ratio.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_adapter.py --model smollm2-135m-memory --json
"""

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from memgpt_local.engine import EngineConfig
from memgpt_local.llm.base import SamplingSettings
from memgpt_local.llm.kvcache import SnapshotStore
from memgpt_local.llm.models import Registry
from memgpt_local.llm.runtime import ModelRuntime

PROMPT = [{"role": "system", "content": "You are a friendly companion with a long memory."},
          {"role": "user", "content": "Tell me a short story about a lighthouse keeper."}]


def tokens_per_s(runtime: ModelRuntime, tokens: int) -> float:
    """Generation speed of one greedy completion of the prompt (the prompt's evaluation left
    out: it is the same for both)."""
    prompt = runtime.chat_tokens(PROMPT).tokens
    sampling = SamplingSettings(stop_repeats=0, stop_echo=0)
    generation = runtime.generate(prompt, max_tokens=tokens, sampling=sampling).finish()
    stats = generation.stats
    return stats.generated_tokens / max(1e-9, stats.total_s - stats.ttft_s)


def main() -> None:
    """Alternate the two runtimes and print their speeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-memory",
                        help="A registry entry that names an adapter.")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    config = EngineConfig.from_environment()  # the user's models.toml, if any
    adapted = Registry.load(config.home / "models.toml", config.home / "models").get(args.model)
    with tempfile.TemporaryDirectory() as home:
        specs = {"adapter": adapted, "base": replace(adapted, adapter=None)}
        runtimes = {name: ModelRuntime(spec, SnapshotStore(Path(home) / name),
                                       Path(home) / "grammar", n_ctx=2048)
                    for name, spec in specs.items()}
        speeds: dict[str, list[float]] = {name: [] for name in runtimes}
        for _ in range(args.rounds):
            for name, runtime in runtimes.items():
                speeds[name].append(tokens_per_s(runtime, args.tokens))
        for runtime in runtimes.values():
            runtime.close()
    medians = {name: round(statistics.median(values), 1) for name, values in speeds.items()}
    print(json.dumps({"model": args.model, "adapter": adapted.adapter, "tokens": args.tokens,
                      "rounds": args.rounds, "tokens_per_s": medians,
                      "adapter_over_base": round(medians["adapter"] / medians["base"], 3)},
                     indent=2))


if __name__ == "__main__":
    main()
