#!/usr/bin/env python
"""Benchmark the agent loop on a real model: a 100-message conversation with prefix reuse,
against the same conversation through a loop that evaluates the whole prompt at every step
(the two side by side, a message to each in turn).
With --processes: 20 messages through `memgpt-local send`, a new process each, with the
agent's context snapshot and without it (only the static prefix's), side by side.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_agent.py --model smollm2-135m --json
    .venv/bin/python scripts/bench_agent.py --model smollm2-135m --processes --json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
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

    def generate(self, tokens, max_tokens=256, sampling=None, processor=None, prefix_len=0,
                 context=None, avoid=None):
        self.llm.reset()
        return super().generate(tokens, max_tokens, sampling, processor, avoid=avoid)

    def save_context(self, name):
        return None


def run_conversations(homes: dict[str, Path], args, factories: dict) -> dict[str, dict]:
    """Create an agent in each fresh home and send each the same messages, interleaved (so
    the machine's load falls on every run alike); return each run's steps and turns."""
    runs: dict[str, dict] = {name: {"steps": [], "turns": []} for name in homes}
    with ExitStack() as stack:
        agents = {name: _bench_agent(stack, home, args, factories[name])
                  for name, home in homes.items()}
        for i in range(args.messages):
            for name, agent in agents.items():
                start = time.perf_counter()
                turn = agent.send(message(i))
                per_step = (time.perf_counter() - start) / max(1, len(turn.steps))
                runs[name]["steps"] += [(step, per_step) for step in turn.steps]
                runs[name]["turns"].append((agent.runtime.count_tokens(turn.memory or ""),
                                            turn.memory_s))
    return runs


def _bench_agent(stack: ExitStack, home: Path, args, runtime_factory):
    engine = stack.enter_context(Engine(EngineConfig(home), runtime_factory=runtime_factory,
                                        clock=lambda: CLOCK))
    engine.create_agent("bench", args.model, args.n_ctx)
    if args.memory_hits is not None:
        engine.configure_agent("bench", {"memory_hits": args.memory_hits})
    return engine.open_agent("bench")


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
    parser.add_argument("--n-ctx", type=int, help="window (2048; with --processes the "
                                                  "model's default)")
    parser.add_argument("--messages", type=int, help="messages (100; 20 with --processes)")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the whole-prompt baseline run (the slow half)")
    parser.add_argument("--memory-hits", type=int,
                        help="the agents' memory_hits (default: what a new agent gets; 0: no "
                             "memory brought to a turn, as before issue 20)")
    parser.add_argument("--processes", action="store_true",
                        help="one `memgpt-local send` process per message, with and without "
                             "the agent's context snapshot")
    args = parser.parse_args()
    if args.processes:
        result = process_figures(args)
    else:
        args.n_ctx, args.messages = args.n_ctx or 2048, args.messages or 100
        result = in_process_figures(args)
    print(json.dumps(_rounded(result), indent=None if args.json else 2))


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 3) if isinstance(value, float) else value


def in_process_figures(args) -> dict:
    """One process, the KV cache kept: the figures, and the whole-prompt baseline's, the two
    conversations run side by side."""
    factories = {"reuse": ModelRuntime} | ({} if args.no_naive else {"naive": NaiveRuntime})
    with tempfile.TemporaryDirectory() as top:
        runs = run_conversations({name: Path(top) / name for name in factories}, args,
                                 factories)
    reuse = runs["reuse"]
    memory_tokens = [tokens for tokens, _ in reuse["turns"]]
    result = {"model": args.model, "n_ctx": args.n_ctx, "messages": args.messages,
              **summary(reuse["steps"]),
              "mean_generated_tokens_per_step": statistics.mean(
                  s.stats.generated_tokens for s, _ in reuse["steps"]),
              "memory_turns": sum(1 for tokens in memory_tokens if tokens),
              "memory_tokens_per_turn": statistics.mean(memory_tokens),
              "memory_ms_per_turn": 1000 * statistics.mean(s for _, s in reuse["turns"])}
    if "naive" in runs:
        result.update(naive_figures(runs["naive"]["steps"], result["median_step_s"]))
    return result


def naive_figures(naive_steps: list, median_step_s: float) -> dict:
    """The baseline's step time and evaluated tokens, and the speed-up over it."""
    median = statistics.median(t for _, t in naive_steps)
    return {"naive_median_step_s": median,
            "naive_mean_eval_tokens_per_step": statistics.mean(
                s.stats.evaluated_tokens + s.summary_eval_tokens for s, _ in naive_steps),
            "speedup": median / median_step_s}

# --- one process per message -------------------------------------------------------------
def short_message(i: int) -> str:
    """About 30 words of user text."""
    return (f"Message {i}: today I want to talk about {TOPICS[i % len(TOPICS)]}. It has taken "
            "up much of my week, and every evening I come back to it with a cup of tea.")


def send_process(home: Path, text: str) -> dict:
    """`memgpt-local send --json` in a new process: its steps, its snapshot and wall time."""
    env = {**os.environ, "MEMGPT_LOCAL_HOME": str(home)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "memgpt_local", "send", "--agent", "bench",
                          "--json", text], env=env, capture_output=True, text=True, check=True)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return {"steps": lines[:-1], "saved": lines[-1]["saved_context"],
            "wall_s": time.perf_counter() - start}


