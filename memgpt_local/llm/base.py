"""The model runtime's contract: what the agent and the queue manager call on a loaded model.

`Runtime` is implemented by the llama.cpp runtime (runtime.py), the inference-server runtime
(remote/runtime.py) and the tests' scripted fake (bench/scripted.py). The data types it speaks
(tokenized prompts, sampling settings, streamed generations and their stats) live here too.
"""

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .echo import ECHO_SPAN

if TYPE_CHECKING:
    from .tool_formats import ToolFormat

DEFAULT_SEED = 1337


@dataclass
class PromptTokens:
    """A tokenized chat prompt: the token index at which each message's text ends (in
    message order), the tokens each message takes (its markup and text), and whether the
    template keeps the messages in their order (one that moves the system message into the
    last turn, as Mistral Nemo's does, does not: such a prompt has no static prefix)."""

    tokens: list[int]
    message_ends: list[int]
    message_tokens: list[int] = field(default_factory=list)
    in_order: bool = True

    def __post_init__(self) -> None:
        if not self.message_tokens:
            self.message_tokens = [end - start for start, end in
                                   zip([0, *self.message_ends[:-1]], self.message_ends,
                                       strict=True)]

    @property
    def static_prefix(self) -> int:
        """The tokens of the first message at the prompt's head (the instructions, computed
        once and reused); 0 where the template does not put it first."""
        return self.message_ends[0] if self.in_order and self.message_ends else 0


@dataclass
class GenerationStats:
    """What one call cost: prompt size, tokens reused and evaluated, output size, timings."""

    prompt_tokens: int
    evaluated_tokens: int = 0
    generated_tokens: int = 0
    prefix_source: str = "none"
    ttft_s: float = 0.0
    total_s: float = 0.0
    constrained: bool = False
    finish_reason: str = "stop"  # "stop", "length" (max_tokens) or "loop" (see stop_repeats)
    loops_closed: int = 0  # strings a constraint closed because the output looped in them
    finish_forced: bool = False  # the constraint closed strings to end the call in budget

    @property
    def reused_tokens(self) -> int:
        """Prompt tokens whose KV entries were reused instead of evaluated."""
        return self.prompt_tokens - self.evaluated_tokens

    @property
    def tokens_per_s(self) -> float:
        """Generation speed after the first token."""
        decode_s = self.total_s - self.ttft_s
        return (self.generated_tokens - 1) / decode_s if decode_s > 0 else 0.0

    def as_dict(self) -> dict:
        """The stats as a flat dict, derived figures included."""
        return {**asdict(self), "reused_tokens": self.reused_tokens,
                "tokens_per_s": round(self.tokens_per_s, 2)}


@dataclass
class SavedContext:
    """A whole-context snapshot written at the end of a turn: its tokens, size and cost."""

    tokens: int
    bytes: int
    seconds: float


@dataclass
class SamplingSettings:
    """Sampling parameters; temperature 0 is greedy decoding."""

    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int = DEFAULT_SEED
    stop_repeats: int = 3  # a span of 8+ tokens this many times in a row stops the output, or
    # under a call constraint closes the string it loops in; 0: off
    stop_echo: int = ECHO_SPAN  # free text that writes this many of its tokens again in a
    # row ends before them (echo.py); 0: off


@dataclass
class Generation:
    """A streamed completion: iterate for text pieces; then .text, .tokens and .stats are set."""

    stream: Iterator[str]
    stats: GenerationStats
    tokens: list[int] = field(default_factory=list)
    text: str = ""

    def __iter__(self) -> Iterator[str]:
        for piece in self.stream:
            self.text += piece
            yield piece

    def finish(self) -> "Generation":
        """Consume the whole stream and return self."""
        for _ in self:
            pass
        return self


class Constraint(Protocol):
    """A compiled output constraint that hands out fresh logits processors."""

    def processor(self) -> Callable:
        """A logits processor for one generation (the runtime resets it before use)."""


@runtime_checkable
class Runtime(Protocol):
    """A loaded model as the agent layer uses it: its window, tokenizer, chat template,
    output constraint and streamed generation with KV reuse."""

    n_ctx: int
    concurrent: bool  # generate waits on another process: other work may run meanwhile

    @property
    def tool_format(self) -> "ToolFormat":
        """The tool-call syntax its chat template defines (tool_formats.py)."""

    def parallel_slots(self) -> int:
        """How many generations the model's backend runs at once."""

    def count_tokens(self, text: str) -> int:
        """Tokens in a plain text, by the model's own tokenizer."""

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True,
                    tools: list[dict] | None = None) -> PromptTokens:
        """Chat messages (and tools, as the template lists them) rendered through the
        template and tokenized (text stays inert)."""

    def constraint(self, schema: dict, tool_format: "ToolFormat | None" = None) -> Constraint:
        """The constraint that makes every completion a valid call for the schema, written
        in a tool format (tool_formats.ToolFormat; default: our JSON)."""

    def reply_constraint(self, schema: dict | None, tool_format: "ToolFormat | None" = None
                         ) -> Constraint:
        """The constraint of a step that may reply in plain text: from the first token, a
        reply (not starting with `{`) or, where a schema is given, a call of it."""

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None, processor: Callable | None = None,
                 prefix_len: int = 0, context: str | None = None,
                 avoid: list[str] | None = None) -> Generation:
        """Start a streamed completion of prompt tokens (prefix_len: the static prefix;
        context: the name of a whole-context snapshot worth restoring, an agent's; avoid:
        texts the output may not copy a long span of)."""

    def save_context(self, name: str) -> SavedContext | None:
        """Snapshot the whole KV state under a name (None if it was not kept)."""

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """What the KV cache holds for a prompt: held_tokens (None: unknown), where the
        static prefix is (context, snapshot or none) and where the named context's snapshot
        is (memory, disk, server or none)."""

    def close(self) -> None:
        """Free the model (the runtime is unusable afterwards)."""
