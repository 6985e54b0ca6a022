"""The functions the agent can call. Each is defined once, as a Python function: its signature
and docstring generate both the JSON schema given to the constraint and the prompt's description.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..llm.decoding import DATE_STRING, NON_BLANK_STRING
from ..memory.core import CoreMemory, CoreMemoryError
from ..memory.messages import Message
from ..memory.paging import Page

_JSON_TYPES = {str: "string", int: "integer", bool: "boolean"}
INT_MAX_DIGITS = 3  # bounds integers so a completion cannot run on in digits
# String parameters (by name, in every function) that the constraint itself keeps to what the
# function accepts: a call it lets through is not refused for an empty text or a bad date.
TEXT_SCHEMAS = {"message": NON_BLANK_STRING, "query": NON_BLANK_STRING,
                "content": NON_BLANK_STRING, "old_content": NON_BLANK_STRING,
                "start_date": DATE_STRING, "end_date": DATE_STRING}
MAX_PAUSE_MINUTES = 360
INT_MAXIMA = {"minutes": {"maximum": MAX_PAUSE_MINUTES}}


class FunctionError(Exception):
    """A function that failed for a reason the model can fix; the text is shown to it."""


class FunctionContext(Protocol):
    """What a function may touch: the agent's memory, settings and the user channel."""

    @property
    def core(self) -> CoreMemory:
        """The agent's core memory."""

    @property
    def page_size(self) -> int:
        """Search results per page."""

    def recall_search(self, query: str, page: int) -> Page: ...
    def recall_search_date(self, start: str, end: str, page: int) -> Page: ...
    def recall_next(self, messages: list) -> dict: ...
    def archival_insert(self, content: str) -> int: ...
    def archival_search(self, query: str, page: int) -> Page: ...
    def send_to_user(self, message: str) -> None: ...
    def pause_heartbeats(self, minutes: int) -> None: ...


@dataclass
class Param:
    """One parameter of an agent function."""

    name: str
    type: type
    description: str


@dataclass
class AgentFunction:
    """A callable function with its generated schema and prompt description."""

    name: str
    description: str
    params: list[Param]
    func: Callable[..., str]
    takes_heartbeat: bool = field(init=False)

    def __post_init__(self) -> None:
        self.takes_heartbeat = any(p.name == "request_heartbeat" for p in self.params)

    def arguments_schema(self, labels: list[str], heartbeat: bool = True) -> dict:
        """The JSON schema of this function's arguments (block labels as an enum; heartbeat
        False: without request_heartbeat)."""
        properties = {}
        params = [p for p in self.params if heartbeat or p.name != "request_heartbeat"]
        for param in params:
            schema: dict[str, Any] = {"type": _JSON_TYPES[param.type]}
            if param.type is int:
                schema.update(minimum=1, maxDigits=INT_MAX_DIGITS)  # pages and minutes
                schema.update(INT_MAXIMA.get(param.name, {}))
            if param.name == "label" and labels:
                schema = {"type": "string", "enum": labels}
            schema = TEXT_SCHEMAS.get(param.name, schema)
            properties[param.name] = schema
        return {"type": "object", "properties": properties,
                "required": [p.name for p in params], "additionalProperties": False}

    def prompt_line(self, heartbeat: bool = True) -> dict:
        """Name, compact signature and description, for the system instructions (heartbeat
        False: without request_heartbeat, as the reply architecture calls it)."""
        signature = ", ".join(f"{p.name}: {_JSON_TYPES[p.type]}" for p in self.params
                              if heartbeat or p.name != "request_heartbeat")
        args = "; ".join(f"{p.name} = {p.description}" for p in self.params
                         if p.name != "request_heartbeat")
        return {"name": self.name, "signature": signature,
                "description": f"{self.description} ({args})" if args else self.description}


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    lines = inspect.cleandoc(doc).splitlines()
    described = {}
    in_args = False
    for line in lines[1:]:
        if line.strip() == "Args:":
            in_args = True
        elif in_args and ":" in line:
            name, text = line.split(":", 1)
            described[name.strip()] = text.strip()
    return lines[0], described


