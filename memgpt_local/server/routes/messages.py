"""Messages: send one to an agent and get every step, whole or as server-sent events."""

import json
from collections.abc import Iterator
from typing import Annotated

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
def send_message(name: str, body: MessageIn, host: Host):
    """Send a user message; every step the agent took (thoughts, calls, results, replies)."""
    if body.stream:
        return StreamingResponse(_server_sent(turns.stream(host, name, body.text)),
                                 media_type="text/event-stream")
    return turn_dict(turns.send(host, name, body.text))


@router.get("")
def list_messages(name: str, host: Host, offset: Annotated[int, Query(ge=0)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    """Recall memory in order: every message the agent has stored, oldest first."""
    messages = host.run(lambda: host.engine.recall_messages(name), name)
    return [message_dict(m) for m in messages[offset:offset + limit]]


def turn_dict(turn) -> dict:
    """A finished turn as JSON."""
    return {"steps": [step.as_dict() for step in turn.steps], "replies": turn.replies,
            "stopped": turn.stopped, "stop_reason": turn.stop_reason, "memory": turn.memory}


def _server_sent(events: Iterator[turns.Event]) -> Iterator[str]:
    for kind, value in events:
        if kind in ("reply", "memory"):
            data = {"text": value}
        elif kind == "withdraw":
            data = {"characters": value}
        elif kind == "step":
            data = value.as_dict()
        elif kind == "done":
            data = turn_dict(value)
        else:
            data = {"error": {"message": str(value), "type": type(value).__name__}}
        yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
