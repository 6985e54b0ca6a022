"""A `memgpt-local serve` child process on a free loopback port (the tests' and the
benchmark's real server)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..processes import free_port, wait_healthy


class ServerProcess:
    """`memgpt-local serve` on a home, started and waited for; stop() or kill() it."""

    def __init__(self, home: Path, *args: str, port: int | None = None):
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / f"server-{self.port}.log"
        env = {**os.environ, "MEMGPT_LOCAL_HOME": str(home)}
        command = [sys.executable, "-c", "from memgpt_local.cli import cli; cli()", "serve",
                   "--port", str(self.port), *args]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                            stderr=log)
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 120.0) -> None:
        why = wait_healthy(self.url, self.process, timeout_s)
        if why is not None:
            self.kill()
            raise RuntimeError(f"the server did not start ({why}): {self.log.read_text()}")

    def stop(self) -> int:
        """Stop it as Ctrl-C does (a clean shutdown); its exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(60)

    def kill(self) -> None:
        """Kill it at once (SIGKILL): nothing gets to clean up."""
        self.process.kill()
        self.process.wait(60)