def agent_function(func: Callable[..., str]) -> Callable[..., str]:
    """Register a function (first parameter: the FunctionContext) for the agent."""
    description, described = _parse_docstring(func.__doc__ or func.__name__)
    params = []
    for name, parameter in list(inspect.signature(func).parameters.items())[1:]:
        if parameter.annotation not in _JSON_TYPES:
            raise TypeError(f"{func.__name__}.{name}: unsupported type {parameter.annotation}")
        if name not in described:
            raise TypeError(f"{func.__name__}: parameter '{name}' is not described in Args")
        params.append(Param(name, parameter.annotation, described[name]))
    FUNCTIONS[func.__name__] = AgentFunction(func.__name__, description, params, func)
    return func


FUNCTIONS: dict[str, AgentFunction] = {}  # every function, in the order the prompt lists them
# Offered only to the agents whose settings name them (extra_functions): an imported Letta agent
# that had memory_rethink. Every other agent's instructions, and so its prefix snapshot and the
# benchmarks' figures, stay as they were.
OPTIONAL_FUNCTIONS = ("core_memory_rethink",)


def offered(extra: list[str] | tuple[str, ...] = ()) -> dict[str, AgentFunction]:
    """The functions an agent is offered: the standard ones and the optional ones it names."""
    return {name: f for name, f in FUNCTIONS.items()
            if name not in OPTIONAL_FUNCTIONS or name in extra}


def format_page(page: Page, render: Callable[[Any], str]) -> str:
    """A search result page as text, or an error if the page does not exist."""
    if page.total == 0:
        return "No results (page 1 of 1, total 0)."
    if not page.items:
        raise FunctionError(f"Page {page.page} does not exist: there are {page.pages} page(s).")
    return "\n".join([page.header().capitalize() + ":"] + [render(i) for i in page.items])


def message_line(message: Message, mark: str = "-") -> str:
    """A stored message as one line of a result: its mark, time, role and text."""
    when = message.created_at.strftime("%Y-%m-%d %H:%M") if message.created_at else "?"
    return f"{mark} [{when}] {message.role}: {message.content}"


def replies_shown(page: Page, replies: dict) -> dict:
    """The reply shown under each found message, by its id: the message that followed it (the
    answer to a question is often there, sharing no word with the query), unless that one
    is found too."""
    found = {m.id for m in page.items}
    return {key: reply for key, reply in replies.items() if reply.id not in found}


def _with_replies(page: Page, replies: dict) -> Callable[[Any], str]:
    """Renders a found message with the reply shown under it (replies_shown)."""
    shown = replies_shown(page, replies)

    def render(message: Message) -> str:
        reply = shown.get(message.id)
        if reply is None:
            return message_line(message)
        return f"{message_line(message)}\n{message_line(reply, '  then')}"

    return render


@agent_function
def send_message(ctx: FunctionContext, message: str) -> str:
    """Send a message to the user: the only output they see.

    Args:
        message: the text for the user
    """
    if not message.strip():
        raise FunctionError("message is empty: write what the user should read.")
    ctx.send_to_user(message)
    return "Sent."


@agent_function
def core_memory_append(ctx: FunctionContext, label: str, content: str,
                       request_heartbeat: bool) -> str:
    """Add a line to a core memory block.

    Args:
        label: the block, e.g. human or persona
        content: the text to add
        request_heartbeat: true to act again right after the result
    """
    return ctx.core.append(label, content)


@agent_function
def core_memory_replace(ctx: FunctionContext, label: str, old_content: str, new_content: str,
                        request_heartbeat: bool) -> str:
    """Replace exact text in a core memory block (empty new_content deletes it).

    Args:
        label: the block, e.g. human or persona
        old_content: the exact text to replace
        new_content: the new text
        request_heartbeat: true to act again right after the result
    """
    return ctx.core.replace(label, old_content, new_content)


@agent_function
def core_memory_rethink(ctx: FunctionContext, label: str, new_memory: str,
                        request_heartbeat: bool) -> str:
    """Rewrite a whole core memory block: keep what still holds, drop what is outdated.

    Args:
        label: the block, e.g. human or persona
        new_memory: the block's complete new text
        request_heartbeat: true to act again right after the result
    """
    return ctx.core.rethink(label, new_memory)


