"""Messages: send one to an agent and get every step, whole or as server-sent events."""

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from .. import turns
from ..schemas import MessageIn, TurnOut
from . import Host
from .memory import message_dict

router = APIRouter(prefix="/agents/{name}/messages", tags=["messages"])


@router.post("", response_model=TurnOut,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "A TurnOut, or with stream: events memory, "
                                             "reply, withdraw, step, done (or error)"}})
def send_message(name: str, body: MessageIn, host: Host) -> Any:  # a TurnOut, or its stream
    """Send a user message; every step the agent took (thoughts, calls, results, replies)."""
    if body.stream:
        return StreamingResponse(_server_sent(turns.stream(host, name, body.text)),
                                 media_type="text/event-stream")
    return turns.send(host, name, body.text).as_dict()


@router.get("")
def list_messages(name: str, host: Host, offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    """Recall memory in order: every message the agent has stored, oldest first."""
    messages = host.run(lambda: host.engine.recall_messages(name), name)
    return [message_dict(m) for m in messages[offset:offset + limit]]


def _server_sent(events: Iterator[turns.StreamEvent]) -> Iterator[str]:
    for event in events:
        data = json.dumps(event.as_dict(), ensure_ascii=False)
        yield f"event: {event.name}\ndata: {data}\n\n"
