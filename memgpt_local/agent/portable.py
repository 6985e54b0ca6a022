"""The portable agent file: one JSON document with an agent, its messages and its passages.

Reading it validates everything before anything is written (format, version, the fields and
their types, block sizes within their limits, settings within range), so an import is refused
whole with one line that says what is wrong, never half done.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import MemgptLocalError
from ..memory.agents import AgentRecord, check_agent_name
from ..memory.core import MAX_LIMIT, Block, CoreMemory
from ..memory.messages import ROLES, Message
from .json_checks import check_document
from .settings import AgentSettings, AgentState, stored

FORMAT = "memgpt-local-agent"
VERSION = 1
TOP_KEYS = {"format", "version", "agent", "messages", "passages"}
AGENT_KEYS = {"name", "model", "settings", "core_memory", "summary", "in_context_seqs"}
MESSAGE_KEYS = {"seq", "role", "content", "function_name", "function_args", "created_at",
                "tokens"}
PASSAGE_KEYS = {"content", "source", "metadata"}
BLOCK_OPTIONAL_KEYS = {"description", "read_only"}


class ExportFileError(MemgptLocalError):
    """An agent file that cannot be imported; nothing was written."""


@dataclass
class AgentExport:
    """A validated agent file: the record (in-context ids still to map), messages, passages."""

    record: AgentRecord
    messages: list[Message]
    in_context_seqs: list[int]
    passages: list[dict]


def export_document(record: AgentRecord, messages: list[Message], passages: list[dict]) -> dict:
    """The JSON document of an agent with its messages and passages."""
    seq_of = {m.id: m.seq for m in messages}
    agent = {"name": record.name, "model": record.model, "settings": record.settings,
             "core_memory": record.core_memory.to_dict(), "summary": record.summary,
             "in_context_seqs": [seq_of[i] for i in record.in_context if i in seq_of]}
    return {"format": FORMAT, "version": VERSION, "agent": agent,
            "messages": [_message_dict(m) for m in messages], "passages": passages}


def _message_dict(message: Message) -> dict:
    return {"seq": message.seq, "role": message.role, "content": message.content,
            "function_name": message.function_name, "function_args": message.function_args,
            "created_at": message.stamp(), "tokens": message.tokens}


def read_export(path: Path) -> AgentExport:
    """Read and validate an agent file; any problem is one ExportFileError naming it."""
    try:
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise ExportFileError(f"Cannot import {path}: it is nested too deeply.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ExportFileError(f"Cannot import {path}: not a readable JSON file ({exc}).") \
            from None
    return checked_export(data, str(path))


def checked_export(data: Any, source: str = "the agent") -> AgentExport:
    """Validate an exported agent's document; any problem is one ExportFileError naming its
    source."""
    try:
        check_document(data)
        return parse_export(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportFileError(f"Cannot import {source}: {exc}") from None


def parse_export(data: Any) -> AgentExport:
    """Validate an agent file's document; raises ValueError saying what is wrong."""
    _check_keys(data, TOP_KEYS, "the file")
    if data["format"] != FORMAT:
        raise ValueError(f"not a memgpt-local agent file (format {data['format']!r}).")
    if data["version"] != VERSION:
        raise ValueError(f"it is version {data['version']!r}; this memgpt-local reads version "
                         f"{VERSION} (a newer version may have written it).")
    messages = [_parse_message(m, i) for i, m in enumerate(_list(data["messages"], "messages"))]
    seqs = [m.seq for m in messages if m.seq is not None]
    if seqs != sorted(set(seqs)):
        raise ValueError("message seq numbers must be unique and increasing.")
    record, in_context = _parse_agent(data["agent"], set(seqs))
    passages = [_parse_passage(p, i) for i, p in enumerate(_list(data["passages"], "passages"))]
    return AgentExport(record, messages, in_context, passages)


