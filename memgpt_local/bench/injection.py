"""The injection campaign: the text of every control token of a model's vocabulary goes
through every untrusted path into the prompt (a user message, the
persona and human files, a loaded document, an imported agent, a passage returned by search,
a function argument echoed in a result, the model's own earlier call), and the prompt must
never hold that token's id beyond what the chat template itself put there. The constraint
must never let the model emit a control token inside a call. (User-defined tokens, such as
Gemma's "\n\n" or "</blockquote>", are text: the tokenizer makes them from plain text.)

A probe runtime wraps the real model: it tokenizes with the model's own tokenizer and chat
template, checks every prompt the agent hands it, and answers with scripted calls that
route the texts through the functions (no generation needed)."""

import json
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..agent.loop import Agent
from ..engine import Engine, EngineConfig
from ..llm.base import Generation, GenerationStats, PromptTokens, SamplingSettings
from ..llm.tokenizer import ModelTokenizer
from ..llm.tool_formats import ToolFormat
from .scripted import PAPER_CALLS, HashingEmbedder, call

# Each path, and the text that comes before the control-token texts where it reaches the prompt.
PATHS = {"user message": "Please read this: ", "persona file": "I am ",
         "human file": "The user: ", "imported agent": "Earlier: ",
         "passage returned by search": "- Document text: ",
         "function argument echoed in a result": "Text not found in 'human': '",
         "the model's earlier call": '"message": "'}
CHUNK_CHARACTERS = 600  # control-token texts per round: they must fit a core-memory block


@dataclass
class InjectionReport:
    """Attempts (control tokens times paths) and injections found, per model."""

    attempts: int = 0
    injections: int = 0
    prompts_checked: int = 0
    constraint_control_tokens: int = 0
    paths_reached: set[str] = field(default_factory=set)
    runtime: str = ""  # the class of the runtime whose tokenizer made the prompts
    leaked: list[str] = field(default_factory=list)


class ProbeRuntime:
    """The real model's tokenizer and template; scripted calls instead of generation; every
    prompt checked for control tokens that the template did not put there."""

    concurrent = False

    def __init__(self, runtime: ModelTokenizer, control: dict[int, str],
                 report: InjectionReport) -> None:
        self.runtime = runtime
        self.n_ctx: int = runtime.n_ctx
        self.tool_format = runtime.tool_format
        self.control = control
        self.report = report
        self.script: list[str] = []
        self.chunk = ""
        self.injected: re.Pattern | None = None
        self._messages: list[dict] = []

    def count_tokens(self, text: str) -> int:
        """The real tokenizer's count."""
        return self.runtime.count_tokens(text)

    def chat_tokens(self, messages: list[dict], add_generation_prompt: bool = True,
                    tools: list[dict] | None = None) -> PromptTokens:
        """The real template and tokenizer."""
        self._messages = messages
        return self.runtime.chat_tokens(messages, add_generation_prompt, tools)

    def constraint(self, schema: dict, tool_format: ToolFormat | None = None) -> "ProbeRuntime":
        """No constraint is needed for scripted calls."""
        return self

    def reply_constraint(self, schema: dict | None, tool_format: ToolFormat | None = None
                         ) -> "ProbeRuntime":
        """No constraint is needed for scripted replies either."""
        return self

    def processor(self) -> Callable:
        """A marker for agent steps (it leaves the logits as they are)."""
        return lambda input_ids, logits: logits

    def cache_report(self, tokens: list[int], prefix_len: int, context: str) -> dict:
        """Probes keep no KV state."""
        return {}

    def close(self) -> None:
        """The real runtime is closed by the campaign."""

    def parallel_slots(self) -> int:
        """One generation at a time."""
        return 1

    def save_context(self, name: str) -> None:
        """No KV state is kept for probes."""

    def generate(self, tokens: list[int], max_tokens: int = 256,
                 sampling: SamplingSettings | None = None, processor: Callable | None = None,
                 prefix_len: int = 0, context: str | None = None,
                 avoid: list[str] | None = None) -> Generation:
        """Check the prompt, then answer with the next scripted call (the texts to avoid
        are tokenized as plain text by the real runtime, never as control tokens)."""
        self._check(tokens)
        text = self.script.pop(0) if processor is not None and self.script else call(
            "send_message", message="Done.")
        if processor is None:
            text = "A summary."
        return Generation(iter([text]), GenerationStats(prompt_tokens=len(tokens)))

    def _check(self, tokens: list[int]) -> None:
        self.report.prompts_checked += 1
        prompt = "\n".join(m["content"] for m in self._messages)
        self.report.paths_reached |= {path for path, before in PATHS.items()
                                      if before + self.chunk[:40] in prompt}
        injected = self.injected or re.compile(r"(?!)")  # none set: nothing to take out
        clean = [{**m, "content": injected.sub("", m["content"])} for m in self._messages]
        expected = Counter(t for t in self.runtime.chat_tokens(clean).tokens
                           if t in self.control)
        extra = Counter(t for t in tokens if t in self.control) - expected
        self.report.injections += sum(extra.values())
        self.report.leaked += [self.control[t] for t in extra][: 10 - len(self.report.leaked)]


