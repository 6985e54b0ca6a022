"""Child servers on loopback (memgpt-local serve, llama-server): a free port, and waiting for
one to answer its health check."""

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> str | None:
    """Poll url/health until it answers 200: None once it does, else why not (the process
    exited, or the time ran out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"it exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return f"it was not ready in {timeout_s:g} s"
