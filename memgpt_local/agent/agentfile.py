"""Letta's Agent File (.af) read into agents of ours, validated whole before anything is written.

An .af is one JSON document (published files are sometimes encoded a second time, as one JSON
string): `agents`, each naming its `block_ids` and `tool_ids`, with its `system` prompt,
`tool_rules`, `messages` and `in_context_message_ids`; the `blocks` and `tools` they name. Each
agent becomes an AgentExport (portable.py), so the import is the same all-or-nothing write as
our own files:
- blocks -> core-memory blocks (label, value, limit, description, read-only);
- messages -> recall, in order, with their dates: a Letta tool call becomes our function_call (its
  reasoning as the thoughts), a tool result our function_result, a plain assistant reply a
  send_message call with its result, system alerts sent as user messages our system messages;
- Letta's memory tools -> the functions of ours that do their job; every other tool (code, MCP,
  built-in web tools) is listed by name with the reason it was left out - code in a file is data,
  never run, imported or evaluated;
- tool rules -> ours (rules.py has Letta's kinds and names), on the tools that were mapped.
"""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..memory.agents import AgentRecord, check_agent_name
from ..memory.core import MAX_LIMIT, Block, CoreMemory
from ..memory.messages import Message
from .architectures import MEMGPT, REPLY
from .context import static_instructions
from .functions import OPTIONAL_FUNCTIONS
from .json_checks import check_document, loads, loads_checked
from .portable import AgentExport, ExportFileError, parse_time
from .rules import KINDS
from .settings import NEW_AGENT_SETTINGS, AgentSettings, AgentState, stored

MAX_FILE_BYTES = 32 * 2**20
OUR_FUNCTIONS = {  # Letta's memory tools -> the function of ours that does the same job
    "send_message": "send_message", "core_memory_append": "core_memory_append",
    "core_memory_replace": "core_memory_replace", "memory_insert": "core_memory_append",
    "memory_replace": "core_memory_replace", "conversation_search": "conversation_search",
    "conversation_search_date": "conversation_search_date",
    "archival_memory_insert": "archival_memory_insert",
    "archival_memory_search": "archival_memory_search",
    "memory_rethink": "core_memory_rethink",  # an optional function: offered to this agent
    "memory": "core_memory_replace"}  # Letta's combined tool: see MEMORY_COMMANDS
# Our functions an export names as Letta does (the others keep our names); a past call under
# such a name comes back as ours even where the file declares no such tool.
LETTA_NAMES = {"core_memory_rethink": "memory_rethink"}
OUR_NAMES = {letta: ours for ours, letta in LETTA_NAMES.items()}
# The commands of Letta's combined `memory` tool that a function of ours does (its past calls
# are stored as calls of these); create, delete, rename and view have none (a user makes blocks).
MEMORY_COMMANDS = {"str_replace": "core_memory_replace", "insert": "core_memory_append"}
MEMORY_NOTE = ("memory: its str_replace and insert commands map to core_memory_replace and "
               "core_memory_append; create, delete, rename and view have no counterpart")
SKIP_REASONS = {  # by Letta tool_type: why such a tool is not imported
    "custom": "carries code, which is never run here",
    "letta_builtin": "a built-in web tool; this runs offline",
    "external_mcp": "an MCP tool", "external_composio": "an external tool",
    "letta_multi_agent_core": "a multi-agent tool", "letta_voice_sleeptime_core": "a voice tool"}
SENT = "Sent."  # what send_message answers (functions.py)
OUR_KEY = "memgpt_local"  # the agent metadata where an export of ours keeps what Letta lacks
ALERT_TYPES = ("system_alert", "heartbeat", "login")
LETTA_ARCHITECTURES = {"letta_v1_agent": REPLY, "sleeptime_agent": REPLY,
                       "memgpt_agent": MEMGPT, "memgpt_v2_agent": MEMGPT}
LETTA_AGENT_TYPES = {MEMGPT: "memgpt_agent", REPLY: "letta_v1_agent"}  # what an export writes


