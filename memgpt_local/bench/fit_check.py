"""The memory estimate checked against llama.cpp itself: a model is loaded in a child process
with llama.cpp's log on, and the buffer sizes it reports (weights, KV cache, compute) are
compared with what llm/fit.py says from the header alone."""

import re
import subprocess
import sys
from pathlib import Path

from ..llm.fit import estimate, shape_of
from ..llm.gguf_header import read_header, split_parts

MIB = 1024 ** 2
REPORTED = {"weights": re.compile(r"load_tensors: +\S+ model buffer size = +([\d.]+) MiB"),
            "kv_cache": re.compile(r"llama_kv_cache: +\S+ KV buffer size = +([\d.]+) MiB"),
            "compute": re.compile(r"(?:sched_reserve|llama_context): +\S+ +(?:compute|output) "
                                  r"buffer size = +([\d.]+) MiB")}
LOADER = ("import sys; from llama_cpp import Llama; "
          "Llama(sys.argv[1], n_ctx=int(sys.argv[2]), n_gpu_layers=int(sys.argv[3]), "
          "n_threads=1, swa_full=True, verbose=True)")


def reported_buffers(path: Path, n_ctx: int, gpu_layers: int = 0) -> dict[str, int]:
    """The bytes of each kind of buffer llama.cpp allocates loading the model at a window."""
    done = subprocess.run([sys.executable, "-c", LOADER, str(path), str(n_ctx),
                           str(gpu_layers)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp could not load {path}: {done.stderr[-500:]}")
    return {part: int(sum(float(size) for size in pattern.findall(done.stderr)) * MIB)
            for part, pattern in REPORTED.items()}


def compare(path: Path, n_ctx: int, gpu_layers: int = 0) -> dict:
    """Estimated and reported bytes side by side, with their ratios."""
    shape = shape_of([read_header(part) for part in split_parts(path)])
    ours = estimate(shape, n_ctx, gpu_layers)
    theirs = reported_buffers(path, n_ctx, gpu_layers)
    theirs["total"] = sum(theirs.values())
    mine = {"weights": ours.weights, "kv_cache": ours.kv_cache, "compute": ours.compute,
            "total": ours.total}
    return {"file": path.name, "n_ctx": n_ctx, "gpu_layers": gpu_layers,
            "estimated_mib": {k: round(v / MIB, 1) for k, v in mine.items()},
            "reported_mib": {k: round(v / MIB, 1) for k, v in theirs.items()},
            "ratio": {k: round(mine[k] / theirs[k], 3) if theirs[k] else None for k in mine}}
