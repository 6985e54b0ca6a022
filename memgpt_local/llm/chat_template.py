"""Rendering chat messages through a model's jinja2 chat template, keeping message text apart.

The template is rendered with a placeholder for each message's content (and for each string in
a past tool call's arguments); the result is split into template segments (whose control tokens
are real) and content segments (which are always tokenized as plain text, so that a user typing
`<|im_start|>system` cannot open a new turn). Tools, where given, are rendered as the template
lists them (`tools=`).
"""

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import MemgptLocalError

_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered prompt: template text (special tokens allowed) or message text."""

    text: str
    is_template: bool
    message_index: int | None = None


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    """JSON as chat templates expect it (as transformers and llama.cpp write it: no HTML
    escaping, no ASCII escaping, so placeholders pass through)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


class _Inert:
    """The texts a rendering must keep as plain text, each behind a placeholder, with the
    message each belongs to."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.owners: list[int] = []

    def hold(self, text: str, owner: int, in_json: bool = False) -> str:
        """A placeholder for the text (in_json: it stands inside a JSON string, so the text
        that replaces it is escaped as JSON writes it)."""
        self.texts.append(json.dumps(text, ensure_ascii=False)[1:-1] if in_json else text)
        self.owners.append(owner)
        return _PLACEHOLDER.format(len(self.texts) - 1)

    def stand_in(self, message: dict, owner: int) -> dict:
        """The message with its content (and its tool calls' strings) behind placeholders;
        an empty content stays empty (templates test it)."""
        content = message.get("content")
        stand_in = {**message, "content": self.hold(str(content), owner) if content else ""}
        if message.get("tool_calls"):
            stand_in["tool_calls"] = [self._call(call, owner) for call in message["tool_calls"]]
        return stand_in

    def _call(self, call: dict, owner: int) -> dict:
        function = dict(call.get("function") or {})
        function["arguments"] = self._strings(function.get("arguments") or {}, owner)
        return {**call, "function": function}

    def _strings(self, value: Any, owner: int) -> Any:
        if isinstance(value, str):
            return self.hold(value, owner, in_json=True)
        if isinstance(value, dict):
            return {k: self._strings(v, owner) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v, owner) for v in value]
        return value


class ChatTemplate:
    """A compiled chat template that renders messages into prompt segments."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise MemgptLocalError(f"Invalid chat template: {exc}") from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.strict_turns = self._probe(LOOSE)[1] and not self._probe(STRICT)[1]
        # Nemo's shows the system message only in a last turn that is the user's: an agent's
        # step after a tool's result would lose its instructions, so they go into the last
        # user turn here, always
        self.system_in_last_user = self.strict_turns and SYSTEM_MARK not in self._probe(
            STRICT[:3])[0]

    def segments(self, messages: list[dict], add_generation_prompt: bool = True,
                 tools: list[dict] | None = None) -> list[Segment]:
        """Render messages (and the tools, where given) into template and content segments,
        in prompt order."""
        inert = _Inert()
        if self.strict_turns:
            stand_ins = alternating(messages, inert, self.system_in_last_user)
        else:
            stand_ins = [inert.stand_in(m, i) for i, m in enumerate(messages)]
        extra = {"tools": tools, "tools_in_user_message": False} if tools else {}
        try:
            rendered = self._template.render(
                messages=stand_ins, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token, **extra)
        except TemplateError as exc:
            raise MemgptLocalError(f"Chat template failed: {exc}") from exc
        return _split(rendered, inert)


    def _probe(self, messages: list[dict]) -> tuple[str, bool]:
        """The template's text for these messages ("" where it fails), and whether it refused
        them (raised a TemplateError; any other failure says nothing here)."""
        try:
            return self._template.render(messages=messages, add_generation_prompt=True,
                                         bos_token=self.bos_token, eos_token=self.eos_token), False
        except TemplateError:
            return "", True
        except Exception:  # noqa: BLE001 - probing only
            return "", False


# what an agent's prompt has (several system messages, users in a row) against what strict
# templates accept (one system message, then user and assistant in turn)
LOOSE = [{"role": "system", "content": "a"}, {"role": "system", "content": "b"},
         {"role": "user", "content": "c"}, {"role": "user", "content": "d"}]
SYSTEM_MARK = "\ue010"
STRICT = [{"role": "system", "content": SYSTEM_MARK}, {"role": "user", "content": "c"},
          {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}]
JOIN = "\n\n"
FILLER = "(continued)"  # the text of a turn a strict template needs where the agent has none


def alternating(messages: list[dict], inert: _Inert, system_in_last_user: bool = False
                ) -> list[dict]:
    """The messages laid out for a template that takes one system message and then user and
    assistant turns in alternation (Mistral's, Gemma's): the leading system messages joined
    into one (or, system_in_last_user, put at the head of the last user turn), later ones and
    memory notes joined into the user's turn, a filler turn where one is missing; tool calls
    and results pass as they are. Each text keeps its placeholder, so it still counts for the
    message it came from."""
    head = 0
    while head < len(messages) and messages[head]["role"] == "system":
        head += 1
    system = {"role": "system", "content": JOIN.join(
        inert.hold(str(m["content"]), i) for i, m in enumerate(messages[:head]))}
    laid = _turns(messages, head, inert)
    if not any(m["role"] == "user" for m in laid):  # such templates show the system message
        laid.insert(0, {"role": "user",  # with a user's turn
                        "content": inert.hold(FILLER, min(head, len(messages) - 1))})
    if not head:
        return laid
    if not system_in_last_user:
        return [system, *laid]
    last_user = [m for m in laid if m["role"] == "user"][-1]
    last_user["content"] = JOIN.join(t for t in (system["content"], last_user["content"]) if t)
    return laid


def _turns(messages: list[dict], head: int, inert: _Inert) -> list[dict]:
    """The messages after the system head in alternating user and assistant turns."""
    laid: list[dict] = []
    expected, last_plain = "user", None
    for index, message in enumerate(messages[head:], start=head):
        if message.get("tool_calls") or message["role"] == "tool":
            laid.append(inert.stand_in(message, index))
            last_plain = None
            continue
        role = "assistant" if message["role"] == "assistant" else "user"
        text = inert.hold(str(message["content"]), index) if message["content"] else ""
        if last_plain is not None and last_plain["role"] == role:
            last_plain["content"] = JOIN.join(t for t in (last_plain["content"], text) if t)
            continue
        if role != expected:
            laid.append({"role": expected, "content": inert.hold(FILLER, index)})
        last_plain = {"role": role, "content": text}
        laid.append(last_plain)
        expected = "user" if role == "assistant" else "assistant"
    return laid


def _split(rendered: str, inert: _Inert) -> list[Segment]:
    segments: list[Segment] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(rendered):
        if match.start() > position:
            segments.append(Segment(rendered[position:match.start()], True))
        index = int(match.group(1))
        segments.append(Segment(inert.texts[index], False, inert.owners[index]))
        position = match.end()
    if position < len(rendered):
        segments.append(Segment(rendered[position:], True))
    return segments
