#!/usr/bin/env python
"""The chat as a person meets it: the conversation of memgpt_local/bench/conversation.toml
(facts stated early, then small talk, then questions about the facts) sent to a new agent as
`memgpt-local chat` does, greedy, on a fixed clock, once per variant: `memgpt` (the defaults
under the paper's architecture), `memgpt-bare` (no tool rules, no memory brought to the turn)
and `reply` (the defaults under the reply architecture).

Prints one JSON object with a member per variant (per model, with several --model: the
packaged model beside its adapter, say). Run inside the project's environment:
    .venv/bin/python scripts/bench_chat.py --json
    .venv/bin/python scripts/bench_chat.py --json --model smollm2-135m \
        --model smollm2-135m-memory --variants reply
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
    parser.add_argument("--model", action="append", dest="models",
                        help="A registry alias; repeat it to run models side by side "
                             "(default: smollm2-135m).")
    parser.add_argument("--n-ctx", type=int, default=2048,
                        help="A small window, so the early facts leave it (default 2048).")
    parser.add_argument("--variants", default=",".join(AGENT_VARIANTS))
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    models = args.models or ["smollm2-135m"]
    per_model = {model: model_figures(model, args.n_ctx, args.variants.split(","))
                 for model in models}
    figures: dict = {"n_ctx": args.n_ctx}
    if len(models) == 1:
        figures |= {"model": models[0], **per_model[models[0]]}
    else:
        figures["models"] = per_model
    print(json.dumps(figures, indent=2, ensure_ascii=False))


def model_figures(model: str, n_ctx: int, variants: list[str]) -> dict:
    """The conversation's figures for one model, a member per variant."""
    figures = {}
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="memgpt-chat-bench-") as home, \
                Engine(EngineConfig(Path(home)), clock=lambda: CLOCK) as engine:
            runtime = engine.runtime(model, n_ctx)
            report = run_chat(engine, model, n_ctx, AGENT_VARIANTS[variant],
                              runtime.count_tokens)
            engine.runtimes.release(runtime)
        figures[variant] = report.as_dict()
    return figures


if __name__ == "__main__":
    main()
