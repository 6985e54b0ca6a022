"""Main context assembly: the prompt in the layout that keeps the KV cache reusable.

Order, most stable first: static instructions and function specs (byte-identical every call),
core memory with its sizes and the recall/archival counts, the running summary, then the FIFO
queue. The counts are refreshed only when the core memory block is rendered anew anyway (a
core edit, a flush), and kept with the agent, so a plain step never invalidates the cache
before the queue, not even in the next process.
"""

import hashlib
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..errors import MemgptLocalError
from ..llm.base import PromptTokens, Runtime
from ..llm.tool_formats import JSON, ToolFormat
from ..memory.core import CoreMemory
from ..memory.messages import Message
from ..resources import PROMPT_TEMPLATES_DIR
from .architectures import MEMGPT, architecture, memgpt_entry
from .functions import offered
from .settings import AgentSettings, AgentState

MEMGPT_TEMPLATES = PROMPT_TEMPLATES_DIR / "memgpt"
MIN_QUEUE_TOKENS = 256
FILLER = "Some remembered detail. "  # what a block's unused room is counted as
PER_MESSAGE_OVERHEAD = 8
Clock = Callable[[], datetime]  # the time an agent stamps on messages and shows the model


def utc_now() -> datetime:
    """The wall clock, in UTC: every agent's clock unless the engine is given another."""
    return datetime.now(UTC)


