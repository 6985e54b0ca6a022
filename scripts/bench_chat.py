#!/usr/bin/env python
"""The chat as a person meets it: the conversation of memgpt_local/bench/conversation.toml
(facts stated early, then small talk, then questions about the facts) sent to a new agent as
`memgpt-local chat` does, greedy, on a fixed clock, once per variant: `memgpt` (the defaults
under the paper's architecture), `memgpt-bare` (no tool rules, no memory brought to the turn)
and `reply` (the defaults under the reply architecture).

Prints one JSON object with a member per variant. Run inside the project's environment:
    .venv/bin/python scripts/bench_chat.py --json
"""

import argparse
import json
import tempfile
from pathlib import Path

from memgpt_local.bench.chat import CLOCK, run_chat
from memgpt_local.bench.tasks.variants import AGENT_VARIANTS
from memgpt_local.engine import Engine, EngineConfig


def main() -> None:
    """Run every variant and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=2048,
                        help="A small window, so the early facts leave it (default 2048).")
    parser.add_argument("--variants", default=",".join(AGENT_VARIANTS))
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    figures: dict = {"model": args.model, "n_ctx": args.n_ctx}
    for variant in args.variants.split(","):
        with tempfile.TemporaryDirectory(prefix="memgpt-chat-bench-") as home, \
                Engine(EngineConfig(Path(home)), clock=lambda: CLOCK) as engine:
            runtime = engine.runtime(args.model, args.n_ctx)
            report = run_chat(engine, args.model, args.n_ctx, AGENT_VARIANTS[variant],
                              runtime.count_tokens)
            engine.runtimes.release(runtime)
        figures[variant] = report.as_dict()
    print(json.dumps(figures, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
