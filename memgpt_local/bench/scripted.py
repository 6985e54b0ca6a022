"""A scripted model and a hashing embedder: the runtime and embedder interfaces without a real
model, for control-flow tests and campaigns that need thousands of steps in seconds."""

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..agent.architectures import MEMGPT
from ..llm.base import Generation, GenerationStats, PromptTokens, SamplingSettings
from ..llm.tool_formats import JSON, ToolFormat

Script = list[str] | Callable[[list[dict]], str]
# The settings of an agent that makes the paper's calls (send_message, request_heartbeat): the
# campaigns that script them and the call-validity task that measures them name it, so the
# architecture new agents get by default changes no campaign's or task's meaning.
PAPER_CALLS: dict[str, Any] = {"architecture": MEMGPT}


def call(function: str, thoughts: str = "", **arguments: Any) -> str:
    """The JSON text of one function call, as the constrained model would write it."""
    return json.dumps({"thoughts": thoughts, "function": function, "arguments": arguments})


@dataclass
class Findings:
    """The first few problems a campaign found, kept for its report."""

    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        """Keep a problem (the first 20)."""
        if len(self.problems) < 20:
            self.problems.append(problem)


class WindowExceeded(AssertionError):
    """A prompt plus its reserved response that does not fit the window: a bug in our code."""


class ScriptedRuntime:
    """A word-level tokenizer and scripted completions, with the runtime's interface. The
    script is a list of completions or a function of the prompt's messages; summaries come
    from `summarize` (a function of the prompt's messages too). Outputs are cut at
    max_tokens, as a real model's would be."""

    concurrent = False
    tool_format = JSON  # a test may give it a native one

    def __init__(self, script: Script, n_ctx: int = 2048,
                 summarize: Callable[[list[dict]], str] | None = None,
                 enforce_schema: bool = False) -> None:
        self.script = script
        self.schema: dict | None = None  # the schema of the last constraint asked for
        self.enforce_schema = enforce_schema  # act as a constrained decoder would (below)
        self.n_ctx = n_ctx
        self.summarize = summarize
        self.last_messages: list[dict] = []
        self.last_tools: list[dict] | None = None
        self.prompt_lengths: list[int] = []
        self.summary_calls = 0
        self.steps = 0
        self.samplings: list = []
        self.contexts: list[str | None] = []  # the context named by each generate call
        self.avoided: list[list[str]] = []  # the texts each generate call was to avoid
        self.saved_contexts: list[str] = []
        self.closed = False

    def tokenize(self, text: str, special: bool = False) -> list[int]:
        """One token per word or punctuation mark."""
        return [zlib.crc32(w.encode()) % 30000 + 10 for w in re.findall(r"\w+|[^\w\s]", text)]

    def count_tokens(self, text: str) -> int:
        """Tokens in a plain text."""
        return len(self.tokenize(text))

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True,
                    tools: list[dict] | None = None) -> PromptTokens:
        """A token per word, with a start and end marker around each message."""
        self.last_messages, self.last_tools = messages, tools
        tokens: list[int] = []
        ends = []
        for message in messages:
            tokens += [1] + self.tokenize(message["role"]) + self.tokenize(message["content"])
            ends.append(len(tokens))
            tokens.append(2)
        return PromptTokens(tokens + [1, 3], ends)

    def close(self) -> None:
        """Nothing to free."""
        self.closed = True

    def constraint(self, schema: dict, tool_format: ToolFormat | None = None
                   ) -> "ScriptedConstraint":
        """A marker constraint that carries its schema (kept as .schema too)."""
        self.schema = schema
        return ScriptedConstraint(schema)

    def reply_constraint(self, schema: dict | None, tool_format: ToolFormat | None = None
                         ) -> "ScriptedConstraint":
        """A marker constraint that also allows a plain reply (schema None: only that)."""
        self.schema = schema
        return ScriptedConstraint(schema, reply=True)

    def parallel_slots(self) -> int:
        """One generation at a time."""
        return 1

    def save_context(self, name: str) -> None:
        """Note the name; a scripted model has no KV state to keep."""
        self.saved_contexts.append(name)

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """A scripted model holds no KV state."""
        return {"held_tokens": 0, "prefix_tokens": prefix_len, "prefix": "none",
                "context_snapshot": "none"}

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None, processor: Any = None,
                 prefix_len: int = 0, context: str | None = None,
                 avoid: list[str] | None = None) -> Generation:
        """The next scripted completion (or a summary), cut at max_tokens (the texts to
        avoid are noted, not enforced)."""
        self.contexts.append(context)
        self.avoided.append(list(avoid or []))
        self.prompt_lengths.append(len(tokens) + max_tokens)
        if len(tokens) + max_tokens > self.n_ctx:
            raise WindowExceeded(f"{len(tokens)} + {max_tokens} > {self.n_ctx}")
        text = self._summary() if processor is None else self._completion(sampling)
        if processor is not None and self.enforce_schema:
            text = processor.allow(text)
        finish = "length" if self.count_tokens(text) > max_tokens else "stop"
        if finish == "length":
            text = _first_tokens(text, max_tokens)
        stats = GenerationStats(prompt_tokens=len(tokens), evaluated_tokens=len(tokens),
                                generated_tokens=self.count_tokens(text), finish_reason=finish)
        return Generation(iter([text[:10], text[10:]]), stats)

    def _summary(self) -> str:
        self.summary_calls += 1
        if self.summarize is not None:
            return self.summarize(self.last_messages)
        return f"Summary number {self.summary_calls} of the talk so far."

    def _completion(self, sampling: SamplingSettings | None) -> str:
        self.steps += 1
        self.samplings.append(sampling)
        return self.script(self.last_messages) if callable(self.script) else self.script.pop(0)


