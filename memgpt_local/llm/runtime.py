"""The llama.cpp model runtime: one loaded GGUF model, chat prompts in, streamed text out.

The KV cache is never reset between calls: llama.cpp keeps the longest common token prefix
with the previous call and evaluates only the new tail. An agent's whole context, or else the
static prefix, can also be restored from a snapshot on disk (see kvcache.py) instead of being
evaluated.
"""

import codecs
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import ContextOverflowError
from .adapters import check_adapter
from .base import (
    DEFAULT_SEED,
    Generation,
    GenerationStats,
    SamplingSettings,
    SavedContext,
)
from .echo import EchoGuard, ended, rest_of_text, shown_text
from .gguf import unreadable_model_errors
from .kvcache import KvCache, SnapshotStore
from .models import ModelSpec
from .tokenizer import ModelTokenizer

LOOP_MIN_SPAN = 8  # a loop repeats a span of at least this many tokens
LOOP_MAX_SPAN = 64


def repeating_span(tokens: list[int], repeats: int) -> int:
    """Length of a span that ends the tokens `repeats` times in a row (0 if none): small
    models decoded greedily can fall into such a loop and never leave it."""
    if repeats < 2:
        return 0
    for span in range(LOOP_MIN_SPAN, min(LOOP_MAX_SPAN, len(tokens) // repeats) + 1):
        tail = tokens[-span:]
        if all(tokens[-(k + 1) * span:-k * span] == tail for k in range(1, repeats)):
            return span
    return 0


def _close_string(processor: Any, stats: GenerationStats) -> bool:
    """Have a constraint close the string that loops (the thoughts, an argument), so the call
    goes on instead of being cut; False where it cannot (no constraint, no string)."""
    close = getattr(processor, "close_string", None)
    if close is None or not close():
        return False
    stats.loops_closed += 1
    return True


def _finish_near_budget(processor: Any, stats: GenerationStats, max_tokens: int) -> None:
    """While only the tokens the rest of a call may need are left, have the constraint close
    every string as soon as it opens: the call ends complete within the budget. The need
    only shrinks as the call is written, so a string may get text again once the function
    named needs less than the largest call did."""
    reserve = getattr(processor, "finish_tokens", 0)
    if reserve:
        near = stats.generated_tokens >= max_tokens - reserve
        processor.finish(near)
        stats.finish_forced = stats.finish_forced or near


def _load_llama(path: Path, spec: ModelSpec, n_ctx: int, seed: int) -> Any:
    """The model (and its adapter, checked first) loaded by llama.cpp."""
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    class CountingLlama(Llama):
        """Llama that counts the tokens it actually evaluates."""

        evaluated_total = 0

        def eval(self, tokens: Sequence[int]) -> None:  # noqa: D102 - same contract as Llama.eval
            self.evaluated_total += len(tokens)
            super().eval(tokens)

    adapter = check_adapter(spec, path)
    # llama.cpp logs to stderr even when quiet
    with suppress_stdout_stderr(disable=False), unreadable_model_errors(path):
        return CountingLlama(
            model_path=str(path), n_ctx=n_ctx, n_gpu_layers=spec.gpu_layers(),
            n_threads=spec.threads(), n_threads_batch=spec.threads(), seed=seed,
            swa_full=True, verbose=False, rope_freq_scale=spec.rope_freq_scale,
            lora_path=str(adapter) if adapter else None, lora_scale=spec.adapter_scale)


class ModelRuntime(ModelTokenizer):
    """A loaded GGUF model: tokenizer, chat template, KV snapshots and generation (the
    llama.cpp implementation of base.Runtime)."""

    concurrent = False  # llama.cpp's context is used by one thread at a time

    def __init__(self, spec: ModelSpec, snapshots: SnapshotStore, grammar_dir: Path,
                 n_ctx: int | None = None, seed: int = DEFAULT_SEED):
        path = spec.locate()
        self.n_ctx = n_ctx or spec.n_ctx
        super().__init__(spec, _load_llama(path, spec, self.n_ctx, seed), path, grammar_dir)
        self.kv = KvCache(self.llm, snapshots, self.path, spec, self.n_ctx)

    def parallel_slots(self) -> int:
        """One generation at a time: there is one context."""
        return 1

    def close(self) -> None:
        """Free the model and its context (the runtime is unusable afterwards)."""
        self.llm.close()

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None,
                 processor: Callable | None = None, prefix_len: int = 0,
                 context: str | None = None, avoid: list[str] | None = None) -> Generation:
        """Start a streamed completion of prompt tokens, reusing the KV cache where it matches.

        prefix_len: the length of the static prefix, restored from or saved to a snapshot.
        context: the name of a whole-context snapshot (an agent's), restored where it shares
        more of the prompt than the KV cache holds.
        processor: a logits processor (e.g. a function-call constraint), reset before use.
        avoid: texts the output may not copy COPY_SPAN tokens of in a row.
        """
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(
                f"Prompt has {len(tokens)} tokens; the context window is {self.n_ctx}.")
        stats = GenerationStats(prompt_tokens=len(tokens), constrained=processor is not None)
        max_tokens = min(max_tokens, self.n_ctx - len(tokens))
        generation = Generation(iter(()), stats)
        processors = [p for p in (processor, self.no_copy(avoid)) if p is not None]
        generation.stream = self._stream(tokens, max_tokens, sampling or SamplingSettings(),
                                         processors, (prefix_len, context), generation)
        return generation

    def save_context(self, name: str) -> SavedContext | None:
        """Snapshot the whole KV state (the last prompt and output) under a name."""
        return self.kv.save_context(name)

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """What the KV cache holds for a prompt (see base.Runtime)."""
        return self.kv.report(tokens, prefix_len, context)

    def _stream(self, tokens: list[int], max_tokens: int, sampling: SamplingSettings,
                processors: list[Any], cache_hint: tuple[int, str | None],
                generation: Generation) -> Iterator[str]:
        from llama_cpp import LogitsProcessorList

        stats = generation.stats
        start = time.perf_counter()
        evaluated_before = self.llm.evaluated_total
        stats.prefix_source = self.kv.prepare(tokens, *cache_hint)
        for each in processors:
            each.reset()
        processor = processors[0] if stats.constrained else None  # the call constraint
        if processor is not None:
            _finish_near_budget(processor, stats, max_tokens)
        self.llm.set_seed(sampling.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        guard = EchoGuard(sampling.stop_echo) if sampling.stop_echo else None
        steps = self.llm.generate(
            tokens, temp=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
            min_p=sampling.min_p, repeat_penalty=sampling.repeat_penalty,
            logits_processor=LogitsProcessorList(processors) if processors else None)
        for token in steps:
            if not generation.tokens and stats.ttft_s == 0.0:
                stats.ttft_s = time.perf_counter() - start
                stats.evaluated_tokens = self.llm.evaluated_total - evaluated_before
            if self.is_end_of_generation(token):
                break
            generation.tokens.append(token)
            stats.generated_tokens += 1
            piece = shown_text(guard, processor, token,
                               decoder.decode(self.llm.detokenize([token])))
            if piece:
                yield piece
            if ended(guard, generation.tokens):  # free text writing itself again
                stats.finish_reason = "loop"
                break
            if stats.generated_tokens >= max_tokens:
                stats.finish_reason = "length"
                break
            if sampling.stop_repeats and repeating_span(generation.tokens, sampling.stop_repeats):
                if not _close_string(processor, stats):
                    stats.finish_reason = "loop"
                    break
            _finish_near_budget(processor, stats, max_tokens)
        tail = rest_of_text(guard, decoder.decode(b"", final=True))
        if tail:
            yield tail
        stats.total_s = time.perf_counter() - start
