"""The client of llama.cpp's `llama-server` (completion.CompletionServer).

Only the server's native API is used (`/completion`, `/props`, `/slots`): it takes a prompt
as token ids and a GBNF grammar (translated from the regex the local constraint compiles),
steers with a logit bias, reports the prompt tokens it evaluated (its prompt cache took the
rest), and saves and restores slots to and from files on its own disk.
"""

from collections.abc import Generator
from functools import lru_cache
from pathlib import PurePath
from typing import Any

import httpx
import numpy as np

from ...errors import RemoteServerError
from ..gbnf import regex_to_gbnf
from .completion import CompletionEvent, CompletionRequest, count_or_none, token_list
from .server_http import ServerHttp

GRAMMAR_PROBE = "42"
BIAS_ALLOW = 1000.0  # a logit bias that puts the allowed tokens above every other


class SlotFilesUnsupported(RemoteServerError):
    """The server was started without --slot-save-path: it keeps no slot files."""


class LlamaServer(ServerHttp):
    """One llama-server, reached over HTTP."""

    kind = "llama-server"

    def __init__(self, url: str, api_key: str | None = None, **options: Any) -> None:
        super().__init__(url, api_key, **options)
        self._props: dict | None = None

    def props(self) -> dict:
        """The server's settings (`/props`): its window, slots and model file."""
        self._props = self.json("GET", "/props")
        return self._props

    def window(self) -> int:
        """Tokens per slot (`/props`, read once)."""
        settings = (self._props or self.props()).get("default_generation_settings", {})
        return int(settings.get("n_ctx", 0))

    def slots(self) -> int:
        """The server's parallel slots (`/props` total_slots; 1 if it does not say)."""
        return max(1, int((self._props or self.props()).get("total_slots") or 1))

    def adapters(self) -> dict[str, float]:
        """The LoRA adapters the server applies (`/lora-adapters`): file name -> scale."""
        listed = self.json("GET", "/lora-adapters", expect=list)
        return {PurePath(str(a.get("path", ""))).name: float(a.get("scale") or 0.0)
                for a in listed if isinstance(a, dict)}

    def stream(self, request: CompletionRequest) -> Generator[CompletionEvent, None, None]:
        """The completion's events (each with the evaluated count so far)."""
        body = {**self.body(request), "stream": True, "timings_per_token": True}
        for event in self.events("/completion", body):
            yield _event(event)

    def complete(self, request: CompletionRequest) -> CompletionEvent:
        """One completion, not streamed."""
        return _event(self.json("POST", "/completion",
                                json={**self.body(request), "stream": False}))

    def body(self, request: CompletionRequest) -> dict:
        """The /completion body for a request."""
        sampling = request.sampling
        body = {"prompt": request.prompt, "n_predict": request.n_predict,
                "cache_prompt": True, "id_slot": request.slot, "return_tokens": True,
                "temperature": sampling.temperature, "top_k": sampling.top_k,
                "top_p": sampling.top_p, "min_p": sampling.min_p,
                "repeat_penalty": sampling.repeat_penalty, "seed": sampling.seed,
                "samplers": ["top_k", "top_p", "min_p", "temperature"]}
        if request.regex is not None:
            body["grammar"] = _grammar(request.regex)
        if request.allowed is not None:
            body["logit_bias"] = _bias(request.allowed)
        return body

    def check(self) -> dict:
        """Whether the server answers, what it serves, whether it applies a grammar (a
        probe whose grammar allows one answer only) and whether it keeps slot files."""
        try:
            props = self.props()
            probe = self.json("POST", "/completion", json={
                "prompt": "Say anything.", "n_predict": 4,
                "grammar": f'root ::= "{GRAMMAR_PROBE}"'})
            snapshots = self.keeps_slot_files()
        except RemoteServerError as exc:
            return {"answers": False, "error": str(exc)}
        settings = props.get("default_generation_settings", {})
        return {"answers": True, "serves": props.get("model_path"),
                "n_ctx": settings.get("n_ctx"), "slots": props.get("total_slots"),
                "constraint_works": probe.get("content") == GRAMMAR_PROBE,
                "slot_snapshots": snapshots}

    def keeps_slot_files(self) -> bool:
        """Whether the server saves and restores slots (started with --slot-save-path): asked
        with an action no server has, which changes nothing."""
        try:
            self.json("POST", "/slots/0", params={"action": "none"}, json={})
        except SlotFilesUnsupported:
            return False
        except RemoteServerError:
            return True  # refused as an unknown action: slot actions are there
        return True

    def slot_action(self, slot: int, action: str, filename: str) -> dict | None:
        """Save or restore one slot to or from a file in the server's --slot-save-path: what
        the server says it did (tokens, bytes, ms), or None if it keeps no slot files."""
        try:
            return self.json("POST", f"/slots/{slot}", params={"action": action},
                             json={"filename": filename})
        except SlotFilesUnsupported:
            return None

    def status_error(self, response: httpx.Response) -> RemoteServerError:
        """The server's error; a slot action on a server without slot files is its own kind."""
        error = super().status_error(response)
        return SlotFilesUnsupported(str(error)) if "--slot-save-path" in str(error) else error


def _event(answer: dict) -> CompletionEvent:
    """A /completion answer or streamed event as a CompletionEvent."""
    stop = None
    if answer.get("stop"):
        stop = "eos" if answer.get("stop_type") == "eos" else "limit"
    timings = answer.get("timings")
    timings = timings if isinstance(timings, dict) else {}
    return CompletionEvent(token_list(answer.get("tokens")), stop,
                           count_or_none(timings.get("prompt_n")))


@lru_cache(maxsize=64)
def _grammar(regex: str) -> str:
    return regex_to_gbnf(regex)


def _bias(allowed: np.ndarray) -> list:
    """A logit_bias that leaves only the allowed tokens: the disallowed ones banned, or the
    allowed ones raised above all, whichever list is shorter."""
    allowed_ids = np.flatnonzero(allowed)
    if len(allowed_ids) <= len(allowed) - len(allowed_ids):
        return [[int(t), BIAS_ALLOW] for t in allowed_ids]
    return [[int(t), False] for t in np.flatnonzero(~allowed)]
