#!/usr/bin/env python
"""Compare KV cache types on a real model: the size of a context snapshot, the prompt's
evaluation time and whether greedy decoding still gives the same text (f16, the default,
against q8_0 for K and V, which llama.cpp allows only with flash attention).

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_kv_types.py --model smollm2-135m --json
"""

import argparse
import json
import time

from llama_cpp import GGML_TYPE_Q8_0, Llama, llama_state_seq_get_size

from memgpt_local.llm.models import Registry

TYPES = {"f16": {}, "f16_flash": {"flash_attn": True},
         "q8_0_flash": {"flash_attn": True, "type_k": GGML_TYPE_Q8_0, "type_v": GGML_TYPE_Q8_0}}
TEXT = ("Ana keeps bees on a roof in Porto. Every spring she splits the strongest hive, and "
        "every autumn she weighs the honey and writes the figures in a green notebook. ")


def measure(path: str, options: dict, prompt_tokens: int, generate: int) -> dict:
    """Evaluate one prompt and decode greedily with one KV type."""
    llm = Llama(model_path=path, n_ctx=prompt_tokens + generate + 16, n_threads=2,
                n_threads_batch=2, swa_full=True, verbose=False, **options)
    tokens = llm.tokenize((TEXT * 200).encode())[:prompt_tokens]
    start = time.perf_counter()
    output = []
    for token in llm.generate(tokens, temp=0.0):
        if not output:
            eval_s = time.perf_counter() - start
        if llm.token_eos() == token or len(output) >= generate:
            break
        output.append(token)
    result = {"snapshot_mb": llama_state_seq_get_size(llm._ctx.ctx, 0) / 1e6,
              "prompt_eval_s": eval_s, "text": llm.detokenize(output).decode(errors="replace")}
    llm.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt-tokens", type=int, default=2000)
    parser.add_argument("--generate", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    path = str(Registry.load().get(args.model).locate())
    runs = {name: measure(path, options, args.prompt_tokens, args.generate)
            for name, options in TYPES.items()}
    base = runs["f16"]
    result = {"model": args.model, "prompt_tokens": args.prompt_tokens,
              **{name: {k: round(v, 3) if isinstance(v, float) else v
                        for k, v in run.items() if k != "text"} | {
                  "same_greedy_text": run["text"] == base["text"]}
                 for name, run in runs.items()},
              "q8_0_size_ratio": round(runs["q8_0_flash"]["snapshot_mb"] / base["snapshot_mb"], 3),
              "q8_0_eval_time_ratio": round(runs["q8_0_flash"]["prompt_eval_s"]
                                            / base["prompt_eval_s"], 3)}
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