@dataclass
class ScriptedConstraint:
    """A scripted runtime's constraint: its processor is itself, a marker that tells agent
    steps (with a processor) from summaries (without) and carries the schema (None: no call
    allowed) and whether a plain reply is."""

    schema: dict | None
    reply: bool = False

    def processor(self) -> "ScriptedConstraint":
        """The marker."""
        return self

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """As a logits processor: nothing is masked (scripted texts are fitted by allow)."""
        return logits

    def allow(self, text: str) -> str:
        """What a constrained decoder could have written for a scripted text: a plain reply
        where one is allowed and the text is one, else a call the schema allows."""
        is_reply = bool(text.strip()) and not text.lstrip().startswith("{")
        if self.reply and (is_reply or self.schema is None):
            return text if is_reply else "(a reply)"
        return constrained(text, self.schema or {})


def constrained(text: str, schema: dict) -> str:
    """What a constrained decoder could have written for a scripted text: the text itself if
    the schema allows it, else a call the schema allows (the function asked for if allowed,
    else the first; the arguments asked for where they fit, else the smallest)."""
    import jsonschema

    wanted = None
    try:
        wanted = json.loads(text)
        jsonschema.validate(wanted, schema)
        return text
    except (ValueError, jsonschema.ValidationError):
        wanted = wanted if isinstance(wanted, dict) else {}
    variants = schema.get("oneOf", [schema])
    by_name = {v["properties"]["function"]["const"]: v for v in variants}
    variant = by_name.get(wanted.get("function"), variants[0])
    asked = wanted.get("arguments")
    asked = asked if isinstance(asked, dict) else {}
    arguments = {name: _fitting(asked.get(name), spec)
                 for name, spec in variant["properties"]["arguments"]["properties"].items()}
    return json.dumps({"thoughts": str(wanted.get("thoughts", "")),
                       "function": variant["properties"]["function"]["const"],
                       "arguments": arguments})


def _fitting(value: Any, spec: dict) -> Any:
    """The value if it fits its schema, else the smallest value that does."""
    import jsonschema

    try:
        jsonschema.validate(value, spec)
        return value
    except jsonschema.ValidationError:
        pass
    if "const" in spec or "enum" in spec:
        return spec.get("const", (spec.get("enum") or [None])[0])
    return {"string": "x", "integer": 1, "boolean": False}[spec["type"]]


def _first_tokens(text: str, count: int) -> str:
    """The text up to and including its count-th token (word or punctuation mark)."""
    matches = list(re.finditer(r"\w+|[^\w\s]", text))
    return text[: matches[count - 1].end()] if count > 0 and matches else ""


class HashingEmbedder:
    """Bag-of-words hashed into 64 dimensions: deterministic, instant, meaning-free."""

    dim = 64
    max_tokens = 256
    name = "hashing-64"

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text."""
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)

    def embed_query(self, text: str) -> np.ndarray:
        """The query's vector."""
        return self.embed([text])

    def count_tokens(self, text: str) -> int:
        """Words in a text."""
        return len(text.split())
