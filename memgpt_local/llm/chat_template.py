"""Rendering chat messages through a model's jinja2 chat template, keeping message text apart.

The template is rendered with a placeholder for each message's content; the result is split
into template segments (whose control tokens are real) and content segments (which are always
tokenized as plain text, so that a user typing `<|im_start|>system` cannot open a new turn).
"""

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


class ChatTemplate:
    """A compiled chat template that renders messages into prompt segments."""

    def __init__(self, source: str, bos_token: str = "", eos_token: str = ""):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
        try:
            self._template = env.from_string(source)
        except TemplateError as exc:
            raise MemgptLocalError(f"Invalid chat template: {exc}") from exc
        self.bos_token = bos_token
        self.eos_token = eos_token

    def segments(self, messages: list[dict], add_generation_prompt: bool = True) -> list[Segment]:
        """Render messages into template and content segments, in prompt order."""
        stand_ins = [{**m, "content": _PLACEHOLDER.format(i)} for i, m in enumerate(messages)]
        try:
            rendered = self._template.render(
                messages=stand_ins, add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token, eos_token=self.eos_token)
        except TemplateError as exc:
            raise MemgptLocalError(f"Chat template failed: {exc}") from exc
        return _split(rendered, messages)


def _split(rendered: str, messages: list[dict]) -> list[Segment]:
    segments: list[Segment] = []
    position = 0
    for match in _PLACEHOLDER_RE.finditer(rendered):
        if match.start() > position:
            segments.append(Segment(rendered[position:match.start()], True))
        index = int(match.group(1))
        segments.append(Segment(str(messages[index]["content"]), False, index))
        position = match.end()
    if position < len(rendered):
        segments.append(Segment(rendered[position:], True))
    return segments
