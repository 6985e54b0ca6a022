#!/usr/bin/env python
"""Benchmark the remote runtime against the in-process one, side by side on the same GGUF: the
agent benchmark's conversation (scripts/bench_agent.py) sent to an agent in process and to an
agent whose model runs on a real llama-server on loopback, a message to each in turn.

Prints one JSON object: each runtime's eval_ratio (tokens evaluated over tokens new, summaries
included), median step time and call validity (steps whose output was a whole call of a known
function), and step_time_ratio (remote over in process). Run inside the project's environment:
    .venv/bin/python scripts/bench_remote.py --json
"""

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

from bench_agent import _rounded, run_conversations, summary

from memgpt_local.bench.llama_server_process import LlamaServerProcess
from memgpt_local.llm.models import Registry
from memgpt_local.llm.remote import RemoteRuntime
from memgpt_local.llm.runtime import ModelRuntime


def remote_factory(url: str):
    """A runtime factory for the engine: the entry's GGUF, run on the server at url."""
    def build(spec, snapshots, grammar_dir, n_ctx=None, seed=None):
        return RemoteRuntime(replace(spec, server=url), snapshots, grammar_dir, n_ctx=n_ctx)
    return build


def figures(steps: list) -> dict:
    """The agent benchmark's summary and the share of steps that wrote a whole call."""
    return {**summary(steps),
            "call_validity": statistics.mean(step.function != "(none)" for step, _ in steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    spec = Registry.load().get(args.model)
    server = LlamaServerProcess(spec.locate(), n_ctx=args.n_ctx)
    try:
        with TemporaryDirectory() as top:
            factories = {"inprocess": ModelRuntime, "remote": remote_factory(server.url)}
            runs = run_conversations({name: Path(top) / name for name in factories}, args,
                                     factories)
    finally:
        server.stop()
    inprocess, remote = (figures(runs[name]["steps"]) for name in ("inprocess", "remote"))
    result = {"model": args.model, "n_ctx": args.n_ctx, "messages": args.messages,
              "eval_ratio_inprocess": inprocess["eval_ratio"],
              "eval_ratio_remote": remote["eval_ratio"],
              "step_time_ratio": remote["median_step_s"] / inprocess["median_step_s"],
              "call_validity_inprocess": inprocess["call_validity"],
              "call_validity_remote": remote["call_validity"],
              "inprocess": inprocess, "remote": remote}
    print(json.dumps(_rounded(result), indent=None if args.json else 2))


if __name__ == "__main__":
    main()
