"""The queue manager: it keeps the main context inside the window.

Every event is appended to the FIFO queue and to recall storage. Before each step the prompt is
measured: past the warning threshold one memory-pressure alert goes into the queue (and no other
until the pressure has dropped again); when the prompt plus a full response would not fit, the
oldest part of the queue is evicted into the recursive summary; where nothing can be evicted,
the longest entries are cut in the prompt only, as a last resort.

Eviction cuts at a message boundary that never separates a function call from its result,
and never takes the event the running turn answers (the user's message) or what follows it.
The summary is asked for at the end of the main context itself, whose KV cache is already
there, so a flush evaluates little beyond the request. Where that cannot fit, the evicted
messages are folded in standalone prompts that fit, each chunk's summary becoming the
"previous summary" of the next.
"""

from dataclasses import dataclass

from ..errors import ContextOverflowError
from ..llm.base import PromptTokens, Runtime, SamplingSettings
from ..memory.agents import AgentRecord
from ..memory.messages import Message
from ..memory.stores import AgentStores
from .context import MIN_QUEUE_TOKENS, Clock, ContextParts, MainContext, alert, render
from .settings import AgentSettings, AgentState

SUMMARY_MARGIN_TOKENS = 16
CUT_NOTE = " [cut to fit; the whole text is in recall memory]"
CONTEXT_HEAD = 3  # static instructions, core memory and the summary come before the queue


def eviction_point(queue: list[Message], fraction: float, at_least: int = 1,
                   keep: int | None = None) -> int:
    """How many of the oldest messages to evict: about `fraction` of the queue, at least
    `at_least`, never the message at index `keep` (the turn's event) or any after it, never
    the newest message, and never a function call without its result."""
    last = len(queue) - 1 if keep is None else min(keep, len(queue) - 1)
    if last < 1:
        return 0
    cut = min(max(at_least, round(len(queue) * fraction)), last)
    while cut < last and queue[cut].role == "function_result":
        cut += 1
    while cut > 0 and queue[cut].role == "function_result":
        cut -= 1
    return cut


def _transcript_line(message: Message) -> str:
    when = message.created_at.strftime("%Y-%m-%d %H:%M") if message.created_at else ""
    name = f" {message.function_name}" if message.function_name else ""
    return f"[{when}] {message.role}{name}: {message.content}"


