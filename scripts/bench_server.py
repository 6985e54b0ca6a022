#!/usr/bin/env python
"""Benchmark the HTTP server on a real model: request latency and throughput for 1 and 8
concurrent clients, and the cost of switching agents on one loaded model, with each agent's
context kept by the server (in memory) and without it (a fresh `memgpt-local send` process per
switch, the agent's context snapshot deleted first: only the static prefix is reused).

With 8 clients every request waits for those ahead of it (one model, one queue), so p50_s grows
with the clients while throughput_rps stays that of one; mean_steps is the agent's steps per
request (a turn of several chained steps takes several times as long).

agent_switch_s is the first step's time to first token after a switch (prompt restore and
evaluation); agent_switch_eval_tokens the prompt tokens that step evaluated; mean_new_tokens
the tokens new in its prompt since the agent's previous one (what any layout must evaluate).

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_server.py --json
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from memgpt_local.server.process import ServerProcess

AGENTS = [f"agent{n}" for n in range(4)]
TOPICS = ["sailing", "my sister Maria", "baking bread", "a trip to Lisbon", "my cat Pepper",
          "cello lessons", "the garden", "a new job"]


def message(agent: str, i: int) -> str:
    """About 40 words of user text."""
    return (f"{agent}, message {i}: this week I want to talk about {TOPICS[i % len(TOPICS)]}. "
            "Every evening I come back to it with a cup of tea and a list of questions for "
            "someone who knows more about it than I do. What would you suggest I try next?")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of the values (linear interpolation)."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1] \
        if len(values) > 1 else values[0]


def load(url: str, clients: int, per_client: int) -> dict:
    """clients threads, each sending per_client messages to one of the agents in turn."""
    latencies: list[float] = []
    steps: list[int] = []

    def client(number: int) -> None:
        agent = AGENTS[number % len(AGENTS)]
        with httpx.Client(base_url=url, timeout=1800) as http:
            for i in range(per_client):
                start = time.perf_counter()
                response = http.post(f"/agents/{agent}/messages",
                                     json={"text": message(agent, 100 + number * 10 + i)})
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)
                steps.append(len(response.json()["steps"]))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    assert len(latencies) == clients * per_client, "a request failed"
    return {"requests": len(latencies), "clients": clients,
            "p50_s": round(percentile(latencies, 0.5), 3),
            "p95_s": round(percentile(latencies, 0.95), 3),
            "throughput_rps": round(len(latencies) / wall, 4),
            "mean_steps": round(statistics.mean(steps), 2)}


def first_step(turn: dict) -> dict:
    """What the first step of a turn cost."""
    step = turn["steps"][0]
    return {"switch_s": step["stats"]["ttft_s"], "eval": step["stats"]["evaluated_tokens"],
            "new": step["new_tokens"], "source": step["stats"]["prefix_source"]}


def switches_kept(url: str, rounds: int) -> list[dict]:
    """Agents taking turns on one server: a warm round (contexts from disk), then measured
    rounds (contexts from the server's memory)."""
    measured = []
    with httpx.Client(base_url=url, timeout=1800) as http:
        for round_number in range(rounds + 1):
            for agent in AGENTS:
                response = http.post(f"/agents/{agent}/messages",
                                     json={"text": message(agent, 50 + round_number)})
                response.raise_for_status()
                if round_number:
                    measured.append(first_step(response.json()))
    return measured


def switches_fresh(home: Path, rounds: int) -> list[dict]:
    """The same turns, each in a new process with the agent's context snapshot deleted."""
    measured = []
    env = {**os.environ, "MEMGPT_LOCAL_HOME": str(home)}
    for round_number in range(1, rounds + 1):
        for agent in AGENTS:
            for path in (home / "cache" / "kv").glob("agent-*.kv"):
                path.unlink()
            start = time.perf_counter()
            output = subprocess.run(
                [sys.executable, "-c", "from memgpt_local.cli import cli; cli()", "send",
                 "--agent", agent, "--json", message(agent, 50 + round_number)],
                env=env, capture_output=True, text=True, check=True).stdout
            lines = [json.loads(line) for line in output.splitlines()]
            measured.append({**first_step({"steps": lines[:-1]}),
                             "process_s": time.perf_counter() - start})
    return measured


def summary(measured: list[dict]) -> dict:
    """Means over the measured switches."""
    result = {"switches": len(measured),
              "agent_switch_s": round(statistics.mean(m["switch_s"] for m in measured), 4),
              "agent_switch_eval_tokens": round(statistics.mean(m["eval"] for m in measured), 1),
              "mean_new_tokens": round(statistics.mean(m["new"] for m in measured), 1),
              "prefix_sources": sorted({m["source"] for m in measured})}
    if "process_s" in measured[0]:
        result["process_s"] = round(statistics.mean(m["process_s"] for m in measured), 3)
    return result


def run(model: str, n_ctx: int, warmup: int, rounds: int) -> dict:
    """The whole benchmark in a temporary home."""
    home = Path(tempfile.mkdtemp(prefix="bench-server-"))
    try:
        server = ServerProcess(home, "--model", model)
        with httpx.Client(base_url=server.url, timeout=1800) as http:
            for agent in AGENTS:
                http.post("/agents", json={"name": agent, "model": model, "n_ctx": n_ctx}
                          ).raise_for_status()
                for i in range(warmup):
                    http.post(f"/agents/{agent}/messages",
                              json={"text": message(agent, i)}).raise_for_status()
        server.stop()
        reference_home = Path(shutil.copytree(home, home.parent / f"{home.name}-fresh"))
        server = ServerProcess(home, "--model", model)
        kept = summary(switches_kept(server.url, rounds))
        latency = [load(server.url, 1, 8), load(server.url, 8, 2)]
        server.stop()
        fresh = summary(switches_fresh(reference_home, rounds))
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(home.parent / f"{home.name}-fresh", ignore_errors=True)
    return {"model": model, "n_ctx": n_ctx, "cpu_cores": os.cpu_count(), "latency": latency,
            "switch_kept": kept, "switch_fresh_process": fresh,
            "switch_time_ratio": round(kept["agent_switch_s"] / fresh["agent_switch_s"], 4),
            "switch_eval_over_new": round(kept["agent_switch_eval_tokens"]
                                          / kept["mean_new_tokens"], 3)}


def main() -> None:
    """Parse the arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--warmup", type=int, default=3, help="messages per agent before")
    parser.add_argument("--rounds", type=int, default=2, help="measured rounds of switches")
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args()
    result = run(args.model, args.n_ctx, args.warmup, args.rounds)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
