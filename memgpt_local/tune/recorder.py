"""The runtime a policy plays: the model's own tokenizer and chat template render each prompt
exactly as the agent builds it, and the policy's output (checked as the constraint would check
it) is the completion; every step is kept as a training example."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..bench.scripted import ScriptedConstraint
from ..llm.base import Generation, GenerationStats, PromptTokens, SamplingSettings
from ..llm.tokenizer import ModelTokenizer
from ..llm.tool_formats import ToolFormat

# a policy sees the prompt's messages and the functions the step offers (none: a summary)
Policy = Callable[[list[dict], frozenset[str]], str]


class PolicyError(AssertionError):
    """A policy wrote what the agent's constraint or window would not allow: a bug in it."""


@dataclass
class Example:
    """One step: the prompt's tokens, the target's (ending with the end-of-turn token), and
    what kind of step it was (the skill's name, or "summary")."""

    prompt: list[int]
    target: list[int]
    skill: str
    text: str
    constraint: ScriptedConstraint | None = None  # what the step's output had to match


@dataclass
class Recorder:
    """What every policy runtime shares: the model's tokenizer, the policies of the turn being
    played (set by the episode), and the examples kept so far."""

    tokenizer: ModelTokenizer
    policy: Policy | None = None
    summarize: Policy | None = None
    skill: str = ""
    examples: list[Example] = field(default_factory=list)

    def runtime(self, n_ctx: int) -> "PolicyRuntime":
        """A runtime with this window that records into this recorder."""
        return PolicyRuntime(self, n_ctx)


class PolicyRuntime:
    """The runtime interface over a model's tokenizer, whose completions come from a policy."""

    concurrent = False

    def __init__(self, recorder: Recorder, n_ctx: int):
        self.recorder = recorder
        self.tokenizer = recorder.tokenizer
        self.n_ctx = n_ctx
        self.tool_format = self.tokenizer.tool_format
        self._messages: list[dict] = []

    def count_tokens(self, text: str) -> int:
        """Tokens by the model's own tokenizer."""
        return self.tokenizer.count_tokens(text)

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True,
                    tools: list[dict] | None = None) -> PromptTokens:
        """The prompt exactly as the model would get it (the messages kept for the policy)."""
        self._messages = messages
        return self.tokenizer.chat_tokens(messages, add_generation_prompt, tools)

    def constraint(self, schema: dict, tool_format: ToolFormat | None = None
                   ) -> ScriptedConstraint:
        """A marker that carries the schema a call must match."""
        return ScriptedConstraint(schema)

    def reply_constraint(self, schema: dict | None, tool_format: ToolFormat | None = None
                         ) -> ScriptedConstraint:
        """A marker that also allows a plain reply."""
        return ScriptedConstraint(schema, reply=True)

    def parallel_slots(self) -> int:
        """One step at a time."""
        return 1

    def save_context(self, name: str) -> None:
        """No KV state to keep."""

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """No KV state."""
        return {"held_tokens": 0, "prefix_tokens": prefix_len, "prefix": "none",
                "context_snapshot": "none"}

    def close(self) -> None:
        """Nothing to free (the tokenizer is shared)."""

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None, processor: Any = None,
                 prefix_len: int = 0, context: str | None = None,
                 avoid: list[str] | None = None) -> Generation:
        """The policy's step (or summary), checked and kept as an example."""
        recorder = self.recorder
        summary = processor is None
        play = recorder.summarize if summary else recorder.policy
        if play is None:
            raise PolicyError("no policy is set for this step")
        text = play(self._messages, frozenset() if summary else self._offered(processor))
        if not summary and processor.allow(text) != text:
            raise PolicyError(f"the constraint would not allow {text[:120]!r}")
        target = self.tokenizer.tokenize(text)
        if len(target) > max_tokens or len(tokens) + len(target) >= self.n_ctx:
            raise PolicyError(f"{len(target)} tokens do not fit the step's budget {max_tokens}")
        recorder.examples.append(Example(
            list(tokens), target + [self.tokenizer.llm.token_eos()],
            "summary" if summary else recorder.skill, text, None if summary else processor))
        stats = GenerationStats(prompt_tokens=len(tokens), evaluated_tokens=len(tokens),
                                generated_tokens=len(target), constrained=not summary)
        return Generation(iter([text]), stats)

    def _offered(self, constraint: ScriptedConstraint) -> frozenset[str]:
        """The functions a step's constraint allows a call of."""
        if constraint.schema is None:
            return frozenset()
        key = self.tool_format.name_key
        return frozenset(v["properties"][key]["const"]
                         for v in constraint.schema.get("oneOf", [constraint.schema]))
