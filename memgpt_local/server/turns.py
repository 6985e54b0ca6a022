"""Sending a message to an agent on the worker: whole, or as a stream of events."""

import queue
from collections.abc import Iterator
from typing import Any

from ..agent.loop import Turn
from .host import AgentHost

Event = tuple[str, Any]  # ("memory", text), ("reply", text), ("withdraw", n), ("step",
# StepReport), ("done", Turn)


def send(host: AgentHost, name: str, text: str) -> Turn:
    """Send a message and wait for every step of the turn."""
    return host.run(lambda: host.use(name, lambda agent: agent.send(text)), name, turn=True)


def stream(host: AgentHost, name: str, text: str) -> Iterator[Event]:
    """Send a message; the turn's events as they happen, ending with ("done", turn). An
    error before the first event (an unknown agent, a message too long) is raised here,
    before any response is sent; a later one ends the stream as ("error", exc)."""
    events: queue.Queue[Event] = queue.Queue()

    def job() -> None:
        try:
            turn = host.use(name, lambda agent: agent.send(
                text, lambda *event: events.put(event)))
            events.put(("done", turn))
        except Exception as exc:  # noqa: BLE001 - passed on to the client
            events.put(("error", exc))

    host.worker.wait_started(host.worker.submit(job, name, turn=True))
    first = events.get()
    if first[0] == "error":
        raise first[1]
    return _events(first, events)


def _events(first: Event, events: "queue.Queue[Event]") -> Iterator[Event]:
    event = first
    while True:
        yield event
        if event[0] in ("done", "error"):
            return
        event = events.get()
