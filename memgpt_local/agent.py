"""The MemGPT agent loop: events in, one constrained function call per step, memory kept in step.

Each event is appended to the FIFO queue and to recall storage; before every step the queue
manager warns (memory pressure) or flushes (evict, summarise) so the prompt always fits; the
call is executed and its result goes back to the queue; a requested heartbeat or a failed
function gives the model another step, up to a cap. Every step is saved in one transaction.
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from . import context as ctx
from .agents import AgentRecord, AgentStore
from .database import Database
from .decoding import function_call_schema
from .errors import ContextOverflowError
from .functions import FUNCTIONS, Outcome, execute
from .memory.core import CoreMemory
from .memory.paging import Page
from .memory.recall import Message, RecallStorage
from .queue import Summarizer, eviction_point
from .runtime import GenerationStats, PromptTokens, SamplingSettings
from .streaming import ReplyStreamer

Listener = Callable[[str, Any], None]
RETRY_TEMPERATURE = 0.7
RETRY_REPEAT_PENALTY = 1.3


@dataclass
class AgentSettings:
    """Per-agent settings, stored with the agent."""

    n_ctx: int = 4096
    warning_fraction: float = 0.7
    evict_fraction: float = 0.5
    response_tokens: int = 320
    summary_tokens: int = 160
    max_chain: int = 6
    max_failures: int = 3
    result_max_chars: int = 2000
    page_size: int = 5
    timed_heartbeat_minutes: int = 0
    temperature: float = 0.0
    repeat_penalty: float = 1.0  # 1.1 made SmolLM2's steps 3x slower (longer JSON strings)
    seed: int = 1337

    @classmethod
    def from_dict(cls, data: dict) -> "AgentSettings":
        """Settings from a stored dict (unknown keys, such as run-time state, ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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

    def as_dict(self) -> dict:
        """A JSON-ready form."""
        data = asdict(self)
        data["stats"] = self.stats.as_dict()
        return data


@dataclass
class Turn:
    """The steps run for one event and the messages sent to the user."""

    steps: list[StepReport] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    stopped: str | None = None


@contextmanager
def transaction(con) -> Iterator[None]:
    """Run a block in one DuckDB transaction: all of it is stored, or none."""
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


class Agent:
    """A persisted agent bound to a loaded model runtime."""

    def __init__(self, record: AgentRecord, db: Database, runtime,
                 embedder_loader: Callable[[], Any] | None = None):
        self.record = record
        self.db = db
        self.runtime = runtime
        self.settings = AgentSettings.from_dict(record.settings)
        self.state: dict = record.settings.setdefault("state", {})
        self.recall = RecallStorage(db.con, record.name)
        self.queue: list[Message] = self.recall.get(record.in_context)
        self._embedder_loader = embedder_loader
        self._archival = None
        self.summarizer = Summarizer(runtime, self.settings.summary_tokens, self.settings.seed)
        self.static = ctx.static_instructions(record.name)
        self.processor = runtime.constraint(self._schema()).processor()
        self.sampling = SamplingSettings(temperature=self.settings.temperature,
                                         repeat_penalty=self.settings.repeat_penalty,
                                         seed=self.settings.seed)
        self.outbox: list[str] = []
        self._last_prompt: dict[str, Any] = {}
        self._counts = ctx.memory_counts(self.recall.count(), self.archival_count())
        self._core_text = ""

    def _schema(self) -> dict:
        labels = list(self.core.blocks)
        return function_call_schema([{"name": f.name, "parameters": f.arguments_schema(labels)}
                                     for f in FUNCTIONS.values()])

    # --- what functions may touch (functions.FunctionContext) ---------------------------
    @property
    def core(self) -> CoreMemory:
        """The agent's core memory."""
        return self.record.core_memory

    @property
    def page_size(self) -> int:
        """Search results per page."""
        return self.settings.page_size

    @property
    def archival(self):
        """Archival storage, opened on first use (loading the embedding model is slow)."""
        if self._archival is None:
            from .embeddings import get_embedder
            from .memory.archival import ArchivalStorage

            embedder = (self._embedder_loader or get_embedder)()
            self._archival = ArchivalStorage(self.db.con, self.record.name,
                                             self.db.home / "archival", embedder)
        return self._archival

    def close(self) -> None:
        """Save what needs saving (the archival index) before the database closes."""
        if self._archival is not None:
            self._archival.close()

    def archival_count(self) -> int:
        """Passages in archival storage (without loading the embedding model)."""
        return self.db.con.execute("SELECT count(*) FROM passages WHERE agent = ?",
                                   [self.record.name]).fetchone()[0]

    def recall_search(self, query: str, page: int) -> Page:
        """Text search over all of the agent's messages."""
        return self.recall.search_text(query, page, self.page_size)

    def recall_search_date(self, start: str, end: str, page: int) -> Page:
        """Date search over all of the agent's messages."""
        return self.recall.search_date(start, end, page, self.page_size)

    def archival_insert(self, content: str) -> int:
        """Store one passage; return how many were new."""
        return len(self.archival.insert([content], source="agent"))

    def archival_search(self, query: str, page: int) -> Page:
        """Hybrid search over archival storage."""
        return self.archival.search(query, page=page, page_size=self.page_size)

    def send_to_user(self, message: str) -> None:
        """Queue a message for the user."""
        self.outbox.append(message)

    def pause_heartbeats(self, minutes: int) -> None:
        """Hold timed heartbeats back for a while."""
        until = datetime.now(UTC) + timedelta(minutes=minutes)
        self.state["heartbeats_paused_until"] = until.isoformat()

    def heartbeats_paused(self) -> bool:
        """Whether pause_heartbeats is in force."""
        until = self.state.get("heartbeats_paused_until")
        return bool(until) and datetime.fromisoformat(until) > datetime.now(UTC)

    # --- events ----------------------------------------------------------------------------
    def send(self, text: str, listener: Listener | None = None) -> Turn:
        """A user message."""
        return self.handle(Message("user", text), listener)

    def alert(self, text: str, listener: Listener | None = None) -> Turn:
        """A system alert."""
        return self.handle(Message("system", text), listener)

    def timed_heartbeat(self, listener: Listener | None = None) -> Turn | None:
        """A heartbeat after idle time, unless paused or switched off."""
        minutes = self.settings.timed_heartbeat_minutes
        if minutes <= 0 or self.heartbeats_paused():
            return None
        return self.handle(Message("system", ctx.alert("timed_heartbeat", minutes=minutes)),
                           listener)

    def first_login(self, listener: Listener | None = None) -> Turn:
        """The first-login event of a new agent: it greets the user."""
        return self.handle(None, listener)

    def handle(self, event: Message | None, listener: Listener | None = None) -> Turn:
        """Append an event (after the first-login event for a new agent) and run the steps."""
        with transaction(self.db.con):
            if self.recall.count() == 0:
                self._append(Message("system", ctx.alert("first_login")))
            if event is not None:
                self._append(event)
            self.save()
        return self._chain(listener)

    def _chain(self, listener: Listener | None) -> Turn:
        turn = Turn()
        self.outbox = turn.replies
        failures = 0
        for _ in range(self.settings.max_chain):
            step = self._step(listener, self._sampling(failures))
            turn.steps.append(step)
            failures = failures + 1 if step.failed else 0
            if failures >= self.settings.max_failures:
                turn.stopped = (f"The agent stopped after {failures} failed function calls in "
                                f"a row; the last error was: {step.result}")
                return turn
            if not (step.failed or step.heartbeat):
                return turn
        turn.stopped = (f"The agent stopped after {self.settings.max_chain} chained steps "
                        "(max_chain).")
        return turn

    # --- one step -------------------------------------------------------------------------
    def _sampling(self, failures: int) -> SamplingSettings:
        """The agent's sampling, except right after failed steps: a model that looped or
        wrote something invalid at temperature 0 tends to do it again, so a retry samples
        (at least RETRY_TEMPERATURE, with a seed per retry, so runs stay reproducible) and
        penalises repeats harder."""
        if failures == 0:
            return self.sampling
        return replace(self.sampling, seed=self.sampling.seed + failures,
                       temperature=max(self.sampling.temperature, RETRY_TEMPERATURE),
                       repeat_penalty=max(self.sampling.repeat_penalty, RETRY_REPEAT_PENALTY))

    def _step(self, listener: Listener | None, sampling: SamplingSettings) -> StepReport:
        summary_tokens_before = self.summarizer.evaluated_tokens
        parts, prompt, flushed, warned = self._prepare()
        new_tokens = self._new_tokens(parts, prompt)
        generation = self.runtime.generate(
            prompt.tokens, max_tokens=self.settings.response_tokens, sampling=sampling,
            processor=self.processor, prefix_len=prompt.message_ends[0])
        streamer = ReplyStreamer((lambda text: listener("reply", text)) if listener else None)
        for piece in generation:
            streamer.feed(piece)
        call, error = _parse_call(generation.text, generation.stats.finish_reason,
                                  self.settings.response_tokens)
        with transaction(self.db.con):
            self._append(Message("function_call", generation.text,
                                 function_name=(call or {}).get("function"),
                                 function_args=(call or {}).get("arguments"),
                                 tokens=generation.stats.generated_tokens))
            outcome = (execute(call, self, self.settings.result_max_chars) if call
                       else Outcome("(none)", error, True, True))
            self._append(Message("function_result", _with_heartbeat_note(outcome),
                                 function_name=outcome.function))
            self.save()
        report = StepReport((call or {}).get("thoughts", ""), outcome.function,
                            (call or {}).get("arguments"), outcome.result, outcome.failed,
                            outcome.heartbeat, generation.stats, new_tokens, flushed, warned,
                            self.summarizer.evaluated_tokens - summary_tokens_before)
        if listener:
            listener("step", report)
        return report

    def _append(self, message: Message) -> Message:
        if message.tokens is None:
            message.tokens = self.runtime.count_tokens(message.content)
        self.queue.append(self.recall.append(message))
        return message

    def save(self) -> None:
        """Persist the record: core memory, summary, the queue's message ids, state."""
        self.record.in_context = [m.id for m in self.queue]
        AgentStore(self.db.con).save(self.record)

    # --- the queue manager ------------------------------------------------------------------
    def parts(self) -> ctx.ContextParts:
        """The main context's texts as they stand."""
        core = ctx.core_memory_text(self.core, self._counts)
        if core != self._core_text:  # the block changes anyway: refresh the counts with it
            self._counts = ctx.memory_counts(self.recall.count(), self.archival_count())
            core = self._core_text = ctx.core_memory_text(self.core, self._counts)
        return ctx.ContextParts(self.static, core, ctx.summary_text(self.record.summary),
                                [ctx.queue_entry(m) for m in self.queue])

    def _prepare(self) -> tuple[ctx.ContextParts, PromptTokens, bool, bool]:
        """Warn or flush until the prompt plus a full response fits in the window."""
        flushed = warned = False
        limit = self.runtime.n_ctx - self.settings.response_tokens
        while True:
            parts = self.parts()
            prompt = self.runtime.chat_tokens(parts.messages())
            if len(prompt.tokens) > limit:
                if self._flush(parts):
                    flushed = True
                    continue
                return parts, self._shrink(parts, limit), flushed, warned
            pressure = len(prompt.tokens) / self.runtime.n_ctx
            if pressure <= self.settings.warning_fraction:
                self.state["warned"] = False  # the pressure period is over
            elif not self.state.get("warned"):
                self._append(Message("system", ctx.alert("memory_pressure",
                                                         percent=round(100 * pressure))))
                self.state["warned"] = warned = True
                continue
            return parts, prompt, flushed, warned

    def _flush(self, parts: ctx.ContextParts) -> bool:
        """Evict the oldest part of the queue into the summary, asked for at the end of the
        context just measured (`parts`); False if nothing can go."""
        cut = eviction_point(self.queue, self.settings.evict_fraction)
        if cut == 0:
            return False
        self.record.summary = self.summarizer.summarize(
            self.record.summary, self.queue[:cut], context=parts.messages())
        self.queue = self.queue[cut:]
        self._core_text = ""  # the summary's cache is invalid anyway: refresh the counts too
        self.state["flushes"] = self.state.get("flushes", 0) + 1
        return True

    def _shrink(self, parts: ctx.ContextParts, limit: int) -> PromptTokens:
        """Last resort: cut the longest queue entry (or the summary) in the prompt only."""
        while True:
            prompt = self.runtime.chat_tokens(parts.messages())
            if len(prompt.tokens) <= limit:
                return prompt
            entries = parts.queue + [{"content": parts.summary}]
            longest = max(entries, key=lambda e: len(e["content"]))
            if len(longest["content"]) < 80:
                raise ContextOverflowError(
                    f"The fixed part of the prompt (instructions and core memory) does not fit "
                    f"in {self.runtime.n_ctx} tokens; use a larger --n-ctx or smaller blocks.")
            longest["content"] = longest["content"][: len(longest["content"]) * 3 // 4] + \
                " [cut to fit; the whole text is in recall memory]"
            if longest is entries[-1]:
                parts.summary = longest["content"]

    def _new_tokens(self, parts: ctx.ContextParts, prompt: PromptTokens) -> int:
        """Tokens of the prompt that the previous prompt did not have (messages that are new
        or changed); what any layout must evaluate at least."""
        keys = ["static", "core", "summary"] + [m.id for m in self.queue]
        texts = [m["content"] for m in parts.messages()]
        previous = self._last_prompt
        spans = [end - start for start, end in
                 zip([0] + prompt.message_ends[:-1], prompt.message_ends, strict=True)]
        new = len(prompt.tokens) - prompt.message_ends[-1]
        for key, text, span in zip(keys, texts, spans, strict=True):
            if previous.get(key) != text:
                new += span
        self._last_prompt = dict(zip(keys, texts, strict=True))
        return new


def _parse_call(text: str, finish_reason: str, limit: int) -> tuple[dict | None, str]:
    """The parsed call, or an error written for the model."""
    try:
        call = json.loads(text)
    except json.JSONDecodeError:
        if finish_reason == "loop":
            return None, ("Error: your output was stopped because it repeated the same words "
                          "over and over. Say something new, in a few words.")
        if finish_reason == "length":
            return None, (f"Error: your output was cut off at {limit} tokens. Keep thoughts "
                          "short and split long messages.")
        return None, "Error: your output was not one JSON function call."
    return (call, "") if isinstance(call, dict) else (None, "Error: expected a JSON object.")


def _with_heartbeat_note(outcome: Outcome) -> str:
    if outcome.failed:
        return f"{outcome.result}\n{ctx.alert('heartbeat_after_error')}"
    if outcome.heartbeat:
        return f"{outcome.result}\n{ctx.alert('heartbeat')}"
    return outcome.result
