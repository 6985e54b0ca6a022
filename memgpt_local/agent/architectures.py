"""The two agent architectures, each one object the loop and the context assembly ask:
`memgpt` (the paper's, 2023: every step one JSON call, the user sees only send_message,
request_heartbeat asks for another step) and `reply` (Letta's letta_v1_agent, 2025: each step is
a plain reply in the model's own words, which ends the turn, or one tool call, whose result
gives the model another step; no send_message, no heartbeats).

Both store a turn the same way (a reply is a send_message call and its result, as a Letta
import has it), so an agent switches architecture without touching its history: each shows
the stored messages to the model in its own form (`entries`).
"""

import json
import re
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from ..llm.tool_formats import JSON, ToolFormat, assistant_call, tool_result
from ..memory.messages import Message
from .functions import AgentFunction
from .recollection import ENTRY_FUNCTION

ArchitectureName = Literal["memgpt", "reply"]  # the typed form, for the HTTP schemas
MEMGPT, REPLY = get_args(ArchitectureName)
ARCHITECTURES: tuple[str, ...] = (MEMGPT, REPLY)
REPLY_FUNCTION = "send_message"  # what a rule naming it means under `reply`: a plain reply
DESCRIPTION = ("reply (new agents' default): plain replies in the model's own words, tool calls "
               "between them; memgpt: the paper's (every step a JSON call, replies through "
               "send_message)")  # for the CLI's help and the HTTP schema


@dataclass
class Entry:
    """One chat message of the prompt's queue part and the stored message it shows."""

    key: str
    message: dict


class Architecture(Protocol):
    """What differs between the architectures: the instructions, the queue's form, the call
    schema's arguments."""

    name: str
    heartbeats: bool  # calls carry request_heartbeat (else every call gets another step)
    native_tools: bool  # the chat template lists the tools and renders calls and results
    tool_format: ToolFormat
    talk_in_view: bool  # memory brought to a turn may repeat conversation the context shows

    def template_dir(self) -> str:
        """The folder of prompt_templates holding its system.jinja and alerts.toml."""

    def function_line(self, function: AgentFunction) -> dict:
        """A function as its instructions list it."""

    def entries(self, queue: list[Message]) -> list[Entry]:
        """The queue as chat messages in this architecture's form."""


def user_entry(message: Message) -> dict:
    """A user message with its time stamp, as the paper's agent sees it."""
    when = message.created_at.strftime("%Y-%m-%d %H:%M") if message.created_at else ""
    return {"role": "user", "content": f"[{when}] {message.content}" if when else message.content}


def shared_entry(message: Message) -> dict | None:
    """The form both architectures give memory entries, results and system events (None for
    the other roles)."""
    if is_memory_entry(message):
        return {"role": "user", "content": f"[memory] {message.content}"}
    if message.role == "function_result":
        return {"role": "user", "content": f"[function result: {message.function_name}] "
                                           f"{message.content}"}
    if message.role == "system":
        return {"role": "user", "content": f"[system] {message.content}"}
    return None


class MemgptArchitecture:
    """The paper's architecture, exactly as it was: calls as the model wrote them."""

    name = MEMGPT
    heartbeats = True
    native_tools = False
    tool_format = JSON
    talk_in_view = False

    def template_dir(self) -> str:
        """prompt_templates/memgpt."""
        return "memgpt"

    def function_line(self, function: AgentFunction) -> dict:
        """Name, signature (request_heartbeat included) and description."""
        return function.prompt_line()

    def entries(self, queue: list[Message]) -> list[Entry]:
        """Every message, calls as written."""
        return [Entry(str(m.id), memgpt_entry(m)) for m in queue]


def memgpt_entry(message: Message) -> dict:
    """A recall message as the paper's agent sees it."""
    if message.role == "function_call":
        return {"role": "assistant", "content": message.content}
    return shared_entry(message) or user_entry(message)


