#!/usr/bin/env python
"""Benchmark the memory tiers: embedding and archival insert throughput, archival search
latency at 10k and 100k passages, recall search latency at 100k and 1M messages, bulk import.

Prints one JSON object. Run inside the project's environment:
    .venv/bin/python scripts/bench_memory.py --json
    .venv/bin/python scripts/bench_memory.py --store "$(scripts/postgres.sh start DIR | tail -1)"
The PostgreSQL store's database should be empty (the run's agent is named "bench").
"""

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.memory.archival import SEARCH_MODES
from memgpt_local.memory.messages import Message

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NQ_FILE = DATA / "nq_open" / "nq-open-oracle-dev200.jsonl.gz"


def sentences() -> list[str]:
    """Real text to build passages from: NaturalQuestions passages cut into ~30-word pieces."""
    with gzip.open(NQ_FILE, "rt") as handle:
        words = " ".join(json.loads(line)["ctxs"][0]["text"] for line in handle).split()
    return [" ".join(words[i:i + 30]) for i in range(0, len(words) - 30, 30)]


def passages(n: int, base: list[str]) -> list[str]:
    return [f"Note {i}: {base[i % len(base)]}" for i in range(n)]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def time_queries(run, queries) -> list[float]:
    out = []
    for query in queries:
        start = time.perf_counter()
        run(query)
        out.append((time.perf_counter() - start) * 1000)
    return out


def embed_raw_per_s(embedder, sample: list[str]) -> float:
    """The embedding model's own throughput (sentence-transformers encode, batched)."""
    start = time.perf_counter()
    embedder.embed(sample)
    return len(sample) / (time.perf_counter() - start)


def bench_archival(engine: Engine, sizes, base, result) -> None:
    """Insert throughput against raw embedding (sampled before each size and at the end, as
    the machine's speed drifts over a long run), then search latency at each size."""
    embedder = engine.embedder()
    result["embedder"] = embedder.name
    sample = passages(2000, base)
    raw = []
    archival = engine.archival_storage("bench", progress=False)
    all_passages = passages(max(sizes), base)
    loaded, insert_s = 0, 0.0
    queries = [" ".join(random.Random(i).choice(base).split()[:6]) for i in range(100)]
    for size in sizes:
        raw.append(embed_raw_per_s(embedder, sample))
        start = time.perf_counter()
        for i in range(loaded, size, 1000):
            archival.insert(all_passages[i:min(i + 1000, size)])
        insert_s += time.perf_counter() - start
        loaded = size
        for mode in SEARCH_MODES:
            p50, p95 = percentiles(time_queries(lambda q, m=mode: archival.search(q, mode=m),
                                                queries))
            suffix = "" if mode == "hybrid" else f"_{mode}"
            result.setdefault(f"archival_search_p50_ms{suffix}", {})[str(size)] = p50
            result.setdefault(f"archival_search_p95_ms{suffix}", {})[str(size)] = p95
    start = time.perf_counter()
    archival.close()
    result["archival_index_save_s"] = time.perf_counter() - start
    result["archival_insert_per_s"] = max(sizes) / insert_s
    raw.append(embed_raw_per_s(embedder, sample))
    result["embed_raw_per_s"] = statistics.median(raw)
    result["embed_raw_samples_per_s"] = raw
    bench_reopen(engine, queries[0], result)


def bench_reopen(engine: Engine, query, result) -> None:
    """A new process's costs at the largest size: loading the index, building the word index."""
    start = time.perf_counter()
    archival = engine.archival_storage("bench", progress=False)
    result["archival_open_s"] = time.perf_counter() - start
    start = time.perf_counter()
    archival.search(query, mode="keyword")
    result["archival_first_keyword_search_s"] = time.perf_counter() - start
    archival.close()


def bench_recall(engine: Engine, sizes, base, result) -> None:
    recall = engine.recall_storage("bench")
    start_day = datetime(2020, 1, 1, tzinfo=UTC)
    loaded, import_s = 0, 0.0
    for size in sizes:
        batch = [Message("user" if i % 2 else "assistant", f"{base[i % len(base)]} (turn {i})",
                         created_at=start_day + timedelta(minutes=10 * i))
                 for i in range(loaded, size)]
        start = time.perf_counter()
        recall.bulk_import(batch)
        import_s += time.perf_counter() - start
        loaded = size
        recall.rebuild_text_index()
        words = [w for w in " ".join(base[:50]).split() if len(w) > 6][:100]
        text = time_queries(lambda q: recall.search_text(q), words)
        # questions as a user asks them: common words ("when", "did", "I") are searched too
        questions = [f"when did I say {' '.join(random.Random(i).choice(base).split()[:4])}?"
                     for i in range(100)]
        phrase = time_queries(lambda q: recall.search_text(q), questions)
        result.setdefault("recall_question_search_p50_ms", {})[str(size)] = \
            statistics.median(phrase)
        days = [(start_day + timedelta(days=i * 7)).date().isoformat() for i in range(100)]
        date = time_queries(lambda d: recall.search_date(d, d), days)
        result.setdefault("recall_search_p50_ms", {})[str(size)] = statistics.median(text)
        result.setdefault("recall_date_search_p50_ms", {})[str(size)] = statistics.median(date)
    result["recall_bulk_import_per_s"] = max(sizes) / import_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archival-sizes", default="10000,100000",
                        help="Passage counts (empty: measure recall only).")
    parser.add_argument("--recall-sizes", default="100000,1000000",
                        help="Message counts (empty: measure archival only).")
    parser.add_argument("--store", metavar="URL", help="A PostgreSQL store (scripts/postgres.sh "
                        "start DIR prints one); default: the embedded store in a new home.")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    base = sentences()
    with tempfile.TemporaryDirectory() as tmp, \
            Engine(EngineConfig(Path(tmp), store=args.store)) as engine:
        result: dict = {"store": engine.db.kind}
        archival_sizes = [int(s) for s in args.archival_sizes.split(",") if s]
        if archival_sizes:
            bench_archival(engine, archival_sizes, base, result)
            result["archival_insert_over_embed_raw"] = (result["archival_insert_per_s"]
                                                        / result["embed_raw_per_s"])
        recall_sizes = [int(s) for s in args.recall_sizes.split(",") if s]
        if recall_sizes:
            bench_recall(engine, recall_sizes, base, result)
    print(json.dumps(_rounded(result), indent=None if args.json else 2))


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return round(value, 3) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
