"""One router per resource: health, agents, memory, messages, and the OpenAI endpoint."""

from typing import Annotated

from fastapi import Depends, Query, Request

from ..host import AgentHost


def get_host(request: Request) -> AgentHost:
    """The app's agent host (a FastAPI dependency)."""
    return request.app.state.host


Host = Annotated[AgentHost, Depends(get_host)]  # a route's parameter: the agent host
Page = Annotated[int, Query(ge=1, le=10_000, description="Page number, from 1")]