@dataclass
class AfAgent:
    """One agent read from an .af, ready to write, and what its import did."""

    export: AgentExport
    tools_mapped: dict[str, str] = field(default_factory=dict)
    tools_skipped: dict[str, str] = field(default_factory=dict)
    rules_dropped: list[str] = field(default_factory=list)
    rules_from_file: bool = False
    limits_fitted: bool = False  # block limits already fit the window (an export of ours)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: what was imported and what was not."""
        record = self.export.record
        settings = AgentSettings.of(record)
        skipped = ", ".join(f"{name} ({why})" for name, why in self.tools_skipped.items())
        parts = [f"architecture {settings.architecture}",
                 f"{len(record.core_memory.blocks)} block(s)",
                 f"{len(self.export.messages)} message(s) "
                 f"({len(self.export.in_context_seqs)} in context)",
                 f"{len(settings.tool_rules)} rule(s)" + (
                     "" if self.rules_from_file else " (a new agent's defaults)"),
                 f"tools mapped: {', '.join(sorted(self.tools_mapped)) or 'none'}",
                 f"skipped: {skipped or 'none'}"]
        return f"{record.name}: " + "; ".join(parts + self.rules_dropped + self.notes)


def architecture_of(agent_type: Any) -> str:
    """Our architecture for a Letta agent type: its current loop (letta_v1_agent, and the
    sleep-time agent that runs beside one) is `reply`; the MemGPT agents, and any other
    type, are `memgpt`."""
    return LETTA_ARCHITECTURES.get(agent_type, MEMGPT) if isinstance(agent_type, str) else MEMGPT


def is_agent_file(path: Path) -> bool:
    """Whether a path names a Letta agent file (by its extension)."""
    return path.suffix.lower() == ".af"


