"""The chat as a person meets it: a fixed conversation (conversation.toml) sent to a new agent
exactly as `memgpt-local chat` does (a greeting, then the messages), greedy, on a fixed clock;
measured for replies that repeat an earlier one, replies cut off mid-sentence and facts
recalled once they have left a small window."""

import re
import statistics
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path

from ..agent.turn import AgentEvent, ReplyText, Turn
from ..engine import Engine

CONVERSATION = Path(__file__).with_name("conversation.toml")
CLOCK = datetime(2025, 2, 10, 19, 0, tzinfo=UTC)  # the agents' clock: fixed, so runs repeat
AGENT = "chat-bench"
REPEAT_SIMILARITY = 0.9  # a reply this similar to an earlier one (normalised) repeats it
FINISHED = re.compile(r"[.!?\u2026][\"')\]*]*$")  # a reply's last sentence ends (quotes after)


@dataclass
class ChatReport:
    """What one variant did over the conversation."""

    replies: list[str] = field(default_factory=list)
    repeated_replies: int = 0
    unfinished_replies: int = 0  # replies whose last sentence breaks off
    turns_without_reply: int = 0
    facts_asked: int = 0
    facts_recalled: int = 0
    recalled: list[bool] = field(default_factory=list)
    steps: int = 0
    failed_steps: int = 0
    flushes: int = 0
    memory_tokens_per_turn: float = 0.0
    memory_s_per_turn: float = 0.0
    median_first_reply_s: float | None = None  # from a message to the first reply character
    first_reply_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        """A JSON-ready form."""
        return asdict(self)


def load_conversation(path: Path = CONVERSATION) -> list[dict]:
    """The scripted user messages, each with the fact words it asks about (if any)."""
    with path.open("rb") as handle:
        return tomllib.load(handle)["messages"]


def normalised(text: str) -> str:
    """Lower case, words only, single spaces."""
    return " ".join(re.findall(r"\w+", text.lower()))


def repeats_earlier(reply: str, earlier: list[str]) -> bool:
    """Whether a reply is nearly identical to one sent before."""
    mine = normalised(reply)
    return bool(mine) and any(
        SequenceMatcher(None, mine, normalised(e)).ratio() >= REPEAT_SIMILARITY
        for e in earlier if normalised(e))


def unfinished(reply: str) -> bool:
    """Whether a reply breaks off mid-sentence (an empty one does not: it counts elsewhere)."""
    return bool(reply.strip()) and not FINISHED.search(reply.rstrip())


def recalls(reply: str, facts: list[str]) -> bool:
    """Whether a reply holds every word of the fact."""
    words = set(normalised(reply).split())
    return all(normalised(f) in words for f in facts)


def run_chat(engine: Engine, model: str | None, n_ctx: int, settings: dict | None,
             count_tokens: Callable[[str], int]) -> ChatReport:
    """The conversation through a new agent with these settings (None: the defaults)."""
    report = ChatReport()
    if engine.agent_exists(AGENT):
        engine.delete_agent(AGENT)
    engine.create_agent(AGENT, model, n_ctx, settings=settings)
    agent = engine.open_agent(AGENT)
    start = time.perf_counter()
    try:
        greeting = agent.first_login()
        earlier = list(greeting.replies)
        _count(report, greeting)
        for message in load_conversation():
            timer = FirstReply()
            turn = agent.send(message["text"], timer)
            if timer.seconds is not None:
                report.first_reply_s.append(round(timer.seconds, 3))
            _score(report, turn, message.get("facts"), earlier, count_tokens)
            earlier += turn.replies
    finally:
        report.flushes = agent.state.flushes
        engine.close_agent(agent)
    report.wall_s = round(time.perf_counter() - start, 2)
    turns = len(report.replies) or 1
    report.memory_tokens_per_turn = round(report.memory_tokens_per_turn / turns, 1)
    report.memory_s_per_turn = round(report.memory_s_per_turn / turns, 4)
    if report.first_reply_s:
        report.median_first_reply_s = round(statistics.median(report.first_reply_s), 3)
    return report


class FirstReply:
    """A turn's listener that times its first reply character, as `chat` would show it."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seconds: float | None = None

    def __call__(self, event: AgentEvent) -> None:
        """Note the time of the first streamed reply text."""
        if isinstance(event, ReplyText) and event.text and self.seconds is None:
            self.seconds = time.perf_counter() - self.start


def _count(report: ChatReport, turn: Turn) -> None:
    report.steps += len(turn.steps)
    report.failed_steps += sum(step.failed for step in turn.steps)


def _score(report: ChatReport, turn: Turn, facts: list[str] | None, earlier: list[str],
           count_tokens: Callable[[str], int]) -> None:
    _count(report, turn)
    reply = " ".join(turn.replies)
    report.replies.append(reply)
    report.turns_without_reply += not reply
    report.unfinished_replies += unfinished(reply)
    report.repeated_replies += any(repeats_earlier(r, earlier) for r in turn.replies)
    report.memory_tokens_per_turn += count_tokens(turn.memory) if turn.memory else 0
    report.memory_s_per_turn += turn.memory_s
    if facts:
        report.facts_asked += 1
        report.recalled.append(recalls(reply, facts))
        report.facts_recalled += report.recalled[-1]

