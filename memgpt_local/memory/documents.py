"""Loading documents into archival storage: reading files and splitting them into passages."""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .archival import content_hash
from .embeddings import TextEmbedder
from .stores import ArchivalStore

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
    on word boundaries, each starting with the last overlap_tokens of the one before. Linear
    in the text: each distinct word is counted once, and each passage once more to check it."""
    words = text.split()
    sizes = _word_sizes(words, count_tokens)
    passages: list[str] = []
    start = 0
    while start < len(words):
        end = _window_end(sizes, start, max_tokens)
        end = _shrink_to_fit(words, start, end, count_tokens, max_tokens)
        passages.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        back, overlap = end, sizes[end - 1]
        while back > start + 1 and overlap <= overlap_tokens:
            back -= 1
            overlap += sizes[back - 1]
        start = max(back, start + 1)
    return passages


def _word_sizes(words: list[str], count_tokens: Callable[[str], int]) -> list[int]:
    """Each word's token count (a document repeats its words: each distinct one counted once)."""
    known: dict[str, int] = {}
    sizes = []
    for word in words:
        size = known.get(word)
        if size is None:
            size = known[word] = count_tokens(word)
        sizes.append(size)
    return sizes


def _window_end(sizes: list[int], start: int, max_tokens: int) -> int:
    """The end of the longest run of words from start whose counts add up to max_tokens (at
    least one word)."""
    end, total = start + 1, sizes[start]
    while end < len(sizes) and total + sizes[end] <= max_tokens:
        total += sizes[end]
        end += 1
    return end


def _shrink_to_fit(words: list[str], start: int, end: int, count_tokens: Callable[[str], int],
                   max_tokens: int) -> int:
    """The window checked as one text (a tokenizer may count words apart differently than
    together): shortened by a tenth at a time until it fits."""
    while end > start + 1 and count_tokens(" ".join(words[start:end])) > max_tokens:
        end -= max(1, (end - start) // 10)
    return end


@dataclass
class PreparedFile:
    """One file's passages and their embeddings, made before the store is touched."""

    source: str
    passages: list[str]
    vectors: np.ndarray
    known: int = 0  # passages left out before embedding: the store holds them already


@dataclass
class PreparedDocuments:
    """Files read, split and embedded (outside any lock); what failed, and the seconds it took."""

    files: list[PreparedFile] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def prepare_documents(paths: list[Path], embedder: TextEmbedder, max_tokens: int = 200,
                      overlap_tokens: int = 30, on_passages: Callable[[int], None] | None = None,
                      sources: dict[Path, str] | None = None,
                      known: frozenset[str] | set[str] = frozenset()) -> PreparedDocuments:
    """Read, split and embed files for an archival store (no store needed: run it outside the
    engine's lock); unreadable files are reported, not fatal. sources: the name each path is
    stored under (default: the path); known: content hashes the store holds (not embedded
    again)."""
    prepared = PreparedDocuments()
    start = time.perf_counter()
    for path in paths:
        source = (sources or {}).get(path, str(path))
        try:
            passages = [p for text in read_texts(path)
                        for p in split_passages(text, embedder.count_tokens, max_tokens,
                                                overlap_tokens)]
        except UnicodeDecodeError:
            prepared.failed[source] = "not UTF-8 text (convert it, e.g. with iconv)"
            continue
        except (OSError, ValueError) as exc:
            prepared.failed[source] = getattr(exc, "strerror", None) or str(exc)
            continue
        if not passages:
            prepared.failed[source] = "it holds no text"
            continue
        fresh = [p for p in passages if content_hash(p) not in known]
        prepared.files.append(PreparedFile(source, fresh, _embed(fresh, embedder, on_passages),
                                           len(passages) - len(fresh)))
    prepared.seconds = time.perf_counter() - start
    return prepared


def _embed(passages: list[str], embedder: TextEmbedder, on_passages: Callable[[int], None] | None
           ) -> np.ndarray:
    parts = [np.zeros((0, embedder.dim), dtype=np.float32)]
    for batch in _batches(passages, 256):
        parts.append(embedder.embed(batch))
        if on_passages:
            on_passages(len(batch))
    return np.concatenate(parts)


class EmbeddedAhead:
    """An embedder that answers with vectors made ahead for known texts (the rest it embeds
    through the model it wraps), so storing prepared passages embeds nothing again."""

    def __init__(self, inner: TextEmbedder, prepared: PreparedDocuments) -> None:
        self.inner = inner
        self.name, self.dim = inner.name, inner.dim
        self.known = {text: vector for file in prepared.files
                      for text, vector in zip(file.passages, file.vectors, strict=True)}

    def embed(self, texts: list[str]) -> np.ndarray:
        """The made-ahead vectors of the texts (any other text embedded now)."""
        missing = [text for text in texts if text not in self.known]
        if missing:
            self.known.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self.known[text] for text in texts]).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """A query's embedding, from the wrapped model."""
        return self.inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        """Tokens of a text, by the wrapped model's tokenizer."""
        return self.inner.count_tokens(text)


def store_documents(prepared: PreparedDocuments, archival: ArchivalStore) -> LoadReport:
    """Store prepared passages in an archival storage opened over EmbeddedAhead(prepared) (the
    only part that needs the store); duplicates of stored passages are skipped."""
    report = LoadReport(failed=dict(prepared.failed))
    start = time.perf_counter()
    for file in prepared.files:
        report.files += 1
        report.skipped_duplicates += file.known
        for batch in _batches(file.passages, 256):
            stored = archival.insert(batch, source=file.source)
            report.passages += len(stored)
            report.skipped_duplicates += len(batch) - len(stored)
    report.seconds = prepared.seconds + time.perf_counter() - start
    return report


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
