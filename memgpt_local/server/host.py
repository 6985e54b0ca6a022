"""The engine as the server holds it: open agents kept between requests, every job run on the
worker's threads (one agent's jobs one at a time)."""

from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..agent.loop import Agent
from ..engine import Engine
from .guard import Access
from .worker import EngineWorker

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """The server's limits and who may use it (its key, the Host names and page origins it
    accepts)."""

    access: Access = Access()
    max_body_bytes: int = 1024**2
    max_upload_bytes: int = 32 * 1024**2
    max_waiting: int = 16
    queue_timeout_s: float = 300.0
    max_open_agents: int = 16
    max_turns: int = 1  # turns in flight at once; only remote models' turns overlap
    lease_wait_s: float = 10.0  # how long a turn waits for an agent another server runs
    report_dir: Path | None = None  # a benchmark report the web page shows


class AgentHost:
    """One engine and the agents open on it. Agents stay open between requests (their
    constraint processors built, their archives loaded), the least recently used closed
    beyond a limit (never one whose job is running). Use it only through run(), with the
    agent's name as the key of every job that works on one agent."""

    def __init__(self, engine: Engine, settings: ServerSettings):
        self.engine = engine
        self.settings = settings
        self.worker = EngineWorker(settings.max_waiting, settings.queue_timeout_s,
                                   settings.max_turns)
        self._open: OrderedDict[str, Agent] = OrderedDict()
        engine.runtimes.reclaim = self._close_an_idle_agent  # its model may then be unloaded

    def run(self, job: Callable[[], T], key: str | None = None, turn: bool = False) -> T:
        """Run a job on the worker, after the jobs before it and never beside another job with
        the same key (an agent's name); a turn also waits for a free turn. Its result or its
        error."""
        return self.worker.run(job, key, turn)

    def agent(self, name: str) -> Agent:
        """An agent, opened on first use and kept open (in a job keyed by its name). Its
        remote model calls let other agents' jobs run meanwhile."""
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        agent = self.engine.open_agent(name)
        agent.model_gate = self.worker.unlocked if agent.runtime.concurrent else nullcontext
        self._open[name] = agent
        self._close_beyond_limit()
        return agent

    def use(self, name: str, work: Callable[[Agent], T]) -> T:
        """Work on an open agent - a turn, a search (in a job keyed by its name) - holding its
        lease on a shared store; there the agent is closed afterwards, as another server may
        run its next turn (and change it)."""
        with self.engine.db.lease(name, self.engine.holder, self.settings.lease_wait_s):
            try:
                return work(self.agent(name))
            finally:
                if self.engine.db.shared:
                    self.release(name)

    def change(self, name: str, work: Callable[[], T]) -> T:
        """Work on an agent's stores directly (settings, blocks, documents, delete; in a job
        keyed by its name): the agent closed first, to be reopened changed at its next turn,
        and its lease held on a shared store."""
        with self.engine.db.lease(name, self.engine.holder, self.settings.lease_wait_s):
            self.release(name)
            return work()

    def _close_an_idle_agent(self) -> bool:
        """Close the least recently used open agent that no job is using (its model then
        has one user fewer); whether there was one."""
        busy = self.worker.busy_keys()
        idle = next((name for name in self._open if name not in busy), None)
        if idle is None:
            return False
        self.engine.close_agent(self._open.pop(idle))
        return True

    def _close_beyond_limit(self) -> None:
        busy = self.worker.busy_keys()
        idle = [name for name in self._open if name not in busy]
        while idle and len(self._open) > self.settings.max_open_agents:
            self.engine.close_agent(self._open.pop(idle.pop(0)))

    def release(self, name: str) -> None:
        """Close an agent if it is open, before the engine works on its stores directly
        (delete, documents, export) (in a job keyed by its name)."""
        agent = self._open.pop(name, None)
        if agent is not None:
            self.engine.close_agent(agent)

    def close(self) -> None:
        """Close every agent and the engine after the queued jobs, and stop the worker."""
        def close_all() -> None:
            for name in list(self._open):
                self.release(name)
            self.engine.close()

        self.worker.stop(close_all)
