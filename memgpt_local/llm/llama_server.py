"""The HTTP client of llama.cpp's `llama-server`: completions of token-id prompts, streamed.

Only the server's native API is used (`/completion`, `/props`, `/slots`): it takes a prompt
as token ids, a GBNF grammar, and reports the tokens it took from its prompt cache; its slots
are saved to and restored from files on its own disk. Every
failure becomes one RemoteServerError naming the server; a request is retried only before
its first token arrives (a refused connection, a 503 while the model loads), a few times with
backoff, so nothing the model wrote is ever asked for twice.
"""

import json
import time
from collections.abc import Callable, Iterator

import httpx

from ..errors import RemoteServerError

RETRIES = 3
BACKOFF_S = 0.5
CONNECT_TIMEOUT_S = 5.0
GRAMMAR_PROBE = "42"
READ_TIMEOUT_S = 300.0  # between two streamed tokens (a long prompt's evaluation included)


class SlotFilesUnsupported(RemoteServerError):
    """The server was started without --slot-save-path: it keeps no slot files."""


class LlamaServer:
    """One llama-server, reached over HTTP."""

    def __init__(self, url: str, api_key: str | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, retries: int = RETRIES):
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S)
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def props(self) -> dict:
        """The server's settings (`/props`): its window, slots and model file."""
        return self._json("GET", "/props")

    def check(self) -> dict:
        """Whether the server answers, what it serves, and whether it applies a grammar (a
        probe whose grammar allows one answer only)."""
        try:
            props = self.props()
            probe = self.complete({"prompt": "Say anything.", "n_predict": 4,
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
            self._json("POST", "/slots/0", params={"action": "none"}, json={})
        except SlotFilesUnsupported:
            return False
        except RemoteServerError:
            return True  # refused as an unknown action: slot actions are there
        return True

    def slot_action(self, slot: int, action: str, filename: str) -> dict | None:
        """Save or restore one slot to or from a file in the server's --slot-save-path: what
        the server says it did (tokens, bytes, ms), or None if it keeps no slot files."""
        try:
            return self._json("POST", f"/slots/{slot}", params={"action": action},
                              json={"filename": filename})
        except SlotFilesUnsupported:
            return None

    def complete(self, body: dict) -> dict:
        """One completion, not streamed."""
        return self._json("POST", "/completion", json={**body, "stream": False})

    def stream(self, body: dict) -> Iterator[dict]:
        """The events of one streamed completion; closing the iterator cancels it (the
        server stops generating when the connection closes)."""
        def open_stream():
            context = self.http.stream("POST", "/completion", json={**body, "stream": True})
            return context.__enter__(), lambda: context.__exit__(None, None, None)

        response, close = self._answered(open_stream)
        try:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield self._decode(line[len("data: "):])
        except httpx.TransportError as exc:
            raise RemoteServerError(f"llama-server at {self.url} broke off a completion "
                                    f"({_reason(exc)})") from None
        finally:
            close()

    def _json(self, method: str, path: str, **kwargs) -> dict:
        response, _ = self._answered(
            lambda: (self.http.request(method, path, **kwargs), lambda: None))
        return self._decode(response.text)

    def _answered(self, send: Callable[[], tuple[httpx.Response, Callable[[], None]]]):
        """A response (and how to close it) whose status was OK; sent again, with backoff,
        while the server cannot be reached or answers 503 - before anything came back."""
        for attempt in range(self.retries + 1):
            try:
                response, close = send()
            except httpx.TransportError as exc:
                self._wait_or_raise(attempt, f"cannot be reached ({_reason(exc)})")
                continue
            if response.status_code == 503 and attempt < self.retries:
                close()
                self._wait_or_raise(attempt, "is busy or loading")
                continue
            if response.status_code >= 400:
                response.read()
                close()
                raise self._status_error(response)
            return response, close
        raise AssertionError("unreachable")

    def _wait_or_raise(self, attempt: int, what: str) -> None:
        if attempt >= self.retries:
            raise RemoteServerError(f"llama-server at {self.url} {what}; tried "
                                    f"{self.retries + 1} time(s). Is it running?")
        time.sleep(BACKOFF_S * 2 ** attempt)

    def _decode(self, text: str) -> dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise RemoteServerError(f"llama-server at {self.url} answered something that is "
                                    f"not JSON: {text[:80]!r}") from None
        if not isinstance(value, dict):
            raise RemoteServerError(f"llama-server at {self.url} answered {text[:80]!r}")
        return value

    def _status_error(self, response: httpx.Response) -> RemoteServerError:
        try:
            detail = response.json().get("error", {}).get("message", "")
        except (json.JSONDecodeError, AttributeError):
            detail = response.text[:120]
        kind = SlotFilesUnsupported if "--slot-save-path" in detail else RemoteServerError
        return kind(f"llama-server at {self.url} answered "
                                 f"{response.status_code}: {detail or response.reason_phrase}")


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__
