"""A real llama.cpp server on loopback for the tests and benchmarks, built once by
scripts/build-llama-server.sh (from the llama.cpp inside llama-cpp-python's source package;
cached under ~/.cache). Needs the repository (a source checkout), not only the package."""

import json
import signal
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..llm.models import ModelSpec
from ..processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120
# llama-cpp-python's settings, so that greedy decoding on the server is the in-process one
# token for token (the server's defaults, flash attention and 2048-token batches, round
# differently and a greedy call can differ in a word)
IN_PROCESS_NUMERICS = ("--flash-attn", "off", "--batch-size", "512")


def server_binary() -> Path:
    """The llama-server binary, built first if it is not cached (minutes, once)."""
    done = subprocess.run([str(ROOT / "scripts" / "build-llama-server.sh")], check=True,
                          stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return Path(done.stdout.strip().splitlines()[-1])


def remote_entry(spec: ModelSpec, alias: str, url: str, **overrides: Any) -> str:
    """A models.toml table `alias`: the entry's GGUF, template and settings (overrides
    replacing some), run on the server at url (a llama-server unless server_kind says)."""
    fields = {key: value for key, value in asdict(spec).items()
              if value is not None and key not in ("alias", "models_dir")}
    fields.update({"server_kind": "llama-server", **overrides}, server=url)
    return f"[models.{alias}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                           for key, value in fields.items())


class LlamaServerProcess:
    """One llama-server process serving a GGUF on a loopback port."""

    def __init__(self, model: Path, n_ctx: int = 4096, parallel: int = 1,
                 extra: tuple[str, ...] = (), slot_dir: Path | None = None):
        if slot_dir is not None:  # the server saves and restores agents' slots there
            slot_dir.mkdir(parents=True, exist_ok=True)
            extra = (*extra, "--slot-save-path", str(slot_dir))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(server_binary()), "--model", str(model), "--host", "127.0.0.1",
                   "--port", str(self.port), "--ctx-size", str(n_ctx * parallel),
                   "--parallel", str(parallel), "--threads", "2", *IN_PROCESS_NUMERICS,
                   *extra]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        why = wait_healthy(self.url, self.process, READY_TIMEOUT_S)
        if why is not None:
            self.stop()
            raise RuntimeError(f"llama-server on {self.url} did not start: {why}")

    def pause(self) -> None:
        """Stop the process (SIGSTOP): it holds its port and answers nothing."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process go on (SIGCONT)."""
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """End the process (and wait for it)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)
