"""What the remote runtime asks of an inference server, whichever it is: one completion of a
token-id prompt, streamed as token ids, under a constraint or with only some tokens allowed.

Each server client (llama_server.py, vllm_server.py) translates a CompletionRequest into its own
API and its answers back into CompletionEvents; the runtime (runtime.py) sees only these.
"""

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..base import SamplingSettings


@dataclass
class CompletionRequest:
    """One completion of a token-id prompt."""

    prompt: list[int]
    n_predict: int
    sampling: SamplingSettings
    regex: str | None = None  # the call constraint: the regex the local constraint compiles
    allowed: np.ndarray | None = None  # a mask over the vocabulary: only these may come next
    slot: int = -1  # the agent's slot where the server has slots (-1: the server's choice)


@dataclass
class CompletionEvent:
    """A piece of a completion: tokens, and at the end why it stopped."""

    tokens: list[int] = field(default_factory=list)
    stop: str | None = None  # "eos" (the model ended), "limit" (n_predict); None: more comes
    evaluated: int | None = None  # prompt tokens the server evaluated (its cache took the rest)


def token_list(value: Any) -> list:
    """A server's token ids as a list, each checked where it is used (a stray value kept, so
    that check names it)."""
    if isinstance(value, list):
        return list(value)
    return [] if value is None else [value]


def count_or_none(value: Any) -> int | None:
    """A count a server reports, if it is one (a non-negative int), else None."""
    return value if type(value) is int and value >= 0 else None


class CompletionServer(Protocol):
    """An inference server as the remote runtime uses it."""

    url: str
    kind: str  # as models.toml names it: "llama-server" or "vllm"

    def window(self) -> int:
        """Tokens one request may hold, prompt and output (0: the server does not say)."""

    def slots(self) -> int:
        """How many completions the server runs at once."""

    def stream(self, request: CompletionRequest) -> Generator[CompletionEvent, None, None]:
        """The completion as it comes; closing the iterator cancels it."""

    def complete(self, request: CompletionRequest) -> CompletionEvent:
        """The whole completion at once (the runtime asks for one token at a time)."""

    def slot_action(self, slot: int, action: str, filename: str) -> dict | None:
        """Save or restore a slot on the server's disk; None where it keeps no slot files."""

    def adapters(self) -> dict[str, float]:
        """The LoRA adapters it applies: file name -> scale (none: {})."""

    def check(self) -> dict:
        """Whether it answers, what it serves, and whether it applies a constraint."""

    def fault(self, what: str) -> Exception:
        """An error that names this server ("<kind> at <url> <what>")."""

    def close(self) -> None:
        """Close the connections."""


def allowed_ids(allowed: np.ndarray) -> list[int]:
    """The token ids a mask allows."""
    return [int(t) for t in np.flatnonzero(allowed)]