def read_agent_file(path: Path, model: str, n_ctx: int, our_instructions: bool = False
                    ) -> list[AfAgent]:
    """Every agent of an .af, for a local model with an n_ctx-token window (with its own
    system prompt as its instructions, or ours); any problem is one ExportFileError naming
    the file, and nothing is written."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(f"it has {size // 2**20} MiB; agent files up to "
                             f"{MAX_FILE_BYTES // 2**20} MiB are read.")
        return parse_agent_file(_document(path.read_bytes()), model, n_ctx, our_instructions)
    except OSError as exc:
        raise ExportFileError(f"Cannot import {path}: {exc.strerror or exc}.") from None
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportFileError(f"Cannot import {path}: {exc}") from None


def checked_agent_file(document: dict | str, model: str, n_ctx: int,
                       our_instructions: bool = False) -> list[AfAgent]:
    """read_agent_file for a document already read (a dict, or the JSON string published
    files hold); any problem is one ExportFileError."""
    try:
        return parse_agent_file(_decoded(document), model, n_ctx, our_instructions)
    except (TypeError, ValueError, KeyError) as exc:
        raise ExportFileError(f"Cannot import the agent file: {exc}") from None


def _document(raw: bytes) -> dict:
    """The JSON document, decoded a second time where it was stored as one string."""
    try:
        return _decoded(loads(raw))  # checked there, once
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a readable JSON file ({exc}).") from None


def _decoded(data: Any) -> dict:
    """A decoded document, checked to be an agent file (a string: decoded once more)."""
    if isinstance(data, str):
        try:
            data = loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a readable JSON file ({exc}).") from None
    check_document(data)
    if isinstance(data, dict) and "agents" not in data and "version" in data:
        raise ValueError(f"it is in Letta's older single-agent format (version "
                         f"{data['version']!r}); export it again from Letta 0.8 or later.")
    if not isinstance(data, dict) or not isinstance(data.get("agents"), list):
        raise ValueError("not a Letta agent file: no list of agents at the top.")
    return data


def parse_agent_file(data: dict, model: str, n_ctx: int, our_instructions: bool = False
                     ) -> list[AfAgent]:
    """Every agent of a decoded .af document; raises ValueError saying what is wrong."""
    blocks = _by_id(data.get("blocks", []), "blocks")
    tools = _by_id(data.get("tools", []), "tools")
    agents = [_agent(agent, blocks, tools, model, n_ctx) for agent in data["agents"]]
    for agent, letta in zip(agents, data["agents"], strict=True):
        _instructions(agent, letta, our_instructions)
    if not agents:
        raise ValueError("it holds no agent.")
    names = [a.export.record.name for a in agents]
    if len(set(names)) != len(names):
        raise ValueError(f"two agents are named alike: {names}.")
    return agents


def _by_id(items: Any, where: str) -> dict[str, dict]:
    if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
        raise ValueError(f"{where} must be a list of objects with ids.")
    return {str(item["id"]): item for item in items}


def _agent(agent: Any, blocks: dict, tools: dict, model: str, n_ctx: int) -> AfAgent:
    if not isinstance(agent, dict):
        raise ValueError("each agent must be an object.")
    name = check_agent_name(_text(agent.get("name"), "agent.name"))
    result = AfAgent(AgentExport(AgentRecord(name, model, {}, CoreMemory()), [], [], []))
    result.export.record.core_memory = _core(agent, blocks, name, result.notes)
    _map_tools(agent, tools, result)
    ours = _ours(agent)
    settings = {**NEW_AGENT_SETTINGS, "architecture": architecture_of(agent.get("agent_type")),
                **ours.get("settings", {}), "n_ctx": _window(agent, n_ctx, result)}
    _offer_optional(settings, result.tools_mapped)
    result.limits_fitted = bool(ours) and settings["n_ctx"] == ours.get("settings", {}).get(
        "n_ctx")
    rules = _rules(agent, result)
    if rules:  # none in the file: a new agent's defaults (or the ones we exported)
        settings["tool_rules"], result.rules_from_file = rules, True
    result.export.record.settings = stored(AgentSettings.checked(settings),
                                           AgentState.imported(settings.get("state")))
    result.export.record.summary = _text(ours.get("summary", ""), "metadata summary")
    messages, in_context = _messages(agent, result.tools_mapped, name,
                                     ours.get("call_texts", {}))
    result.export.messages, result.export.in_context_seqs = messages, in_context
    return result


def _instructions(result: AfAgent, letta: dict, ours_wanted: bool) -> None:
    """The agent's system prompt kept as its own instructions where it differs from ours
    (an export of ours carries its instructions in its settings)."""
    record = result.export.record
    settings = AgentSettings.of(record)
    system = letta.get("system")
    if ours_wanted:
        settings.instructions = ""
    elif _ours(letta) or not isinstance(system, str) or not system.strip() \
            or system == static_instructions():
        return
    else:
        settings.instructions = system
        result.notes.append(f"its own instructions kept ({len(system)} characters; "
                            "--our-instructions uses ours)")
    record.settings = stored(AgentSettings.checked(settings.to_dict()), AgentState.of(record))


def _ours(agent: dict) -> dict:
    """What an export of ours carries in the agent's metadata (agentfile_export.py): the
    summary, our settings and the exact text of calls; empty for other files."""
    ours = _object(agent.get("metadata"), "an agent's metadata").get(OUR_KEY) or {}
    if not isinstance(ours, dict) or not isinstance(ours.get("settings", {}), dict):
        raise ValueError(f"metadata.{OUR_KEY} must be an object with settings an object.")
    return ours


def _core(agent: dict, blocks: dict, name: str, notes: list[str]) -> CoreMemory:
    core = CoreMemory()
    for block_id in agent.get("block_ids") or []:
        if str(block_id) not in blocks:
            raise ValueError(f"agent {name!r} names block {block_id!r}, which the file lacks.")
        block = _block(blocks[str(block_id)], name, notes)
        if block.label in core.blocks:
            raise ValueError(f"agent {name!r} has two blocks labelled {block.label!r}.")
        core.blocks[block.label] = block
    return core


def _block(data: dict, agent: str, notes: list[str]) -> Block:
    """A block of the file; one whose text is over its stated limit (Letta does not enforce
    them) gets its limit raised to fit, with a note: nothing the user brought is cut."""
    label = _text(data.get("label"), f"a block of {agent!r}: label")
    where = f"block {label!r} of {agent!r}"
    value = _text(data.get("value") or "", f"{where}: value")
    limit = data.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{where} has limit {limit!r}; limits are 1 to {MAX_LIMIT}.")
    if len(value) > MAX_LIMIT:
        raise ValueError(f"{where} holds {len(value)} characters, more than a block may hold "
                         f"({MAX_LIMIT}).")
    if len(value) > limit:
        notes.append(f"block {label!r}: limit raised from {limit} to {len(value)} to hold "
                     "its text")
        limit = len(value)
    return Block(label, value, limit, description=_text(data.get("description") or "",
                                                        f"{where}: description"),
                 read_only=bool(data.get("read_only")))


def _map_tools(agent: dict, tools: dict, result: AfAgent) -> None:
    for tool_id in agent.get("tool_ids") or []:
        tool = tools.get(str(tool_id))
        if tool is None:
            continue
        name, kind = str(tool.get("name")), str(tool.get("tool_type") or "custom")
        if name in OUR_FUNCTIONS and kind.startswith("letta_"):
            result.tools_mapped[name] = OUR_FUNCTIONS[name]
            if name == "memory":
                result.notes.append(MEMORY_NOTE)
        else:
            result.tools_skipped[name] = SKIP_REASONS.get(
                kind, "no function here does its job" if kind.startswith("letta_")
                else f"a tool of kind {kind}")


def _offer_optional(settings: dict, mapped: dict[str, str]) -> None:
    """The optional functions the agent's tools map to join its extra_functions."""
    wanted = set(settings.get("extra_functions") or []) | {
        ours for ours in mapped.values() if ours in OPTIONAL_FUNCTIONS}
    if wanted:
        settings["extra_functions"] = [n for n in OPTIONAL_FUNCTIONS if n in wanted]


