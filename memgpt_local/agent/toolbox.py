"""What the agent's functions may touch (functions.FunctionContext): its core memory, its
recall and archival stores, the user's outbox and the heartbeat pause - and nothing else of
the agent."""

from collections.abc import Callable
from datetime import datetime, timedelta

from ..memory.agents import AgentRecord
from ..memory.core import CoreMemory
from ..memory.messages import Message
from ..memory.paging import Page
from ..memory.stores import AgentStores
from .settings import AgentSettings, AgentState


class Toolbox:
    """The function context of one agent, built by it from its record, settings, state and
    stores (the record's core memory is read through the record: a rollback replaces it)."""

    def __init__(self, record: AgentRecord, settings: AgentSettings, state: AgentState,
                 stores: AgentStores, clock: Callable[[], datetime]):
        self.record = record
        self.settings = settings
        self.state = state
        self.stores = stores
        self.clock = clock
        self.outbox: list[str] = []  # the replies of the turn under way

    @property
    def core(self) -> CoreMemory:
        """The agent's core memory."""
        return self.record.core_memory

    @property
    def page_size(self) -> int:
        """Search results per page."""
        return self.settings.page_size

    def recall_search(self, query: str, page: int) -> Page:
        """Text search over all of the agent's messages."""
        return self.stores.recall.search_text(query, page, self.page_size)

    def recall_next(self, messages: list[Message]) -> dict[int, Message]:
        """The message stored after each given one, by the given one's id."""
        return self.stores.recall.next_messages(messages)

    def recall_search_date(self, start: str, end: str, page: int) -> Page:
        """Date search over all of the agent's messages."""
        return self.stores.recall.search_date(start, end, page, self.page_size)

    def archival_insert(self, content: str) -> int:
        """Store one passage; return how many were new."""
        return len(self.stores.archival.insert([content], source="agent"))

    def archival_search(self, query: str, page: int) -> Page:
        """Hybrid search over archival storage."""
        return self.stores.archival.search(query, page=page, page_size=self.page_size)

    def send_to_user(self, message: str) -> None:
        """Queue a message for the user."""
        self.outbox.append(message)

    def pause_heartbeats(self, minutes: int) -> None:
        """Hold timed heartbeats back for a while."""
        until = self.clock() + timedelta(minutes=minutes)
        self.state.heartbeats_paused_until = until.isoformat()
