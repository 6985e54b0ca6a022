#!/usr/bin/env python
"""The chat as a person meets it: the conversation of memgpt_local/bench/conversation.toml
(facts stated early, then small talk, then questions about the facts) sent to a new agent as
`memgpt-local chat` does, greedy, on a fixed clock, once per variant: `memgpt` (the defaults
under the paper's architecture), `memgpt-bare` (no tool rules, no memory brought to the turn)
and `reply` (the defaults under the reply architecture).

Prints one JSON object with a member per variant (per model, with several --model: the
packaged model beside its adapter, say). With --paths N the conversation runs N times per
variant, the clock a few minutes later each time: the time stamps in the prompt differ, and a
small model's greedy replies take another path (SmolLM2 135M recalled 3, 1, 2, 1, 1 and 0 of 4
facts on six paths); the member then also lists each path's facts and replies cut off
mid-sentence, the facts' mean and the replies' total. Run inside the project's environment:
    .venv/bin/python scripts/bench_chat.py --json
    .venv/bin/python scripts/bench_chat.py --json --paths 6 --variants memgpt,reply
    .venv/bin/python scripts/bench_chat.py --json --model smollm2-135m \
        --model smollm2-135m-memory --variants reply
"""

import argparse
import json
import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

from memgpt_local.bench.chat import CLOCK, run_chat
from memgpt_local.bench.tasks.variants import AGENT_VARIANTS
from memgpt_local.engine import Engine, EngineConfig

PATH_MINUTES = (0, 7, 13, 29, 41, 53)  # the clock's shift on each path (the first: none)


def main() -> None:
    """Run every variant and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", dest="models",
                        help="A registry alias; repeat it to run models side by side "
                             "(default: smollm2-135m).")
    parser.add_argument("--n-ctx", type=int, default=2048,
                        help="A small window, so the early facts leave it (default 2048).")
    parser.add_argument("--variants", default=",".join(AGENT_VARIANTS))
    parser.add_argument("--paths", type=int, default=1, choices=range(1, len(PATH_MINUTES) + 1),
                        metavar=f"1..{len(PATH_MINUTES)}",
                        help="Run the conversation this many times, the clock shifted by a few "
                             "minutes each time (default 1).")
    parser.add_argument("--json", action="store_true", help="Print JSON (the only output).")
    args = parser.parse_args()
    models = args.models or ["smollm2-135m"]
    per_model = {model: model_figures(model, args.n_ctx, args.variants.split(","), args.paths)
                 for model in models}
    figures: dict = {"n_ctx": args.n_ctx}
    if len(models) == 1:
        figures |= {"model": models[0], **per_model[models[0]]}
    else:
        figures["models"] = per_model
    print(json.dumps(figures, indent=2, ensure_ascii=False))


def model_figures(model: str, n_ctx: int, variants: list[str], paths: int = 1) -> dict:
    """The conversation's figures for one model, a member per variant: the first path's
    whole report, and with several paths `over_paths`."""
    figures = {}
    for variant in variants:
        reports = [chat_on_path(model, n_ctx, variant, minutes)
                   for minutes in PATH_MINUTES[:paths]]
        figures[variant] = reports[0] | (over_paths(reports) if paths > 1 else {})
    return figures


def over_paths(reports: list[dict]) -> dict:
    """Each path's facts recalled and replies cut off, the mean of the facts and the total
    of the replies cut off."""
    return {
        "paths": [{"clock_shift_minutes": minutes, "facts_recalled": report["facts_recalled"],
                   "unfinished_replies": report["unfinished_replies"]}
                  for minutes, report in zip(PATH_MINUTES, reports, strict=False)],
        "facts_recalled_mean": round(statistics.mean(r["facts_recalled"] for r in reports), 2),
        "unfinished_replies_total": sum(r["unfinished_replies"] for r in reports)}


def chat_on_path(model: str, n_ctx: int, variant: str, minutes: int) -> dict:
    """One run of the conversation by a new agent, its clock shifted by `minutes`."""
    clock = CLOCK + timedelta(minutes=minutes)
    with tempfile.TemporaryDirectory(prefix="memgpt-chat-bench-") as home, \
            Engine(EngineConfig(Path(home)), clock=lambda: clock) as engine:
        runtime = engine.runtime(model, n_ctx)
        report = run_chat(engine, model, n_ctx, AGENT_VARIANTS[variant], runtime.count_tokens)
        engine.runtimes.release(runtime)
    return report.as_dict()


if __name__ == "__main__":
    main()
