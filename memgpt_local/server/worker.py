"""One worker thread runs every engine job, in order.

llama.cpp contexts and the DuckDB connection are not thread-safe, so every request that touches
the engine becomes a job on one queue, served first come, first served. The queue is bounded
(a full queue is refused at once) and no job waits to start longer than a timeout (it leaves
the queue then, and never runs); a job that has started always runs to its end, so a turn is
never cut half way by the server.
"""

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import MemgptLocalError

T = TypeVar("T")


class ServerBusyError(MemgptLocalError):
    """The queue is full, or a job waited too long to start: try again later."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class Ticket:
    """A queued job, its result to come, and the moment it started."""

    job: Callable[[], Any] | None  # None: the worker ends
    future: Future = field(default_factory=Future)
    started: threading.Event = field(default_factory=threading.Event)


class EngineWorker:
    """A thread that runs submitted jobs one at a time, in the order they came."""

    def __init__(self, max_waiting: int = 16, start_timeout_s: float = 300.0):
        self.max_waiting = max_waiting
        self.start_timeout_s = start_timeout_s
        self._waiting: deque[Ticket] = deque()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="memgpt-engine", daemon=True)
        self._thread.start()

    def waiting(self) -> int:
        """Jobs queued and not started yet."""
        return len(self._waiting)

    def submit(self, job: Callable[[], T]) -> Ticket:
        """Queue a job; ServerBusyError when max_waiting jobs wait already."""
        with self._changed:
            if len(self._waiting) >= self.max_waiting:
                raise ServerBusyError(f"The server is busy: {self.max_waiting} requests are "
                                      "waiting already. Try again shortly.", 5)
            return self._enqueue(Ticket(job))

    def _enqueue(self, ticket: Ticket) -> Ticket:
        self._waiting.append(ticket)
        self._changed.notify()
        return ticket

    def wait_started(self, ticket: Ticket) -> None:
        """Wait until a job starts; one still waiting after the timeout leaves the queue, never
        to run, with ServerBusyError."""
        if ticket.started.wait(self.start_timeout_s):
            return
        with self._changed:
            if ticket.started.is_set():
                return
            self._waiting.remove(ticket)
        ticket.future.cancel()
        raise ServerBusyError(f"The request waited {self.start_timeout_s:g} s for the model "
                              "without starting. Try again later.", 30)

    def run(self, job: Callable[[], T]) -> T:
        """Queue a job, wait for it to start (bounded) and to finish; its result or error."""
        ticket = self.submit(job)
        self.wait_started(ticket)
        return ticket.future.result()

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting)
                ticket = self._waiting.popleft()
                ticket.future.set_running_or_notify_cancel()
                ticket.started.set()
            if ticket.job is None:
                return
            try:
                ticket.future.set_result(ticket.job())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
                ticket.future.set_exception(exc)

    def stop(self, job: Callable[[], None] | None = None) -> None:
        """Run a last job (closing the engine) after those queued, then end the thread."""
        with self._changed:
            if job is not None:
                self._enqueue(Ticket(job))
            self._enqueue(Ticket(None))
        self._thread.join()
