"""The OpenAI-compatible endpoint: `model` names an agent, the client sends only its new user
message, and the agent's memory supplies the rest."""

import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from ...agent.turn import StepTaken, Turn
from .. import turns
from ..schemas import ChatCompletionRequest, ModelList
from . import Host

router = APIRouter(prefix="/v1", tags=["openai"])


@router.get("/models", response_model=ModelList)
def list_models(host: Host) -> dict:
    """Every agent, as a model."""
    agents = host.run(host.engine.list_agents)
    return {"data": [{"id": a["name"], "created": _timestamp(a["updated_at"])}
                     for a in agents]}


@router.post("/chat/completions")
def chat_completions(body: ChatCompletionRequest, host: Host) -> Any:  # JSON, or a stream
    """Send the request's last user message to the agent named by `model`; its replies
    (every send_message of the turn) are the completion. Streamed, each reply is sent
    when its step has completed (a failed reply is never sent)."""
    text = last_user_text(body)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        events = turns.stream(host, body.model, text)
        return StreamingResponse(_chunks(events, completion_id, body.model),
                                 media_type="text/event-stream")
    turn = turns.send(host, body.model, text)
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()),
            "model": body.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "\n\n".join(turn.replies)}}],
            "usage": _usage(turn)}


def last_user_text(body: ChatCompletionRequest) -> str:
    """The text of the last user message (string content, or its text parts)."""
    for message in reversed(body.messages):
        if message.role != "user":
            continue
        content = message.content
        if isinstance(content, list):
            content = "".join(part.text or "" for part in content if part.type == "text")
        if content and content.strip():
            return content
        break
    raise HTTPException(400, "messages must end with a user message that has text.")


def _usage(turn: Turn) -> dict:
    prompt = sum(step.stats.prompt_tokens for step in turn.steps)
    completion = sum(step.stats.generated_tokens for step in turn.steps)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _chunks(events: Iterator[turns.StreamEvent], completion_id: str, model: str) -> Iterator[str]:
    def chunk(delta: dict, finish: str | None = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    sent = 0
    for event in events:
        match event:
            case StepTaken(report=step) if step.function == "send_message" and not step.failed:
                text = (step.arguments or {}).get("message", "")
                yield chunk({"content": ("\n\n" if sent else "") + text})
                sent += 1
            case turns.TurnFailed(error=exc):
                error = {"error": {"message": str(exc), "type": "server_error"}}
                yield f"data: {json.dumps(error)}\n\n"
                return
    yield chunk({}, "stop")
    yield "data: [DONE]\n\n"


def _timestamp(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0
