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


def _tojson(value, indent=None, **_) -> str:
    """JSON as chat templates expect it (as transformers and llama.cpp write it: no HTML
    escaping, no ASCII escaping, so placeholders pass through)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


class _Inert:
    """The texts a rendering must keep as plain text, each behind a placeholder, with the
    message each belongs to."""

    def __init__(self):
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

    def _strings(self, value, owner: int):
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
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise MemgptLocalError(f"Invalid chat template: {exc}") from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token

    def segments(self, messages: list[dict], add_generation_prompt: bool = True,
                 tools: list[dict] | None = None) -> list[Segment]:
        """Render messages (and the tools, where given) into template and content segments,
        in prompt order."""
        inert = _Inert()
        stand_ins = [inert.stand_in(m, i) for i, m in enumerate(messages)]
        extra = {"tools": tools, "tools_in_user_message": False} if tools else {}
        try:
            rendered = self._template.render(
                messages=stand_ins, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token, **extra)
        except TemplateError as exc:
            raise MemgptLocalError(f"Chat template failed: {exc}") from exc
        return _split(rendered, inert)


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
