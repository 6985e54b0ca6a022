"""A GGUF file's header read in pure Python: its metadata and tensor shapes, no weights.

GGUF (llama.cpp's format, docs/gguf.md there) starts with the magic `GGUF`, a version, the
tensor and key-value counts, the key-value pairs and one record per tensor (name, shape,
type, offset). Reading those is enough to tell a model's or an adapter's architecture and
sizes without loading either, in milliseconds; long arrays (a tokenizer's vocabulary) are
skipped over and kept only as their length.
"""

import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import ModelFileError

MAGIC = b"GGUF"
ARRAY_KEPT = 64  # arrays longer than this are kept as their length only
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9
# ggml's tensor types: (weights per block, bytes per block), as gguf-py's GGML_QUANT_SIZES
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
          8: (32, 34), 9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144),
          13: (256, 176), 14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74),
          18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
          23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
          29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36),
          41: (128, 18)}
SPLIT = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.gguf")  # gguf-split's part names


@dataclass
class GgufHeader:
    """What a GGUF file says about itself: key-value metadata and each tensor's shape
    (llama.cpp's order: ne0 first, the row length)."""

    path: Path
    metadata: dict = field(default_factory=dict)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # each tensor's bytes in the file

    @property
    def parameters(self) -> int:
        """How many weights the tensors hold."""
        return sum(math.prod(shape) for shape in self.tensors.values())

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

    def take(self, fmt: str) -> Any:
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

    def value(self, kind: int) -> Any:
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            return self.array()
        if kind not in _SCALARS:
            raise ModelFileError(f"{self.path} is not a GGUF file llama.cpp can read "
                                 f"(unknown value type {kind}).")
        return self.take(_SCALARS[kind])

    def array(self) -> list | int:
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
    offsets, needed = {}, {}
    for _ in range(n_tensors):
        name = reader.string()
        dims = tuple(reader.take("<Q") for _ in range(reader.take("<I")))
        kind = reader.take("<I")
        header.tensors[name], offsets[name] = dims, reader.take("<Q")
        needed[name] = _tensor_bytes(kind, dims)
    header.sizes = _sizes(offsets, _data_start(reader, header), path)
    short = [name for name, size in header.sizes.items() if size < needed[name]]
    if short:
        raise ModelFileError(f"{path} is truncated: tensor {short[0]} ends past the end of the "
                             f"file ({path.stat().st_size:,} bytes).")
    return header


def _tensor_bytes(kind: int, dims: tuple[int, ...]) -> int:
    """The bytes a tensor of this type and shape takes (0 for a type not known here)."""
    weights, size = BLOCKS.get(kind, (1, 0))
    return math.prod(dims) // weights * size


def _data_start(reader: _Reader, header: GgufHeader) -> int:
    """Where the tensor data begins: after the header, at the file's alignment."""
    alignment = header.metadata.get("general.alignment", 32)
    alignment = alignment if isinstance(alignment, int) and alignment > 0 else 32
    return -(-reader.handle.tell() // alignment) * alignment


def _sizes(offsets: dict[str, int], start: int, path: Path) -> dict[str, int]:
    """Each tensor's bytes: to the next tensor's offset, the last to the end of the file."""
    end = path.stat().st_size - start
    ordered = sorted(offsets.items(), key=lambda item: item[1])
    bounds = [offset for _, offset in ordered[1:]] + [end]
    return {name: bound - offset for (name, offset), bound in zip(ordered, bounds, strict=True)}


def split_parts(path: Path) -> list[Path]:
    """The files of a model split by llama.cpp's gguf-split (NAME-00001-of-0000N.gguf):
    every part, in order; a whole model is its one file."""
    match = SPLIT.fullmatch(path.name)
    if not match:
        return [path]
    count = int(match.group(3))
    return [path.with_name(f"{match.group(1)}-{index:05d}-of-{match.group(3)}.gguf")
            for index in range(1, count + 1)]
