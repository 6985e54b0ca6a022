"""The fuzz campaign: a scripted model, driven by hypothesis, makes random calls (every
function, arguments from empty to beyond their limits, heartbeats, invalid output), against
windows from 2,048 to 8,192 tokens and messages up to the whole window, with and without
memory brought to each turn; the queue manager, the functions and the stores must keep their
invariants after every step."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..agent.loop import Agent, MessageError
from ..agent.recollection import ENTRY_FUNCTION
from ..agent.turn import AgentEvent, StepTaken
from ..engine import Engine, EngineConfig
from .scripted import PAPER_CALLS, Findings, HashingEmbedder, ScriptedRuntime, WindowExceeded, call

WORDS = ["ann", "sails", "the", "boat", "petrel", "hello", "seven", "dog", "first", "42",
         "2024-05-01", "<|im_start|>", "\u00e9t\u00e9", "{", '"', "\\", "\n", "page"]
FUNCTIONS = ["send_message", "core_memory_append", "core_memory_replace", "conversation_search",
             "conversation_search_date", "archival_memory_insert", "archival_memory_search",
             "pause_heartbeats"]


@dataclass
class FuzzReport(Findings):
    """What the campaign ran and what it found."""

    steps: int = 0
    turns: int = 0
    rejected_messages: int = 0
    prompt_over_window: int = 0
    invariant_violations: int = 0

    def found(self, problem: str) -> None:
        """Count an invariant violation (keeping the first few for the report)."""
        self.invariant_violations += 1
        self.note(problem)


def _text(max_words: int) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(WORDS), max_size=max_words).map(" ".join)


class Policy:
    """The scripted model: each step draws a call (or invalid output) from hypothesis."""

    def __init__(self, data: st.DataObject, summary_tokens: int) -> None:
        self.data = data
        self.summary_tokens = summary_tokens
        self.agent: Agent | None = None

    def completion(self, messages: list[dict]) -> str:
        """The next output: a random call of a random function, or something invalid."""
        draw = self.data.draw
        kind = draw(st.sampled_from(FUNCTIONS + ["invalid"]))
        if kind == "invalid":
            return draw(st.sampled_from([
                '{"thoughts": "cut', "not json at all", call("no_such_function"),
                '{"function": "send_message", "arguments": {"message": 7}}']))
        return call(kind, draw(_text(12)), **self._arguments(kind))

    def _arguments(self, function: str) -> dict:
        draw = self.data.draw
        heartbeat = {"request_heartbeat": draw(st.booleans())}
        page = {"page": draw(st.integers(0, 999))}
        labels = list(self.agent.core.blocks) if self.agent else ["human"]
        label = draw(st.sampled_from(labels + ["nonexistent"]))
        if function == "send_message":
            return {"message": draw(_text(400))}
        if function == "core_memory_append":
            return {"label": label, "content": draw(_text(700)), **heartbeat}
        if function == "core_memory_replace":
            return {"label": label, "old_content": self._existing_text(label),
                    "new_content": draw(_text(500)), **heartbeat}
        if function in ("conversation_search", "archival_memory_search"):
            return {"query": draw(_text(6)), **page, **heartbeat}
        if function == "conversation_search_date":
            day = st.sampled_from(["2020-01-01", "2026-11-23", "2100-12-31", "yesterday", ""])
            return {"start_date": draw(day), "end_date": draw(day), **page, **heartbeat}
        if function == "archival_memory_insert":
            return {"content": draw(_text(800)), **heartbeat}
        return {"minutes": draw(st.integers(0, 999)), **heartbeat}

    def _existing_text(self, label: str) -> str:
        block = self.agent.core.blocks.get(label) if self.agent else None
        if block is None or not block.value:
            return self.data.draw(_text(3))
        start = self.data.draw(st.integers(0, len(block.value) - 1))
        return block.value[start:start + self.data.draw(st.integers(1, 80))]

    def summary(self, messages: list[dict]) -> str:
        """A summary of random length, up to twice what the summarizer asks for."""
        return self.data.draw(_text(2 * self.summary_tokens)) or "Nothing much."


class Invariants:
    """The checks run after every step and every turn of one fuzzed agent."""

    def __init__(self, engine: Engine, agent: Agent, report: FuzzReport):
        self.engine = engine
        self.agent = agent
        self.report = report
        self.sent: list[str] = []

    def after_step(self) -> None:
        """The queue pairs every call with its result, the record holds the queue, the
        summary is within its bound."""
        queue = self.agent.queue
        roles = [m.role for m in queue]
        for i, role in enumerate(roles):
            if role == "function_call" and roles[i + 1:i + 2] != ["function_result"]:
                self.report.found(f"call without its result at {i} of {roles}")
            caller = "user" if queue[i].function_name == ENTRY_FUNCTION else "function_call"
            if role == "function_result" and (i == 0 or roles[i - 1] != caller):
                self.report.found(f"result without its call at {i} of {roles}")
        if self.agent.record.in_context != [m.id for m in queue]:
            self.report.found("the record's context ids differ from the queue")
        summary = self.agent.runtime.count_tokens(self.agent.record.summary)
        if summary > self.agent.settings.summary_tokens:
            self.report.found(f"summary of {summary} tokens")

    def after_turn(self) -> None:
        """Every user message in recall once, in order; the agent reopens the same."""
        stored = self.agent.recall.all()
        if [m.content for m in stored if m.role == "user"] != self.sent:
            self.report.found("recall's user messages differ from those sent")
        if [m.seq for m in stored] != list(range(1, len(stored) + 1)):
            self.report.found("recall sequence numbers have gaps or repeats")
        reopened = self.engine.open_agent(self.agent.record.name)
        try:
            if _state(reopened) != _state(self.agent):
                self.report.found("the reopened agent differs from the running one")
        finally:
            self.engine.close_agent(reopened)


def _state(agent: Agent) -> tuple:
    return ([m.id for m in agent.queue], agent.core.to_dict(), agent.record.summary,
            agent.state)


def run_case(data: st.DataObject, report: FuzzReport) -> None:
    """One fuzzed agent in a fresh home: a random window, then random events."""
    n_ctx = data.draw(st.integers(2048, 8192), label="n_ctx")
    policy = Policy(data, summary_tokens=160)
    with tempfile.TemporaryDirectory(prefix="memgpt-fuzz-") as home, Engine(
            EngineConfig(Path(home)), embedder=HashingEmbedder(),
            runtime_factory=lambda *a, n_ctx, seed: ScriptedRuntime(
                policy.completion, n_ctx, policy.summary)) as engine:
        engine.create_agent("fuzz", "smollm2-135m", n_ctx, settings={**PAPER_CALLS,
            "memory_hits": data.draw(st.integers(0, 5), label="memory_hits")})
        agent = policy.agent = engine.open_agent("fuzz")
        checks = Invariants(engine, agent, report)
        for _ in range(data.draw(st.integers(1, 6), label="events")):
            if not _one_event(data, agent, checks, report):
                return


def _one_event(data: st.DataObject, agent: Agent, checks: Invariants, report: FuzzReport
               ) -> bool:
    """Send one random event; False when the window was exceeded (the case ends)."""
    words = data.draw(st.one_of(st.integers(0, 60), st.integers(0, agent.runtime.n_ctx)))
    text = " ".join(data.draw(st.sampled_from(WORDS)) for _ in range(min(words, 8)))
    text = (text + " ") * max(1, words // 8) if words else ""

    def listen(event: AgentEvent) -> None:
        if isinstance(event, StepTaken):
            report.steps += 1
            checks.after_step()

    try:
        if data.draw(st.integers(0, 9)) == 0:
            agent.alert("Scheduled reminder: " + text[:200], listen)
        else:
            agent.send(text, listen)
            checks.sent.append(text)
    except MessageError:
        report.rejected_messages += 1
    except WindowExceeded:
        report.prompt_over_window += 1
        return False
    report.turns += 1
    checks.after_turn()
    return True


def run_fuzz(min_steps: int, report: FuzzReport | None = None) -> FuzzReport:
    """Fuzz until at least min_steps steps ran; violations are counted, not raised."""
    report = report or FuzzReport()
    examples = max(10, min_steps // 16)  # about 16 steps an example

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def campaign(data: st.DataObject) -> None:
        run_case(data, report)

    while report.steps < min_steps:
        campaign()
    return report
