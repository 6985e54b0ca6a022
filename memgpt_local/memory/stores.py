"""One agent's stores, as the engine builds them and hands them to the agent: its record store,
recall storage and archival storage (opened on first use: loading the embedding model takes
seconds), all in one store (the embedded one, or PostgreSQL) whose transactions cover a whole
step."""

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from .agents import AgentRecord, AgentStore
from .messages import Message
from .paging import Page
from .sql import SqlConnection


def redact_url(url: str) -> str:
    """A store URL without its password, for messages and reports."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class RecallStore(Protocol):
    """One agent's messages, in either store (recall.py, postgres/recall.py)."""

    def count(self) -> int: ...
    def next_seq(self) -> int: ...
    def append(self, message: Message) -> Message: ...
    def bulk_import(self, messages: list[Message]) -> int: ...
    def get(self, ids: list[int]) -> list[Message]: ...
    def all(self) -> list[Message]: ...
    def ids_by_seq(self) -> dict[int, int]: ...
    def rebuild_text_index(self) -> None: ...
    def search_text(self, query: str, page: int = 1, page_size: int = 5) -> Page: ...
    def next_messages(self, messages: list[Message]) -> dict[int, Message]: ...
    def search_date(self, start: str, end: str, page: int = 1, page_size: int = 5
                    ) -> Page: ...


class ArchivalStore(Protocol):
    """One agent's passages with their index, in either store (archival.py,
    postgres/archival.py); inserts reach the index only once committed."""

    def count(self) -> int: ...
    def insert(self, texts: list[str], source: str | None = None,
               metadata: dict | None = None) -> list[int]: ...
    def search(self, query: str, mode: str = "hybrid", page: int = 1,
               page_size: int = 5) -> Page: ...
    def delete(self, ids: list[int]) -> int: ...
    def stage(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def close(self) -> None: ...


class Store(Protocol):
    """Where agents, recall and archival are kept: the embedded store (embedded.py) or
    PostgreSQL (postgres/); the engine chooses."""

    kind: str
    shared: bool  # several processes at once (their turns take leases)
    in_transaction: bool

    @property
    def con(self) -> SqlConnection:
        """The connection (the store copy reads and writes rows through it)."""

    def describe(self) -> str: ...
    def lease(self, name: str, holder: str, wait_s: float = 10.0
              ) -> AbstractContextManager: ...
    def acquire(self, name: str, holder: str, wait_s: float = 10.0) -> None: ...
    def release(self, name: str) -> None: ...
    def fence(self, name: str) -> None: ...
    def transaction(self) -> AbstractContextManager: ...
    def records(self) -> AgentStore: ...
    def recall(self, name: str) -> RecallStore: ...
    def archival(self, name: str, embedder: Any, progress: bool = True) -> ArchivalStore: ...
    def passage_count(self, name: str) -> int: ...
    def passage_hashes(self, name: str) -> set[str]: ...
    def stored_passages(self, name: str) -> list[dict]: ...
    def put_passages(self, name: str, rows: list[tuple]) -> None: ...
    def forget_files(self, name: str) -> None: ...
    def close(self) -> None: ...


class AgentStores:
    """The record store, recall and archival storage of one agent."""

    def __init__(self, db: Store, name: str, records: AgentStore, recall: RecallStore,
                 open_archival: Callable[[], ArchivalStore]):
        self.db = db
        self.name = name
        self.records = records
        self.recall = recall
        self._open_archival = open_archival
        self._archival: ArchivalStore | None = None

    @property
    def archival(self) -> ArchivalStore:
        """Archival storage, opened on first use (see open_archival)."""
        return self.open_archival()

    def open_archival(self) -> ArchivalStore:
        """Open archival storage if it is not open yet, never inside a transaction: opening
        may embed rows again or rebuild the index, in batches that must commit on their own."""
        if self._archival is None:
            if self.db.in_transaction:
                raise RuntimeError("archival storage must be opened before the transaction")
            self._archival = self._open_archival()
        return self._archival

    def archival_count(self) -> int:
        """Passages in archival storage, without loading the embedding model."""
        if self._archival is not None:
            return self._archival.count()
        return self.db.passage_count(self.name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction over every store: all of a block is stored, or none; the archival
        index follows (it learns of the block's passages only once they are committed)."""
        archival = self._archival
        if archival is not None:
            archival.stage()
        try:
            with self.db.transaction():
                self.db.fence(self.name)  # the lease still held, until the commit
                yield
        except BaseException:
            if archival is not None:
                archival.rollback()
            raise
        if archival is not None:
            archival.commit()

    def save(self, record: AgentRecord) -> None:
        """Store the agent's record."""
        self.records.save(record)

    def close(self) -> None:
        """Save what needs saving (the archival index) before the database closes."""
        if self._archival is not None:
            self._archival.close()
            self._archival = None
