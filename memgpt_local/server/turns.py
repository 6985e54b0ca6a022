"""Sending a message to an agent on the worker: whole, or as a stream of events."""

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..agent.turn import AgentEvent, Event, Turn
from .host import AgentHost


@dataclass(frozen=True)
class TurnDone(Event):
    """The turn finished: every step and reply."""

    name: ClassVar[str] = "done"
    turn: Turn

    def as_dict(self) -> dict:
        """The finished turn as JSON."""
        return self.turn.as_dict()


@dataclass(frozen=True)
class TurnFailed(Event):
    """The turn failed after its stream began: the error ends the stream."""

    name: ClassVar[str] = "error"
    error: Exception

    def as_dict(self) -> dict:
        """The error in the API's shape."""
        return {"error": {"message": str(self.error), "type": type(self.error).__name__}}


StreamEvent = AgentEvent | TurnDone | TurnFailed


def send(host: AgentHost, name: str, text: str) -> Turn:
    """Send a message and wait for every step of the turn."""
    return host.run(lambda: host.use(name, lambda agent: agent.send(text)), name, turn=True)


def stream(host: AgentHost, name: str, text: str) -> Iterator[StreamEvent]:
    """Send a message; the turn's events as they happen, ending with TurnDone. An error
    before the first event (an unknown agent, a message too long) is raised here, before any
    response is sent; a later one ends the stream as TurnFailed."""
    events: queue.Queue[StreamEvent] = queue.Queue()

    def job() -> None:
        try:
            turn = host.use(name, lambda agent: agent.send(text, events.put))
            events.put(TurnDone(turn))
        except Exception as exc:  # noqa: BLE001 - passed on to the client
            events.put(TurnFailed(exc))

    host.worker.wait_started(host.worker.submit(job, name, turn=True))
    first = events.get()
    if isinstance(first, TurnFailed):
        raise first.error
    return _events(first, events)


def _events(first: StreamEvent, events: "queue.Queue[StreamEvent]") -> Iterator[StreamEvent]:
    event: StreamEvent = first
    while True:
        yield event
        if isinstance(event, TurnDone | TurnFailed):
            return
        event = events.get()
