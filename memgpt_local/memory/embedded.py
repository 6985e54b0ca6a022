"""The embedded store, the default: a home's DuckDB database with an hnswlib index per agent
beside it, for one process at a time (the home's lock)."""

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from .agents import AgentStore
from .archival import (
    ArchivalStorage,
    delete_index_files,
    passage_count,
    passage_hashes,
    stored_passages,
)
from .database import Database
from .embeddings import TextEmbedder
from .recall import RecallStorage


class EmbeddedStore(Database):
    """The home database and archival index files, opened with the home's writer lock."""

    kind = "embedded"
    shared = False  # one process at a time holds the home

    def __init__(self, home: Path, wait: bool = False, timeout_s: float = 60.0):
        super().__init__(home, wait, timeout_s)
        self.index_dir = home / "archival"

    def describe(self) -> str:
        """Where the store is, for messages."""
        return str(self.home)

    def lease(self, name: str, holder: str, wait_s: float = 10.0) -> AbstractContextManager:
        """No lease is needed: the home's lock keeps every other process out."""
        return nullcontext()

    def acquire(self, name: str, holder: str, wait_s: float = 10.0) -> None:
        """No lease is needed (see lease)."""

    def release(self, name: str) -> None:
        """No lease is held (see lease)."""

    def fence(self, name: str) -> None:
        """Nothing to check: no other process can write the home (see lease)."""

    def records(self) -> AgentStore:
        """The agent records."""
        return AgentStore(self.con)

    def recall(self, name: str) -> RecallStorage:
        """An agent's recall storage."""
        return RecallStorage(self.con, name)

    def archival(self, name: str, embedder: TextEmbedder, progress: bool = True
                 ) -> ArchivalStorage:
        """An agent's archival storage (its index opened, caught up or rebuilt)."""
        return ArchivalStorage(self.con, name, self.index_dir, embedder, progress=progress)

    def passage_count(self, name: str) -> int:
        """Passages stored for an agent (no embedding model, no index)."""
        return passage_count(self.con, name)

    def passage_hashes(self, name: str) -> set[str]:
        """The content hashes of an agent's passages."""
        return passage_hashes(self.con, name)

    def stored_passages(self, name: str) -> list[dict]:
        """An agent's passages (content, source, metadata), oldest first."""
        return stored_passages(self.con, name)

    def put_passages(self, name: str, rows: list[tuple]) -> None:
        """Store passages with their embeddings as they are (a copy from another store; the
        index takes them in from their embeddings when it is next opened)."""
        if not rows:  # DuckDB refuses an executemany of nothing
            return
        self.con.executemany(
            "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
            "embedding, created_at, embedded_with) VALUES (nextval('passage_ids'), ?, ?, ?, ?, "
            "?, ?, ?, ?)", [(name, *row) for row in rows])

    def forget_files(self, name: str) -> None:
        """Delete an agent's archival index files (its rows are deleted apart)."""
        delete_index_files(self.index_dir, name)
