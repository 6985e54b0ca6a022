#!/usr/bin/env python
"""Benchmark document loading: the time to split a document into passages with the real
embedding model's tokenizer at 1, 4 and 16 MB (it must grow linearly), and another agent's
turn latency on a real server (SmolLM2) while a large document uploads to a second agent,
against its latency with no upload (uploads are split and embedded outside the server's
engine lock; only their writes wait their turn).

The text is synthetic (seeded): words drawn from a 30,000-word vocabulary by a Zipf law, in
sentences, so distinct words and their frequencies look like prose.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_documents.py --json
"""

import argparse
import json
import random
import statistics
import string
import tempfile
import threading
import time
from pathlib import Path

import httpx

from memgpt_local.memory.documents import split_passages
from memgpt_local.memory.embeddings import load_embedder
from memgpt_local.server.process import ServerProcess

MB = 1024**2


def synthetic_text(size_bytes: int, seed: int = 7) -> str:
    """Prose-like text of about size_bytes: Zipf-distributed words in sentences."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10)))
                  for _ in range(30_000)]
    weights = [1 / rank for rank in range(1, len(vocabulary) + 1)]
    words, size = [], 0
    while size < size_bytes:
        sentence = rng.choices(vocabulary, weights, k=rng.randint(6, 20))
        line = " ".join(sentence).capitalize() + "."
        words.append(line)
        size += len(line) + 1
    return " ".join(words)


def split_times(sizes_mb: list[int]) -> dict:
    """Seconds to split each size, and seconds per MB."""
    count = load_embedder(None, "int8").count_tokens
    rows = {}
    for size in sizes_mb:
        text = synthetic_text(size * MB)
        start = time.perf_counter()
        passages = split_passages(text, count)
        seconds = time.perf_counter() - start
        rows[f"{size}MB"] = {"seconds": round(seconds, 2), "s_per_mb": round(seconds / size, 2),
                             "passages": len(passages)}
    return rows


def turn_latency(http: httpx.Client, agent: str, turns: int, tag: str) -> list[float]:
    """Seconds of each of a few turns of one agent."""
    times = []
    for number in range(turns):
        start = time.perf_counter()
        response = http.post(f"/agents/{agent}/messages",
                             json={"text": f"Tell me one thing about bees ({tag} {number})."})
        response.raise_for_status()
        times.append(time.perf_counter() - start)
    return times


def latency_during_upload(upload_mb: int, turns: int) -> dict:
    """Another agent's turn latency with no upload, then while upload_mb uploads."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        server = ServerProcess(home, "--model", "smollm2-135m", "--max-upload", "64MiB")
        try:
            with httpx.Client(base_url=server.url, timeout=3600) as http:
                for name in ("talker", "library"):
                    http.post("/agents", json={"name": name, "n_ctx": 2048}).raise_for_status()
                turn_latency(http, "talker", 1, "warm-up")
                quiet = turn_latency(http, "talker", turns, "quiet")
                done: dict = {}
                upload = threading.Thread(target=_upload, args=(server.url, upload_mb, done))
                upload.start()
                time.sleep(2)  # the upload is sent and being split
                busy = []
                while upload.is_alive() and len(busy) < 4 * turns:
                    busy += turn_latency(http, "talker", 1, "busy")
                upload.join()
        finally:
            server.stop()
    return {"upload_mb": upload_mb, "upload_s": round(done["seconds"], 1),
            "upload_passages": done["passages"], "turns_quiet": len(quiet),
            "turns_during_upload": len(busy),
            "median_turn_s_quiet": round(statistics.median(quiet), 2),
            "median_turn_s_during_upload": round(statistics.median(busy), 2) if busy else None,
            "ratio": round(statistics.median(busy) / statistics.median(quiet), 2)
            if busy else None}


def _upload(url: str, size_mb: int, done: dict) -> None:
    body = synthetic_text(size_mb * MB).encode()
    start = time.perf_counter()
    response = httpx.post(f"{url}/agents/library/documents", timeout=3600,
                          files=[("files", ("big.txt", body, "text/plain"))])
    response.raise_for_status()
    done.update(seconds=time.perf_counter() - start, passages=response.json()["passages"])


def main() -> None:
    """Run both parts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    parser.add_argument("--sizes", default="1,4,16", help="MB sizes to split")
    parser.add_argument("--upload-mb", type=int, default=16)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--no-server", action="store_true", help="only the split times")
    args = parser.parse_args()
    result = {"split": split_times([int(s) for s in args.sizes.split(",")])}
    if not args.no_server:
        result["turn_latency"] = latency_during_upload(args.upload_mb, args.turns)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
