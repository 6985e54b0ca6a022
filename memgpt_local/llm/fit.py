"""How much memory a GGUF model needs at a window, read from its header alone (no weights
loaded), and what fits a machine: the window and the GPU layers to choose.

The parts are the ones llama.cpp reports when it loads a model in this runtime: the weights
(each tensor's bytes in the file), the KV cache (every layer's keys and values for every cell
of the window, f16; sliding-window layers too, as the runtime keeps a full-size cache for them
so that a prefix can be reused) and the compute buffer (the larger of the logits of one batch
and one layer's attention scores over the window). Checked against llama.cpp's own figures by
tests/test_fit.py and scripts/bench_fit.py.
"""

import math
import os
import re
from dataclasses import dataclass

from .gguf_header import GgufHeader

# llama.h's llama_ftype: general.file_type, the quantisation most tensors have
QUANTISATIONS = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0"}
KV_ELEMENT_BYTES = 2  # an f16 cache, llama.cpp's default
UBATCH = 512  # llama.cpp's physical batch: the rows of logits and scores computed at once
WINDOW_CAP = 32768  # the largest default window (a larger one can be asked for)
HEADROOM = 0.9  # the share of free memory an estimate may use
LAYER = re.compile(r"blk\.(\d+)\.")


@dataclass(frozen=True)
class ModelShape:
    """What a model's header says about its size: layers, attention, vocabulary and the
    bytes of each layer's weights."""

    architecture: str
    layers: int
    embedding: int
    heads: int
    kv_heads: tuple[int, ...]  # per layer
    key_length: int
    value_length: int
    vocabulary: int
    trained_context: int
    sliding_window: int
    layer_bytes: tuple[int, ...]
    other_bytes: int  # the embeddings, the output layer and norms outside the layers
    parameters: int
    quantisation: str

    @property
    def weight_bytes(self) -> int:
        """Every tensor's bytes."""
        return sum(self.layer_bytes) + self.other_bytes

    def kv_bytes_per_cell(self, layer: int) -> int:
        """One cell's keys and values in one layer."""
        return self.kv_heads[layer] * (self.key_length + self.value_length) * KV_ELEMENT_BYTES


def shape_of(headers: list[GgufHeader]) -> ModelShape:
    """A model's shape from its file's header (a split model: every part's header)."""
    first = headers[0]
    sizes = {name: size for header in headers for name, size in header.sizes.items()}
    layers = first.number("block_count")
    per_layer = [0] * layers
    for name, size in sizes.items():
        match = LAYER.match(name)
        if match and int(match.group(1)) < layers:
            per_layer[int(match.group(1))] += size
    heads = max(1, _first(first.metadata.get(f"{first.architecture}.attention.head_count"), 1))
    head_size = first.number("embedding_length") // heads
    return ModelShape(
        first.architecture, layers, first.number("embedding_length"), heads,
        _per_layer(first.metadata.get(f"{first.architecture}.attention.head_count_kv"), heads,
                   layers),
        first.number("attention.key_length", head_size),
        first.number("attention.value_length", head_size), _vocabulary(first),
        first.number("context_length"), first.number("attention.sliding_window"),
        tuple(per_layer), sum(sizes.values()) - sum(per_layer),
        sum(header.parameters for header in headers), quantisation(first))


def quantisation(header: GgufHeader) -> str:
    """The file's quantisation as llama.cpp names it ("?" where the file does not say)."""
    kind = header.metadata.get("general.file_type")
    return QUANTISATIONS.get(kind, f"type {kind}") if isinstance(kind, int) else "?"


def _first(value: object, default: int) -> int:
    """A whole number, or the first of a per-layer list."""
    if isinstance(value, list):
        value = value[0] if value else default
    return int(value) if isinstance(value, int | float) else default


def _per_layer(value: object, default: int, layers: int) -> tuple[int, ...]:
    """A per-layer figure that the file gives once or as a list per layer."""
    if isinstance(value, list) and len(value) == layers:
        return tuple(_first(v, default) for v in value)
    return (_first(value, default),) * layers


def _vocabulary(header: GgufHeader) -> int:
    """The vocabulary's size: the token list's length (kept as its length when long)."""
    tokens = header.metadata.get("tokenizer.ggml.tokens")
    if isinstance(tokens, int):
        return tokens
    return len(tokens) if isinstance(tokens, list) else header.number("vocab_size")


