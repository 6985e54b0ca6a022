"""GGUF files: reading their metadata cheaply, and the explicit download of Hugging Face files."""

import atexit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import MemgptLocalError, ModelFileError
from .fit import (
    ModelShape,
    describe_bytes,
    describe_parameters,
    estimate,
    fitting_window,
    free_ram,
    shape_of,
)
from .gguf_header import read_header, split_parts
from .models import ModelSpec
from .tool_formats import detect


def read_model_info(spec: ModelSpec) -> dict:
    """Architecture, vocabulary size, trained context and chat template of a model's GGUF file."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    path = spec.locate()
    with suppress_stdout_stderr(disable=False):
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    meta = dict(llm.metadata)
    arch = meta.get("general.architecture", "?")
    template = meta.get("tokenizer.chat_template")
    return {
        "alias": spec.alias,
        "file": str(path),
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "name": meta.get("general.name", ""),
        "architecture": arch,
        "vocab_size": llm.n_vocab(),
        "trained_context": int(meta.get(f"{arch}.context_length", 0)),
        "registry_n_ctx": spec.n_ctx,
        "template_used": spec.chat_template,
        "tool_format": detect(spec.template_source(meta)).name,
        **memory_report(spec),
        "chat_template": template or "(none in the file)",
    }


def memory_report(spec: ModelSpec) -> dict:
    """What the model needs at its window, and the largest window that fits this machine's
    free memory now (its GPU layers as the entry says; "auto" counted as none here)."""
    shape = model_shape(spec)
    layers = spec.n_gpu_layers if isinstance(spec.n_gpu_layers, int) else 0
    need, free = estimate(shape, spec.n_ctx, layers), free_ram()
    return {"parameters": describe_parameters(shape.parameters),
            "quantisation": shape.quantisation,
            "memory": f"about {describe_bytes(need.total)} at {spec.n_ctx} tokens (weights "
                      f"{describe_bytes(need.weights)}, KV cache {describe_bytes(need.kv_cache)}"
                      f", compute {describe_bytes(need.compute)}); "
                      f"{describe_bytes(free)} free here, where a window up to "
                      f"{fitting_window(shape, free)} fits",
            "memory_estimate": need.as_dict()}


def download(spec: ModelSpec) -> Path:
    """Fetch a model's file from Hugging Face into the registry's models folder."""
    if not spec.hf_repo or not spec.hf_file or spec.models_dir is None:
        raise MemgptLocalError(f"Model '{spec.alias}' has no hf_repo/hf_file to download from "
                               f"({spec.source()}).")
    from huggingface_hub import hf_hub_download

    target = Path(spec.models_dir)
    try:
        return Path(hf_hub_download(spec.hf_repo, spec.hf_file, local_dir=target))
    except Exception as exc:  # network and hub errors all become one readable message
        raise MemgptLocalError(f"Download of {spec.hf_repo}/{spec.hf_file} failed: {exc}") from exc


def trained_context(spec: ModelSpec) -> int:
    """The window a model was trained for, from its GGUF metadata (0: the file does not
    say), read without loading the weights."""
    return _arch_number(_vocabulary_only(str(spec.locate())).metadata, "context_length")


def memory_estimate(spec: ModelSpec, n_ctx: int) -> int:
    """Bytes a runtime of this model and window holds in this machine's memory: weights, KV
    cache and compute buffer as llama.cpp allocates them, less what its GPU layers hold (0
    for a model on an inference server, which holds it there)."""
    if spec.server:
        return 0
    return estimate(model_shape(spec), n_ctx, spec.gpu_layers()).in_ram


def model_shape(spec: ModelSpec) -> ModelShape:
    """The sizes of a model's file (every part of a split one), from the headers alone."""
    return shape_of([read_header(part) for part in split_parts(spec.locate())])


def _arch_number(metadata: dict, key: str, default: int = 0) -> int:
    """A whole number the GGUF's metadata gives for its architecture (`llama.block_count`),
    else the default."""
    value = str(metadata.get(f"{metadata.get('general.architecture', '')}.{key}", default))
    return int(value) if value.isdigit() else default


def tool_format_name(spec: ModelSpec) -> str:
    """The tool-call format of the chat template a model is run with (its file's, or the one
    models.toml names), read without loading the weights."""
    metadata = {} if spec.chat_template_path() else dict(
        _vocabulary_only(str(spec.locate())).metadata)
    return detect(spec.template_source(metadata)).name


def vocab_counter(spec: ModelSpec) -> Callable[[str], int]:
    """A token counter with the model's own tokenizer, loading only the vocabulary."""
    llm = _vocabulary_only(str(spec.locate()))
    return lambda text: len(llm.tokenize(text.encode("utf-8"), add_bos=False))


@lru_cache(maxsize=4)
def _vocabulary_only(path: str) -> Any:
    """A model file's vocabulary (loaded once per process: 0.1 to 0.5 s each time)."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False), unreadable_model_errors(Path(path)):
        return Llama(model_path=path, vocab_only=True, verbose=False)


atexit.register(_vocabulary_only.cache_clear)  # free them while llama_cpp is still loaded


@contextmanager
def unreadable_model_errors(path: Path) -> Iterator[None]:
    """Turn llama.cpp's failure to read a model file into one clear error."""
    try:
        yield
    except ValueError as exc:
        raise ModelFileError(
            f"{path} cannot be loaded by llama.cpp ({exc}): the file is truncated, corrupt or "
            "not a GGUF model. Download it again (memgpt-local models list shows where it "
            "comes from).") from None


def vocabulary(spec: ModelSpec) -> Any:
    """A model's vocabulary alone (a llama_cpp.Llama without weights), loaded once."""
    return _vocabulary_only(str(spec.locate()))
