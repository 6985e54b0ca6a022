"""Health: answers without a key and without waiting for the model."""

from fastapi import APIRouter

from . import Host

router = APIRouter(tags=["health"])


@router.get("/health")
def health(host: Host) -> dict:
    """The server is up; how many requests wait for the model."""
    return {"status": "ok", "waiting": host.worker.waiting()}
