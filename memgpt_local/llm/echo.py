"""The echo guard: free text (a plain reply, a summary) that starts writing again, word for
word, what it already wrote has fallen into a loop; it ends before the repeat, and the repeat
is never shown. Small models decoded greedily write a paragraph, then the same paragraph again,
until the token budget ends them. The guard holds back text that repeats the output's own
earlier text while the repeat is short (it may be a common phrase) and lets it through as soon
as the repeat breaks off. Calls are left alone: their constraint closes a string that loops.
"""

from typing import Any

ECHO_SPAN = 16  # tokens written again in a row that end the output (SamplingSettings.stop_echo)
HOLD_FROM = 1  # a repeat of this many tokens or more is held back until it breaks off (the
# first HOLD_FROM - 1 tokens of a repeat show before it can be told from new text; with 1, a
# token written before waits for the next one, and a repeat never shows)


class EchoGuard:
    """Follows an output token by token: `push` returns the text that may be shown now;
    `looped` turns true when the output repeats `span` tokens of its own in a row; `held`
    is then the count of last tokens to drop (the repeat, never shown)."""

    def __init__(self, span: int = ECHO_SPAN, hold_from: int = HOLD_FROM):
        self.span, self.hold_from = span, min(hold_from, span)
        self.tokens: list[int] = []
        self.pieces: list[str] = []  # each token's text (empty while a character is split)
        self.shown = 0  # tokens whose text has been let through
        self.looped = False
        self._ends: dict[tuple[int, ...], list[int]] = {}  # hold_from-grams: their end indexes

    def push(self, token: int, piece: str) -> str:
        """Take the next token and its text; return the text that may be shown now."""
        self.tokens.append(token)
        self.pieces.append(piece)
        echo = self._echo()
        self._remember()
        if echo >= self.span:
            self.looped = True
            return ""
        held = echo if echo >= self.hold_from else 0
        return self._release(len(self.tokens) - held)

    @property
    def held(self) -> int:
        """How many of the last tokens have their text held back."""
        return len(self.tokens) - self.shown

    def flush(self) -> str:
        """The text still held back, where the output ends without a loop."""
        return "" if self.looped else self._release(len(self.tokens))

    def _release(self, upto: int) -> str:
        if upto <= self.shown:
            return ""
        text = "".join(self.pieces[self.shown:upto])
        self.shown = upto
        return text

    def _echo(self) -> int:
        """How many of the last tokens (at most `span`) repeat an earlier stretch of the
        output; 0 where fewer than `hold_from` do."""
        last = len(self.tokens) - 1
        gram = tuple(self.tokens[-self.hold_from:])
        longest = 0
        for end in self._ends.get(gram, ()):
            length = self.hold_from
            while (length < self.span and end - length >= 0
                   and self.tokens[end - length] == self.tokens[last - length]):
                length += 1
            longest = max(longest, length)
        return longest

    def _remember(self) -> None:
        """Index the gram the last token ends, for the tokens that come after it."""
        if len(self.tokens) >= self.hold_from:
            gram = tuple(self.tokens[-self.hold_from:])
            self._ends.setdefault(gram, []).append(len(self.tokens) - 1)


def free_text(processor: Any) -> bool:
    """Whether an output may be free text: no constraint, or a constraint's reply branch."""
    return processor is None or bool(processor.free_text)


def shown_text(guard: EchoGuard | None, processor: Any, token: int, piece: str) -> str | None:
    """A token's text as far as the guard lets it through now (None: the output loops; the
    caller drops the guard's `held` last tokens and ends it)."""
    if guard is None or not free_text(processor):
        return piece
    piece = guard.push(token, piece)
    return None if guard.looped else piece


def rest_of_text(guard: EchoGuard | None, split_tail: str) -> str:
    """The text to show where an output ends: what the guard held back and the end of a
    split character (nothing where the guard ended a loop: that text is the repeat)."""
    if guard is not None and guard.looped:
        return ""
    return (guard.flush() if guard is not None else "") + split_tail
