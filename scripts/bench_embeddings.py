#!/usr/bin/env python
"""Compare embedding precisions: speed and retrieval quality on real question/passage pairs.

For each precision (int8, fp32) of the local embedding model: passages embedded per second,
query embedding p50 in ms, and how well each NaturalQuestions question (../shared/data) finds
its own passage among all 200 (recall@1, recall@5, MRR); then the mean cosine between the two
precisions' vectors of the same passage. Prints one JSON object:
    .venv/bin/python scripts/bench_embeddings.py --json
"""

import argparse
import gzip
import json
import statistics
import time
from pathlib import Path

import numpy as np

from memgpt_local.memory.embeddings import PRECISIONS, load_embedder

NQ_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nq_open" / \
    "nq-open-oracle-dev200.jsonl.gz"


def question_passage_pairs() -> tuple[list[str], list[str]]:
    """The questions and, in the same order, the passage that answers each."""
    with gzip.open(NQ_FILE, "rt") as handle:
        rows = [json.loads(line) for line in handle]
    passages = [f"{r['ctxs'][0]['title']}. {r['ctxs'][0]['text']}" for r in rows]
    return [r["question"] for r in rows], passages


def retrieval_quality(queries: np.ndarray, passages: np.ndarray) -> dict:
    """Recall@1, recall@5 and MRR of each query's own passage (row i answers query i)."""
    scores = queries @ passages.T
    own = scores[np.arange(len(queries)), np.arange(len(queries))]
    ranks = (scores > own[:, None]).sum(axis=1)
    return {"recall_at_1": float((ranks == 0).mean()), "recall_at_5": float((ranks < 5).mean()),
            "mrr": float((1.0 / (ranks + 1)).mean())}


def measure(precision: str, questions: list[str], passages: list[str]) -> tuple[dict, np.ndarray]:
    """One precision's figures, and its passage vectors."""
    embedder = load_embedder(precision=precision)
    start = time.perf_counter()
    passage_vectors = embedder.embed(passages)
    per_s = len(passages) / (time.perf_counter() - start)
    timings, query_vectors = [], []
    for question in questions:
        start = time.perf_counter()
        query_vectors.append(embedder.embed_query(question)[0])
        timings.append((time.perf_counter() - start) * 1000)
    figures = {"passages_per_s": per_s, "query_p50_ms": statistics.median(timings),
               **retrieval_quality(np.array(query_vectors), passage_vectors)}
    return figures, passage_vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    args = parser.parse_args()
    questions, passages = question_passage_pairs()
    result, vectors = {}, {}
    for precision in PRECISIONS:
        result[precision], vectors[precision] = measure(precision, questions, passages)
    first, second = PRECISIONS
    result[f"mean_cosine_{first}_vs_{second}"] = float(
        (vectors[first] * vectors[second]).sum(axis=1).mean())
    print(json.dumps({k: ({n: round(v, 4) for n, v in f.items()} if isinstance(f, dict)
                          else round(f, 4)) for k, f in result.items()},
                     indent=None if args.json else 2))


if __name__ == "__main__":
    main()
