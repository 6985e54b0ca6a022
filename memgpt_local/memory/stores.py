"""One agent's stores, as the engine builds them and hands them to the agent: its record store,
recall storage and archival storage (opened on first use: loading the embedding model takes
seconds), all in one home database whose transactions cover a whole step."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .agents import AgentRecord, AgentStore
from .archival import ArchivalStorage, passage_count
from .database import Database
from .recall import RecallStorage


class AgentStores:
    """The record store, recall and archival storage of one agent."""

    def __init__(self, db: Database, name: str, records: AgentStore, recall: RecallStorage,
                 open_archival: Callable[[], ArchivalStorage]):
        self.db = db
        self.name = name
        self.records = records
        self.recall = recall
        self._open_archival = open_archival
        self._archival: ArchivalStorage | None = None

    @property
    def archival(self) -> ArchivalStorage:
        """Archival storage, opened on first use (see open_archival)."""
        return self.open_archival()

    def open_archival(self) -> ArchivalStorage:
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
        return passage_count(self.db.con, self.name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction over every store: all of a block is stored, or none; the archival
        index follows (it learns of the block's passages only once they are committed)."""
        archival = self._archival
        if archival is not None:
            archival.stage()
        try:
            with self.db.transaction():
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