class ReplyArchitecture:
    """Plain replies, and calls in the model's own tool format (its template's), or in ours
    (a JSON object listed in the instructions) where its template defines none."""

    name = REPLY
    heartbeats = False
    talk_in_view = True  # a turn's notes stand beside its question (see recollection.py)

    def __init__(self, tool_format: ToolFormat = JSON):
        self.tool_format = tool_format
        self.native_tools = tool_format.native

    def template_dir(self) -> str:
        """prompt_templates/reply."""
        return "reply"

    def function_line(self, function: AgentFunction) -> dict:
        """Name, signature and description, without request_heartbeat."""
        return function.prompt_line(heartbeat=False)

    def entries(self, queue: list[Message]) -> list[Entry]:
        """Replies as the assistant's plain text (their "Sent." results left out), calls as
        the tool format has them, user messages as written, after the notes of their turn."""
        shown, call_seq = [], 0
        for message in queue:
            if message.role == "function_call":
                call_seq = message.seq or message.id or 0
            entry = self._entry(message, call_seq)
            if entry is not None:
                shown.append((message, Entry(str(message.id), entry)))
        return notes_before_their_user_message(shown)

    def _entry(self, message: Message, call_seq: int) -> dict | None:
        if message.role == "function_result" and message.function_name == REPLY_FUNCTION:
            return None
        native = self.native_tools and isinstance(message.function_args, dict)
        if message.role == "function_call" and native and \
                message.function_name != REPLY_FUNCTION:
            return assistant_call(message.function_name or "", without_heartbeat(
                message.function_args or {}), call_seq)
        if message.role == "function_result" and native_result(message, self.native_tools):
            return tool_result(message.function_name or "", message.content, call_seq)
        if message.role == "function_call":
            return {"role": "assistant", "content": call_text(message)}
        if message.role == "user":
            return {"role": "user", "content": message.content}
        return shared_entry(message) or {"role": message.role, "content": message.content}


def notes_before_their_user_message(shown: list[tuple[Message, Entry]]) -> list[Entry]:
    """The entries with the notes stored right after a user message (the memory brought to
    its turn, an alert) moved before it: the user's own words are what the model answers.
    Stored order decides, so every step of a turn shows the same prefix."""
    ordered: list[Entry] = []
    user_at: int | None = None  # where the user message the current notes follow stands
    for message, entry in shown:
        if message.role == "user":
            user_at = len(ordered)
        elif user_at is not None and is_note(message):
            ordered.insert(user_at, entry)
            user_at += 1
            continue
        else:
            user_at = None
        ordered.append(entry)
    return ordered


def is_note(message: Message) -> bool:
    """A system alert or memory brought to a turn (not a call's result)."""
    return message.role == "system" or is_memory_entry(message)


def is_memory_entry(message: Message) -> bool:
    """The memory brought to a turn, stored like a function's result."""
    return message.role == "function_result" and message.function_name == ENTRY_FUNCTION


def call_text(message: Message) -> str:
    """A stored call as the reply architecture shows it: a reply's text, or the call as one
    JSON object without request_heartbeat (a call that did not parse: as written)."""
    arguments = message.function_args
    if not isinstance(arguments, dict) or not message.function_name:
        return message.content
    if message.function_name == REPLY_FUNCTION and isinstance(arguments.get("message"), str):
        return arguments["message"]
    return json.dumps({"function": message.function_name,
                       "arguments": without_heartbeat(arguments)}, ensure_ascii=False)


def without_heartbeat(arguments: dict) -> dict:
    """A call's arguments as the reply architecture writes them."""
    return {k: v for k, v in arguments.items() if k != "request_heartbeat"}


def native_result(message: Message, native: bool) -> bool:
    """Whether a stored result is shown as a tool's result (a native format's), not as a
    labelled user message (memory brought in is never a tool's)."""
    return native and message.function_name not in (ENTRY_FUNCTION, None)


def stored_call(function: str, arguments: dict) -> Message:
    """A reply-architecture call stored as the paper's agent would have written it (a reply
    as send_message; request_heartbeat true where the function takes it: it continues)."""
    content = json.dumps({"function": function, "arguments": arguments}, ensure_ascii=False)
    return Message("function_call", content, function_name=function, function_args=arguments)


def architecture(name: str, tool_format: ToolFormat = JSON) -> Architecture:
    """The architecture of that name (the reply architecture in a model's tool format)."""
    return ReplyArchitecture(tool_format) if name == REPLY else MemgptArchitecture()


_REPEAT_MIN_CHARS = 8


def without_repeats(text: str, repeats: int = 3) -> str:
    """A reply that ended in a loop, with the repeated tail kept once: the loop guard stops a
    span written `repeats` times in a row (a span of tokens, which may hold several copies of
    a shorter phrase); the reader gets the phrase once, however many copies were written."""
    for span in range(_REPEAT_MIN_CHARS, len(text) // repeats + 1):
        copies = _copies_at_end(text, span)
        if copies >= repeats:
            return text[: len(text) - (copies - 1) * span].rstrip()
    return text


def _copies_at_end(text: str, span: int) -> int:
    """How many times in a row the text's last `span` characters end it."""
    tail, copies = text[-span:], 1
    while len(text) >= (copies + 1) * span and text[: len(text) - copies * span].endswith(tail):
        copies += 1
    return copies


_SPACES = re.compile(r"[ \t]+\n")


def tidy_reply(text: str) -> str:
    """A reply's text as the user gets it: blanks trimmed at both ends and line ends."""
    return _SPACES.sub("\n", text).strip()
