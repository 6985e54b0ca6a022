"""A GGUF file's header read in pure Python: its metadata and tensor shapes, no weights.

GGUF (llama.cpp's format, docs/gguf.md there) starts with the magic `GGUF`, a version, the
tensor and key-value counts, the key-value pairs and one record per tensor (name, shape,
type, offset). Reading those is enough to tell a model's or an adapter's architecture and
sizes without loading either, in milliseconds; long arrays (a tokenizer's vocabulary) are
skipped over and kept only as their length.
"""

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelFileError

MAGIC = b"GGUF"
ARRAY_KEPT = 64  # arrays longer than this are kept as their length only
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9


@dataclass
class GgufHeader:
    """What a GGUF file says about itself: key-value metadata and each tensor's shape
    (llama.cpp's order: ne0 first, the row length)."""

    path: Path
    metadata: dict = field(default_factory=dict)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        """general.architecture ("" where the file does not say)."""
        return str(self.metadata.get("general.architecture", ""))

    def number(self, key: str, default: int = 0) -> int:
        """An architecture's whole number (`block_count` reads `llama.block_count`)."""
        value = self.metadata.get(f"{self.architecture}.{key}", default)
        return int(value) if isinstance(value, int | float) else default


class _Reader:
    """Little-endian values from a buffered file, each read failing as one clear error."""

    def __init__(self, handle: BinaryIO, path: Path):
        self.handle, self.path = handle, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        data = self.handle.read(size)
        if len(data) != size:
            raise ModelFileError(f"{self.path} is truncated: its GGUF header ends early.")
        return struct.unpack(fmt, data)[0]

    def string(self) -> str:
        length = self.take("<Q")
        data = self.handle.read(length)
        if len(data) != length:
            raise ModelFileError(f"{self.path} is truncated: its GGUF header ends early.")
        return data.decode("utf-8", errors="replace")

    def value(self, kind: int):
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            return self.array()
        if kind not in _SCALARS:
            raise ModelFileError(f"{self.path} is not a GGUF file llama.cpp can read "
                                 f"(unknown value type {kind}).")
        return self.take(_SCALARS[kind])

    def array(self):
        kind, count = self.take("<I"), self.take("<Q")
        if count <= ARRAY_KEPT:
            return [self.value(kind) for _ in range(count)]
        if kind in _SCALARS:  # skip fixed-size items in one seek
            self.handle.seek(count * struct.calcsize(_SCALARS[kind]), 1)
        else:
            for _ in range(count):
                self.value(kind)
        return count


def read_header(path: Path) -> GgufHeader:
    """The metadata and tensor shapes of a GGUF file; anything else is one clear error."""
    try:
        with path.open("rb") as handle:
            return _read(_Reader(handle, path), path)
    except OSError as exc:
        raise ModelFileError(f"Cannot read {path}: {exc.strerror or exc}") from None


def _read(reader: _Reader, path: Path) -> GgufHeader:
    if reader.handle.read(4) != MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (it does not start with 'GGUF').")
    version = reader.take("<I")
    if version not in (2, 3):
        raise ModelFileError(f"{path} is GGUF version {version}; llama.cpp reads 2 and 3.")
    n_tensors, n_pairs = reader.take("<Q"), reader.take("<Q")
    header = GgufHeader(path)
    for _ in range(n_pairs):
        key = reader.string()
        header.metadata[key] = reader.value(reader.take("<I"))
    for _ in range(n_tensors):
        name = reader.string()
        dims = tuple(reader.take("<Q") for _ in range(reader.take("<I")))
        reader.take("<I"), reader.take("<Q")  # type and offset
        header.tensors[name] = dims
    return header