def _parse_agent(agent: Any, seqs: set[int]) -> tuple[AgentRecord, list[int]]:
    _check_keys(agent, AGENT_KEYS, "agent")
    check_agent_name(_typed(agent["name"], str, "agent.name"))
    settings = _typed(agent["settings"], dict, "agent.settings")
    settings = stored(AgentSettings.checked(settings), AgentState.imported(settings.get("state")))
    in_context = [_typed(s, int, "agent.in_context_seqs[]")
                  for s in _list(agent["in_context_seqs"], "agent.in_context_seqs")]
    if not set(in_context) <= seqs:
        raise ValueError("agent.in_context_seqs names messages the file does not hold.")
    record = AgentRecord(agent["name"], _typed(agent["model"], str, "agent.model"), settings,
                         _parse_core(agent["core_memory"]),
                         _typed(agent["summary"], str, "agent.summary"))
    return record, in_context


def _parse_core(data: Any) -> CoreMemory:
    blocks = _typed(data, dict, "agent.core_memory")
    if not blocks:
        raise ValueError("agent.core_memory has no blocks.")
    core = CoreMemory()
    for label, block in blocks.items():
        where = f"agent.core_memory.{label}"
        _check_keys(block, {"value", "limit"} | (set(block) & BLOCK_OPTIONAL_KEYS), where)
        limit = _typed(block["limit"], int, f"{where}.limit")
        value = _typed(block["value"], str, f"{where}.value")
        if not 1 <= limit <= MAX_LIMIT or len(value) > limit:
            raise ValueError(f"{where} holds {len(value)} characters with a limit of {limit} "
                             f"(limits are 1 to {MAX_LIMIT}, and the text must fit).")
        core.blocks[label] = Block(
            label, value, limit, _typed(block.get("description", ""), str,
                                        f"{where}.description"),
            _typed(block.get("read_only", False), bool, f"{where}.read_only"))
    return core


def _parse_message(data: Any, index: int) -> Message:
    where = f"messages[{index}]"
    _check_keys(data, MESSAGE_KEYS, where)
    if data["role"] not in ROLES:
        raise ValueError(f"{where}.role is {data['role']!r}; valid: {', '.join(ROLES)}.")
    arguments = data["function_args"]
    if arguments is not None:
        _typed(arguments, dict, f"{where}.function_args")
    return Message(data["role"], _typed(data["content"], str, f"{where}.content"),
                   _optional(data["function_name"], str, f"{where}.function_name"), arguments,
                   parse_time(data["created_at"], f"{where}.created_at"),
                   _optional(data["tokens"], int, f"{where}.tokens"),
                   _typed(data["seq"], int, f"{where}.seq"))


def _parse_passage(data: Any, index: int) -> dict:
    where = f"passages[{index}]"
    _check_keys(data, PASSAGE_KEYS, where)
    return {"content": _typed(data["content"], str, f"{where}.content"),
            "source": _optional(data["source"], str, f"{where}.source"),
            "metadata": _optional(data["metadata"], dict, f"{where}.metadata")}


def parse_time(value: Any, where: str) -> datetime:
    """An ISO date and time from a file (UTC where it names no zone); ValueError if not."""
    try:
        moment = datetime.fromisoformat(_typed(value, str, where))
    except ValueError:
        raise ValueError(f"{where} is not an ISO date and time: {value!r}.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_keys(data: Any, expected: set[str], where: str) -> None:
    _typed(data, dict, where)
    missing, unknown = expected - set(data), set(data) - expected
    if missing or unknown:
        raise ValueError(f"{where} has missing keys {sorted(missing)} and unknown keys "
                         f"{sorted(unknown)}.")


def _list(value: Any, where: str) -> list:
    return _typed(value, list, where)


def _optional(value: Any, kind: type, where: str) -> Any:
    return None if value is None else _typed(value, kind, where)


def _typed(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be a {kind.__name__}, not {type(value).__name__}.")
    return value
