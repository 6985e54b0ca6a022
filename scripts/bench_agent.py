#!/usr/bin/env python
"""Benchmark the agent loop on a real model: a 100-message conversation with prefix reuse,
against the same conversation through a loop that evaluates the whole prompt at every step.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_agent.py --model smollm2-135m --json
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.llm.runtime import ModelRuntime

# The agents' clock stands still, so the prompts (which show the time) and therefore greedy
# decoding are the same in every run: the figures are reproducible, timings aside.
CLOCK = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOPICS = ["sailing", "my sister Maria", "baking bread", "a novel about whales", "night shifts",
          "a trip to Lisbon", "my cat Pepper", "cello lessons", "the garden", "a new job"]


def message(i: int) -> str:
    """About 60 words of user text."""
    return (f"Message {i}: today I want to talk about {TOPICS[i % len(TOPICS)]}. It has taken "
            "up much of my week, and every evening I come back to it with a cup of tea, some "
            "notes and a list of questions that I would like to ask someone who knows more "
            "about it than I do. What would you suggest I try next?")


class NaiveRuntime(ModelRuntime):
    """Evaluates the whole prompt at every call: no KV reuse, no prefix snapshot."""

    def generate(self, tokens, max_tokens=256, sampling=None, processor=None, prefix_len=0):
        self.llm.reset()
        return super().generate(tokens, max_tokens, sampling, processor, prefix_len=0)


def run_conversation(home: Path, args, runtime_factory) -> list:
    """Create an agent in a fresh home and send it the messages; return every step."""
    steps = []
    with Engine(EngineConfig(home), runtime_factory=runtime_factory,
                clock=lambda: CLOCK) as engine:
        engine.create_agent("bench", args.model, args.n_ctx)
        agent = engine.open_agent("bench")
        for i in range(args.messages):
            start = time.perf_counter()
            turn = agent.send(message(i))
            per_step = (time.perf_counter() - start) / max(1, len(turn.steps))
            steps += [(step, per_step) for step in turn.steps]
    return steps


def summary(steps: list) -> dict:
    # summary calls count too: a flush's cost is part of the step that needed it
    evaluated = [s.stats.evaluated_tokens + s.summary_eval_tokens for s, _ in steps]
    new = [s.new_tokens for s, _ in steps]
    return {"steps": len(steps), "flushes": sum(s.flushed for s, _ in steps),
            "failed_steps": sum(s.failed for s, _ in steps),
            "mean_eval_tokens_per_step": statistics.mean(evaluated),
            "mean_new_tokens_per_step": statistics.mean(new),
            "eval_ratio": sum(evaluated) / sum(new),
            "max_prompt_plus_output": max(s.stats.prompt_tokens + s.stats.generated_tokens
                                          for s, _ in steps),
            "median_step_s": statistics.median(t for _, t in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the whole-prompt baseline run (the slow half)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as reuse_home, tempfile.TemporaryDirectory() as naive:
        result = {"model": args.model, "n_ctx": args.n_ctx, "messages": args.messages,
                  **summary(run_conversation(Path(reuse_home), args, ModelRuntime))}
        if not args.no_naive:
            print(json.dumps({"reuse_run": result}), file=sys.stderr, flush=True)  # long wait
            result.update(naive_figures(run_conversation(Path(naive), args, NaiveRuntime),
                                        result["median_step_s"]))
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()},
                     indent=None if args.json else 2))


def naive_figures(naive_steps: list, median_step_s: float) -> dict:
    """The baseline's step time and evaluated tokens, and the speed-up over it."""
    median = statistics.median(t for _, t in naive_steps)
    return {"naive_median_step_s": median,
            "naive_mean_eval_tokens_per_step": statistics.mean(
                s.stats.evaluated_tokens for s, _ in naive_steps),
            "speedup": median / median_step_s}

if __name__ == "__main__":
    main()
