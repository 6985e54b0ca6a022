"""The remote runtime: a model that an inference server runs, with the in-process guarantees.

Prompts are rendered and tokenized here with the GGUF's own vocabulary and template (the file
is read for its vocabulary only) and sent as token ids, so user text never becomes a control
token and token counts are exact. The call constraint goes to the server as the very regex the
in-process constraint uses (or a grammar translated from it), and every token that comes back
is followed by that constraint here as well: a token it does not allow is the server's fault,
reported as such, never a silent retry.

Where the in-process runtime steers decoding token by token (a loop closed, the call finished
within its budget, an earlier reply not copied), the server's stream is stopped and the rest is
decoded here, one token per request, each chosen by the server among the tokens the local
constraint allows: the same guarantees, paid for in requests only on those paths. The server
is llama.cpp's llama-server (llama_server.py) or vLLM (vllm_server.py), behind one protocol
(completion.py). On llama-server each agent keeps its own slot, saved on the server's disk
where it can be (slots.py).
"""

import codecs
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ContextOverflowError, RemoteServerError
from ..base import DEFAULT_SEED, Generation, GenerationStats, SamplingSettings, SavedContext
from ..decoding import NoCopyProcessor
from ..echo import EchoGuard, ended, rest_of_text, shown_text
from ..gguf import unreadable_model_errors
from ..kvcache import SnapshotStore
from ..models import ModelSpec
from ..runtime import repeating_span
from ..tokenizer import ModelTokenizer
from .completion import CompletionEvent, CompletionRequest, CompletionServer
from .llama_server import LlamaServer
from .slots import AgentSlots, snapshot_filename
from .vllm_server import VllmServer


def _load_vocabulary(path: Path) -> Any:
    from llama_cpp import Llama
    from llama_cpp._utils import suppress_stdout_stderr

    with suppress_stdout_stderr(disable=False), unreadable_model_errors(path):
        return Llama(model_path=str(path), vocab_only=True, verbose=False)


def server_for(spec: ModelSpec, **options: Any) -> CompletionServer:
    """The client of the server an entry names, of its kind."""
    if spec.server_kind == "vllm":
        return VllmServer(str(spec.server), spec.api_key(), model=spec.served_model, **options)
    return LlamaServer(str(spec.server), spec.api_key(), **options)


def probe_server(spec: ModelSpec) -> dict:
    """Where an entry's server is, and what a probe of it found (for doctor)."""
    server = server_for(spec, read_timeout_s=30, retries=0)
    try:
        return {"url": spec.server, "kind": spec.server_kind, **server.check()}
    finally:
        server.close()


