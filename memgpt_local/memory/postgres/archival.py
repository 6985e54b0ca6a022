"""Archival storage on PostgreSQL: passages with their embeddings in pgvector, an HNSW index
(cosine) per embedding size for meaning and a stored 'simple' tsvector for whole words, fused
by the same reciprocal rank fusion as the embedded store. The rows are the index, so what a
rolled-back step inserted was never searchable."""

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..archival import HybridSearch, content_hash
from ..embeddings import TextEmbedder

EF_SEARCH = 200  # pgvector's hnsw.ef_search for a query (its default, 40, loses outliers)
HNSW_SEARCH_LIMIT = 1000  # the largest ef_search pgvector takes


class PostgresArchival(HybridSearch):
    """One agent's archival memory on PostgreSQL: pgvector's HNSW index (cosine) for meaning,
    full-text search for whole words, fused by rank."""

    def __init__(self, con: Any, agent: str, embedder: TextEmbedder, progress: bool = True
                 ) -> None:
        self.con = con
        self.agent = agent
        self.embedder = embedder
        self.progress = progress
        self.rebuilt = False
        self.dim = embedder.dim
        self._ensure_index()
        self._reembed_stale_rows()

    def _ensure_index(self) -> None:
        """An HNSW index for vectors of this embedder's size (one per size in use)."""
        self.con.execute(
            f"CREATE INDEX IF NOT EXISTS passages_embedding_{self.dim} ON passages USING hnsw "
            f"((embedding::vector({self.dim})) vector_cosine_ops) "
            f"WHERE vector_dims(embedding) = {self.dim}")

    def _reembed_stale_rows(self) -> int:
        """Embed again the rows another embedder made, in committed batches."""
        rows = self.con.execute(
            "SELECT id, content FROM passages WHERE agent = ? AND embedded_with IS DISTINCT "
            "FROM ? ORDER BY id", [self.agent, self.embedder.name]).fetchall()
        for start in range(0, len(rows), 256):
            batch = rows[start:start + 256]
            vectors = self.embedder.embed([content for _, content in batch])
            with self.con.raw.cursor() as cursor:
                cursor.executemany(
                    "UPDATE passages SET embedding = %s::vector, embedded_with = %s "
                    "WHERE id = %s", [(vector_text(v), self.embedder.name, passage_id)
                                      for (passage_id, _), v in zip(batch, vectors,
                                                                    strict=True)])
        self.rebuilt = bool(rows)
        return len(rows)

    def count(self) -> int:
        """Number of passages stored for the agent."""
        return self.con.execute("SELECT count(*) FROM passages WHERE agent = ?",
                                [self.agent]).fetchone()[0]

    def insert(self, texts: list[str], source: str | None = None,
               metadata: dict | None = None) -> list[int]:
        """Store new passages (duplicates of stored ones are skipped); return the new ids."""
        unique = list(dict.fromkeys(t for t in texts if t.strip()))
        hashes = [content_hash(t) for t in unique]
        known = {row[0] for row in self.con.execute(
            "SELECT content_hash FROM passages WHERE agent = ? AND content_hash = ANY(?)",
            [self.agent, hashes]).fetchall()}
        fresh = [t for t, h in zip(unique, hashes, strict=True) if h not in known]
        if not fresh:
            return []
        vectors = self.embedder.embed(fresh)
        now, meta = datetime.now(UTC), json.dumps(metadata) if metadata else None
        rows = self.con.execute(
            "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
            "embedding, created_at, embedded_with) SELECT nextval('passage_ids'), ?, c, h, ?, "
            "?::json, e::vector, ?, ? FROM unnest(?::text[], ?::text[], ?::text[]) "
            "WITH ORDINALITY AS t(c, h, e, n) ORDER BY n RETURNING id",
            [self.agent, source, meta, now, self.embedder.name, fresh,
             [content_hash(t) for t in fresh], [vector_text(v) for v in vectors]]).fetchall()
        return [row[0] for row in rows]

    def delete(self, ids: list[int]) -> int:
        """Delete passages by id; return how many were deleted."""
        return len(self.con.execute(
            "DELETE FROM passages WHERE agent = ? AND id = ANY(?) RETURNING id",
            [self.agent, list(ids)]).fetchall())

    def _vector_ids(self, query: str, k: int) -> list[int]:
        """The k nearest passages: through the HNSW index, which holds every agent's and is
        filtered after its scan (pgvector 0.6), so where that leaves fewer than k of this
        agent's, by an exact scan of this agent's rows alone."""
        if not query.strip():
            return []
        vector = vector_text(self.embedder.embed_query(query))
        with self.con.raw.transaction():  # SET LOCAL lasts for this transaction only
            ef_search = min(HNSW_SEARCH_LIMIT, max(EF_SEARCH, k))
            self.con.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
            rows = self.con.execute(
                f"SELECT id FROM passages WHERE agent = ? AND vector_dims(embedding) = "
                f"{self.dim} ORDER BY embedding::vector({self.dim}) <=> ?::vector({self.dim}) "
                "LIMIT ?", [self.agent, vector, k]).fetchall()
        if len(rows) < k and len(rows) < self.count():
            rows = self.con.execute(  # no cast: the index cannot serve it, the agent's can
                "SELECT id FROM passages WHERE agent = ? ORDER BY embedding <=> ?::vector "
                "LIMIT ?", [self.agent, vector, k]).fetchall()
        return [row[0] for row in rows]

    def _keyword_ids(self, query: str, k: int) -> list[int]:
        """Passages holding every word of the query, the exact phrase first."""
        rows = self.con.execute(
            "SELECT id FROM passages, plainto_tsquery('simple', ?) q, "
            "phraseto_tsquery('simple', ?) p WHERE agent = ? AND numnode(q) > 0 "
            "AND words @@ q ORDER BY words @@ p DESC, id LIMIT ?",
            [query, query, self.agent, k]).fetchall()
        return [row[0] for row in rows]

    def _passages(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        rows = self.con.execute("SELECT id, content, source, created_at FROM passages "
                                "WHERE agent = ? AND id = ANY(?)", [self.agent, ids]).fetchall()
        by_id = {r[0]: {"id": r[0], "content": r[1], "source": r[2], "created_at": r[3]}
                 for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def stage(self) -> None:
        """Nothing to hold back: the rows are the index."""

    def commit(self) -> None:
        """Nothing to do after a commit."""

    def rollback(self) -> None:
        """Nothing to forget after a rollback."""

    def close(self) -> None:
        """Nothing to save."""


def vector_text(values: Any) -> str:
    """A vector in pgvector's text form, each float32 value exactly."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(values, np.float32).ravel()) + "]"