def forget_context(home: Path) -> None:
    """Delete the agent's context snapshot: only the static prefix's snapshot is left."""
    for path in (home / "cache" / "kv").glob("agent-*.kv"):
        path.unlink()


def process_figures(args) -> dict:
    """The same messages to two agents, interleaved: one resumes from its context snapshot,
    the other's snapshot is deleted before each send."""
    count = args.messages or 20
    runs: dict[str, list[dict]] = {"with_snapshot": [], "without_snapshot": []}
    with tempfile.TemporaryDirectory() as top:
        homes = {name: Path(top) / name for name in runs}
        for home in homes.values():
            create = ["agents", "create", "bench", "--model", args.model]
            create += ["--n-ctx", str(args.n_ctx)] if args.n_ctx else []
            create += [] if args.memory_hits is None else ["--memory-hits",
                                                           str(args.memory_hits)]
            subprocess.run([sys.executable, "-m", "memgpt_local", *create], check=True,
                           env={**os.environ, "MEMGPT_LOCAL_HOME": str(home)},
                           capture_output=True)
        for i in range(count):
            forget_context(homes["without_snapshot"])
            for name, home in homes.items():
                runs[name].append(send_process(home, short_message(i)))
            print(json.dumps({"sent": i + 1, "of": count}), file=sys.stderr, flush=True)
    figures = {name: send_figures(sends) for name, sends in runs.items()}
    with_, without = figures["with_snapshot"], figures["without_snapshot"]
    return {"model": args.model, "messages": count, **figures,
            "ttft_ratio": with_["median_ttft_s"] / without["median_ttft_s"],
            "eval_tokens_ratio": (with_["mean_eval_tokens_per_send"]
                                  / without["mean_eval_tokens_per_send"])}


def send_figures(sends: list[dict]) -> dict:
    """Time to first token, tokens evaluated against tokens new, snapshot size and cost."""
    # summary calls count too: a flush's cost is part of the send that needed it
    evaluated = [sum(s["stats"]["evaluated_tokens"] + s["summary_eval_tokens"]
                     for s in send["steps"]) for send in sends]
    new = [sum(s["new_tokens"] for s in send["steps"]) for send in sends]
    saved = [send["saved"] for send in sends if send["saved"]]
    sources = [send["steps"][0]["stats"]["prefix_source"] for send in sends]
    return {"median_ttft_s": statistics.median(send["steps"][0]["stats"]["ttft_s"]
                                               for send in sends),
            "median_send_wall_s": statistics.median(send["wall_s"] for send in sends),
            "mean_eval_tokens_per_send": statistics.mean(evaluated),
            "mean_new_tokens_per_send": statistics.mean(new),
            "eval_ratio": sum(evaluated) / sum(new),
            "first_step_sources": {s: sources.count(s) for s in sorted(set(sources))},
            "flushes": sum(s["flushed"] for send in sends for s in send["steps"]),
            "max_prompt_tokens": max(s["stats"]["prompt_tokens"]
                                     for send in sends for s in send["steps"]),
            "snapshot_mb_mean": statistics.mean(s["bytes"] for s in saved) / 1e6,
            "snapshot_mb_max": max(s["bytes"] for s in saved) / 1e6,
            "snapshot_save_s_median": statistics.median(s["seconds"] for s in saved)}


if __name__ == "__main__":
    main()
