"""The thin client: an agent on a memgpt-local server, with the local agent's interface (send
with a listener, searches), for `chat --server` and `send --server`."""

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from ..agent.turn import Listener, Turn, event_from
from ..memory.messages import Message
from ..memory.paging import Page
from .serve import read_api_key

TIMEOUT = httpx.Timeout(10.0, read=900.0)  # a turn can take minutes on a busy server


class RemoteError(click.ClickException):
    """A server that cannot be reached, or that refused a request (its message shown)."""


class RemoteAgent:
    """One agent on a server, addressed by name."""

    def __init__(self, url: str, name: str, api_key_file: Path | None = None):
        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"--server must be a URL such as http://127.0.0.1:8283, not {url!r}.")
        key = read_api_key(api_key_file)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.name = name
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def path(self, tail: str = "") -> str:
        """The agent's URL path (its name may hold characters such as ? or #)."""
        return f"/agents/{quote(self.name, safe='')}{tail}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; its JSON, or a RemoteError with the server's message."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteError(f"Cannot reach the server at {self.url}: {exc}") from None
        return _checked(response).json()

    def ensure(self, model: str | None) -> list[str]:
        """Create the agent if the server has none of that name; notes for the user."""
        if any(a["name"] == self.name for a in self.request("GET", "/agents")):
            return []
        created = self.request("POST", "/agents", json={"name": self.name, "model": model})
        return created["notes"] + [f"Created agent '{self.name}' on {created['model']}."]

    def show(self) -> dict:
        """The agent's overview (as Engine.show_agent)."""
        return self.request("GET", self.path())

    def send(self, text: str, listener: Listener | None = None) -> Turn:
        """Send a message; events go to the listener as they stream; the finished turn."""
        path = self.path("/messages")
        try:
            with self.http.stream("POST", path, json={"text": text, "stream": True}) as reply:
                _checked(reply)
                for kind, data in _server_sent(reply.iter_lines()):
                    if kind == "done":
                        return Turn.from_dict(data)
                    _deliver(kind, data, listener)
        except httpx.HTTPError as exc:
            raise RemoteError(f"Lost the server at {self.url}: {exc}") from None
        raise RemoteError("The server ended the reply before the turn was done.")

    def recall_search(self, query: str, page: int) -> Page:
        """Text search over the agent's past messages."""
        found = self.request("GET", self.path("/recall"),
                             params={"query": query, "page": page})
        items = [_message(m) for m in found["items"]]
        return Page(items, found["page"], found["page_size"], found["total"])

    def archival_search(self, query: str, page: int) -> Page:
        """Search over the agent's archival memory."""
        found = self.request("GET", self.path("/archival"),
                             params={"query": query, "page": page})
        return Page(found["items"], found["page"], found["page_size"], found["total"])

    def timed_heartbeat(self, listener: Listener | None = None) -> None:
        """Timed heartbeats are the server's business: nothing here."""
        return None


def _checked(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    response.read()
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    raise RemoteError(f"The server answered {response.status_code}: {message}")


def _server_sent(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """(event, data) pairs of a server-sent event stream."""
    kind = "message"
    for line in lines:
        if line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line[5:])
            kind = "message"


def _deliver(kind: str, data: dict, listener: Listener | None) -> None:
    """Hand a streamed event to the listener as the local agent would; an error event ends
    the turn with the server's message."""
    if kind == "error":
        raise RemoteError(f"The server failed the turn: {data['error']['message']}")
    event = event_from(kind, data)
    if listener is not None and event is not None:
        listener(event)


def _message(data: dict) -> Message:
    """A recall message as the server's JSON gives it."""
    created = data.get("created_at")
    return Message(data["role"], data["content"], data.get("function_name"),
                   data.get("function_args"), datetime.fromisoformat(created) if created
                   else None, seq=data.get("seq"))
