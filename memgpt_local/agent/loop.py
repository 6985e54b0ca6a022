"""The MemGPT agent loop: events in, one constrained function call per step, memory kept in step.

Each event is appended to the FIFO queue and to recall storage; before every step the queue
manager warns (memory pressure) or flushes (evict, summarise) so the prompt always fits; the
call is executed and its result goes back to the queue; a requested heartbeat or a failed
function gives the model another step, up to a cap. Every step is saved in one transaction.
"""

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime

from ..errors import MemgptLocalError
from ..llm.base import (
    Generation,
    PromptTokens,
    Runtime,
    SamplingSettings,
)
from ..llm.decoding import function_call_schema
from ..llm.tool_formats import JSON, ToolFormat, plain_parameters, tool_spec
from ..memory.agents import AgentRecord
from ..memory.core import CoreMemory
from ..memory.messages import Message
from ..memory.paging import Page
from ..memory.storable import unstorable
from ..memory.stores import AgentStores, ArchivalStore, RecallStore
from . import context as ctx
from .functions import FUNCTIONS, Outcome, execute, offered
from .queue import Prepared, QueueManager
from .recollection import ENTRY_FUNCTION, ROOM_SHARE, recollect
from .rules import Allowed, Call, RuleSolver
from .settings import AgentSettings, AgentState, stored
from .steps import Streamer, steps_for
from .stop_reason import StopReason
from .toolbox import Toolbox
from .turn import (
    Listener,
    MemoryBrought,
    ReplyText,
    ReplyWithdrawn,
    StepReport,
    StepTaken,
    Turn,
)

RETRY_TEMPERATURE = 0.7
RETRY_REPEAT_PENALTY = 1.3


class MessageError(MemgptLocalError):
    """A user message that cannot be sent (empty, or too long for the window)."""


