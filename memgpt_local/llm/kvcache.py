"""KV snapshots on disk: the static prefix of a model's prompts, and each agent's whole context.

A snapshot holds the KV state of sequence 0 (never the logits array) for a token sequence,
beside those tokens, keyed by the model file, the runtime settings and the engine version, with
a checksum: a stale or corrupt file is ignored and deleted, never trusted. Every snapshot lives
in one store with a budget in bytes; the least recently used files are deleted first.

A long-running process (the server) also keeps agents' context snapshots in memory, up to a
budget of its own: switching agents then restores a context without touching the disk. What
no longer fits in memory, and everything when the store is flushed, goes to disk.
"""

import ctypes
import hashlib
import json
import os
import struct
import time
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..files import sweep_temporaries, write_atomic
from .adapters import adapter_key
from .base import SavedContext
from .models import ModelSpec

TokenIds = Sequence[int] | np.ndarray  # token ids, as a list or llama.cpp's array

MAGIC = b"MGLKV01\n"
DEFAULT_BUDGET_BYTES = 4 * 1024**3
MIN_GAIN_TOKENS = 32  # restore an agent's context only if it saves evaluating at least this


def _tokens_bytes(tokens: TokenIds) -> bytes:
    return np.asarray(tokens, dtype="<i4").tobytes()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shared_prefix(a: TokenIds, b: TokenIds) -> int:
    """How many leading tokens two sequences share."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(differ[0]) if len(differ) else n


def file_key(path: Path) -> str:
    """A digest that changes whenever the model file does (its path, size and mtime)."""
    stat = path.stat()
    return _digest(json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns]).encode())


def model_key(path: Path, spec: ModelSpec, n_ctx: int) -> str:
    """A digest of everything that makes a KV state valid: the file, the settings, the engine."""
    import llama_cpp

    facts = {"file": file_key(path), "n_ctx": n_ctx, "n_gpu_layers": spec.n_gpu_layers,
             "swa_full": True, "llama_cpp": llama_cpp.__version__,
             "adapter": adapter_key(spec)}
    return _digest(json.dumps(facts, sort_keys=True).encode())


@dataclass
class Snapshot:
    """A snapshot file's header: the tokens it holds and where its KV data lies."""

    path: Path
    model_key: str
    tokens: np.ndarray
    data_offset: int
    data_len: int
    crc32: int
    held: memoryview | None = None  # the KV data itself, for a snapshot kept in memory


@dataclass
class _Kept:
    """A context snapshot kept in memory."""

    model_key: str
    tokens: np.ndarray
    data: memoryview


