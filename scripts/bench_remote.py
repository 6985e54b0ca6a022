#!/usr/bin/env python
"""Benchmark the remote runtime against the in-process one, side by side on the same GGUF.

1. The agent benchmark's conversation (scripts/bench_agent.py) sent to an agent in process and
   to an agent whose model runs on a real llama-server on loopback, a message to each in turn:
   each runtime's eval_ratio (tokens evaluated over tokens new, summaries included), median
   step time and call validity (steps whose output was a whole call of a known function), and
   step_time_ratio (remote over in process).
2. The HTTP server under 8 clients on 4 agents (scripts/bench_server.py's load): a `serve`
   whose model runs in process (one turn at a time), then a `serve` whose model runs on a
   llama-server with 4 parallel slots (4 turns at once): requests/s of each, throughput_ratio
   (remote over in process), p50 and p95 latencies.

Prints one JSON object. Run inside the project's environment, alone on the machine:
    .venv/bin/python scripts/bench_remote.py --json
"""

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from bench_agent import _rounded, run_conversations, summary
from bench_server import AGENTS, load, message

from memgpt_local.bench.llama_server_process import LlamaServerProcess, remote_entry
from memgpt_local.llm.models import ModelSpec, Registry
from memgpt_local.llm.remote import RemoteRuntime
from memgpt_local.llm.runtime import ModelRuntime
from memgpt_local.server.process import ServerProcess

SLOTS = 4
CLIENTS = 8


def remote_factory(url: str):
    """A runtime factory for the engine: the entry's GGUF, run on the server at url."""
    def build(spec, snapshots, grammar_dir, n_ctx=None, seed=None):
        return RemoteRuntime(replace(spec, server=url), snapshots, grammar_dir, n_ctx=n_ctx)
    return build


def figures(steps: list) -> dict:
    """The agent benchmark's summary and the share of steps that wrote a whole call."""
    return {**summary(steps),
            "call_validity": statistics.mean(step.function != "(none)" for step, _ in steps)}


def conversation(spec: ModelSpec, args) -> dict:
    """Part 1: one conversation in process and on a one-slot llama-server, interleaved."""
    server = LlamaServerProcess(spec.locate(), n_ctx=args.n_ctx)
    try:
        with TemporaryDirectory() as top:
            factories = {"inprocess": ModelRuntime, "remote": remote_factory(server.url)}
            runs = run_conversations({name: Path(top) / name for name in factories}, args,
                                     factories)
    finally:
        server.stop()
    inprocess, remote = (figures(runs[name]["steps"]) for name in ("inprocess", "remote"))
    return {"eval_ratio_inprocess": inprocess["eval_ratio"],
            "eval_ratio_remote": remote["eval_ratio"],
            "step_time_ratio": remote["median_step_s"] / inprocess["median_step_s"],
            "call_validity_inprocess": inprocess["call_validity"],
            "call_validity_remote": remote["call_validity"],
            "inprocess": inprocess, "remote": remote}


def served_load(home: Path, alias: str, args) -> dict:
    """`serve` on a home: 4 agents warmed with one message each, then 8 clients at once."""
    home.mkdir(exist_ok=True)
    server = ServerProcess(home, "--model", alias)
    try:
        with httpx.Client(base_url=server.url, timeout=1800) as http:
            max_turns = http.get("/health").json()["max_turns"]
            for agent in AGENTS:
                http.post("/agents", json={"name": agent, "model": alias, "n_ctx": args.n_ctx}
                          ).raise_for_status()
                http.post(f"/agents/{agent}/messages",
                          json={"text": message(agent, 0)}).raise_for_status()
        return {**load(server.url, CLIENTS, args.per_client), "max_turns": max_turns}
    finally:
        server.stop()


def throughput(spec: ModelSpec, args) -> dict:
    """Part 2: the HTTP server's load in process, then on a llama-server with 4 slots."""
    with TemporaryDirectory() as top:
        inprocess = served_load(Path(top) / "inprocess", args.model, args)
        server = LlamaServerProcess(spec.locate(), n_ctx=args.n_ctx, parallel=SLOTS)
        try:
            home = Path(top) / "remote"
            home.mkdir()  # its models.toml first
            (home / "models.toml").write_text(remote_entry(spec, "remote", server.url,
                                                           n_ctx=args.n_ctx))
            remote = served_load(home, "remote", args)
        finally:
            server.stop()
    return {"throughput_ratio": remote["throughput_rps"] / inprocess["throughput_rps"],
            "p95_inprocess_s": inprocess["p95_s"], "p95_remote_s": remote["p95_s"],
            "served_inprocess": inprocess, "served_remote": remote}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--per-client", type=int, default=2,
                        help="messages each of the 8 clients sends (part 2)")
    parser.add_argument("--memory-hits", type=int, default=None,
                        help="the agents' memory hits (default: the agent default)")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    spec = Registry.load().get(args.model)
    result = {"model": args.model, "n_ctx": args.n_ctx, "messages": args.messages,
              "slots": SLOTS, "clients": CLIENTS, **conversation(spec, args)}
    print("part 1:", json.dumps(_rounded(result)), file=sys.stderr)  # kept if part 2 fails
    result.update(throughput(spec, args))
    print(json.dumps(_rounded(result), indent=None if args.json else 2))


if __name__ == "__main__":
    main()
