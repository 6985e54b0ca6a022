"""The reply-or-call constraint of the `reply` architecture: from its first token an output is
either one call (the call constraint then decides every token, as in the paper's
architecture) or a plain reply in the model's own words (free text whose first character is
neither blank nor `{`). Either branch can be switched off: the tool rules may force a call or
forbid one.

In process, the branch is chosen by the first token the model samples among both branches'
first tokens; a server gets the same language as one regex (`regex`) and each of its tokens is
checked here (`accept`).
"""

from collections.abc import Callable

import numpy as np

from .decoding import FunctionCallProcessor, TokenPieces

CALL, REPLY = "call", "reply"
# The reply branch as a regex (for a server's grammar): blanks, then a character that is
# neither blank nor "{", then any text.
REPLY_REGEX = r"[\x20\x09\x0A\x0D]*[^{\x00-\x20][^\x00]*"


def reply_start_mask(pieces: TokenPieces) -> np.ndarray:
    """True for every token that may begin a plain reply: text that is not blank and does not
    start (after blanks) with `{`. Built once per model's pieces."""
    if pieces.reply_start is None:
        pieces.reply_start = np.array([_starts_reply(pieces.piece(t))
                                       for t in range(pieces.n_vocab)], dtype=bool)
    return pieces.reply_start


def _starts_reply(piece: bytes) -> bool:
    text = piece.lstrip()
    return bool(text) and not text.startswith(b"{")


class ReplyOrCallProcessor:
    """A logits processor over two branches: a call (`call`, None where no call is allowed) or
    a plain reply (`reply`: whether one is allowed). Once the first token is written, `branch`
    says which; the call branch then behaves exactly as the call processor."""

    def __init__(self, call: FunctionCallProcessor | None, reply: bool, pieces: TokenPieces):
        if call is None and not reply:
            raise ValueError("a reply-or-call constraint needs at least one branch")
        self.call = call
        self.reply = reply
        self.pieces = pieces
        self.branch: str | None = None
        self._blank_lead = False  # a server wrote blanks first: only a reply can follow
        self._started = False
        self._call_first: np.ndarray | None = None  # the tokens a call may begin with

    @property
    def regex(self) -> str:
        """The language of both branches, for a server's grammar."""
        branches = ([f"(?:{self.call.regex})"] if self.call is not None else []) + (
            [f"(?:{REPLY_REGEX})"] if self.reply else [])
        return "|".join(branches)

    def reset(self) -> None:
        """Start a new output (call before each generation)."""
        self.branch, self._blank_lead, self._started = None, False, False
        self._call_first = None
        if self.call is not None:
            self.call.reset()

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Mask what the branch allows; the first token after the first mask picks it."""
        if self._started and self.branch is None:
            self._choose(int(input_ids[-1]))
        self._started = True
        if self.branch == CALL:
            return self._chosen_call(input_ids, logits)
        if self.branch is None:
            logits[~self.allowed(len(logits))] = -np.inf
        return logits

    def allowed(self, n_vocab: int) -> np.ndarray:
        """The tokens allowed next."""
        if self.branch == CALL:
            return self._chosen_call.allowed(n_vocab)
        if self.branch == REPLY:
            return np.ones(n_vocab, dtype=bool)
        allowed = np.zeros(n_vocab, dtype=bool)
        call_first = self._first_of_call(n_vocab)
        if self.reply:
            allowed |= reply_start_mask(self.pieces)[:n_vocab] & ~call_first
        if not self._blank_lead:
            allowed |= call_first
        return allowed

    def _first_of_call(self, n_vocab: int) -> np.ndarray:
        """The tokens a call may begin with (none without a call branch): a reply never
        begins with one, so the first token tells the branches apart."""
        if self._call_first is None or len(self._call_first) != n_vocab:
            self._call_first = (self.call.allowed(n_vocab).copy() if self.call is not None
                                else np.zeros(n_vocab, dtype=bool))
        return self._call_first

    def accept(self, token: int) -> bool:
        """Follow a token sampled elsewhere (a server's); False if no branch allows it."""
        if self.branch == CALL:
            return self._chosen_call.accept(token)
        if self.branch == REPLY:
            return True
        piece = self.pieces.piece(token) if 0 <= token < self.pieces.n_vocab else b""
        if self.reply and piece and not piece.strip():
            self._blank_lead = True
            return True
        if not 0 <= token < self.pieces.n_vocab or not self.allowed(self.pieces.n_vocab)[token]:
            return False
        self._choose(token)
        return self._chosen_call.accept(token) if self.branch == CALL else True

    def _choose(self, token: int) -> None:
        call_first = self._first_of_call(self.pieces.n_vocab)
        self.branch = CALL if token < len(call_first) and call_first[token] else REPLY

    @property
    def _chosen_call(self) -> FunctionCallProcessor:
        """The call branch's processor (the call branch is chosen only where there is one)."""
        assert self.call is not None
        return self.call

    def close_string(self) -> bool:
        """Close the looping string of a call; a reply that loops is ended instead (False)."""
        return self.branch == CALL and self._chosen_call.close_string()

    @property
    def finish_tokens(self) -> int:
        """The call's reserve while a call may still be written; none for a reply."""
        if self.call is None or self.branch == REPLY:
            return 0
        return self.call.finish_tokens

    def finish(self, on: bool = True) -> None:
        """Have a call end within its reserve (a reply needs none)."""
        if self.call is not None and self.branch != REPLY:
            self.call.finish(on)

    @property
    def finished(self) -> bool:
        """Whether the output so far may end: a complete call, or a reply begun."""
        if self.branch == CALL:
            return self._chosen_call.finished
        return self.branch == REPLY

    @property
    def free_text(self) -> bool:
        """Whether the output may be free text: a reply begun, or nothing written yet where a
        reply is allowed (in process the branch is known only from the next token on, and
        the guard must see a reply's first token too)."""
        return self.branch == REPLY or (self.branch is None and self.reply)

    @property
    def complete(self) -> bool:
        """Whether the output must end here: a whole call (a reply goes on until the model
        ends it)."""
        return self.branch == CALL and self._chosen_call.finished


class ReplyOrCallConstraint:
    """Hands out ReplyOrCallProcessors for one set of branches (the call's index built once)."""

    def __init__(self, call_processor: Callable[[], FunctionCallProcessor] | None, reply: bool,
                 pieces: TokenPieces):
        self.call_processor = call_processor
        self.reply = reply
        self.pieces = pieces

    def processor(self) -> ReplyOrCallProcessor:
        """A fresh processor (reset by the runtime before use)."""
        call = self.call_processor() if self.call_processor is not None else None
        return ReplyOrCallProcessor(call, self.reply, self.pieces)