class SnapshotStore:
    """The folder of KV snapshot files shared by every loaded model, kept under a budget in
    bytes: the least recently written or restored files are deleted first. With a memory
    budget, context snapshots are kept in memory first and spill to disk beyond it."""

    def __init__(self, directory: Path, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 memory_budget_bytes: int = 0):
        self.directory = directory
        self.budget_bytes = budget_bytes
        self.memory_budget_bytes = memory_budget_bytes
        self._kept: OrderedDict[Path, _Kept] = OrderedDict()  # least recently used first
        self._last_use_ns = 0
        directory.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(directory)  # left by a process that crashed while writing
        self.prune()  # the budget may have shrunk since

    def prefix_file(self, model_key: str, tokens: TokenIds) -> Path:
        """The snapshot file of a static token prefix of one model and its settings."""
        return self.directory / f"{_digest(model_key.encode() + _tokens_bytes(tokens))[:32]}.kv"

    def context_file(self, model_key: str, name: str) -> Path:
        """The snapshot file of an agent's whole context on one model and its settings."""
        return self.directory / f"{_context_stem(name)}-{model_key[:16]}.kv"

    def delete_contexts(self, name: str) -> None:
        """Delete an agent's context snapshots, for every model, in memory and on disk."""
        for path in [p for p in self._kept if p.name.startswith(_context_stem(name))]:
            del self._kept[path]
        for path in self.directory.glob(f"{_context_stem(name)}-*.kv"):
            path.unlink(missing_ok=True)

    def keep(self, path: Path, model_key: str, tokens: TokenIds, data: memoryview) -> int:
        """Keep a context snapshot in memory if the memory budget allows (its older file is
        deleted: superseded), else write it to disk; return its size in bytes (0: kept
        nowhere). The least recently used ones spill to disk to make room."""
        self._kept.pop(path, None)
        if len(data) > self.memory_budget_bytes:
            return self.write(path, model_key, tokens, data)
        self._kept[path] = _Kept(model_key, np.array(tokens, dtype="<i4"), data)
        path.unlink(missing_ok=True)
        while self.memory_bytes() > self.memory_budget_bytes:
            self._spill(*self._kept.popitem(last=False))
        return len(data)

    def where(self, path: Path) -> str:
        """Where a snapshot is: 'memory', 'disk' or 'none'."""
        if path in self._kept:
            return "memory"
        return "disk" if path.exists() else "none"

    def memory_bytes(self) -> int:
        """The bytes of the context snapshots kept in memory."""
        return sum(len(kept.data) for kept in self._kept.values())

    def flush(self) -> None:
        """Write every snapshot kept in memory to disk (before the process ends)."""
        while self._kept:
            self._spill(*self._kept.popitem(last=False))

    def _spill(self, path: Path, kept: _Kept) -> None:
        self.write(path, kept.model_key, kept.tokens, kept.data)

    def fits(self, size: int) -> bool:
        """Whether a snapshot of this many bytes may be kept at all."""
        return size <= max(self.budget_bytes, self.memory_budget_bytes)

    def discard(self, path: Path) -> None:
        """Forget a snapshot, in memory and on disk."""
        self._kept.pop(path, None)
        path.unlink(missing_ok=True)

    def write(self, path: Path, model_key: str, tokens: TokenIds, data: memoryview) -> int:
        """Write a snapshot atomically, then prune to the budget; return its size in bytes
        (0, and an older file of that name deleted, if it alone exceeds the budget; 0 if the
        disk refused it)."""
        header = json.dumps({"model_key": model_key, "n_tokens": len(tokens),
                             "data_len": len(data), "crc32": zlib.crc32(data)}).encode()
        parts: list[bytes | memoryview] = [MAGIC, struct.pack("<I", len(header)), header,
                                           _tokens_bytes(tokens), data]
        size = sum(len(part) for part in parts)
        if size > self.budget_bytes:
            path.unlink(missing_ok=True)
            return 0
        try:
            write_atomic(path, *parts)
        except OSError:  # a full or read-only disk costs the snapshot, never the caller's work
            return 0
        self._mark_used(path)
        self.prune()
        return size

    def header(self, path: Path, model_key: str) -> Snapshot | None:
        """The header of a snapshot of this model; None if absent, and None (the file
        deleted) if it is unreadable, truncated or of another model."""
        kept = self._kept.get(path)
        if kept is not None:
            return Snapshot(path, kept.model_key, kept.tokens, 0, len(kept.data), 0, kept.data) \
                if kept.model_key == model_key else None
        try:
            with path.open("rb") as file:
                snapshot = _read_header(file, path)
                size = os.fstat(file.fileno()).st_size
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, struct.error):
            snapshot = size = None
        if snapshot is None or snapshot.model_key != model_key or \
                size != snapshot.data_offset + snapshot.data_len:
            path.unlink(missing_ok=True)
            return None
        return snapshot

    def data(self, snapshot: Snapshot) -> Any:
        """The snapshot's KV data as a ctypes buffer; None (the file deleted) if its checksum
        fails. Reading counts as a use."""
        if snapshot.held is not None:
            self._kept.move_to_end(snapshot.path)
            return (ctypes.c_uint8 * snapshot.data_len).from_buffer(snapshot.held)
        buffer = (ctypes.c_uint8 * snapshot.data_len)()
        try:
            with snapshot.path.open("rb") as file:
                file.seek(snapshot.data_offset)
                complete = file.readinto(buffer) == snapshot.data_len
        except OSError:
            complete = False
        if not complete or zlib.crc32(buffer) != snapshot.crc32:
            snapshot.path.unlink(missing_ok=True)
            return None
        self._mark_used(snapshot.path)
        return buffer

    def _mark_used(self, path: Path) -> None:
        """Stamp a file's time of last use (its mtime, at the clock's finest resolution:
        the file system's own stamps can tie within a few milliseconds)."""
        self._last_use_ns = max(time.time_ns(), self._last_use_ns + 1)
        os.utime(path, ns=(self._last_use_ns, self._last_use_ns))

    def prune(self) -> None:
        """Delete the least recently used files until the rest fit the budget."""
        sized = []
        for path in self.directory.glob("*.kv"):
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted by another process meanwhile
                continue
            sized.append((stat.st_mtime_ns, stat.st_size, path))
        total = 0
        for _, size, path in sorted(sized, reverse=True):
            total += size
            if total > self.budget_bytes:
                path.unlink(missing_ok=True)

    def total_bytes(self) -> int:
        """The bytes the snapshot files take now."""
        return sum(path.stat().st_size for path in self.directory.glob("*.kv"))


def _context_stem(name: str) -> str:
    return f"agent-{_digest(name.encode())[:16]}"


def _read_header(file: BinaryIO, path: Path) -> Snapshot | None:
    if file.read(len(MAGIC)) != MAGIC:
        return None
    (header_len,) = struct.unpack("<I", file.read(4))
    header = json.loads(file.read(header_len))
    n_tokens = int(header["n_tokens"])
    tokens = np.frombuffer(file.read(4 * n_tokens), dtype="<i4")
    if len(tokens) != n_tokens:
        return None
    offset = len(MAGIC) + 4 + header_len + 4 * n_tokens
    return Snapshot(path, header["model_key"], tokens, offset, int(header["data_len"]),
                    int(header["crc32"]))


