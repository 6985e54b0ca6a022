"""Main context assembly: the prompt in the layout that keeps the KV cache reusable.

Order, most stable first: static instructions and function specs (byte-identical every call),
core memory with its sizes and the recall/archival counts, the running summary, then the FIFO
queue. The counts are refreshed only when the core memory block is rendered anew anyway (a
core edit, a flush, a new process), so a plain step never invalidates the cache before the
queue.
"""

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .functions import FUNCTIONS
from .memory.core import CoreMemory
from .memory.recall import Message
from .resources import PROMPT_TEMPLATES_DIR

MEMGPT_TEMPLATES = PROMPT_TEMPLATES_DIR / "memgpt"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(MEMGPT_TEMPLATES), undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)


def render(template: str, **values) -> str:
    """Render one of prompt_templates/memgpt/*.jinja."""
    return _environment().get_template(template).render(**values).strip()


@lru_cache(maxsize=1)
def alerts() -> dict[str, str]:
    """The system event texts of prompt_templates/memgpt/alerts.toml."""
    with (MEMGPT_TEMPLATES / "alerts.toml").open("rb") as handle:
        return tomllib.load(handle)


def alert(name: str, **values) -> str:
    """One system event text with its placeholders filled."""
    return alerts()[name].format(**values)


def default_text(name: str) -> str:
    """The default persona.txt or human.txt."""
    return (MEMGPT_TEMPLATES / name).read_text().strip()


def static_instructions(agent_name: str) -> str:
    """System instructions and function specs: identical on every call for this agent."""
    return render("system.jinja", agent_name=agent_name,
                  functions=[f.prompt_line() for f in FUNCTIONS.values()])


def core_memory_text(core: CoreMemory, counts: dict) -> str:
    """Core memory blocks with their sizes, and the counts of the other tiers."""
    return render("core_memory.jinja", blocks=list(core.blocks.values()), **counts)


def memory_counts(recall_count: int, archival_count: int) -> dict:
    """The recall and archival counts shown with core memory, stamped with the time."""
    return {"recall_count": recall_count, "archival_count": archival_count,
            "as_of": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def summary_text(summary: str) -> str:
    """The running summary of evicted messages."""
    return render("summary.jinja", summary=summary)


def queue_entry(message: Message) -> dict:
    """A recall message as a chat message in the prompt."""
    if message.role == "function_call":
        return {"role": "assistant", "content": message.content}
    if message.role == "function_result":
        return {"role": "user", "content": f"[function result: {message.function_name}] "
                                           f"{message.content}"}
    if message.role == "system":
        return {"role": "user", "content": f"[system] {message.content}"}
    when = message.created_at.strftime("%Y-%m-%d %H:%M") if message.created_at else ""
    return {"role": "user", "content": f"[{when}] {message.content}" if when else message.content}


@dataclass
class ContextParts:
    """The texts of the main context, in prompt order."""

    static: str
    core: str
    summary: str
    queue: list[dict]

    def messages(self) -> list[dict]:
        """The chat messages of the prompt; message 0 is the static prefix."""
        return ([{"role": "system", "content": self.static},
                 {"role": "system", "content": self.core},
                 {"role": "system", "content": self.summary}]
                + self.queue)