@lru_cache(maxsize=2)
def _environment(folder: str = "memgpt") -> Environment:
    """Templates of prompt_templates/FOLDER, falling back to prompt_templates/memgpt."""
    folders = [PROMPT_TEMPLATES_DIR / folder] + ([MEMGPT_TEMPLATES] if folder != "memgpt" else [])
    return Environment(loader=FileSystemLoader(folders), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def render(template: str, folder: str = "memgpt", **values: Any) -> str:
    """Render one of prompt_templates/FOLDER/*.jinja (else the memgpt one of that name)."""
    return _environment(folder).get_template(template).render(**values).strip()


@lru_cache(maxsize=2)
def alerts(folder: str = "memgpt") -> dict[str, str]:
    """The system event texts of prompt_templates/memgpt/alerts.toml, with those of
    prompt_templates/FOLDER/alerts.toml in their place where it has them."""
    texts: dict[str, str] = {}
    for path in dict.fromkeys([MEMGPT_TEMPLATES, PROMPT_TEMPLATES_DIR / folder]):
        if (path / "alerts.toml").is_file():
            with (path / "alerts.toml").open("rb") as handle:
                texts |= tomllib.load(handle)
    return texts


def alert(name: str, folder: str = "memgpt", **values: Any) -> str:
    """One system event text (of an architecture's folder) with its placeholders filled."""
    return alerts(folder)[name].format(**values)


def default_text(name: str) -> str:
    """The default persona.txt or human.txt."""
    return (MEMGPT_TEMPLATES / name).read_text().strip()


@lru_cache(maxsize=8)
def static_instructions(instructions: str = "", extra_functions: tuple[str, ...] = (),
                        architecture_name: str = MEMGPT, tool_format: ToolFormat = JSON) -> str:
    """System instructions and function specs: identical on every call of every agent, so
    one prefix snapshot of a model serves them all (the agent's name is in core memory) -
    unless an agent has instructions of its own (an imported Letta agent's system prompt),
    which replace ours before the function specs: its prefix snapshot is then its own, as
    it is for an agent offered optional functions (extra_functions). Each architecture has
    its own (the reply architecture offers no send_message: a reply is plain text, and a
    template with a tool format of its own lists the tools itself)."""
    chosen = architecture(architecture_name, tool_format)
    functions = [chosen.function_line(f) for f in offered(extra_functions).values()
                 if chosen.heartbeats or f.name != "send_message"]
    return render("system.jinja", chosen.template_dir(), instructions=instructions,
                  functions=functions, native_tools=chosen.native_tools)


def core_memory_text(name: str, core: CoreMemory, counts: dict) -> str:
    """The agent's name, core memory blocks with their sizes, and the other tiers' counts."""
    return render("core_memory.jinja", agent_name=name, blocks=list(core.blocks.values()),
                  **counts)


def memory_counts(recall_count: int, archival_count: int, as_of: datetime) -> dict:
    """The recall and archival counts shown with core memory, stamped with the time."""
    return {"recall_count": recall_count, "archival_count": archival_count,
            "as_of": as_of.strftime("%Y-%m-%d %H:%M UTC")}


def summary_text(summary: str, folder: str = "memgpt", earlier: bool = False) -> str:
    """The running summary of evicted messages (`earlier`: recall holds messages that are
    out of view, so an empty summary does not mean the conversation has just begun)."""
    return render("summary.jinja", folder, summary=summary, earlier=earlier)


def queue_entry(message: Message) -> dict:
    """A recall message as a chat message in the paper's architecture's prompt."""
    return memgpt_entry(message)


@dataclass
class ContextParts:
    """The texts of the main context, in prompt order (keys: the stored message each queue
    entry shows, by id)."""

    static: str
    core: str
    summary: str
    queue: list[dict]
    keys: list[str] = field(default_factory=list)
    tools: list[dict] | None = None  # for a template that lists them itself (native formats)

    def messages(self) -> list[dict]:
        """The chat messages of the prompt; message 0 is the static prefix."""
        return ([{"role": "system", "content": self.static},
                 {"role": "system", "content": self.core},
                 {"role": "system", "content": self.summary}]
                + self.queue)

    def prompt(self, runtime: Runtime) -> PromptTokens:
        """The prompt's tokens, by the runtime's template (with the tools it lists)."""
        return runtime.chat_tokens(self.messages(), tools=self.tools)

    def bare(self, keep_queue: bool = False) -> "ContextParts":
        """The same context without summary and messages (keep_queue: with every message
        emptied instead): the part no eviction can shrink."""
        queue = [{**entry, "content": ""} for entry in self.queue] if keep_queue else []
        return replace(self, summary="", queue=queue, keys=self.keys if keep_queue else [])


class MainContext:
    """Assembles the main context in prompt order. The core block's text is rendered with
    counts kept in the agent's stored state until the block changes anyway (or a flush asks
    for fresh counts), so a plain step never invalidates the KV cache before the queue, in
    this process or in the next one that resumes the agent."""

    def __init__(self, name: str, counts: Callable[[], dict], state: AgentState,
                 instructions: str = "", extra_functions: tuple[str, ...] = (),
                 architecture_name: str = MEMGPT, tool_format: ToolFormat = JSON,
                 tools: list[dict] | None = None):
        self.name = name
        self.architecture = architecture(architecture_name, tool_format)
        self.static = static_instructions(instructions, extra_functions, architecture_name,
                                          tool_format)
        self.tools = tools if self.architecture.native_tools else None
        self._counts_of = counts
        self._state = state  # the agent's stored state: core_counts, core_digest, last_prompt

    def refresh_counts(self) -> None:
        """Render the core block anew, with fresh counts, at the next assembly."""
        self._state.core_digest = None

    def parts(self, core: CoreMemory, summary: str, queue: list[Message]) -> ContextParts:
        """The main context's texts as they stand."""
        text, counts = self._core_text(core)
        entries = self.architecture.entries(queue)
        earlier = counts["recall_count"] > len(queue)
        return ContextParts(self.static, text,
                            summary_text(summary, self.architecture.template_dir(), earlier),
                            [e.message for e in entries], [e.key for e in entries], self.tools)

    def _core_text(self, core: CoreMemory) -> tuple[str, dict]:
        """Core memory's text with the counts it shows (kept until the text changes)."""
        counts = self._state.core_counts
        text = core_memory_text(self.name, core, counts) if counts else ""
        if not counts or _digest(text) != self._state.core_digest:
            counts = self._state.core_counts = self._counts_of()
            text = core_memory_text(self.name, core, counts)
            self._state.core_digest = _digest(text)
        return text, counts

    def new_tokens(self, parts: ContextParts, prompt: PromptTokens) -> int:
        """Tokens of the prompt that the previous prompt did not have (messages that are new
        or changed); what any layout must evaluate at least."""
        keys = ["static", "core", "summary"] + parts.keys
        digests = [_digest(m["content"]) for m in parts.messages()]
        spans = prompt.message_tokens
        new = len(prompt.tokens) - sum(spans)
        last = self._state.last_prompt
        for key, digest, span in zip(keys, digests, spans, strict=True):
            if last.get(key) != digest:
                new += span
        self._state.last_prompt = dict(zip(keys, digests, strict=True))
        return new


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _filled(core: CoreMemory) -> CoreMemory:
    """Core memory with every block full: its text now, the rest of its limit plain prose."""
    full = CoreMemory()
    for block in core.blocks.values():
        filler = block.value + FILLER * (block.limit // len(FILLER) + 1)
        full.blocks[block.label] = replace(block, value=filler[: block.limit])
    return full


def window_problem(count: Callable[[str], int], name: str, core: CoreMemory,
                   settings: AgentSettings) -> str | None:
    """Why an agent cannot run in its window (its instructions and core memory leave no room
    for messages), naming the ways out; None when it fits."""
    fixed = _fixed_tokens(count, name, core, settings, full_blocks=False)
    if fixed + MIN_QUEUE_TOKENS <= settings.n_ctx:
        return None
    own = ", or with our instructions (--our-instructions)" if settings.instructions else ""
    return (f"Agent '{name}' does not fit its {settings.n_ctx}-token window: its instructions "
            f"and core memory take {fixed} tokens and leave no room for messages. Import it "
            f"again on a model with a larger window (--model){own}, or make its blocks "
            f"smaller (memgpt-local agents block {name} LABEL FILE --limit N).")


def _fixed_tokens(count: Callable[[str], int], name: str, core: CoreMemory,
                  settings: AgentSettings, full_blocks: bool = True) -> int:
    """Tokens the prompt needs before any message, with every block full (or as it is)."""
    shown = _filled(core) if full_blocks else core
    counts = memory_counts(10**6, 10**6, utc_now())
    texts = [static_instructions(settings.instructions, tuple(settings.extra_functions),
                                 settings.architecture),
             core_memory_text(name, shown, counts),
             summary_text("")]
    return (sum(count(t) for t in texts) + settings.summary_tokens
            + settings.response_tokens + PER_MESSAGE_OVERHEAD * len(texts))


def check_core_fits(count: Callable[[str], int], name: str, core: CoreMemory,
                    settings: AgentSettings) -> None:
    """Raise, saying what to change, if core memory with every block full leaves no room for
    messages in the agent's window (a user's block edit is checked this way)."""
    fixed = _fixed_tokens(count, name, core, settings)
    if fixed + MIN_QUEUE_TOKENS > settings.n_ctx:
        raise MemgptLocalError(
            f"With every block full, the instructions and core memory would take {fixed} "
            f"tokens of the {settings.n_ctx}-token window, leaving too little for messages: "
            "lower a block's limit.")


def fit_block_limits(count: Callable[[str], int], name: str, core: CoreMemory,
                     settings: AgentSettings) -> list[str]:
    """Shrink block limits until the fixed part leaves room for messages, and some headroom
    besides where the window allows (so a later edit of a block's text within its limit
    fits too); return notes."""
    def over(headroom: int) -> bool:
        return (_fixed_tokens(count, name, core, settings) + MIN_QUEUE_TOKENS + headroom
                > settings.n_ctx)

    notes: list[str] = []
    while over(max(32, settings.n_ctx // 32)):
        if all(b.limit <= max(len(b.value), 100) for b in core.blocks.values()):
            if over(0):
                raise MemgptLocalError(f"A {settings.n_ctx}-token window is too small for the "
                                       "instructions and core memory; use a larger --n-ctx.")
            return notes + [f"The {settings.n_ctx}-token window leaves core memory little "
                            "room: an edit that makes a block's text longer may not fit."]
        for block in core.blocks.values():
            block.limit = max(len(block.value), int(block.limit * 0.8))
        notes = [f"Core memory limits lowered to fit the {settings.n_ctx}-token window: "
                 + ", ".join(f"{b.label} {b.limit}" for b in core.blocks.values())]
    return notes
