"""Main context assembly: the prompt in the layout that keeps the KV cache reusable.

Order, most stable first: static instructions and function specs (byte-identical every call),
core memory, the running summary, the FIFO queue of messages, then a one-line memory status
(which changes every step, so it comes last and costs only its own tokens).
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


def core_memory_text(core: CoreMemory) -> str:
    """Core memory blocks with their sizes."""
    return render("core_memory.jinja", blocks=list(core.blocks.values()))


def summary_text(summary: str) -> str:
    """The running summary of evicted messages."""
    return render("summary.jinja", summary=summary)


def status_text(recall_count: int, archival_count: int) -> str:
    """The memory status line (changes every step)."""
    return render("status.jinja", recall_count=recall_count, archival_count=archival_count,
                  now=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


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
    status: str

    def messages(self) -> list[dict]:
        """The chat messages of the prompt; message 0 is the static prefix."""
        return ([{"role": "system", "content": self.static},
                 {"role": "system", "content": self.core},
                 {"role": "system", "content": self.summary}]
                + self.queue + [{"role": "user", "content": self.status}])
