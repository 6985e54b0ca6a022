"""HTTP to an inference server, shared by its clients: JSON requests, server-sent events, and
every failure as one RemoteServerError naming the server.

A request is retried only before its first answer arrives (a refused connection, a 503 while
the model loads), a few times with backoff, so nothing the model wrote is ever asked for twice.
"""

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ...errors import RemoteServerError

RETRIES = 3
BACKOFF_S = 0.5
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0  # between two streamed tokens (a long prompt's evaluation included)


class ServerHttp:
    """The connection to one server, named `kind` in its errors."""

    kind = "server"

    def __init__(self, url: str, api_key: str | None = None,
                 read_timeout_s: float = READ_TIMEOUT_S, retries: int = RETRIES,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(read_timeout_s, connect=CONNECT_TIMEOUT_S)
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                 transport=transport)

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def fault(self, what: str) -> RemoteServerError:
        """An error that names this server."""
        return RemoteServerError(f"{self.kind} at {self.url} {what}")

    def events(self, path: str, body: dict) -> Iterator[dict]:
        """The server-sent events of one streamed POST, as dicts (`[DONE]` ends them);
        closing the iterator closes the connection, which cancels the request."""
        def open_stream() -> tuple[httpx.Response, Callable[[], None]]:
            context = self.http.stream("POST", path, json=body)

            def close() -> None:
                context.__exit__(None, None, None)
            return context.__enter__(), close

        response, close = self._answered(open_stream)
        try:
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield self._decode(line[len("data: "):])
        except httpx.TransportError as exc:
            raise self.fault(f"broke off a completion ({_reason(exc)})") from None
        finally:
            close()

    def json(self, method: str, path: str, expect: type = dict, **kwargs: Any) -> Any:
        """One request answered with a JSON object (or what `expect` names: a list)."""
        response, _ = self._answered(
            lambda: (self.http.request(method, path, **kwargs), lambda: None))
        return self._decode(response.text, expect)

    def _answered(self, send: Callable[[], tuple[httpx.Response, Callable[[], None]]]
                  ) -> tuple[httpx.Response, Callable[[], None]]:
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
                raise self.status_error(response)
            return response, close
        raise AssertionError("unreachable")

    def _wait_or_raise(self, attempt: int, what: str) -> None:
        if attempt >= self.retries:
            raise self.fault(f"{what}; tried {self.retries + 1} time(s). Is it running?")
        time.sleep(BACKOFF_S * 2 ** attempt)

    def _decode(self, text: str, expect: type = dict) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise self.fault(f"answered something that is not JSON: {text[:80]!r}") from None
        if not isinstance(value, expect):
            raise self.fault(f"answered {text[:80]!r}")
        return value

    def status_error(self, response: httpx.Response) -> RemoteServerError:
        """The error for an answer with a failing status, with the server's own message."""
        return self.fault(f"answered {response.status_code}: "
                          f"{error_detail(response) or response.reason_phrase}")


def error_detail(response: httpx.Response) -> str:
    """The message in an error answer: `{"error": {"message"}}` (llama-server, OpenAI,
    recent vLLM) or `{"message"}` (older vLLM), else the start of the text."""
    try:
        body = response.json()
    except json.JSONDecodeError:
        return response.text[:120]
    if not isinstance(body, dict):
        return response.text[:120]
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(body.get("message") or error or "")


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc) or type(exc).__name__
