"""The echo guard: free text (a plain reply, a summary) that starts writing again, word for
word, what it already wrote has fallen into a loop; it ends before the repeat, and the repeat
is never shown. Small models decoded greedily write a paragraph, then the same paragraph again,
until the token budget ends them. The guard holds back text that repeats the output's own
earlier text, and the first token of each sentence, and lets them through as soon as a token
comes that is new to the output. Where a loop ends the text, the held text before the repeat
is kept up to its last sentence end (none: none of it), so a reply never ends on the first
word of the repeat ("...to me. I": the repeat's "I" was another token, "I" not " I", the
first time, and only the words after it repeat). Calls are left alone: their constraint
closes a string that loops.
"""

from typing import Any

ECHO_SPAN = 16  # tokens written again in a row that end the output (SamplingSettings.stop_echo)
HOLD_FROM = 1  # a repeat of this many tokens or more is held back until the text moves on to
# new tokens (the first HOLD_FROM - 1 tokens of a repeat show before it can be told from new
# text; with 1, a token written before waits for a new one, and a repeat never shows)
SENTENCE_ENDS = (".", "!", "?", "…")


class EchoGuard:
    """Follows an output token by token: `push` returns the text that may be shown now;
    `looped` turns true when the output repeats `span` tokens of its own in a row; `held`
    is then the count of last tokens to drop (the repeat and what it cut short, never shown)."""

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
            return self._release(self._kept_before(len(self.tokens) - echo))
        if echo or self._starts_sentence():
            return ""
        return self._release(len(self.tokens))

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

    def _starts_sentence(self) -> bool:
        """Whether the last token begins a sentence (the one before it ended one)."""
        return len(self.pieces) >= 2 and ends_sentence(self.pieces[-2])

    def _kept_before(self, repeat_start: int) -> int:
        """Where a looped output ends: after the last sentence end held back before the
        repeat, or where the held text begins."""
        for index in range(repeat_start - 1, self.shown - 1, -1):
            if ends_sentence(self.pieces[index]):
                return index + 1
        return self.shown

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


def ends_sentence(piece: str) -> bool:
    """Whether a token's text ends a sentence or a line."""
    return "\n" in piece or piece.strip().endswith(SENTENCE_ENDS)


def free_text(processor: Any) -> bool:
    """Whether an output may be free text: no constraint, or a constraint's reply branch."""
    return processor is None or bool(processor.free_text)


def shown_text(guard: EchoGuard | None, processor: Any, token: int, piece: str) -> str:
    """A token's text as far as the guard lets it through now (see `ended` for a loop)."""
    if guard is None or not free_text(processor):
        return piece
    return guard.push(token, piece)


def ended(guard: EchoGuard | None, tokens: list[int]) -> bool:
    """Whether the guard ended the output; if so the tokens it never showed (the repeat and
    what it cut short) are dropped from `tokens`, the output's tokens so far."""
    if guard is None or not guard.looped:
        return False
    del tokens[len(tokens) - guard.held:]
    return True


def rest_of_text(guard: EchoGuard | None, split_tail: str) -> str:
    """The text to show where an output ends: what the guard held back and the end of a
    split character (nothing where the guard ended a loop: that text is the repeat)."""
    if guard is not None and guard.looped:
        return ""
    return (guard.flush() if guard is not None else "") + split_tail
