"""LoRA adapters in GGUF form: where a registry entry's adapter is, its digest, and whether it
fits the model it is named for (checked from both files' headers, as llama.cpp checks them
when it loads: the same architecture, and each adapted tensor's shape matching the model's).
"""

import hashlib
from functools import lru_cache
from pathlib import Path

from ..errors import AdapterError, MemgptLocalError
from .gguf_header import read_header
from .models import ModelSpec


def adapter_key(spec: ModelSpec) -> str | None:
    """What an adapter changes in a model's state: its digest and scale (None without one).
    Part of every KV snapshot's and constraint cache's key."""
    path = spec.adapter_path()
    return f"{file_digest(path)}:{spec.adapter_scale}" if path else None


def file_digest(path: Path) -> str:
    """The sha256 of a file (computed once per process while the file is unchanged)."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def check_adapter(spec: ModelSpec, model_path: Path) -> Path | None:
    """The entry's adapter file, checked against the model: one clear error where it is not a
    LoRA GGUF, was made for another architecture or another size (None without one)."""
    path = spec.adapter_path()
    if path is None:
        return None
    adapter, model = read_header(path), read_header(model_path)
    where = f"Adapter {path} (model '{spec.alias}')"
    if adapter.metadata.get("general.type") != "adapter" or \
            adapter.metadata.get("adapter.type") != "lora":
        raise AdapterError(f"{where} is not a LoRA adapter GGUF (convert a PEFT adapter with "
                           "scripts/train_adapter.py or llama.cpp's convert_lora_to_gguf.py).")
    if adapter.architecture != model.architecture:
        raise AdapterError(f"{where} was made for a '{adapter.architecture}' model; "
                           f"{model_path.name} is '{model.architecture}'.")
    mismatch = _shape_mismatch(adapter.tensors, model.tensors)
    if mismatch:
        raise AdapterError(f"{where} does not fit {model_path.name}: {mismatch} (an adapter "
                           "for another size of the model).")
    return path


# (token embedding?, lora_a?) -> (the adapter tensor's dimension, the model tensor's) that
# must be equal, as llama.cpp's llama-adapter.cpp validates them
_COMPARED = {(False, True): (0, 0), (False, False): (1, 1),
             (True, True): (1, 1), (True, False): (1, 0)}


def _shape_mismatch(adapter: dict, model: dict) -> str:
    """The first adapted tensor whose shape does not match the model's ("" if none)."""
    for name, shape in adapter.items():
        base = name.rsplit(".", 1)[0]
        if base not in model:
            return f"the model has no tensor {base}"
        ours, theirs = _COMPARED[(base == "token_embd.weight", name.endswith(".lora_a"))]
        if shape[ours] != model[base][theirs]:
            return (f"{base} is {'x'.join(map(str, model[base]))} in the model, "
                    f"the adapter's {name} is {'x'.join(map(str, shape))}")
    return ""


def adapter_report(spec: ModelSpec) -> dict | None:
    """An entry's adapter as doctor and `models` show it: where, scale, digest, and whether it
    fits the model (the problem in one line where not); None without one."""
    if not spec.adapter:
        return None
    report = {"adapter": spec.adapter, "scale": spec.adapter_scale, "digest": None,
              "fits": False, "problem": None}
    try:
        model = spec.expected_path()
        path = spec.adapter_path()
        report["digest"] = file_digest(path)[:16] if path else None
        if model is not None and model.is_file():
            check_adapter(spec, model)
            report["fits"] = True
    except MemgptLocalError as exc:
        report["problem"] = str(exc)
    return report
