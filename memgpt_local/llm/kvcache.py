"""Snapshots of the static prefix's KV state on disk, restored by a new process.

Only the KV state of sequence 0 is saved (never the logits array). A snapshot is keyed by the
model file, the runtime settings and the prefix tokens, and carries a checksum: a stale or
corrupt file is ignored, deleted and rebuilt, never trusted.
"""

import ctypes
import hashlib
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ..files import sweep_temporaries, write_atomic
from .models import ModelSpec

MAGIC = b"MGLKV01\n"
KEEP_SNAPSHOTS = 8


def _tokens_bytes(tokens: list[int]) -> bytes:
    return np.asarray(tokens, dtype="<i4").tobytes()


def file_key(path: Path) -> str:
    """A digest that changes whenever the model file does (its path, size and mtime)."""
    stat = path.stat()
    facts = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def model_key(path: Path, spec: ModelSpec, n_ctx: int) -> str:
    """A digest of everything that makes a KV state valid: the file, the settings, the engine."""
    import llama_cpp

    facts = {"file": file_key(path), "n_ctx": n_ctx, "n_gpu_layers": spec.n_gpu_layers,
             "swa_full": True, "llama_cpp": llama_cpp.__version__}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


class SnapshotStore:
    """The folder of KV snapshot files, shared by every loaded model; the least recently used
    files beyond `keep` are deleted."""

    def __init__(self, directory: Path, keep: int = KEEP_SNAPSHOTS):
        self.directory = directory
        self.keep = keep
        directory.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(directory)  # left by a process that crashed while writing

    def file_for(self, model_key: str, tokens: list[int]) -> Path:
        """The snapshot file for a token prefix of one model and its settings."""
        digest = hashlib.sha256(model_key.encode() + _tokens_bytes(tokens)).hexdigest()
        return self.directory / f"{digest[:32]}.kv"

    def prune(self) -> None:
        """Delete the least recently used files beyond the limit."""
        files = sorted(self.directory.glob("*.kv"), key=lambda p: p.stat().st_mtime,
                       reverse=True)
        for old in files[self.keep:]:
            old.unlink(missing_ok=True)


class PrefixSnapshots:
    """Save and restore the KV state of a static token prefix for one loaded model."""

    def __init__(self, llm, store: SnapshotStore, path: Path, spec: ModelSpec, n_ctx: int):
        self.llm = llm
        self.store = store
        self.model_key = model_key(path, spec, n_ctx)

    def file_for(self, prefix: list[int]) -> Path:
        """The snapshot file for a prefix of this model."""
        return self.store.file_for(self.model_key, prefix)

    def ensure(self, prefix: list[int]) -> str:
        """Make the KV cache hold the prefix; return 'warm', 'restored' or 'cold'."""
        held = self.llm.input_ids[: self.llm.n_tokens]
        if len(prefix) <= self.llm.n_tokens and np.array_equal(held[: len(prefix)], prefix):
            return "warm"
        if self.restore(prefix):
            return "restored"
        self.llm.reset()
        self.llm.eval(prefix)
        self.save(prefix)
        return "cold"

    def save(self, prefix: list[int]) -> Path:
        """Write the KV state (which must hold exactly the prefix) to disk, atomically."""
        from llama_cpp import llama_state_seq_get_data, llama_state_seq_get_size

        ctx = self.llm._ctx.ctx
        size = llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_state_seq_get_data(ctx, buffer, size, 0)
        data = memoryview(buffer)[:written]
        header = json.dumps({"model_key": self.model_key, "n_tokens": len(prefix),
                             "data_len": written, "crc32": zlib.crc32(data)}).encode()
        target = self.file_for(prefix)
        write_atomic(target, b"".join([MAGIC, struct.pack("<I", len(header)), header,
                                       _tokens_bytes(prefix), data]))
        self.store.prune()
        return target

    def restore(self, prefix: list[int]) -> bool:
        """Load the prefix's snapshot into the KV cache; False (file removed) if unusable."""
        path = self.file_for(prefix)
        if not path.is_file():
            return False
        data = self._read_valid(path, prefix)
        if data is None or not self._load_state(data, prefix):
            path.unlink(missing_ok=True)
            return False
        os.utime(path)
        return True

    def _read_valid(self, path: Path, prefix: list[int]) -> bytes | None:
        try:
            raw = path.read_bytes()
            if not raw.startswith(MAGIC):
                return None
            offset = len(MAGIC) + 4
            (header_len,) = struct.unpack("<I", raw[len(MAGIC):offset])
            header = json.loads(raw[offset:offset + header_len])
            offset += header_len
            tokens_end = offset + 4 * header["n_tokens"]
            data = raw[tokens_end:]
        except (OSError, ValueError, KeyError, struct.error):
            return None
        valid = (header["model_key"] == self.model_key
                 and raw[offset:tokens_end] == _tokens_bytes(prefix)
                 and len(data) == header["data_len"] and zlib.crc32(data) == header["crc32"])
        return data if valid else None

    def _load_state(self, data: bytes, prefix: list[int]) -> bool:
        from llama_cpp import llama_state_seq_set_data

        self.llm.reset()
        self.llm._ctx.kv_cache_clear()
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_state_seq_set_data(self.llm._ctx.ctx, buffer, len(data), 0) == 0:
            self.llm._ctx.kv_cache_clear()
            return False
        self.llm.input_ids[: len(prefix)] = prefix
        self.llm.n_tokens = len(prefix)
        self.llm._requires_eval = True
        return True
