"""The context window: how an agent's next prompt is made up right now."""

from fastapi import APIRouter

from ...agent.window import context_report
from ..schemas import ContextOut
from . import Host

router = APIRouter(prefix="/agents/{name}", tags=["context"])


@router.get("/context", response_model=ContextOut)
def show_context(name: str, host: Host) -> dict:
    """The next prompt per part in the model's tokens (instructions, core memory, summary,
    queue), the reply's reserve, what is free, the warning and flush thresholds, and what
    the KV cache holds."""
    return host.run(lambda: host.use(name, context_report), name)
