"""The engine as the server holds it: open agents kept between requests, every job run on the
one worker thread."""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..agent.loop import Agent
from ..engine import Engine
from .worker import EngineWorker

T = TypeVar("T")


@dataclass(frozen=True)
class ServerSettings:
    """The server's limits and its key (None: no key, loopback only)."""

    api_key: str | None = None
    max_body_bytes: int = 1024**2
    max_upload_bytes: int = 32 * 1024**2
    max_waiting: int = 16
    queue_timeout_s: float = 300.0
    max_open_agents: int = 16


class AgentHost:
    """One engine and the agents open on it. Agents stay open between requests (their
    constraint processors built, their archives loaded), the least recently used closed
    beyond a limit. Use it only through run(): jobs run one at a time on the worker."""

    def __init__(self, engine: Engine, settings: ServerSettings):
        self.engine = engine
        self.settings = settings
        self.worker = EngineWorker(settings.max_waiting, settings.queue_timeout_s)
        self._open: OrderedDict[str, Agent] = OrderedDict()

    def run(self, job: Callable[[], T]) -> T:
        """Run a job on the worker thread, in turn; its result or its error."""
        return self.worker.run(job)

    def agent(self, name: str) -> Agent:
        """An agent, opened on first use and kept open (worker thread only)."""
        if name in self._open:
            self._open.move_to_end(name)
            return self._open[name]
        agent = self.engine.open_agent(name)
        self._open[name] = agent
        while len(self._open) > self.settings.max_open_agents:
            self.engine.close_agent(self._open.popitem(last=False)[1])
        return agent

    def release(self, name: str) -> None:
        """Close an agent if it is open, before the engine works on its stores directly
        (delete, documents, export) (worker thread only)."""
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
