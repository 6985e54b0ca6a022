"""Streaming the user-visible reply out of a function call that is still being generated."""

import json
import re
from collections.abc import Callable

_MESSAGE_START = re.compile(r'"function"\s*:\s*"send_message".*?"message"\s*:\s*"', re.S)


def _decodable_prefix(raw: str) -> tuple[str, bool]:
    """The longest prefix of a JSON string body that decodes, and whether the string ended."""
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            width = 6 if raw[i + 1:i + 2] == "u" else 2
            if i + width > len(raw):
                break
            i += width
        elif raw[i] == '"':
            return raw[:i], True
        else:
            i += 1
    return raw[:i], False


class ReplyStreamer:
    """Feed it generated text; it calls on_text with each new piece of send_message's text."""

    def __init__(self, on_text: Callable[[str], None] | None):
        self.on_text = on_text
        self.text = ""
        self.emitted = 0  # characters of reply text passed on so far
        self.done = False

    def feed(self, piece: str) -> None:
        """Take the next generated piece and pass on any new reply text."""
        self.text += piece
        if self.on_text is None or self.done:
            return
        start = _MESSAGE_START.search(self.text)
        if start is None:
            return
        body, self.done = _decodable_prefix(self.text[start.end():])
        try:
            decoded = json.loads(f'"{body}"')
        except json.JSONDecodeError:
            return
        if len(decoded) > self.emitted:
            self.on_text(decoded[self.emitted:])
            self.emitted = len(decoded)


class PlainStreamer:
    """Feed it generated text; it passes the text on as it comes, unless the output is a call
    (it begins, after blanks, with the tool format's `opener`: `{` for ours): a reply in the
    model's own words. Nothing is passed on while the text could still become the opener."""

    def __init__(self, on_text: Callable[[str], None] | None, opener: str = "{"):
        self.on_text = on_text
        self.opener = opener
        self.text = ""
        self.emitted = 0
        self._is_call: bool | None = None

    def feed(self, piece: str) -> None:
        """Take the next generated piece and pass it on if the output is a reply."""
        self.text += piece
        begun = self.text.lstrip()
        if self._is_call is None and begun and not (
                len(begun) < len(self.opener) and self.opener.startswith(begun)):
            self._is_call = begun.startswith(self.opener)
        if self.on_text is None or self._is_call is not False:
            return
        fresh = self.text.lstrip()[self.emitted:]
        if fresh:
            self.on_text(fresh)
            self.emitted += len(fresh)
