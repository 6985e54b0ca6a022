"""Worker threads that run the engine's jobs: one at a time on the engine, several turns at once
only where their model runs elsewhere.

llama.cpp contexts and the DuckDB connection are not thread-safe, so every job runs holding the
one engine lock: the stores, the embedder and an in-process model are only ever used by one
thread at a time, and DuckDB sees one writer. A job lets go of the lock in one place only - a
model call to an inference server (`unlocked()`), made outside any transaction - so up to
max_turns turns of different agents wait on their servers at the same time, while their store
work still takes turns; one thread more than that serves the other jobs (a list, a search)
meanwhile. Jobs carry a key (the agent's name): two jobs with one key never run at once, so an
agent never has two turns in flight, nor a turn and a delete.

The queue is bounded (a full queue is refused at once) and no job waits to start longer than a
timeout (it leaves the queue then, and never runs); a job that has started always runs to its
end, so a turn is never cut half way by the server. Jobs start in the order they came, except
that one whose key is busy lets later ones pass.
"""

import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
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
    """A queued job, its key, its result to come, and the moment it started."""

    job: Callable[[], Any] | None  # None: the thread that takes it ends
    key: str | None = None  # jobs with one key run one at a time; None: no such rule
    turn: bool = False  # a turn counts towards max_turns
    cancelled: bool = False  # it waited too long to start: it never runs
    future: Future = field(default_factory=Future)
    started: threading.Event = field(default_factory=threading.Event)


class EngineWorker:
    """Threads that run submitted jobs holding the engine lock, first come first served, at
    most max_turns turns at once."""

    def __init__(self, max_waiting: int = 16, start_timeout_s: float = 300.0,
                 max_turns: int = 1):
        self.max_waiting = max_waiting
        self.start_timeout_s = start_timeout_s
        self.max_turns = max(1, max_turns)
        self.engine_lock = threading.Lock()
        self._waiting: deque[Ticket] = deque()
        self._taken: list[Ticket] = []  # by a thread: started, or waiting for the engine
        self._changed = threading.Condition()
        self._threads = [threading.Thread(target=self._serve, name=f"memgpt-engine-{n}",
                                          daemon=True) for n in range(self.max_turns + 1)]
        for thread in self._threads:
            thread.start()

    def waiting(self) -> int:
        """Jobs queued or taken and not started yet."""
        with self._changed:  # a re-entrant lock: submit() holds it already
            return len(self._waiting) + sum(not (t.started.is_set() or t.cancelled)
                                            for t in self._taken)

    def running(self) -> int:
        """Turns started and not finished."""
        with self._changed:
            return sum(t.turn and t.started.is_set() for t in self._taken)

    def busy_keys(self) -> set[str]:
        """The keys of the jobs taken by a thread now (and not cancelled)."""
        with self._changed:
            return {t.key for t in self._taken if t.key is not None and not t.cancelled}

    def submit(self, job: Callable[[], T], key: str | None = None, turn: bool = False
               ) -> Ticket:
        """Queue a job; ServerBusyError when max_waiting jobs wait already."""
        with self._changed:
            if self.waiting() >= self.max_waiting:
                raise ServerBusyError(f"The server is busy: {self.max_waiting} requests are "
                                      "waiting already. Try again shortly.", 5)
            return self._enqueue(Ticket(job, key, turn))

    def _enqueue(self, ticket: Ticket) -> Ticket:
        self._waiting.append(ticket)
        self._changed.notify_all()
        return ticket

    def wait_started(self, ticket: Ticket) -> None:
        """Wait until a job starts; one still waiting after the timeout is cancelled, never
        to run, with ServerBusyError."""
        if ticket.started.wait(self.start_timeout_s):
            return
        with self._changed:
            if ticket.started.is_set():
                return
            ticket.cancelled = True
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._changed.notify_all()
        ticket.future.cancel()
        raise ServerBusyError(f"The request waited {self.start_timeout_s:g} s for the model "
                              "without starting. Try again later.", 30)

    def run(self, job: Callable[[], T], key: str | None = None, turn: bool = False) -> T:
        """Queue a job, wait for it to start (bounded) and to finish; its result or error."""
        ticket = self.submit(job, key, turn)
        self.wait_started(ticket)
        return ticket.future.result()

    @contextmanager
    def unlocked(self) -> Iterator[None]:
        """Let other jobs use the engine meanwhile (a job's thread only, around a remote model
        call with no transaction open)."""
        self.engine_lock.release()
        try:
            yield
        finally:
            self.engine_lock.acquire()

    def _next(self) -> Ticket | None:
        """The first waiting ticket whose key is free, and that is not a turn when max_turns
        turns are in flight already (condition held)."""
        busy = self.busy_keys()
        turns_full = sum(t.turn and not t.cancelled for t in self._taken) >= self.max_turns
        return next((t for t in self._waiting
                     if (t.key is None or t.key not in busy) and not (t.turn and turns_full)),
                    None)

    def _take(self) -> Ticket:
        with self._changed:
            while (ticket := self._next()) is None:
                self._changed.wait()
            self._waiting.remove(ticket)
            if ticket.job is not None:
                self._taken.append(ticket)
            return ticket

    def _start(self, ticket: Ticket) -> bool:
        """Mark a taken job started (engine lock held); False if it timed out meanwhile."""
        with self._changed:
            if ticket.cancelled:
                return False
            ticket.future.set_running_or_notify_cancel()
            ticket.started.set()
            return True

    def _serve(self) -> None:
        while True:
            ticket = self._take()
            if ticket.job is None:
                return
            try:
                with self.engine_lock:
                    if self._start(ticket):
                        _run(ticket, ticket.job)
            finally:
                with self._changed:
                    self._taken.remove(ticket)
                    self._changed.notify_all()

    def stop(self, job: Callable[[], None] | None = None) -> None:
        """End the threads after the jobs queued, then run a last job (closing the engine)."""
        with self._changed:
            for _ in self._threads:
                self._enqueue(Ticket(None))
        for thread in self._threads:
            thread.join()
        if job is not None:
            with self.engine_lock:
                job()


def _run(ticket: Ticket, job: Callable[[], Any]) -> None:
    try:
        ticket.future.set_result(job())
    except BaseException as exc:  # noqa: BLE001 - handed to the waiting request
        ticket.future.set_exception(exc)