def _window(agent: dict, n_ctx: int, result: AfAgent) -> int:
    theirs = _object(agent.get("llm_config"), "llm_config").get("context_window") or agent.get(
        "context_window_limit")
    if isinstance(theirs, int) and theirs > n_ctx:
        result.notes.append(f"window {theirs} capped to the local model's {n_ctx}")
    return min(theirs, n_ctx) if isinstance(theirs, int) and theirs > 0 else n_ctx


def _rules(agent: dict, result: AfAgent) -> list[dict]:
    """The agent's rules on the tools that were mapped, in our names; the rest reported."""
    kept = []
    for rule in _objects(agent.get("tool_rules"), "tool_rules"):
        kind, tool = rule.get("type"), rule.get("tool_name")
        if kind not in KINDS:
            result.rules_dropped.append(f"rule of unknown kind {kind!r} on {tool!r} dropped")
            continue
        mapped = _mapped_rule(rule, result.tools_mapped)
        if mapped is None:
            result.rules_dropped.append(f"rule {kind} on {tool!r} dropped (tool not imported)")
            continue
        kept.append(mapped)
    return kept  # checked with the settings


def _mapped_rule(rule: dict, mapped: dict[str, str]) -> dict | None:
    """A rule with its tool names in ours (None if it names a tool that was not mapped)."""
    where = f"tool rule {rule.get('type')!r}"
    names = [rule.get("tool_name"), *_names(rule.get("children"), f"{where}: children"),
             *([rule["default_child"]] if rule.get("default_child") else []),
             *_object(rule.get("child_output_mapping"), f"{where}: child_output_mapping"
                      ).values()]
    if not all(isinstance(name, str) and name in mapped for name in names):
        return None
    out = {key: value for key, value in rule.items() if key not in ("prompt_template", "id")}
    out["tool_name"] = mapped[rule["tool_name"]]
    if "children" in out:
        out["children"] = [mapped[c] for c in out["children"]]
    if out.get("default_child"):
        out["default_child"] = mapped[out["default_child"]]
    if out.get("child_output_mapping"):
        out["child_output_mapping"] = {k: mapped[v]
                                       for k, v in out["child_output_mapping"].items()}
    return out


def _messages(agent: dict, mapped: dict[str, str], name: str, call_texts: dict
              ) -> tuple[list[Message], list[int]]:
    """The agent's messages as ours, in order with their dates (the system prompt left out,
    ours being built anew), and the seqs of those in context."""
    messages: list[Message] = []
    seqs_of: dict[str, list[int]] = {}
    when = datetime.now(UTC)
    letta_messages = agent.get("messages") or []
    for index, letta in enumerate(letta_messages):
        where = f"message {index} of {name!r}"
        if not isinstance(letta, dict):
            raise ValueError(f"{where} is not an object.")
        when = _date(letta.get("created_at"), where) or when
        answered = index + 1 < len(letta_messages) and isinstance(
            letta_messages[index + 1], dict) and letta_messages[index + 1].get("role") == "tool"
        ours = _message(letta, mapped, where, index == 0, answered)
        if len(ours) == 1 and ours[0].role == "function_call" and \
                str(letta.get("id")) in call_texts:
            ours[0].content = _text(call_texts[str(letta.get("id"))], f"{where}: call text")
        for message in ours:
            message.created_at, message.seq = when, len(messages) + 1
            messages.append(message)
        seqs_of[str(letta.get("id"))] = [m.seq for m in ours if m.seq is not None]
    in_context = [seq for letta_id in agent.get("in_context_message_ids") or []
                  for seq in seqs_of.get(str(letta_id), [])]
    return messages, in_context