class KvCache:
    """Where a prompt's KV state comes from on one loaded model: what the context holds
    already, an agent's whole-context snapshot, the static prefix's snapshot, or evaluation."""

    def __init__(self, llm: Any, store: SnapshotStore, path: Path, spec: ModelSpec,
                 n_ctx: int) -> None:
        self.llm = llm
        self.store = store
        self.model_key = model_key(path, spec, n_ctx)

    def held(self, tokens: TokenIds) -> int:
        """How many leading tokens of `tokens` the KV cache holds now."""
        return shared_prefix(self.llm.input_ids[: self.llm.n_tokens], tokens)

    def report(self, tokens: list[int], prefix_len: int, name: str) -> dict:
        """What holds a prompt's KV state now (see Runtime.cache_report)."""
        held = self.held(tokens)
        prefix_file = self.store.prefix_file(self.model_key, tokens[:prefix_len])
        prefix = ("context" if prefix_len and held >= prefix_len
                  else "snapshot" if prefix_file.exists() else "none")
        return {"held_tokens": held, "prefix_tokens": prefix_len, "prefix": prefix,
                "context_snapshot": self.store.where(self.store.context_file(self.model_key,
                                                                             name))}

    def prepare(self, tokens: list[int], prefix_len: int, context: str | None) -> str:
        """Make the KV cache hold as much of the prompt as it cheaply can; return the source:
        'context' (the agent's snapshot), 'warm', 'restored' or 'cold' (the static prefix held,
        restored or evaluated and saved), or 'none'."""
        if context is not None and self._restore_context(tokens, prefix_len, context):
            return "context"
        if prefix_len:
            return self.ensure_prefix(tokens[:prefix_len])
        return "none"

    def _restore_context(self, tokens: list[int], prefix_len: int, name: str) -> bool:
        path = self.store.context_file(self.model_key, name)
        snapshot = self.store.header(path, self.model_key)
        if snapshot is None:
            return False
        shared = shared_prefix(snapshot.tokens, tokens)
        if shared < max(self.held(tokens), prefix_len) + MIN_GAIN_TOKENS:
            return False
        return self._restore(snapshot)

    def ensure_prefix(self, prefix: list[int]) -> str:
        """Make the KV cache hold the static prefix; return 'warm', 'restored' or 'cold'."""
        if self.held(prefix) == len(prefix):
            return "warm"
        path = self.store.prefix_file(self.model_key, prefix)
        snapshot = self.store.header(path, self.model_key)
        if snapshot is not None and np.array_equal(snapshot.tokens, prefix) and \
                self._restore(snapshot):
            return "restored"
        self.llm.reset()
        self.llm.eval(prefix)
        if self.store.fits(self._state_size()):
            self.store.write(path, self.model_key, prefix, self._state())
        return "cold"

    def save_context(self, name: str) -> SavedContext | None:
        """Save the whole KV state under an agent's name (None if nothing is held, or it
        exceeds the budget, or the disk refused it: a snapshot is only a cache)."""
        n_tokens = self.llm.n_tokens
        if n_tokens == 0 or not self.store.fits(self._state_size()):
            return None
        start = time.perf_counter()
        path = self.store.context_file(self.model_key, name)
        size = self.store.keep(path, self.model_key, self.llm.input_ids[:n_tokens],
                               self._state())
        return SavedContext(n_tokens, size, time.perf_counter() - start) if size else None

    def _restore(self, snapshot: Snapshot) -> bool:
        """Load a snapshot into the KV cache; False (the file deleted) if it is unusable."""
        data = self.store.data(snapshot)
        if data is not None and self._load_state(data, snapshot.tokens):
            return True
        self.store.discard(snapshot.path)
        return False

    def _state_size(self) -> int:
        from llama_cpp import llama_state_seq_get_size

        return llama_state_seq_get_size(self.llm._ctx.ctx, 0)

    def _state(self) -> memoryview:
        from llama_cpp import llama_state_seq_get_data

        size = self._state_size()
        buffer = (ctypes.c_uint8 * size)()
        written = llama_state_seq_get_data(self.llm._ctx.ctx, buffer, size, 0)
        return memoryview(buffer).cast("B")[:written]

    def _load_state(self, data: Any, tokens: TokenIds) -> bool:
        from llama_cpp import llama_state_seq_set_data

        self.llm.reset()
        self.llm._ctx.kv_cache_clear()
        if llama_state_seq_set_data(self.llm._ctx.ctx, data, len(data), 0) == 0:
            self.llm._ctx.kv_cache_clear()
            return False
        self.llm.input_ids[: len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)
        self.llm._requires_eval = True  # no logits were restored: sample only after a decode
        return True
