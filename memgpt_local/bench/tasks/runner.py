"""Running one case on an agent from the engine: its memory filled, the question sent, the
reply scored and everything the case cost recorded."""

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

import numpy as np

from ...agent.turn import Turn
from ...engine import Engine
from ...memory.embeddings import TextEmbedder
from ...memory.messages import Message
from .data import Case
from .data import Turn as DialogTurn

CASE_AGENT = "bench-case"
TEMPLATE_PREFIX = "bench-template-"


class CachingEmbedder:
    """An embedder that embeds each distinct text once per run (the 140 pairs, the NQ
    passages) and hands the stored vectors out again."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.dim, self.name = embedder.dim, embedder.name
        self._vectors: dict[str, np.ndarray] = {}
        self.embedded = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        """Vectors of the texts, embedding only those not seen before."""
        fresh = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if fresh:
            self._vectors.update(zip(fresh, self.embedder.embed(fresh), strict=True))
            self.embedded += len(fresh)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        """A query's vector (queries are not cached: each is asked once)."""
        return self.embedder.embed_query(text)

    def count_tokens(self, text: str) -> int:
        """Tokens of the embedding model."""
        return self.embedder.count_tokens(text)


@dataclass
class CaseResult:
    """One case's record, a line of the results file."""

    model: str
    task: str
    variant: str
    group: int
    case_id: str
    question: str
    expected: object
    given: str
    score: float
    wall_s: float
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    generated_tokens: int = 0
    calls: list = field(default_factory=list)
    failed_steps: int = 0  # steps whose call failed (the model got an error back)
    stopped: str | None = None  # why it ended early, in a line for people
    stop_reason: str | None = None  # the loop's StopReason where the loop ended the turn
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """A JSON-ready form."""
        return asdict(self)


def fresh_agent(engine: Engine, model: str | None, n_ctx: int | None, max_chain: int,
                name: str = CASE_AGENT, settings: dict | None = None) -> str:
    """A new empty agent (any earlier one of that name deleted), with room for long chains
    and the given settings (None: the defaults every new agent gets)."""
    if engine.agent_exists(name):
        engine.delete_agent(name)
    engine.create_agent(name, model, n_ctx, settings={**(settings or {}), "max_chain": max_chain})
    return name


@dataclass(frozen=True)
class Material:
    """What a case puts in memory: passages for archival storage or a dated conversation
    for recall storage."""

    passages: tuple[str, ...] = ()
    turns: tuple[DialogTurn, ...] = ()

    @classmethod
    def of(cls, case: Case, turns: list[DialogTurn] | None) -> "Material":
        """A case's material: the conversation when there is one, else its passages."""
        return cls(turns=tuple(turns)) if turns else cls(tuple(case.passages))

    def key(self) -> str:
        """A digest that names the material."""
        text = json.dumps([self.passages, [(t.speaker, t.text, t.when.isoformat())
                                           for t in self.turns]])
        return hashlib.sha256(text.encode()).hexdigest()

    def fill(self, engine: Engine, name: str) -> None:
        """Put the material into an agent's memory."""
        if self.turns:
            fill_recall(engine, name, list(self.turns), self.turns[0].speaker)
        if self.passages:
            fill_archival(engine, name, list(self.passages))


def case_agent(engine: Engine, model: str | None, n_ctx: int | None, max_chain: int,
               material: Material, settings: dict | None = None, greet: bool = True) -> str:
    """The case agent: a copy of a template agent that holds the material (the template is
    filled once per distinct material and settings, replacing the previous one) and, with
    `greet`, has greeted the user the way `chat` starts a new agent."""
    chosen = json.dumps(settings, sort_keys=True)
    digest = hashlib.sha256(
        f"{model}/{n_ctx}/{max_chain}/{chosen}/{greet}/{material.key()}".encode())
    template = TEMPLATE_PREFIX + digest.hexdigest()[:16]
    if not engine.agent_exists(template):
        for name in engine.records.names():
            if name.startswith(TEMPLATE_PREFIX):
                engine.delete_agent(name)
        material.fill(engine, fresh_agent(engine, model, n_ctx, max_chain, template, settings))
        if greet:
            greet_like_chat(engine, template)
    if engine.agent_exists(CASE_AGENT):
        engine.delete_agent(CASE_AGENT)
    engine.transfer.copy_agent(template, CASE_AGENT)
    return CASE_AGENT


def greet_like_chat(engine: Engine, name: str) -> None:
    """The first-login turn `chat` runs for an agent with no messages yet (none where its
    recall already holds a conversation), so a question is asked as a user of chat asks it."""
    agent = engine.open_agent(name)
    try:
        if agent.recall.count() == 0:
            agent.first_login()
    finally:
        engine.close_agent(agent)


def fill_archival(engine: Engine, name: str, passages: list[str]) -> None:
    """Put the case's passages into the agent's archival memory."""
    archival = engine.archival_storage(name, progress=False)
    try:
        archival.insert(passages, source="bench")
    finally:
        archival.close()


def fill_recall(engine: Engine, name: str, turns: list[DialogTurn], speaker: str) -> list[int]:
    """Import a dated conversation as past messages (`speaker`'s turns as the user's, the
    other's as the assistant's); return the message ids in turn order."""
    recall = engine.recall_storage(name)
    messages = [Message("user" if t.speaker == speaker else "assistant",
                        f"{t.speaker}: {t.text}", created_at=t.when.replace(tzinfo=UTC))
                for t in turns]
    first_seq = recall.next_seq()
    recall.bulk_import(messages)
    id_of = recall.ids_by_seq()
    return [id_of[first_seq + i] for i in range(len(messages))]


def ask(engine: Engine, name: str, question: str) -> Turn:
    """Send the question to the case agent and close it."""
    agent = engine.open_agent(name)
    try:
        return agent.send(question)
    finally:
        engine.close_agent(agent)


def turn_result(turn: Turn, case: Case, start: float, **fields: Any) -> CaseResult:
    """A case result from the turn that answered it (score filled in by the caller)."""
    steps = turn.steps
    return CaseResult(
        **fields, group=case.group, case_id=case.case_id, question=case.question,
        expected=case.expected, given=" ".join(turn.replies), score=0.0,
        wall_s=time.perf_counter() - start,
        prompt_tokens=max((s.stats.prompt_tokens for s in steps), default=0),
        evaluated_tokens=sum(s.stats.evaluated_tokens + s.summary_eval_tokens for s in steps),
        generated_tokens=sum(s.stats.generated_tokens for s in steps),
        calls=[{"function": s.function, "arguments": s.arguments} for s in steps],
        failed_steps=sum(s.failed for s in steps), stopped=turn.stopped,
        stop_reason=turn.stop_reason)
