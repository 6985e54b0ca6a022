"""What a turn produces: a report per step, the finished turn, and the events a listener sees
while it runs (each a small class, matched by type)."""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from ..llm.base import GenerationStats, SavedContext
from .steps import CALL
from .stop_reason import StopReason


@dataclass
class StepReport:
    """What one step did, for the CLI, the JSON output and the benchmarks."""

    thoughts: str
    function: str
    arguments: dict | None
    result: str
    failed: bool
    heartbeat: bool
    stats: GenerationStats
    new_tokens: int
    flushed: bool = False
    warned: bool = False
    summary_eval_tokens: int = 0
    allowed: list[str] | None = None  # the functions the tool rules allowed; None: all
    kind: str = CALL  # "reply": a plain reply (reply architecture), "call": a function call

    def as_dict(self) -> dict:
        """A JSON-ready form."""
        data = asdict(self)
        data["stats"] = self.stats.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "StepReport":
        """The report as_dict wrote (a server's step event, read back by the thin client)."""
        stat_names = {f.name for f in fields(GenerationStats)}
        stats = GenerationStats(**{k: v for k, v in data["stats"].items() if k in stat_names})
        names = {f.name for f in fields(cls)} - {"stats"}
        return cls(stats=stats, **{k: v for k, v in data.items() if k in names})


@dataclass
class Turn:
    """The steps run for one event and the messages sent to the user."""

    steps: list[StepReport] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    stopped: str | None = None  # why the loop ended the turn, in a line for people
    stop_reason: StopReason | None = None  # the same, for programs
    saved_context: SavedContext | None = None  # the KV snapshot written at its end
    memory: str | None = None  # the memory brought to the model before its first step
    memory_s: float = 0.0  # what finding it took

    def stop(self, reason: StopReason, message: str) -> "Turn":
        """End the turn for a reason of the loop's, saying why."""
        self.stop_reason, self.stopped = reason, message
        return self

    def as_dict(self) -> dict:
        """The finished turn as JSON (the server's answer and its `done` event)."""
        return {"steps": [step.as_dict() for step in self.steps], "replies": self.replies,
                "stopped": self.stopped, "stop_reason": self.stop_reason,
                "memory": self.memory}

    @classmethod
    def from_dict(cls, data: dict) -> "Turn":
        """The turn as_dict wrote, read back (the thin client's)."""
        reason = data.get("stop_reason")
        return cls([StepReport.from_dict(s) for s in data["steps"]], list(data["replies"]),
                   data.get("stopped"), StopReason(reason) if reason else None,
                   memory=data.get("memory"))


@dataclass(frozen=True)
class Event:
    """Something a listener is told while a turn runs: `name` names it in a server's stream,
    as_dict gives its data."""

    name: ClassVar[str] = ""

    def as_dict(self) -> dict:
        """The event's data as JSON."""
        return asdict(self)


@dataclass(frozen=True)
class MemoryBrought(Event):
    """The memory found for the user's message and put before the model's first step."""

    name: ClassVar[str] = "memory"
    text: str


@dataclass(frozen=True)
class ReplyText(Event):
    """Reply text as it is generated (shown to the user before the step ends)."""

    name: ClassVar[str] = "reply"
    text: str


@dataclass(frozen=True)
class ReplyWithdrawn(Event):
    """The streamed text of a step that failed or was no reply after all: not sent."""

    name: ClassVar[str] = "withdraw"
    characters: int


@dataclass(frozen=True)
class StepTaken(Event):
    """One step finished: its report."""

    name: ClassVar[str] = "step"
    report: StepReport

    def as_dict(self) -> dict:
        """The step's report as JSON."""
        return self.report.as_dict()


AgentEvent = MemoryBrought | ReplyText | ReplyWithdrawn | StepTaken
Listener = Callable[[AgentEvent], None]


_READERS: dict[str, Callable[[dict], AgentEvent]] = {
    MemoryBrought.name: lambda d: MemoryBrought(d["text"]),
    ReplyText.name: lambda d: ReplyText(d["text"]),
    ReplyWithdrawn.name: lambda d: ReplyWithdrawn(d["characters"]),
    StepTaken.name: lambda d: StepTaken(StepReport.from_dict(d))}


def event_from(name: str, data: dict) -> AgentEvent | None:
    """The event an SSE stream named and carried (None for a name that is no agent event)."""
    reader = _READERS.get(name)
    return reader(data) if reader else None