def _chunks(texts: list[str]) -> list[str]:
    """The control-token texts, joined into chunks short enough for one core-memory block."""
    chunks, current = [], ""
    for text in texts:
        if current and len(current) + len(text) + 1 > CHUNK_CHARACTERS:
            chunks.append(current)
            current = ""
        current = f"{current} {text}".strip()
    return chunks + ([current] if current else [])


def _imported(engine: Engine, source: str, chunk: str, home: Path) -> str:
    """Export the agent, put the texts in its summary and a past message, import it."""
    path = home / f"{source}.json"
    engine.transfer.export_agent(source, path)
    document = json.loads(path.read_text())
    last = document["messages"][-1]["seq"] if document["messages"] else 0
    document["messages"].append({"seq": last + 1, "role": "user", "content": chunk,
                                 "function_name": None, "function_args": None,
                                 "created_at": "2026-01-01T10:00:00+00:00", "tokens": None})
    document["agent"]["in_context_seqs"].append(last + 1)
    document["agent"]["summary"] = f"Earlier: {chunk}"
    path.write_text(json.dumps(document))
    return engine.transfer.import_agent(path, f"{source}-imported").name


def _round(engine: Engine, probe: ProbeRuntime, alias: str, chunk: str, number: int,
           home: Path) -> None:
    """One agent whose every untrusted path carries the chunk, run for two turns."""
    source = f"probe-{number}"
    engine.create_agent(source, alias, probe.n_ctx, persona=f"I am {chunk}",
                        human=f"The user: {chunk}", settings=PAPER_CALLS)
    name = _imported(engine, source, chunk, home)
    document = home / f"document-{number}.txt"
    document.write_text(f"Document text: {chunk}")
    engine.load_documents(name, [document])
    probe.chunk = chunk
    probe.script = [
        call("archival_memory_search", query="Document text", page=1, request_heartbeat=True),
        call("core_memory_replace", label="human", old_content=f"{chunk} (absent)",
             new_content="x", request_heartbeat=True),
        call("conversation_search", query=chunk[:200], page=1, request_heartbeat=True),
        call("send_message", message=chunk)]
    agent: Agent = engine.open_agent(name)
    try:
        agent.send(f"Please read this: {chunk}")
        agent.send("And now?")  # the prompt holds the earlier calls and their results
    finally:
        engine.close_agent(agent)


def run_injection(alias: str, n_ctx: int = 8192, limit: int | None = None,
                  server: str | None = None) -> InjectionReport:
    """Send every control token's text of a model through every path (at most `limit`);
    with `server`, through the remote runtime of an entry on that server (its prompts are
    what it sends; no generation is asked of the server)."""
    report = InjectionReport()
    with tempfile.TemporaryDirectory(prefix="memgpt-injection-") as folder:
        home = Path(folder)
        if server:
            alias = _remote_entry(alias, server, home)
        with Engine(EngineConfig(home), embedder=HashingEmbedder()) as real:
            runtime = real.runtime(alias, n_ctx)
            assert isinstance(runtime, ModelTokenizer), "a model's runtime, with its tokens"
            report.runtime = type(runtime).__name__
            control = runtime.control_tokens()
            report.constraint_control_tokens = _constraint_control(runtime, control)
            texts = sorted(set(control.values()) - {""}, key=len, reverse=True)[:limit]
            probe = ProbeRuntime(runtime, control, report)
            probe.injected = re.compile("|".join(re.escape(t) for t in texts))
            with Engine(EngineConfig(home / "probe"), embedder=HashingEmbedder(),
                        runtime_factory=lambda *a, **k: probe) as engine:
                for number, chunk in enumerate(_chunks(texts)):
                    _round(engine, probe, alias, chunk, number, home)
            report.attempts = len(texts) * len(PATHS)
    return report


def _remote_entry(alias: str, server: str, home: Path) -> str:
    """Write an entry for the same GGUF on a server into the home's models.toml."""
    from ..llm.models import Registry
    from .llama_server_process import remote_entry

    entry = remote_entry(Registry.load().get(alias), f"{alias}-remote", server)
    for folder in (home, home / "probe"):  # the real engine's home and the probe engine's
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "models.toml").write_text(entry)
    return f"{alias}-remote"


def _constraint_control(runtime: ModelTokenizer, control: dict[int, str]) -> int:
    """Control tokens the agent's call constraint allows anywhere but the final end token."""
    from ..agent.functions import FUNCTIONS
    from ..llm.decoding import function_call_schema

    schema = function_call_schema([{"name": f.name, "parameters": f.arguments_schema(
        ["persona", "human"])} for f in FUNCTIONS.values()])
    index = runtime.constraint(schema).index
    eos = runtime.llm.token_eos()
    allowed = {token for moves in index.get_transitions().values() for token in moves}
    return len((allowed - {eos}) & set(control))
