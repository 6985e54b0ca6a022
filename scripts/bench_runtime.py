#!/usr/bin/env python
"""Benchmark the model runtime: prefix KV reuse (cold, warm, restart), constrained decoding
speed, Outlines' own wrapper against the direct call, and the constraint's index cache.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_runtime.py --model smollm2-135m --json
"""

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.llm.base import SamplingSettings
from memgpt_local.llm.decoding import function_call_schema
from memgpt_local.llm.runtime import ModelRuntime

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NQ_FILE = DATA / "nq_open" / "nq-open-oracle-dev200.jsonl.gz"
FUNCTIONS = [
    {"name": "send_message", "parameters": {
        "type": "object", "properties": {"message": {"type": "string"}},
        "required": ["message"], "additionalProperties": False}},
    {"name": "archival_memory_search", "parameters": {
        "type": "object", "properties": {
            "query": {"type": "string"}, "page": {"type": "integer", "maxDigits": 2},
            "request_heartbeat": {"type": "boolean"}},
        "required": ["query", "page", "request_heartbeat"], "additionalProperties": False}},
]
QUESTIONS = ["Who wrote the first passage?", "Summarise the second passage.",
             "Write a long letter to a friend about the sea, in at least 300 words."]


def static_prefix(runtime: ModelRuntime, target_tokens: int) -> str:
    """Real text (NaturalQuestions passages) as a system prompt of about target_tokens."""
    if not NQ_FILE.is_file():
        sys.exit(f"bench_runtime: {NQ_FILE} not found (../shared/data must sit beside the repo)")
    parts = ["You are a helpful assistant. You answer with one JSON function call.\n"
             "Reference passages follow.\n"]
    with gzip.open(NQ_FILE, "rt") as handle:
        for line in handle:
            ctx = json.loads(line)["ctxs"][0]
            passage = f"{ctx['title']}: {ctx['text']}\n"
            if runtime.count_tokens("".join(parts) + passage) > target_tokens:
                break
            parts.append(passage)
    return "".join(parts)


def prompt(runtime: ModelRuntime, system: str, question: str):
    chat = runtime.chat_tokens([{"role": "system", "content": system},
                                {"role": "user", "content": question}])
    return chat.tokens, chat.message_ends[0]


def timed_call(runtime, system, question, **kwargs):
    tokens, prefix_len = prompt(runtime, system, question)
    return runtime.generate(tokens, prefix_len=prefix_len, **kwargs).finish()


def restart_probe(args) -> dict:
    """Run in a new process: load, then time a request whose prefix comes from the snapshot."""
    with Engine(EngineConfig(Path(args.home))) as engine:
        runtime = engine.runtime(args.model, args.n_ctx)
        system = static_prefix(runtime, args.prefix_tokens)
        start = time.perf_counter()
        generation = timed_call(runtime, system, QUESTIONS[0], max_tokens=1)
        restart = time.perf_counter() - start
        start = time.perf_counter()
        build = runtime.constraint(function_call_schema(FUNCTIONS)).build
    return {"restart_ttft_s": restart, "restart_prefix_source": generation.stats.prefix_source,
            "index_build_cached_s": time.perf_counter() - start,
            "index_build_cached_source": build.source}


def speed(runtime, system, processor) -> float:
    """Generation tokens per second for a long answer, with or without the constraint."""
    generation = timed_call(runtime, system, QUESTIONS[2], max_tokens=160, processor=processor,
                            sampling=SamplingSettings(temperature=0.0))
    return generation.stats.tokens_per_s, generation.stats.generated_tokens


def outlines_wrapper_call(runtime, system, schema, max_tokens) -> float:
    """The same constrained call through Outlines' own llama.cpp model (it resets the KV cache)."""
    import outlines

    model = outlines.from_llamacpp(runtime.llm, chat_mode=False)
    generator = outlines.Generator(model, outlines.json_schema(schema))
    tokens, _ = prompt(runtime, system, QUESTIONS[1])
    if tokens[0] == runtime.llm.token_bos():
        tokens = tokens[1:]  # llama.cpp adds the BOS itself to a text prompt
    text = runtime.llm.detokenize(tokens, special=True).decode()
    generator(text, max_tokens=max_tokens)  # warm-up: numba kernels compile
    start = time.perf_counter()
    generator(text, max_tokens=max_tokens)
    return time.perf_counter() - start


def main_bench(args, runtime: ModelRuntime) -> dict:
    schema = function_call_schema(FUNCTIONS)
    system = static_prefix(runtime, args.prefix_tokens)
    cold = timed_call(runtime, system, QUESTIONS[0], max_tokens=1)
    warm = timed_call(runtime, system, QUESTIONS[1], max_tokens=1)
    start = time.perf_counter()
    constraint = runtime.constraint(schema)
    index_cold = time.perf_counter() - start
    processor = constraint.processor()
    timed_call(runtime, system, QUESTIONS[1], max_tokens=8, processor=processor)  # jit warm-up
    unconstrained, n_free = speed(runtime, system, None)
    constrained, n_constrained = speed(runtime, system, processor)
    direct = timed_call(runtime, system, QUESTIONS[1], max_tokens=args.call_tokens,
                        processor=processor)
    wrapper_s = outlines_wrapper_call(runtime, system, schema, args.call_tokens)
    probe = subprocess.run([sys.executable, __file__, "--model", args.model, "--n-ctx",
                            str(args.n_ctx), "--prefix-tokens", str(args.prefix_tokens),
                            "--home", args.home, "--restart-probe"],
                           capture_output=True, text=True, check=True)
    return {
        "model": args.model, "n_ctx": args.n_ctx, "threads": runtime.spec.threads(),
        "prefix_tokens": prompt(runtime, system, QUESTIONS[0])[1],
        "prompt_tokens": cold.stats.prompt_tokens,
        "cold_ttft_s": cold.stats.ttft_s, "cold_prefix_source": cold.stats.prefix_source,
        "warm_ttft_s": warm.stats.ttft_s, "warm_evaluated_tokens": warm.stats.evaluated_tokens,
        **json.loads(probe.stdout.strip().splitlines()[-1]),
        "constrained_tok_s": constrained, "constrained_tokens": n_constrained,
        "unconstrained_tok_s": unconstrained, "unconstrained_tokens": n_free,
        "direct_call_s": direct.stats.total_s, "outlines_wrapper_call_s": wrapper_s,
        "call_max_tokens": args.call_tokens,
        "index_build_cold_s": index_cold, "index_build_cold_source": constraint.build.source,
    }


def ratios(result: dict) -> dict:
    """The issue's targets, as ratios measured in this run."""
    return {
        "warm_over_cold": result["warm_ttft_s"] / result["cold_ttft_s"],
        "restart_over_cold": result["restart_ttft_s"] / result["cold_ttft_s"],
        "constrained_over_unconstrained": result["constrained_tok_s"]
        / result["unconstrained_tok_s"],
        "direct_over_wrapper": result["direct_call_s"] / result["outlines_wrapper_call_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--prefix-tokens", type=int, default=3000)
    parser.add_argument("--call-tokens", type=int, default=24)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    parser.add_argument("--restart-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)  # the probe's (shared) caches
    args = parser.parse_args()
    if args.restart_probe:
        print(json.dumps(restart_probe(args)))
        return
    with tempfile.TemporaryDirectory() as home:  # fresh snapshot and index caches
        args.home = home
        with Engine(EngineConfig(Path(home))) as engine:
            result = main_bench(args, engine.runtime(args.model, args.n_ctx))
    result["ratios"] = ratios(result)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()},
                     indent=None if args.json else 2))


if __name__ == "__main__":
    main()
