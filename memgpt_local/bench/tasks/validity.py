"""The call-validity task: the prompts of real agent steps (from the other tasks' cases),
each decoded with the function-call constraint and without it; the share of completions that
are a valid call of an existing function with valid arguments, and the decoding speed."""

import json
from dataclasses import dataclass
from typing import Any

from ...agent.loop import call_schema
from ...engine import Engine
from ...llm.base import Generation, Runtime, SamplingSettings
from ..scripted import PAPER_CALLS
from .data import Case
from .runner import CaseResult, Material, ask, case_agent

VALIDITY_STEPS = 3  # agent steps recorded per source case
MODES = ("constrained", "free")
SOURCES = {"nested-kv": 1, "doc-qa": 2, "locomo": 3}  # the source task, as the group


def call_error(text: str, schema: dict) -> str | None:
    """Why a completion is not a valid call under the agent's schema (None: it is)."""
    import jsonschema

    try:
        jsonschema.validate(json.loads(text), schema)
    except json.JSONDecodeError as exc:
        return f"not JSON: {exc.msg}"
    except jsonschema.ValidationError as exc:
        return f"not a valid call: {exc.message[:200]}"
    return None


@dataclass
class Probe:
    """One agent step's prompt decoded both ways."""

    prompt_tokens: int
    constrained: Generation
    free: Generation


class ProbingRuntime:
    """A model runtime that decodes each constrained prompt of the agent once more without
    the constraint (first, so the constrained step still reuses the prompt's KV cache) and
    keeps both completions; everything else is the wrapped runtime's."""

    def __init__(self, inner: Runtime):
        self.inner = inner
        self.probes: list[Probe] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None, processor: Any = None,
                 prefix_len: int = 0, context: str | None = None,
                 avoid: list[str] | None = None) -> Generation:
        """The wrapped generate(); a constrained one is probed without its constraint."""
        if processor is None:  # a summary, not a call
            return self.inner.generate(tokens, max_tokens, sampling, None, prefix_len, context,
                                       avoid)
        free = self.inner.generate(tokens, max_tokens, sampling, None, prefix_len,
                                   context, avoid).finish()
        constrained = self.inner.generate(tokens, max_tokens, sampling, processor, prefix_len,
                                          context, avoid)
        self.probes.append(Probe(len(tokens), constrained, free))
        return constrained


def run_validity_case(engine: Engine, source_task: str, case: Case, model: str,
                      n_ctx: int | None, turns: list | None) -> list[CaseResult]:
    """Up to VALIDITY_STEPS agent steps on a case of another task, each step's prompt
    decoded both ways: one result per prompt and mode (score 1 for a valid call)."""
    name = case_agent(engine, model, n_ctx, VALIDITY_STEPS, Material.of(case, turns),
                      settings=PAPER_CALLS)
    schema = call_schema(list(engine.records.get(name).core_memory.blocks))
    runtime = engine.runtime(model, n_ctx)
    assert isinstance(runtime, ProbingRuntime), "the engine wraps every runtime in one"
    try:
        runtime.probes.clear()
        ask(engine, name, case.question)
        return [_probe_result(probe, mode, schema, source_task, case, model, step)
                for step, probe in enumerate(runtime.probes) for mode in MODES]
    finally:
        engine.runtimes.release(runtime)


def _probe_result(probe: Probe, mode: str, schema: dict, source_task: str, case: Case,
                  model: str, step: int) -> CaseResult:
    generation = probe.constrained if mode == "constrained" else probe.free
    stats, error = generation.stats, call_error(generation.text, schema)
    return CaseResult(
        model=model, task="call-validity", variant=mode, group=SOURCES[source_task],
        case_id=f"{source_task}/{case.case_id}/{step}", question=case.question,
        expected="a valid function call", given=generation.text, score=float(error is None),
        wall_s=stats.total_s, prompt_tokens=probe.prompt_tokens,
        evaluated_tokens=stats.evaluated_tokens, generated_tokens=stats.generated_tokens,
        stopped=None if stats.finish_reason == "stop" else stats.finish_reason,
        extra={"error": error, "tokens_per_s": round(stats.tokens_per_s, 2),
               "source_task": source_task})
