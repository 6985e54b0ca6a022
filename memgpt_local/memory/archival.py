"""Archival storage: passages in DuckDB (the source of truth) and an hnswlib index per agent.

Rows are committed to DuckDB first, with their embeddings and the name of the embedder that
made them; the index is updated in memory, on a worker thread while the caller embeds its next
batch (anything that reads the index waits for it), and saved on close() and at most once a
minute while passages are added (saving a 100k-passage index takes a while). On open, the
index is reconciled with DuckDB both ways: ids DuckDB does not hold (a rolled-back step, deleted
rows) are dropped, rows the index lacks are added from their stored embeddings; a missing or
corrupt index is rebuilt from DuckDB. Inside a transaction (stage()), index updates wait for
commit() and are forgotten on rollback(), so the index never holds what DuckDB rolled back.
Rows made by another embedder (a changed model or precision) are embedded again at open, in
committed batches, so an interrupted run resumes where it stopped.
"""

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np

from ..files import replace_durably, sweep_temporaries, temporary_for, write_atomic
from .embeddings import TextEmbedder
from .keywords import KeywordIndex
from .paging import Page, page_bounds
from .sql import SqlConnection, scalar

T = TypeVar("T")

SEARCH_MODES = ("hybrid", "vector", "keyword")
CANDIDATES = 100
RRF_K = 60
SAVE_EVERY_S = 60.0
EF_SEARCH = 200


def content_hash(text: str) -> str:
    """The deduplication key of a passage."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _safe_name(agent: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", agent) + "-" + content_hash(agent)[:8]


def index_files(index_dir: Path, agent: str) -> tuple[Path, Path]:
    """The agent's hnswlib index file and its sidecar."""
    index = index_dir / f"{_safe_name(agent)}.hnsw"
    return index, index.with_suffix(".json")


def delete_index_files(index_dir: Path, agent: str) -> None:
    """Remove the agent's hnswlib index and sidecar (its rows are deleted from DuckDB apart)."""
    for path in index_files(index_dir, agent):
        path.unlink(missing_ok=True)


def passage_count(con: SqlConnection, agent: str) -> int:
    """Passages stored for an agent, read from the database alone (no embedding model, no
    index)."""
    return scalar(con.execute("SELECT count(*) FROM passages WHERE agent = ?", [agent]))


def passage_hashes(con: SqlConnection, agent: str) -> set[str]:
    """The content hashes of an agent's passages (what a new one must not repeat)."""
    return {row[0] for row in con.execute("SELECT content_hash FROM passages WHERE agent = ?",
                                          [agent]).fetchall()}


def stored_passages(con: duckdb.DuckDBPyConnection, agent: str) -> list[dict]:
    """An agent's passages (content, source, metadata), oldest first, without embeddings."""
    rows = con.execute("SELECT content, source, metadata FROM passages WHERE agent = ? "
                       "ORDER BY id", [agent]).fetchall()
    return [{"content": content, "source": source,
             "metadata": json.loads(metadata) if metadata else None}
            for content, source, metadata in rows]


