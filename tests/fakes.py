"""Fakes for fast control-flow tests: a scripted model runtime and a hashing embedder."""

import json
import re
import zlib
from collections.abc import Callable

import numpy as np

from memgpt_local.llm.base import Generation, GenerationStats, PromptTokens


def call(function: str, thoughts: str = "", **arguments) -> str:
    """The JSON text of one function call, as the constrained model would write it."""
    return json.dumps({"thoughts": thoughts, "function": function, "arguments": arguments})


class FakeRuntime:
    """A word-level tokenizer and scripted completions, with the runtime's interface."""

    def __init__(self, script: list[str] | Callable[[list[dict]], str], n_ctx: int = 2048):
        self.script = script
        self.n_ctx = n_ctx
        self.last_messages: list[dict] = []
        self.prompt_lengths: list[int] = []
        self.summary_calls = 0
        self.steps = 0
        self.samplings: list = []
        self.closed = False

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        return [zlib.crc32(w.encode()) % 30000 + 10 for w in re.findall(r"\w+|[^\w\s]", text)]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True):
        self.last_messages = messages
        tokens: list[int] = []
        ends = []
        for message in messages:
            tokens += [1] + self.tokenize(message["role"]) + self.tokenize(message["content"])
            ends.append(len(tokens))
            tokens.append(2)
        return PromptTokens(tokens + [1, 3], ends)

    def close(self) -> None:
        self.closed = True

    def constraint(self, schema: dict):
        self.schema = schema
        return self

    def processor(self):
        return object()

    def generate(self, tokens, max_tokens=256, sampling=None, processor=None, prefix_len=0):
        assert len(tokens) + max_tokens <= self.n_ctx, (len(tokens), max_tokens, self.n_ctx)
        self.prompt_lengths.append(len(tokens) + max_tokens)
        if processor is None:
            self.summary_calls += 1
            text = f"Summary number {self.summary_calls} of the talk so far."
        else:
            self.steps += 1
            self.samplings.append(sampling)
            text = (self.script(self.last_messages) if callable(self.script)
                    else self.script.pop(0))
        stats = GenerationStats(prompt_tokens=len(tokens), evaluated_tokens=len(tokens),
                                generated_tokens=self.count_tokens(text))
        return Generation(iter([text[:10], text[10:]]), stats)


class HashingEmbedder:
    """Bag-of-words hashed into 64 dimensions: deterministic, instant, meaning-free."""

    dim = 64
    max_tokens = 256
    name = "hashing-64"

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])

    def count_tokens(self, text: str) -> int:
        return len(text.split())
