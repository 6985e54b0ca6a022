"""Health: answers without a key and without waiting for the model."""

from fastapi import APIRouter

from . import Host

router = APIRouter(tags=["health"])


@router.get("/health")
def health(host: Host) -> dict:
    """The server is up; how many requests wait for the model, run now, and may run at once."""
    worker = host.worker
    return {"status": "ok", "waiting": worker.waiting(), "running": worker.running(),
            "max_turns": worker.max_turns}