class RemoteRuntime(ModelTokenizer):
    """A model run by an inference server (base.Runtime): local tokenizer, template and
    constraint; generation on the server."""

    concurrent = True  # generate waits on the server; the vocabulary is only read

    def __init__(self, spec: ModelSpec, snapshots: SnapshotStore, grammar_dir: Path,
                 n_ctx: int | None = None, seed: int = DEFAULT_SEED,
                 server: CompletionServer | None = None):
        path = spec.locate()
        super().__init__(spec, _load_vocabulary(path), path, grammar_dir)
        self.n_ctx = n_ctx or spec.n_ctx
        self.server = server or server_for(spec)
        self.snapshot_owner = f"{snapshots.directory.resolve()}\0{spec.alias}"
        self._server_checked = False
        self._slots: AgentSlots | None = None
        self._slot_files = True  # until the server says it keeps none

    def close(self) -> None:
        """Close the connections and free the vocabulary."""
        self.server.close()
        self.llm.close()

    def parallel_slots(self) -> int:
        """How many completions the server runs at once (llama-server: its slots)."""
        return self.server.slots()

    def save_context(self, name: str) -> SavedContext | None:
        """Save the agent's slot to the server's disk (None: the server keeps no slot files,
        the agent has no slot, or the save failed - a snapshot is only a cache)."""
        slot = self._agent_slots().slot_of(name)
        if slot is None:
            return None
        done = self._slot_action(slot, "save", name)
        if not done:
            return None
        return SavedContext(int(done.get("n_saved", 0)), int(done.get("n_written", 0)),
                            float(done.get("timings", {}).get("save_ms", 0.0)) / 1000)

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """What the server's slots hold is the server's to know: the agent's slot, if any."""
        slot = self._agent_slots().slot_of(context)
        return {"held_tokens": None, "prefix_tokens": prefix_len, "prefix": "server",
                "context_snapshot": "server" if slot is not None else "none", "slot": slot}

    def slot_for(self, context: str | None) -> int:
        """The slot a completion goes to: the agent's own (restored into it from the
        server's disk first where it just got it), or -1 for the server's choice."""
        if context is None:
            return -1
        assignment = self._agent_slots().assign(context)
        if assignment.restore:
            self._slot_action(assignment.slot, "restore", context)
        return assignment.slot

    def _agent_slots(self) -> AgentSlots:
        if self._slots is None:
            self._slots = AgentSlots(self.parallel_slots())
        return self._slots

    def _slot_action(self, slot: int, action: str, agent: str) -> dict | None:
        """A slot saved or restored; None where the server keeps no files or refused (a
        missing file on restore is the usual case)."""
        if not self._slot_files:
            return None
        try:
            done = self.server.slot_action(slot, action,
                                           snapshot_filename(self.snapshot_owner, agent))
        except RemoteServerError:
            return None
        self._slot_files = done is not None
        return done

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None,
                 processor: Callable | None = None, prefix_len: int = 0,
                 context: str | None = None, avoid: list[str] | None = None) -> Generation:
        """Start a streamed completion of prompt tokens on the server (see base.Runtime)."""
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(
                f"Prompt has {len(tokens)} tokens; the context window is {self.n_ctx}.")
        self._check_server()
        stats = GenerationStats(prompt_tokens=len(tokens), constrained=processor is not None)
        decode = _Decode(self, tokens, min(max_tokens, self.n_ctx - len(tokens)),
                         sampling or SamplingSettings(), processor, self.no_copy(avoid), stats)
        decode.slot = self.slot_for(context)
        generation = Generation(iter(()), stats)
        generation.stream = decode.run(generation)
        return generation

    def _check_server(self) -> None:
        """Once: the server's window for one request must hold this runtime's, and it must
        apply the entry's adapter (and no other)."""
        if self._server_checked:
            return
        self._check_adapters()
        served = self.server.window()
        if served and served < self.n_ctx:
            raise self.server.fault(
                f"has a window of {served} tokens per request; '{self.spec.alias}' needs "
                f"{self.n_ctx}. Give it a larger one (llama-server: --ctx-size, shared by its "
                "--parallel slots; vLLM: --max-model-len) or lower n_ctx.")
        self._server_checked = True

    def _check_adapters(self) -> None:
        wanted = self.spec.adapter_path()
        applied = {name: scale for name, scale in self.server.adapters().items() if scale}
        expected = {wanted.name: self.spec.adapter_scale} if wanted else {}
        if applied != expected:
            raise self.server.fault(
                f"applies adapter(s) {applied or 'none'}; '{self.spec.alias}' needs "
                f"{expected or 'none'}. Start it with scripts/llama-server.sh "
                f"{self.spec.alias} (it passes the entry's adapter as --lora-scaled).")