@dataclass(frozen=True)
class MemoryEstimate:
    """The bytes a runtime holds at a window, split as llama.cpp reports them, and where
    they go when some layers are on a GPU."""

    n_ctx: int
    gpu_layers: int
    weights: int
    kv_cache: int
    compute: int
    on_gpu: int

    @property
    def total(self) -> int:
        """Weights, KV cache and compute buffer."""
        return self.weights + self.kv_cache + self.compute

    @property
    def in_ram(self) -> int:
        """What stays in the machine's memory."""
        return self.total - self.on_gpu

    def as_dict(self) -> dict:
        """The figures in MiB, for JSON."""
        mib = 1024 ** 2
        return {"n_ctx": self.n_ctx, "gpu_layers": self.gpu_layers,
                "weights_mib": round(self.weights / mib, 1),
                "kv_cache_mib": round(self.kv_cache / mib, 1),
                "compute_mib": round(self.compute / mib, 1),
                "total_mib": round(self.total / mib, 1), "on_gpu_mib": round(self.on_gpu / mib, 1)}


def estimate(shape: ModelShape, n_ctx: int, gpu_layers: int = 0) -> MemoryEstimate:
    """The memory a runtime of this model needs at a window with this many layers offloaded
    (llama.cpp offloads the last layers first, the output layer last; -1: all of them)."""
    gpu_layers = shape.layers + 1 if gpu_layers < 0 else gpu_layers
    offloaded = range(max(0, shape.layers - gpu_layers), shape.layers)
    kv = [n_ctx * shape.kv_bytes_per_cell(layer) for layer in range(shape.layers)]
    compute = _compute_bytes(shape, n_ctx)
    on_gpu = sum(shape.layer_bytes[i] + kv[i] for i in offloaded)
    if gpu_layers > shape.layers:
        on_gpu += shape.other_bytes
    if gpu_layers > 0:
        on_gpu += compute
    return MemoryEstimate(n_ctx, gpu_layers, shape.weight_bytes, sum(kv), compute, on_gpu)


def _compute_bytes(shape: ModelShape, n_ctx: int) -> int:
    """llama.cpp's compute buffer: a batch's logits, or one layer's attention scores over
    the window and their mask if larger, with the batch's activations beside it (all f32);
    plus the output row."""
    ubatch = min(UBATCH, n_ctx)
    widest = max(shape.vocabulary, n_ctx * (shape.heads + 1))
    return 4 * (ubatch * (widest + 3 * shape.embedding) + shape.vocabulary)


def free_ram() -> int:
    """Memory this machine has free for a model (MemAvailable on Linux, else all of it)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_gpu_layers(shape: ModelShape, n_ctx: int, gpu_free: int) -> int:
    """As many layers as fit the GPU's free memory (all of them and the output layer when
    the whole model fits; 0 without a GPU)."""
    if gpu_free <= 0:
        return 0
    fits = [layers for layers in range(shape.layers + 2)
            if estimate(shape, n_ctx, layers).on_gpu <= gpu_free * HEADROOM]
    return max(fits) if fits and max(fits) > 0 else 0


def fitting_window(shape: ModelShape, ram_free: int, gpu_free: int = 0,
                   cap: int = WINDOW_CAP) -> int:
    """The largest window (the trained context or less, halving down to 512) whose runtime
    fits this machine; 0 when not even the smallest does."""
    window = min(shape.trained_context or cap, cap)
    while window >= 512:
        if fits(shape, window, ram_free, gpu_free):
            return window
        window //= 2
    return 0


def fits(shape: ModelShape, n_ctx: int, ram_free: int, gpu_free: int = 0) -> bool:
    """Whether a runtime at this window fits, its layers on the GPU as far as they go."""
    needed = estimate(shape, n_ctx, auto_gpu_layers(shape, n_ctx, gpu_free))
    return needed.in_ram <= ram_free * HEADROOM


def describe_parameters(count: int) -> str:
    """A parameter count for people: 135M, 7.6B."""
    return f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M"


def describe_bytes(count: int) -> str:
    """A size for people: 1.4 GiB, 830 MiB."""
    gib = count / 1024 ** 3
    return f"{gib:.1f} GiB" if gib >= 1 else f"{math.ceil(count / 1024 ** 2)} MiB"
