#!/usr/bin/env python
"""Can a model read an answer out of memory brought to it, and what does answering inside a
function call cost it? For each model, nested-KV level 1 and doc-QA (10 distractors) cases are
put to the agent's prompt with the `[memory]` entry holding the answer's passage (first of
three), and decoded as plain text, as a `send_message` call and as a call of any agent
function (see memgpt_local/bench/reader.py). Greedy; the same cases as `memgpt-local bench`.

Prints one JSON object: model -> task -> format -> figures. Run inside the project's
environment:
    .venv/bin/python scripts/bench_reader.py --model smollm2-135m --model gemma3-270m --json
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from memgpt_local.bench.reader import read_cases
from memgpt_local.bench.tasks.suite import BenchConfig, task_cases
from memgpt_local.engine import Engine, EngineConfig

TASKS = {"nested-kv": {"levels": [1]}, "doc-qa": {"distractors": [10]}}


def main() -> None:
    """Run every model on both tasks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="Repeatable (default smollm2-135m).")
    parser.add_argument("--cases", type=int, default=10, help="Cases per task (default 10).")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    figures: dict = {"cases_per_task": args.cases, "n_ctx": args.n_ctx}
    with tempfile.TemporaryDirectory(prefix="memgpt-reader-") as home, \
            Engine(EngineConfig(Path(home))) as engine:
        for model in args.model or ["smollm2-135m"]:
            runtime = engine.runtime(model, args.n_ctx)
            started, figures[model] = time.perf_counter(), {}
            for task, groups in TASKS.items():
                config = BenchConfig(tasks=[task], models=[model], limit=args.cases, **groups)
                cases = task_cases(task, config)[0]
                with tqdm(total=len(cases), desc=f"{model} {task}", file=sys.stderr) as bar:
                    figures[model][task] = read_cases(runtime, task, cases, bar.update)
            figures[model]["wall_s"] = round(time.perf_counter() - started, 1)
            engine.runtimes.release(runtime)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