class Summarizer:
    """Folds evicted messages into the running summary with the agent's own model."""

    def __init__(self, runtime: Runtime, max_tokens: int, seed: int,
                 snapshot: str | None = None):
        self.runtime = runtime
        self.snapshot = snapshot  # the agent's context snapshot, restored for a summary in context
        self.max_tokens = max_tokens
        self.sampling = SamplingSettings(temperature=0.0, seed=seed)
        self.evaluated_tokens = 0  # prompt tokens evaluated by summary calls, for the stats
        self.max_words = int(max_tokens * 0.6)  # the length asked for, within max_tokens

    def _prompt_tokens(self, summary: str, lines: list[str]) -> list[int]:
        text = render("summarizer.jinja", summary=summary, messages="\n".join(lines),
                      max_words=self.max_words)
        return self.runtime.chat_tokens([{"role": "user", "content": text}]).tokens

    def _budget(self) -> int:
        return self.runtime.n_ctx - self.max_tokens - SUMMARY_MARGIN_TOKENS

    def _fit_line(self, summary: str, line: str) -> str:
        """Shorten one line until a prompt holding only it fits."""
        while len(self._prompt_tokens(summary, [line])) > self._budget() and len(line) > 40:
            line = line[: len(line) * 3 // 4] + " [...]"
        return line

    def summarize(self, summary: str, evicted: list[Message],
                  context: list[dict] | None = None, shown: int | None = None,
                  tools: list[dict] | None = None) -> str:
        """A new summary of the old summary plus the evicted messages.

        context: the main context's chat messages (static, core, summary, then the queue that
        starts with the evicted messages). The request is then appended to it, so the runtime
        reuses that prompt's KV cache and evaluates little more than the request. Without it,
        or when it does not fit, the messages are folded in standalone prompts that fit.
        shown: the queue entries the evicted messages take in the context (an architecture
        may show fewer than it stores; default: one each); tools: those the context's
        template lists."""
        if context is not None:
            prompt = self._in_context_prompt(context, len(evicted) if shown is None else shown,
                                             tools)
            if prompt is not None:
                return self._run(prompt.tokens, summary, prompt.static_prefix, self.snapshot)
        lines = [_transcript_line(m) for m in evicted]
        while lines:
            chunk = [self._fit_line(summary, lines.pop(0))]
            while lines and len(self._prompt_tokens(summary, chunk + lines[:1])) <= self._budget():
                chunk.append(lines.pop(0))
            summary = self._generate(summary, chunk)
        return summary

    def _in_context_prompt(self, context: list[dict], evicted: int,
                           tools: list[dict] | None = None) -> PromptTokens | None:
        """The main context plus the summary request, leaving out the newest queue entries
        (not needed for the summary) until it fits with the summary; None if it cannot."""
        request = {"role": "user", "content": render(
            "summary_request.jinja", count=evicted, max_words=self.max_words)}
        messages = list(context)
        while len(messages) >= CONTEXT_HEAD + evicted:
            prompt = self.runtime.chat_tokens(messages + [request], tools=tools)
            if len(prompt.tokens) + self.max_tokens + SUMMARY_MARGIN_TOKENS <= self.runtime.n_ctx:
                return prompt
            messages.pop()
        return None

    def _generate(self, summary: str, chunk: list[str]) -> str:
        return self._run(self._prompt_tokens(summary, chunk), summary)

    def _run(self, tokens: list[int], summary: str, prefix_len: int = 0,
             snapshot: str | None = None) -> str:
        """The summary the model writes for a prompt (in context: over the main context's
        static prefix and the agent's snapshot, as a step would restore them)."""
        generation = self.runtime.generate(tokens, max_tokens=self.max_tokens,
                                           sampling=self.sampling, prefix_len=prefix_len,
                                           context=snapshot).finish()
        self.evaluated_tokens += generation.stats.evaluated_tokens
        return generation.text.strip() or summary


@dataclass
class Prepared:
    """A prompt that fits, with what the queue manager did to get it."""

    parts: ContextParts
    prompt: PromptTokens
    flushed: bool = False
    warned: bool = False


@dataclass
class Eviction:
    """The oldest part of the queue must go into the summary before the prompt can fit."""

    cut: int  # messages to evict, from the front of the queue
    parts: ContextParts  # the context just measured: the summary is asked for at its end
    warned: bool = False


class QueueManager:
    """The FIFO queue of one agent, its recursive summary and the window they must fit."""

    def __init__(self, runtime: Runtime, settings: AgentSettings, state: AgentState,
                 record: AgentRecord, stores: AgentStores, context: MainContext, clock: Clock):
        self.runtime = runtime
        self.clock = clock
        self.settings = settings
        self.record = record
        self.stores = stores
        self.context = context
        self.state = state
        self.queue: list[Message] = stores.recall.get(record.in_context)
        self.turn_event: Message | None = None  # what the latest turn answers: never evicted
        self.summarizer = Summarizer(runtime, settings.summary_tokens, settings.sampling.seed,
                                     record.name)

    def append(self, message: Message) -> Message:
        """Add an event to recall storage and to the end of the queue, stamped with the time."""
        message.created_at = message.created_at or self.clock()
        if message.tokens is None:
            message.tokens = self.runtime.count_tokens(message.content)
        self.queue.append(self.stores.recall.append(message))
        return message

    def append_event(self, event: Message) -> Message:
        """Append the event a turn answers (a user message or an alert); until the next
        event, a flush evicts only what came before it."""
        self.turn_event = self.append(event)
        return event

    def parts(self) -> ContextParts:
        """The main context's texts as they stand."""
        return self.context.parts(self.record.core_memory, self.record.summary, self.queue)

    def prepare(self) -> Prepared | Eviction:
        """Warn until the prompt plus a full response fits in the window; where it does not
        fit, the eviction to make first (its summary is asked for by the caller, outside any
        transaction: summary_for, then evict) - or, with nothing left to evict, the prompt
        shrunk to fit."""
        warned = False
        limit = self.runtime.n_ctx - self.settings.response_tokens
        while True:
            parts = self.parts()
            prompt = parts.prompt(self.runtime)
            if len(prompt.tokens) > limit:
                self._check_fixed_part(parts, limit)
                cut = self._cut_that_makes_room(parts, prompt, limit)
                if cut:
                    return Eviction(cut, parts, warned)
                return Prepared(parts, self._shrink(parts, limit), warned=warned)
            if self._warn(len(prompt.tokens) / self.runtime.n_ctx):
                warned = True
                continue
            return Prepared(parts, prompt, warned=warned)

    def _cut_that_makes_room(self, parts: ContextParts, prompt: PromptTokens, limit: int) -> int:
        """The eviction point: about evict_fraction of the queue, or further where that would
        not leave room for the prompt with a full-length summary (a second flush's summary
        would read the whole window again, behind the first one's new summary)."""
        shown = dict(zip(parts.keys, prompt.message_tokens[CONTEXT_HEAD:], strict=True))
        growth = self.settings.summary_tokens - self.runtime.count_tokens(self.record.summary)
        to_free = len(prompt.tokens) + max(0, growth) + SUMMARY_MARGIN_TOKENS - limit
        keep = self._event_index()
        cut = eviction_point(self.queue, self.settings.evict_fraction, keep=keep)
        while cut and sum(shown.get(str(m.id), 0) for m in self.queue[:cut]) < to_free:
            further = eviction_point(self.queue, self.settings.evict_fraction, cut + 1, keep)
            if further <= cut:
                break
            cut = further
        return cut

    def _event_index(self) -> int | None:
        """Where the running turn's event stands in the queue (None: no turn, or gone)."""
        event = self.turn_event
        return next((i for i, m in enumerate(self.queue) if event and m.id == event.id), None)

    def _warn(self, pressure: float) -> bool:
        """Append the memory-pressure alert once per period above the threshold."""
        if pressure <= self.settings.warning_fraction:
            self.state.warned = False  # the pressure period is over
            return False
        if self.state.warned:
            return False
        self.append(Message("system", alert("memory_pressure", percent=round(100 * pressure))))
        self.state.warned = True
        return True

    def summary_for(self, eviction: Eviction) -> str:
        """The summary once the eviction's messages are folded in (a model call)."""
        evicted = self.queue[:eviction.cut]
        ids = {str(m.id) for m in evicted}
        return self.summarizer.summarize(self.record.summary, evicted,
                                         context=eviction.parts.messages(),
                                         shown=sum(key in ids for key in eviction.parts.keys),
                                         tools=eviction.parts.tools)

    def evict(self, eviction: Eviction, summary: str) -> None:
        """Take the evicted messages out of the queue; the summary now holds them."""
        self.record.summary = summary
        self.queue = self.queue[eviction.cut:]
        self.context.refresh_counts()  # the summary's cache is invalid anyway
        self.state.flushes += 1

    def _shrink(self, parts: ContextParts, limit: int) -> PromptTokens:
        """Last resort: cut the longest queue entries (or the summary) in the prompt only.
        The fixed part (instructions, core memory) fits: prepare() checked it."""
        while True:
            prompt = parts.prompt(self.runtime)
            if len(prompt.tokens) <= limit:
                return prompt
            _cut_longest(parts)

    def room(self) -> int:
        """Tokens the queue may take: the window less the reply's reserve and the prompt
        with an empty summary and no queue (instructions and core memory)."""
        fixed = len(self.parts().bare().prompt(self.runtime).tokens)
        return self.runtime.n_ctx - self.settings.response_tokens - fixed

    def _check_fixed_part(self, parts: ContextParts, limit: int) -> None:
        """Raise, saying what to change, if the prompt cannot fit with every entry empty."""
        fixed = len(parts.bare(keep_queue=True).prompt(self.runtime).tokens)
        if fixed > limit:
            needed = fixed + self.settings.response_tokens + MIN_QUEUE_TOKENS
            raise ContextOverflowError(
                f"The instructions and core memory of '{self.record.name}' take {fixed} tokens: "
                f"they do not fit in the {self.runtime.n_ctx}-token window with "
                f"{self.settings.response_tokens} kept for the reply. Use --n-ctx {needed} or "
                "more, or shorten the core memory blocks (memgpt-local agents show "
                f"{self.record.name}).")


def _cut_longest(parts: ContextParts) -> None:
    """Shorten the longest queue entry or the summary, strictly (to nothing in the end)."""
    entries = parts.queue + [{"content": parts.summary}]
    longest = max(entries, key=lambda e: len(e["content"]))
    text = longest["content"]
    keep = len(text) * 3 // 4 - len(CUT_NOTE)
    longest["content"] = text[:keep] + CUT_NOTE if keep > len(CUT_NOTE) else ""
    if longest is entries[-1]:
        parts.summary = longest["content"]