class _Decode:
    """One generation: streamed from the server while it may run freely, then token by token
    where the local processors must steer."""

    def __init__(self, runtime: RemoteRuntime, prompt: list[int], max_tokens: int,
                 sampling: SamplingSettings, processor: Any,
                 no_copy: NoCopyProcessor | None, stats: GenerationStats):
        self.runtime, self.prompt, self.max_tokens = runtime, prompt, max_tokens
        self.sampling, self.processor, self.no_copy, self.stats = (
            sampling, processor, no_copy, stats)
        self.output: list[int] = []
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.slot = -1  # the agent's slot on the server (-1: the server's choice)
        self.ended = False  # the model ended its output (end of generation or the call's end)
        self.steer = False  # the rest must be decoded token by token
        self.guard = EchoGuard(sampling.stop_echo) if sampling.stop_echo else None

    def run(self, generation: Generation) -> Iterator[str]:
        """Yield the text as it comes; fill generation.tokens and the stats."""
        start = time.perf_counter()
        for each in (self.processor, self.no_copy):
            if each is not None:
                each.reset()
        yield from self._streamed(start)
        while not self.ended and self.steer and len(self.output) < self.max_tokens:
            yield from self._take(self._steered_token(), start)
        self._finish_reason()
        tail = rest_of_text(self.guard, self.decoder.decode(b"", final=True))
        if tail:
            yield tail
        generation.tokens = self.output
        self.stats.total_s = time.perf_counter() - start

    def _streamed(self, start: float) -> Iterator[str]:
        """The server decodes freely (under the constraint) until a local check asks to
        steer; the budget check is the in-process one, made at every token."""
        self._finish_near_budget()
        if self.steer:
            return
        regex = self.processor.regex if self.processor is not None else None
        events = self.runtime.server.stream(CompletionRequest(
            self.prompt, self.max_tokens, self.sampling, regex=regex, slot=self.slot))
        evaluated = None
        try:
            for event in events:
                evaluated = event.evaluated if event.evaluated is not None else evaluated
                for token in event.tokens:
                    yield from self._take(token, start, streamed=True)
                    if self.ended or self.steer:
                        return
                if event.stop:
                    self._server_stopped(event)
                    return
        finally:
            events.close()
            self._count_evaluated(evaluated)

    def _server_stopped(self, event: CompletionEvent) -> None:
        """The server ended the stream: at the end of generation only a finished call may
        end (else the server is not applying the constraint); at its limit, steer on."""
        if event.stop != "eos":
            self.steer = not self._call_finished()
        elif self._call_finished():
            self.ended = True
        else:
            raise self.runtime.server.fault("ended a call its constraint does not allow to "
                                            "end: is it applying the constraint?")

    def _count_evaluated(self, evaluated: int | None, output: int = 0) -> None:
        """Add the prompt tokens one request had the server evaluate (its cache took the
        rest). Of a steered request's, the last `output` tokens are this generation's own
        (the server decodes the last one it sampled then, as a process decodes each token it
        generates): they are generation, not prompt."""
        if evaluated is not None:
            self.stats.evaluated_tokens += max(0, evaluated - output)
            self.stats.prefix_source = "server"

    def _call_finished(self) -> bool:
        return self.processor is None or self.processor.finished

    def _take(self, token: int, start: float, streamed: bool = False) -> Iterator[str]:
        """Follow one token: check it, keep it, yield its text, watch for loops and the
        budget. A streamed token the no-copy rule bans is dropped and steering begins."""
        self._check_id(token)
        if self.stats.ttft_s == 0.0:
            self.stats.ttft_s = time.perf_counter() - start
        if self.runtime.is_end_of_generation(token):
            self.ended = True
            return
        if streamed and self._copies(token):
            self.steer = True
            return
        self._check(token)
        self.output.append(token)
        self.stats.generated_tokens += 1
        piece = shown_text(self.guard, self.processor, token,
                           self.decoder.decode(self.runtime.llm.detokenize([token])))
        if piece:
            yield piece
        if ended(self.guard, self.output):  # free text writing itself again
            self.stats.finish_reason = "loop"
            self.ended = True
            return
        self._watch()

    def _check_id(self, token: Any) -> None:
        """A token id is an int of the model's vocabulary (llama.cpp aborts the process on any
        other)."""
        n_vocab = self.runtime.llm.n_vocab()
        if type(token) is not int or not 0 <= token < n_vocab:
            raise self.runtime.server.fault(
                f"sent token id {str(token)[:40]!r}, not one of the model's {n_vocab} token ids: "
                "does it serve the same model?")

    def _check(self, token: int) -> None:
        if self.processor is not None and not self.processor.accept(token):
            raise self.runtime.server.fault(
                f"sent token {token} ({self.runtime.token_text(token)!r}), which the call's "
                "constraint does not allow here: is it applying the constraint?")

    def _watch(self) -> None:
        """After a token: end where the output is complete (a whole call), steer on a loop
        or near the budget."""
        if self.processor is not None and self.processor.complete:
            self.ended = True
            return
        if self.sampling.stop_repeats and repeating_span(self.output, self.sampling.stop_repeats):
            if self.processor is None or not self.processor.close_string():
                self.stats.finish_reason = "loop"
                self.ended = True
                return
            self.stats.loops_closed += 1
            self.steer = True
        self._finish_near_budget()

    def _copies(self, token: int) -> bool:
        """Whether the no-copy rule bans this token next (it would copy a long span)."""
        banned = self._copy_banned()
        return banned is not None and token < len(banned) and bool(banned[token])

    def _copy_banned(self) -> np.ndarray | None:
        """The tokens the no-copy rule bans next (None: none)."""
        if self.no_copy is None:
            return None
        logits = np.zeros(self.runtime.llm.n_vocab(), dtype=np.float32)
        self.no_copy(np.array(self.prompt + self.output), logits)
        banned = ~np.isfinite(logits)
        return banned if banned.any() else None

    def _finish_near_budget(self) -> None:
        reserve = getattr(self.processor, "finish_tokens", 0)
        if reserve and self.processor is not None:
            near = self.stats.generated_tokens >= self.max_tokens - reserve
            self.processor.finish(near)
            self.stats.finish_forced = self.stats.finish_forced or near
            self.steer = self.steer or near

    def _steered_token(self) -> int:
        """One token from the server, among those the local processors allow."""
        allowed = np.ones(self.runtime.llm.n_vocab(), dtype=bool)
        if self.processor is not None:
            allowed &= self.processor.allowed(len(allowed))
        banned = self._copy_banned()
        if banned is not None and (allowed & ~banned).any():
            allowed &= ~banned
        answer = self.runtime.server.complete(CompletionRequest(
            self.prompt + self.output, 1, self.sampling, allowed=allowed, slot=self.slot))
        self._count_evaluated(answer.evaluated, output=len(self.output))
        if not answer.tokens:
            return self.runtime.llm.token_eos()  # the server ended the output
        return int(answer.tokens[0])

    def _finish_reason(self) -> None:
        if self.stats.finish_reason != "loop" and len(self.output) >= self.max_tokens:
            self.stats.finish_reason = "length"