class Agent:
    """A persisted agent, handed its model runtime and its stores by the engine."""

    def __init__(self, record: AgentRecord, runtime: Runtime, stores: AgentStores,
                 clock: ctx.Clock = ctx.utc_now):
        self.record = record
        self.runtime = runtime
        self.stores = stores
        self.clock = clock
        self.settings = AgentSettings.of(record)
        self.state = AgentState.of(record)  # shared with the context and the queue manager
        self.context = ctx.MainContext(record.name, self._counts, self.state,
                                       self.settings.instructions,
                                       tuple(self.settings.extra_functions),
                                       self.settings.architecture, runtime.tool_format,
                                       self._tool_specs())
        self.queue_manager = QueueManager(runtime, self.settings, self.state, record, stores,
                                          self.context, clock)
        self.functions = self.settings.functions()
        self.rules = RuleSolver(self.settings.rules(), list(self.functions),
                                replies_end_turn=self.settings.replies_end_turn)
        self.steps = steps_for(self)
        self.processor = self.processor_for(tuple(self.functions))
        self.tools = Toolbox(record, self.settings, self.state, stores, clock)  # for functions
        # around each step's model call, made with no transaction open: a server lets other
        # agents' work run while this one waits on a remote model (see server/worker.py)
        self.model_gate: Callable[[], AbstractContextManager] = nullcontext

    def call_schema(self, functions: tuple[str, ...] | None = None) -> dict:
        """The JSON schema of one valid call of this agent's functions (or of some of them),
        with request_heartbeat where its architecture has heartbeats, in its tool format."""
        chosen = self.context.architecture
        return call_schema(list(self.core.blocks), functions or tuple(self.functions),
                           heartbeat=chosen.heartbeats, tool_format=chosen.tool_format)

    def _tool_specs(self) -> list[dict]:
        """The functions as a chat template lists them (a native tool format's), without
        send_message and request_heartbeat."""
        labels = list(self.core.blocks)
        return [tool_spec(f.name, f.description,
                          plain_parameters(f.arguments_schema(labels, heartbeat=False)))
                for f in self.settings.functions().values() if f.name != "send_message"]

    def processor_for(self, functions: tuple[str, ...]) -> Callable:
        """The constraint's processor for a step that may call these functions (under the
        reply architecture send_message stands for a plain reply); built once per set."""
        return self.steps.processor(functions)

    def _counts(self) -> dict:
        return ctx.memory_counts(self.recall.count(), self.stores.archival_count(), self.clock())

    @property
    def queue(self) -> list[Message]:
        """The FIFO queue: the messages in the main context, oldest first."""
        return self.queue_manager.queue

    @property
    def recall(self) -> RecallStore:
        """Recall storage: every message the agent has seen."""
        return self.stores.recall

    @property
    def archival(self) -> ArchivalStore:
        """Archival storage, opened on first use (loading the embedding model is slow)."""
        return self.stores.archival

    @property
    def core(self) -> CoreMemory:
        """The agent's core memory."""
        return self.record.core_memory

    @property
    def outbox(self) -> list[str]:
        """The replies of the turn under way (or the last one)."""
        return self.tools.outbox

    def close(self) -> None:
        """Save what needs saving (the archival index) before the database closes."""
        self.stores.close()

    def archival_count(self) -> int:
        """Passages in archival storage (without loading the embedding model)."""
        return self.stores.archival_count()

    # --- the user's searches and inserts (chat's slash commands, the HTTP API) -------------
    def recall_search(self, query: str, page: int) -> Page:
        """Text search over all of the agent's messages."""
        return self.tools.recall_search(query, page)

    def recall_next(self, messages: list[Message]) -> dict[int, Message]:
        """The message stored after each given one, by the given one's id."""
        return self.tools.recall_next(messages)

    def recall_search_date(self, start: str, end: str, page: int) -> Page:
        """Date search over all of the agent's messages."""
        return self.tools.recall_search_date(start, end, page)

    def archival_search(self, query: str, page: int) -> Page:
        """Hybrid search over archival storage."""
        return self.tools.archival_search(query, page)

    def insert_passage(self, content: str) -> int:
        """Store one passage in archival memory (the user's insert); return how many were
        new."""
        self.stores.open_archival()  # before the transaction: opening commits on its own
        with self.transaction():
            return self.tools.archival_insert(content)

    def texts_not_to_copy(self) -> list[str]:
        """What a new call must not copy at length (small models fall into repeating their
        last reply, or an instruction, word for word): the replies and system messages in
        context, and this turn's replies."""
        sent = [(m.function_args or {}).get("message", "") for m in self.queue
                if m.role == "function_call" and m.function_name == "send_message"]
        alerts = [m.content for m in self.queue if m.role == "system"]
        return [str(t) for t in sent + alerts + self.outbox if t]

    def heartbeats_paused(self) -> bool:
        """Whether pause_heartbeats is in force."""
        until = self.state.heartbeats_paused_until
        return until is not None and datetime.fromisoformat(until) > self.clock()

    # --- events ----------------------------------------------------------------------------
    def send(self, text: str, listener: Listener | None = None) -> Turn:
        """A user message (refused, with nothing stored, if empty or too long)."""
        self._check_message(text)
        return self.handle(Message("user", text), listener)

    def _check_message(self, text: str) -> None:
        """Refuse an empty message, one with a character no store can hold, or one longer
        than half the window."""
        if not text.strip():
            raise MessageError("The message is empty: write something to send.")
        bad = unstorable(text)
        if bad:
            raise MessageError(f"The message holds {bad}, a character no store can hold "
                               "(text that is not valid Unicode): remove it and send again.")
        limit = self.runtime.n_ctx // 2
        if len(text) > 16 * limit:  # far too long: not worth counting
            size = f"{len(text)} characters"
        else:
            tokens = self.runtime.count_tokens(text)
            if tokens <= limit:
                return
            size = f"{tokens} tokens"
        raise MessageError(
            f"The message is too long for the {self.runtime.n_ctx}-token window ({size}; at "
            f"most {limit} tokens). Split it, or put it in archival memory: memgpt-local load "
            f"FILE --agent {self.record.name}.")

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
        """Append an event (after the first-login event for a new agent) and run the steps;
        then snapshot the whole context, so the next process resumes without re-reading it."""
        bring = self.settings.memory_hits > 0 and event is not None and event.role == "user"
        if bring and self.archival_count():
            self.stores.open_archival()  # before the transaction: opening commits on its own
        with self.transaction():
            if self.recall.count() == 0:
                self.queue_manager.append(Message("system", ctx.alert(
                    "first_login", self.context.architecture.template_dir())))
            if event is not None:
                self.queue_manager.append_event(event)
            started = time.perf_counter()
            memory = self._bring_memory(event.content) if bring and event else None
            memory_s = time.perf_counter() - started
        if memory and listener:
            listener(MemoryBrought(memory.content))
        turn = self._chain(listener)
        if memory:
            self._put_away(memory)
        turn.memory, turn.memory_s = memory.content if memory else None, memory_s
        with self.model_gate():  # a server's slot save: other agents' jobs run meanwhile
            turn.saved_context = self.runtime.save_context(self.record.name)
        return turn

    def _bring_memory(self, text: str) -> Message | None:
        """Search archival and recall with the user's message and put what is found, and not
        already in context, into the queue as one labelled entry (see recollection.py)."""
        archival = self.archival if self.archival_count() else None
        budget = int(self.queue_manager.room() * ROOM_SHARE)
        entry = recollect(self.recall, archival, text, self.settings.memory_hits, self.queue,
                          self.settings.result_max_chars,
                          lambda entry: self.runtime.count_tokens(entry) <= budget,
                          self.context.architecture.talk_in_view)
        if not entry:
            return None
        return self.queue_manager.append(Message("function_result", entry,
                                                 function_name=ENTRY_FUNCTION))

    def _put_away(self, entry: Message) -> None:
        """The turn is over: its memory entry leaves the context (recall keeps it), so it
        takes no room from later turns, which bring their own."""
        with self.transaction():
            self.queue_manager.queue = [m for m in self.queue if m.id != entry.id]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction over the stores that ends by saving the record; if it rolls back
        (an error, Ctrl-C), the agent's memory in this process is put back as it was."""
        saved = self._memory()
        try:
            with self.stores.transaction():
                yield
                self.save()
        except BaseException:
            self._restore(saved)
            raise

    def _memory(self) -> tuple:
        return (copy.deepcopy(self.record.core_memory), self.record.summary,
                list(self.record.in_context), copy.deepcopy(self.state), list(self.queue),
                len(self.outbox))

    def _restore(self, saved: tuple) -> None:
        core, self.record.summary, self.record.in_context, state, queue, sent = saved
        self.record.core_memory = core
        self.state.restore(state)
        self.queue_manager.queue = queue
        del self.outbox[sent:]

    def _chain(self, listener: Listener | None) -> Turn:
        turn = Turn()
        self.tools.outbox = turn.replies
        failures = 0
        history: list[Call] = []
        for index in range(self.settings.max_chain):
            allowed = self.rules.allowed(history, index, self.settings.max_chain)
            if not allowed.functions:
                return turn.stop(StopReason.NO_FUNCTION_ALLOWED,
                                 _no_function_allowed(allowed, history))
            step = self._step(listener, self._sampling(failures), allowed)
            turn.steps.append(step)
            if step.function in self.functions:
                history.append(Call(step.function, step.result))
            failures = failures + 1 if step.failed else 0
            if failures >= self.settings.max_failures:
                return turn.stop(StopReason.FAILED_CALLS, f"The agent stopped after {failures} "
                                 f"failed function calls in a row; the last error was: "
                                 f"{step.result}")
            if not self.rules.continues(Call(step.function, step.result), step.heartbeat,
                                        step.failed, history):
                return turn
        return turn.stop(StopReason.STEP_CAP, f"The agent stopped after "
                         f"{self.settings.max_chain} chained steps (max_chain).")

    # --- one step -------------------------------------------------------------------------
    def _sampling(self, failures: int) -> SamplingSettings:
        """The agent's sampling, except right after failed steps: a model that looped or
        wrote something invalid at temperature 0 tends to do it again, so a retry samples
        (at least RETRY_TEMPERATURE, with a seed per retry, so runs stay reproducible) and
        penalises repeats harder."""
        sampling = self.settings.sampling
        if failures == 0:
            return sampling
        return replace(sampling, seed=sampling.seed + failures,
                       temperature=max(sampling.temperature, RETRY_TEMPERATURE),
                       repeat_penalty=max(sampling.repeat_penalty, RETRY_REPEAT_PENALTY))

    def _step(self, listener: Listener | None, sampling: SamplingSettings,
              allowed: Allowed) -> StepReport:
        summarizer = self.queue_manager.summarizer
        summary_tokens_before = summarizer.evaluated_tokens
        prepared = self._prepare()
        new_tokens = self.context.new_tokens(prepared.parts, prepared.prompt)
        streamer = self.steps.streamer((lambda text: listener(ReplyText(text))) if listener
                                       else None)
        generation = self._generate(prepared.prompt, sampling, allowed, streamer)
        done = self.steps.run(generation.text, generation.stats)
        call, outcome = done.call, done.outcome
        if listener and streamer.emitted and (outcome.failed or outcome.function != "send_message"):
            listener(ReplyWithdrawn(streamer.emitted))  # the user saw text that was not sent
        report = StepReport((call or {}).get("thoughts", ""), outcome.function,
                            (call or {}).get("arguments"), outcome.result, outcome.failed,
                            outcome.heartbeat, generation.stats, new_tokens, prepared.flushed,
                            prepared.warned,
                            summarizer.evaluated_tokens - summary_tokens_before,
                            allowed.functions if allowed.narrowed_by else None, done.kind)
        if listener:
            listener(StepTaken(report))
        return report

    def _prepare(self) -> Prepared:
        """The step's prompt, fitted to the window: alerts and evictions each stored in a
        transaction of their own, and each eviction's summary asked for between them through
        the model gate, with no transaction open (a server runs other agents' jobs meanwhile;
        a crash there loses only that summary)."""
        flushed = warned = False
        while True:
            with self.transaction():
                prepared = self.queue_manager.prepare()
            warned = warned or prepared.warned
            if isinstance(prepared, Prepared):
                prepared.flushed, prepared.warned = flushed, warned
                return prepared
            with self.model_gate():
                summary = self.queue_manager.summary_for(prepared)
            with self.transaction():
                self.queue_manager.evict(prepared, summary)
            flushed = True

    def _generate(self, prompt: PromptTokens, sampling: SamplingSettings, allowed: Allowed,
                  streamer: Streamer) -> Generation:
        """The step's model call, its text fed to the streamer as it comes; through the model
        gate, so a server runs other agents' jobs while a remote model works on this one."""
        processor, avoid = self.processor_for(tuple(allowed.functions)), self.texts_not_to_copy()
        with self.model_gate():
            generation = self.runtime.generate(
                prompt.tokens, max_tokens=self.settings.response_tokens, sampling=sampling,
                processor=processor, prefix_len=prompt.static_prefix,
                context=self.record.name, avoid=avoid)
            for piece in generation:
                streamer.feed(piece)
        return generation

    def run_call(self, call: dict | None, error: str, stored: Message) -> Outcome:
        """Run a parsed call (None: the output did not parse, `error` says why) and store it,
        as `stored`, with its result, in one transaction."""
        if call and str(call.get("function")).startswith("archival_"):
            self.stores.open_archival()  # before the transaction: opening commits on its own
        with self.transaction():
            self.queue_manager.append(stored)
            limit = self.settings.result_max_chars
            outcome = (execute(call, self.tools, limit, self.functions) if call
                       else Outcome("(none)", error, True, True))
            self.queue_manager.append(Message("function_result", self.steps.note(outcome),
                                              function_name=outcome.function))
        return outcome

    def save(self) -> None:
        """Persist the record: core memory, summary, the queue's message ids, state."""
        self.record.in_context = [m.id for m in self.queue if m.id is not None]
        self.record.settings = stored(self.settings, self.state)
        self.stores.save(self.record)


def call_schema(labels: list[str], functions: tuple[str, ...] | None = None,
                heartbeat: bool = True, tool_format: ToolFormat = JSON) -> dict:
    """The JSON schema of one valid call of the named functions (default: the standard ones),
    for an agent whose core memory has these block labels (what the constraint enforces;
    heartbeat False: without request_heartbeat, as the reply architecture calls; a native
    tool format: the call's JSON as that format writes it)."""
    chosen = offered() if functions is None else {
        name: f for name, f in FUNCTIONS.items() if name in functions}
    specs = [{"name": f.name, "parameters": f.arguments_schema(labels, heartbeat)}
             for f in chosen.values()]
    return function_call_schema(specs) if tool_format is JSON else tool_format.call_schema(specs)


def _no_function_allowed(allowed: Allowed, history: list[Call]) -> str:
    after = history[-1].function if history else "the start of the turn"
    rules = ", ".join(str(r) for r in allowed.narrowed_by)
    return f"The agent stopped: its tool rules allow no function after {after} ({rules})."

