"""Loading documents into archival storage: reading files and splitting them into passages."""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ""}


@dataclass
class LoadReport:
    """What a load did: files, passages stored, failures, seconds."""

    files: int = 0
    passages: int = 0
    skipped_duplicates: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def read_texts(path: Path) -> list[str]:
    """The texts in a file: the whole file, or each line's `text` field for JSONL."""
    if path.suffix.lower() == ".jsonl":
        texts = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"line {number} has no string field 'text'")
                texts.append(record["text"])
        return texts
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise ValueError(f"unsupported file type {path.suffix!r} (use .txt, .md or .jsonl)")
    return [path.read_text(encoding="utf-8")]


def split_passages(text: str, count_tokens: Callable[[str], int], max_tokens: int = 200,
                   overlap_tokens: int = 30) -> list[str]:
    """Split text into passages of at most max_tokens (by the embedding model's tokenizer),
    on word boundaries, each starting with the last overlap_tokens of the one before."""
    words = text.split()
    passages: list[str] = []
    start = 0
    while start < len(words):
        end = _fit(words, start, count_tokens, max_tokens)
        passages.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        back = end
        while back > start + 1 and count_tokens(" ".join(words[back - 1:end])) <= overlap_tokens:
            back -= 1
        start = max(back, start + 1)
    return passages


def _fit(words: list[str], start: int, count_tokens, max_tokens: int) -> int:
    """The largest end such that words[start:end] fits in max_tokens (at least one word)."""
    low, high = start + 1, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(" ".join(words[start:middle])) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


def load_documents(paths: list[Path], archival, max_tokens: int = 200,
                   overlap_tokens: int = 30, on_passages: Callable[[int], None] | None = None
                   ) -> LoadReport:
    """Put files into an agent's archival storage; unreadable files are reported, not fatal."""
    report = LoadReport()
    start = time.perf_counter()
    count = archival.embedder.count_tokens
    for path in paths:
        try:
            passages = [p for text in read_texts(path)
                        for p in split_passages(text, count, max_tokens, overlap_tokens)]
        except UnicodeDecodeError:
            report.failed[str(path)] = "not UTF-8 text (convert it, e.g. with iconv)"
            continue
        except (OSError, ValueError) as exc:
            report.failed[str(path)] = getattr(exc, "strerror", None) or str(exc)
            continue
        if not passages:
            report.failed[str(path)] = "it holds no text"
            continue
        report.files += 1
        for batch in _batches(passages, 256):
            stored = archival.insert(batch, source=str(path))
            report.passages += len(stored)
            report.skipped_duplicates += len(batch) - len(stored)
            if on_passages:
                on_passages(len(batch))
    report.seconds = time.perf_counter() - start
    return report


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