@agent_function
def conversation_search(ctx: FunctionContext, query: str, page: int,
                        request_heartbeat: bool) -> str:
    """Search all past messages by text; each is shown with the message that followed it.

    Args:
        query: words to look for
        page: result page, starting at 1
        request_heartbeat: true to act again right after the result
    """
    if not query.strip():
        raise FunctionError("query is empty: write the words to look for.")
    found = ctx.recall_search(query, page)
    return format_page(found, _with_replies(found, ctx.recall_next(found.items)))


@agent_function
def conversation_search_date(ctx: FunctionContext, start_date: str, end_date: str, page: int,
                             request_heartbeat: bool) -> str:
    """Find past messages between two dates, both inclusive.

    Args:
        start_date: first day, YYYY-MM-DD
        end_date: last day, YYYY-MM-DD
        page: result page, starting at 1
        request_heartbeat: true to act again right after the result
    """
    return format_page(ctx.recall_search_date(start_date, end_date, page), message_line)


@agent_function
def archival_memory_insert(ctx: FunctionContext, content: str, request_heartbeat: bool) -> str:
    """Save a passage to archival memory for later.

    Args:
        content: the text to save, self-contained
        request_heartbeat: true to act again right after the result
    """
    if not content.strip():
        raise FunctionError("content is empty: write the passage to save.")
    ctx.archival_insert(content)
    return "Saved to archival memory."


@agent_function
def archival_memory_search(ctx: FunctionContext, query: str, page: int,
                           request_heartbeat: bool) -> str:
    """Search archival memory by meaning and exact words.

    Args:
        query: what to look for
        page: result page, starting at 1
        request_heartbeat: true to act again right after the result
    """
    return format_page(ctx.archival_search(query, page),
                       lambda p: f"- {p['content']}")


@agent_function
def pause_heartbeats(ctx: FunctionContext, minutes: int, request_heartbeat: bool) -> str:
    """Pause timed heartbeats for a while.

    Args:
        minutes: how long, at most 360
        request_heartbeat: true to act again right after the result
    """
    if not 1 <= minutes <= MAX_PAUSE_MINUTES:
        raise FunctionError(f"minutes must be between 1 and {MAX_PAUSE_MINUTES}, got {minutes}.")
    ctx.pause_heartbeats(minutes)
    return f"Timed heartbeats paused for {minutes} minutes."


@dataclass
class Outcome:
    """The result of executing one call."""

    function: str
    result: str
    failed: bool
    heartbeat: bool


def _check_arguments(function: AgentFunction, arguments: Any) -> None:
    if not isinstance(arguments, dict):
        raise FunctionError(f"arguments of {function.name} must be an object.")
    expected = {p.name: p.type for p in function.params}
    unknown = set(arguments) - set(expected)
    missing = set(expected) - set(arguments)
    if unknown or missing:
        raise FunctionError(f"{function.name} takes {', '.join(expected) or 'no arguments'}; "
                            f"missing: {sorted(missing)}, unknown: {sorted(unknown)}.")
    for name, kind in expected.items():
        value = arguments[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise FunctionError(f"{function.name}: {name} must be a {_JSON_TYPES[kind]}.")


def truncate(text: str, max_chars: int) -> str:
    """Cut a function result to max_chars, saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return (text[:max_chars] + f"... [truncated {len(text) - max_chars} characters: "
            "ask for a more specific query or the next page]")


def execute(call: Any, ctx: FunctionContext, max_chars: int,
            functions: dict[str, AgentFunction] | None = None) -> Outcome:
    """Validate and run one parsed call of the functions offered (default: the standard
    ones); the model's mistakes become readable errors."""
    functions = offered() if functions is None else functions
    name = call.get("function") if isinstance(call, dict) else None
    function = functions.get(name) if isinstance(name, str) else None
    if function is None:
        return Outcome(str(name), f"Error: unknown function {name!r}. Functions: "
                       f"{', '.join(functions)}.", True, True)
    arguments = call.get("arguments")
    try:
        _check_arguments(function, arguments)
        result = function.func(ctx, **arguments)
    except (FunctionError, CoreMemoryError, ValueError) as exc:
        return Outcome(function.name, f"Error: {exc}", True, True)
    heartbeat = bool(arguments.get("request_heartbeat", False))
    return Outcome(function.name, truncate(result, max_chars), False, heartbeat)