class HybridSearch:
    """Search over an archive's vector and keyword rankings, fused by rank: what both
    archival stores share (each gives _vector_ids, _keyword_ids and _passages)."""

    def search(self, query: str, mode: str = "hybrid", page: int = 1,
               page_size: int = 5) -> Page:
        """Search passages: 'vector', 'keyword' (whole words) or 'hybrid' (rank fusion)."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}; valid: {', '.join(SEARCH_MODES)}")
        offset, limit = page_bounds(page, page_size)
        want = max(CANDIDATES, offset + limit)
        if mode == "vector":
            ranked = self._vector_ids(query, want)
        elif mode == "keyword":
            ranked = self._keyword_ids(query, want)
        else:
            ranked = _fuse(self._vector_ids(query, want), self._keyword_ids(query, want))
        return Page(self._passages(ranked[offset:offset + limit]), page, page_size, len(ranked))

    def _vector_ids(self, query: str, k: int) -> list[int]:
        raise NotImplementedError

    def _keyword_ids(self, query: str, k: int) -> list[int]:
        raise NotImplementedError

    def _passages(self, ids: list[int]) -> list[dict]:
        raise NotImplementedError


class ArchivalStorage(HybridSearch):
    """One agent's archival memory."""

    def __init__(self, con: duckdb.DuckDBPyConnection, agent: str, index_dir: Path,
                 embedder: TextEmbedder, progress: bool = True) -> None:
        self.con = con
        self.agent = agent
        self.embedder = embedder
        self.progress = progress
        index_dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(index_dir)  # left by a process that crashed while saving
        self.index_path, self.meta_path = index_files(index_dir, agent)
        self._index: Any = None  # the hnswlib index
        self._indexer: ThreadPoolExecutor | None = None  # started by the first insert
        self._indexing: Future | None = None  # the last batch's index update, if still running
        self.rebuilt = False
        self.dirty = False
        self.saved_at = time.monotonic()
        self._keywords: KeywordIndex | None = None  # built on the first keyword search
        self._staged: list[Callable[[], None]] | None = None  # index updates held for commit
        if self._reembed_stale_rows():
            self._rebuild()
        else:
            self._open_index()
        self._live = self.count()  # the index's live items (k is clamped to it), kept in step

    @property
    def index(self) -> Any:
        """The hnswlib index, once the pending update (if any) has finished."""
        self._index_ready()
        return self._index

    def _index_ready(self) -> None:
        """Wait for the background index update; its error, if any, is raised here."""
        if self._indexing is not None:
            pending, self._indexing = self._indexing, None
            pending.result()

    def count(self) -> int:
        """Number of passages stored for the agent."""
        return self._fingerprint()["count"]

    def _fingerprint(self, up_to: int | None = None) -> dict:
        """Count, largest id and id sum of the agent's passages (those up to an id)."""
        limit = 2**62 if up_to is None else up_to
        count, top, total = self.con.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(id), 0) FROM passages "
            "WHERE agent = ? AND id <= ?", [self.agent, limit]).fetchall()[0]
        return {"count": int(count), "max_id": int(top), "sum_id": int(total),
                "dim": self.embedder.dim}

    def _open_index(self) -> None:
        """Load the saved index and reconcile it with DuckDB's rows; rebuild if unreadable."""
        import hnswlib

        try:
            saved = json.loads(self.meta_path.read_text())
            if saved["dim"] != self.embedder.dim:
                raise ValueError("index made by another embedder")
            index = hnswlib.Index(space="cosine", dim=self.embedder.dim)
            index.load_index(str(self.index_path), max_elements=max(1, saved["count"]))
            self._index = index
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            self._rebuild()
            return
        self._reconcile()

    def _reconcile(self) -> None:
        """Make the index hold exactly DuckDB's rows: drop ids DuckDB does not have (a step
        rolled back, rows deleted) and add the rows the index lacks from their embeddings."""
        stored = {row[0] for row in self.con.execute(
            "SELECT id FROM passages WHERE agent = ?", [self.agent]).fetchall()}
        labels = set(self._index.get_ids_list())
        for ghost in labels - stored:
            try:
                self._index.mark_deleted(ghost)
            except RuntimeError:  # deleted already
                continue
            self.dirty = True
        missing = stored - labels
        if missing:
            self._add_stored_rows(after_id=min(missing) - 1, only=missing)

    def _new_index(self, capacity: int) -> Any:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=self.embedder.dim)
        index.init_index(max_elements=max(1024, capacity), ef_construction=200, M=16)
        return index

    def _rebuild(self) -> None:
        self._index = self._new_index(self.count() * 2)
        self._add_stored_rows(after_id=0, label="Rebuilding archival index")
        self._save()
        self.rebuilt = True

    def _reembed_stale_rows(self) -> int:
        """Embed again the rows another embedder made; return how many there were."""
        import pyarrow as pa

        rows = self.con.execute(
            "SELECT id, content FROM passages WHERE agent = ? AND embedded_with IS DISTINCT "
            "FROM ? ORDER BY id", [self.agent, self.embedder.name]).fetchall()
        if not rows:
            return 0
        label = f"Embedding passages again with {self.embedder.name}"
        for start in _progress(range(0, len(rows), 256), len(rows), label, 256, self.progress):
            batch = rows[start:start + 256]
            vectors = self.embedder.embed([content for _, content in batch])
            self.con.register("new_embeddings", pa.table({
                "id": [passage_id for passage_id, _ in batch],
                "embedding": _vector_column(vectors)}))
            try:
                self.con.execute("UPDATE passages SET embedding = n.embedding, embedded_with = ? "
                                 "FROM new_embeddings n WHERE passages.id = n.id",
                                 [self.embedder.name])
            finally:
                self.con.unregister("new_embeddings")
        return len(rows)

    def _add_stored_rows(self, after_id: int, label: str = "Catching up archival index",
                         only: set[int] | None = None) -> None:
        """Add rows with larger ids (those in `only`, if given) from their stored embeddings
        (no embedding model run)."""
        total = self.count() - self._fingerprint(up_to=after_id)["count"]
        for batch in self._stored_rows("embedding", after_id, total, label):
            rows = [row for row in batch if only is None or row[0] in only]
            if rows:
                self._add_to_index([row[0] for row in rows],
                                   np.array([row[1] for row in rows], dtype=np.float32))

    def _stored_rows(self, column: str, after_id: int, total: int, label: str
                     ) -> Iterator[list[tuple]]:
        """Batches of (id, column) rows of the agent's passages past an id, with progress."""
        result = self.con.execute(f"SELECT id, {column} FROM passages WHERE agent = ? AND "
                                  "id > ? ORDER BY id", [self.agent, after_id])
        batches = iter(lambda: result.fetchmany(4096), [])
        yield from _progress(batches, total, label, 4096, self.progress and total >= 1000)

    def _keyword_index(self) -> KeywordIndex:
        """The agent's keyword index, built from DuckDB on first use."""
        if self._keywords is None:
            keywords = KeywordIndex()
            for batch in self._stored_rows("content", 0, self.count(), "Indexing words"):
                keywords.add(batch)
            self._keywords = keywords
        return self._keywords

    def _save(self) -> None:
        self._index_ready()
        temporary = temporary_for(self.index_path)
        self._index.save_index(str(temporary))
        with temporary.open("rb+") as written:
            os.fsync(written.fileno())
        replace_durably(temporary, self.index_path)
        write_atomic(self.meta_path, json.dumps(self._fingerprint()).encode())
        self.dirty = False
        self.saved_at = time.monotonic()

    def close(self) -> None:
        """Save the index if passages were added since it was last saved."""
        self._index_ready()
        if self.dirty:
            self._save()
        if self._indexer is not None:
            self._indexer.shutdown()
            self._indexer = None

    def insert(self, texts: list[str], source: str | None = None,
               metadata: dict | None = None) -> list[int]:
        """Store new passages (duplicates of stored ones are skipped); return the new ids."""
        fresh = self._not_yet_stored(texts)
        if not fresh:
            return []
        vectors = self.embedder.embed(fresh)
        ids = self._insert_rows(fresh, vectors, source, metadata)
        self._after_commit(lambda: self._index_rows(ids, vectors, fresh))
        return ids

    def _after_commit(self, update: Callable[[], None]) -> None:
        """Run an index update now, or at commit() inside a transaction."""
        if self._staged is None:
            update()
        else:
            self._staged.append(update)

    def stage(self) -> None:
        """Hold back index updates until commit() (the rows are in an open transaction)."""
        self._staged = []

    def commit(self) -> None:
        """The transaction committed: index the rows it inserted."""
        staged, self._staged = self._staged or [], None
        for update in staged:
            update()

    def rollback(self) -> None:
        """The transaction rolled back: forget the rows it inserted."""
        self._staged = None

    def _index_rows(self, ids: list[int], vectors: np.ndarray, texts: list[str]) -> None:
        """Add committed rows to the vector and word indexes (the vectors in the background)."""
        self._index_ready()  # one update at a time; this one runs while the next batch embeds
        if self._indexer is None:
            self._indexer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archival-index")
        self._indexing = self._indexer.submit(self._add_to_index, ids, vectors)
        self._live += len(ids)
        if self._keywords is not None:
            self._keywords.add(zip(ids, texts, strict=True))
        if time.monotonic() - self.saved_at > SAVE_EVERY_S:
            self._save()  # DuckDB holds every row; the index is only saved now and then

    def _not_yet_stored(self, texts: list[str]) -> list[str]:
        unique = list(dict.fromkeys(t for t in texts if t.strip()))
        hashes = [content_hash(t) for t in unique]
        known = {row[0] for row in self.con.execute(
            "SELECT content_hash FROM passages WHERE agent = ? AND content_hash IN "
            "(SELECT unnest(?))", [self.agent, hashes]).fetchall()}
        return [t for t, h in zip(unique, hashes, strict=True) if h not in known]

    def _insert_rows(self, texts: list[str], vectors: np.ndarray, source: str | None,
                     metadata: dict | None) -> list[int]:
        import pyarrow as pa

        table = pa.table({
            "content": texts, "content_hash": [content_hash(t) for t in texts],
            "embedding": _vector_column(vectors)})
        self.con.register("incoming_passages", table)
        try:
            rows = self.con.execute(
                "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
                "embedding, created_at, embedded_with) SELECT nextval('passage_ids'), ?, "
                "content, content_hash, ?, ?, embedding, ?, ? FROM incoming_passages RETURNING id",
                [self.agent, source, json.dumps(metadata) if metadata else None,
                 datetime.now(UTC), self.embedder.name]).fetchall()
        finally:
            self.con.unregister("incoming_passages")
        return [row[0] for row in rows]

    def _add_to_index(self, ids: list[int], vectors: np.ndarray) -> None:
        needed = self._index.get_current_count() + len(ids)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, 2 * self._index.get_max_elements()))
        self._index.add_items(vectors, np.array(ids, dtype=np.int64))
        self.dirty = True

    def delete(self, ids: list[int]) -> int:
        """Delete passages by id; return how many were deleted."""
        deleted = self.con.execute(
            "DELETE FROM passages WHERE agent = ? AND id IN (SELECT unnest(?)) RETURNING id",
            [self.agent, ids]).fetchall()
        self._after_commit(lambda: self._unindex_rows([row[0] for row in deleted]))
        return len(deleted)

    def _unindex_rows(self, ids: list[int]) -> None:
        """Drop deleted rows from the vector and word indexes, and save the index."""
        for passage_id in ids:
            self.index.mark_deleted(passage_id)
        self._live -= len(ids)
        if self._keywords is not None:
            self._keywords.remove(ids)
        self._save()

    def _vector_ids(self, query: str, k: int) -> list[int]:
        if self._live == 0 or not query.strip():
            return []
        self.index.set_ef(max(EF_SEARCH, k))  # not saved with the index; small ef loses outliers
        labels, _ = self._index.knn_query(self.embedder.embed_query(query), k=min(k, self._live))
        return [int(label) for label in labels[0]]

    def _keyword_ids(self, query: str, k: int) -> list[int]:
        """Passages holding every word of the query, the exact phrase first."""
        return self._keyword_index().search(query, k)

    def _passages(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        # a literal id list lets DuckDB use the primary-key index (a parameter list scans)
        id_list = ", ".join(str(int(i)) for i in ids)
        rows = self.con.execute("SELECT id, agent, content, source, created_at FROM passages "
                                f"WHERE id IN ({id_list})").fetchall()
        by_id = {r[0]: {"id": r[0], "content": r[2], "source": r[3], "created_at": r[4]}
                 for r in rows if r[1] == self.agent}
        return [by_id[i] for i in ids if i in by_id]


def _vector_column(vectors: np.ndarray) -> Any:
    """Embeddings as an Arrow list column, the type of passages.embedding."""
    import pyarrow as pa

    return pa.array(list(vectors), pa.list_(pa.float32()))


def _progress(items: Iterable[T], total: int, label: str, step: int, show: bool
              ) -> Iterator[T]:
    """The items, with a progress bar counting `step` passages per item when shown."""
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="passage", disable=not show) as bar:
        for item in items:
            yield item
            bar.update(min(step, total - bar.n))


def _fuse(*rankings: list[int]) -> list[int]:
    """Reciprocal rank fusion of several ranked id lists."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, passage_id in enumerate(ranking):
            scores[passage_id] = scores.get(passage_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores, key=lambda i: -scores[i])