def _message(letta: dict, mapped: dict[str, str], where: str, first: bool,
             answered: bool) -> list[Message]:
    """One Letta message as ours (answered: a tool message follows it)."""
    role = letta.get("role")
    text = _content_text(letta.get("content"), "text")
    if role == "system":
        return [] if first else [Message("system", text)]
    if role == "user":
        return [_user(text)]
    if role == "assistant":
        return _assistant(letta, text, mapped, answered)
    if role == "tool":
        returns = letta.get("tool_returns") or [{}]
        result = returns[0].get("func_response") if isinstance(returns[0], dict) else None
        tool = str(letta.get("name") or "")
        return [Message("function_result", str(result if result is not None else text),
                        function_name=mapped.get(tool) or OUR_NAMES.get(tool, tool))]
    raise ValueError(f"{where} has role {role!r}; Letta's roles are system, user, assistant "
                     "and tool.")


def _user(text: str) -> Message:
    """A user message; Letta sends alerts and heartbeats as user messages in JSON."""
    try:
        packed = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return Message("user", text)
    if isinstance(packed, dict) and packed.get("type") in ALERT_TYPES:
        return Message("system", str(packed.get("message", text)))
    if isinstance(packed, dict) and packed.get("type") == "user_message":
        return Message("user", str(packed.get("message", text)))
    return Message("user", text)


def _assistant(letta: dict, text: str, mapped: dict[str, str], answered: bool
               ) -> list[Message]:
    """Each tool call as a function_call of ours (its reasoning as thoughts); text with no
    call and a result after it as a call that did not parse; a plain reply as a
    send_message call and its result."""
    thoughts = _content_text(letta.get("content"), "reasoning")
    calls = []
    for call in _objects(letta.get("tool_calls"), "a message's tool_calls"):
        function = _object(call.get("function"), "a tool call's function")
        tool, arguments = str(function.get("name") or ""), _arguments(function)
        calls.append(_call(thoughts, _our_function(tool, arguments, mapped), arguments))
    if calls:
        return calls
    if answered:
        return [Message("function_call", text)]
    sent = _call(thoughts, "send_message", {"message": text})
    return [sent, Message("function_result", SENT, function_name="send_message")]


def _our_function(tool: str, arguments: dict, mapped: dict[str, str]) -> str:
    """Our name for a past call of a Letta tool (a `memory` call: by its command)."""
    if tool == "memory" and tool in mapped:
        return MEMORY_COMMANDS.get(str(arguments.get("command")), tool)
    return mapped.get(tool) or OUR_NAMES.get(tool, tool)


def call_text(thoughts: str, function: str, arguments: dict) -> str:
    """A call's text as an imported call is written (an export keeps other texts exactly)."""
    return json.dumps({"thoughts": thoughts, "function": function, "arguments": arguments},
                      ensure_ascii=False)


def _call(thoughts: str, function: str, arguments: dict) -> Message:
    return Message("function_call", call_text(thoughts, function, arguments),
                   function_name=function, function_args=arguments)


def _arguments(function: dict) -> dict:
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = loads_checked(arguments)
        except json.JSONDecodeError:
            return {"raw": arguments}
    return arguments if isinstance(arguments, dict) else {}


def _content_text(content: Any, kind: str) -> str:
    """The text of one kind ("text" or "reasoning") in a message's content (a string, or
    Letta's list of typed parts)."""
    if isinstance(content, str):
        return content if kind == "text" else ""
    parts = [part.get(kind, "") for part in content or []
             if isinstance(part, dict) and part.get("type") == kind]
    return "\n".join(str(p) for p in parts if p)


def _date(value: Any, where: str) -> datetime | None:
    return None if value is None else parse_time(value, f"{where}: created_at")


def _object(value: Any, where: str) -> dict:
    """An object of the file (absent: empty); anything else is a ValueError naming it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, not {type(value).__name__}.")
    return value


def _objects(value: Any, where: str) -> list[dict]:
    """A list of objects of the file (absent: empty); anything else is a ValueError."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"{where} must be a list of objects.")
    return value


def _names(value: Any, where: str) -> list[str]:
    """A list of tool names of the file (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where} must be a list of names.")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, not {type(value).__name__}.")
    return value
