#!/usr/bin/env python
"""What tool rules cost: the constraint index of each distinct set of allowed functions that
the default rules of a new agent can leave (all; all but one exhausted search or insert; only
send_message at the last step), built cold (an empty cache), read from the disk cache (a new
process) and from memory (a later step), on each model.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_rules.py --json
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from memgpt_local.agent.functions import FUNCTIONS
from memgpt_local.agent.loop import call_schema
from memgpt_local.agent.settings import NEW_AGENT_SETTINGS
from memgpt_local.llm import decoding
from memgpt_local.llm.kvcache import SnapshotStore
from memgpt_local.llm.models import Registry
from memgpt_local.llm.runtime import ModelRuntime

LABELS = ["persona", "human"]


def allowed_sets() -> dict[str, tuple[str, ...]]:
    """The sets the default rules can leave, by name."""
    names = tuple(FUNCTIONS)
    sets = {"all": names, "send_message only (last step)": ("send_message",)}
    for rule in NEW_AGENT_SETTINGS["tool_rules"]:
        if rule["type"] == "max_count_per_step":
            sets[f"all but {rule['tool_name']}"] = tuple(n for n in names
                                                         if n != rule["tool_name"])
    return sets


def timed(runtime: ModelRuntime, functions: tuple[str, ...]) -> tuple[str, float]:
    """Where the index came from and the seconds it took."""
    start = time.perf_counter()
    constraint = runtime.constraint(call_schema(LABELS, functions))
    return constraint.build.source, round(time.perf_counter() - start, 3)


def measure(alias: str) -> dict:
    """Cold, disk and memory costs of every set on one model."""
    with tempfile.TemporaryDirectory() as cache:
        runtime = ModelRuntime(Registry.load().get(alias), SnapshotStore(Path(cache) / "kv"),
                               Path(cache) / "grammar", n_ctx=2048)
        figures = {}
        for name, functions in allowed_sets().items():
            decoding.clear_memory_cache()
            cold = timed(runtime, functions)
            decoding.clear_memory_cache()
            disk = timed(runtime, functions)
            memory = timed(runtime, functions)
            figures[name] = {"functions": len(functions), "cold": cold, "disk": disk,
                             "memory": memory}
        runtime.close()
    return figures


def main() -> None:
    """Measure each model and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="Model alias (repeatable; default: "
                        "smollm2-135m and gemma3-270m).")
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    models = args.model or ["smollm2-135m", "gemma3-270m"]
    print(json.dumps({alias: measure(alias) for alias in models}, indent=2))


if __name__ == "__main__":
    main()
