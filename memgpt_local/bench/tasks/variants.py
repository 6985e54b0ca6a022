"""The variants that answer a case: `memgpt` (the real agent with the defaults every new agent
gets, under the paper's architecture, its memory tiers filled), `memgpt-bare` (the same agent
as the paper ran it: no tool rules, no memory brought to the turn), `reply` (the defaults under
the reply architecture: plain replies, tool calls between them), `ceiling` (a scripted perfect
agent over the same tiers, bare) and `baseline` (the same model, the material placed straight
in the prompt, as much as fits)."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...engine import Engine, RuntimeFactory
from ..scripted import ScriptedRuntime
from .ceiling import AnswerInResultsPolicy, NestedKvPolicy
from .data import Case
from .runner import (
    CaseResult,
    Material,
    ask,
    case_agent,
    fill_recall,
    fresh_agent,
    turn_result,
)
from .scoring import contains_answer, echoes, locomo_score, uuid_score

CEILING_N_CTX = 16384  # the scripted policy reads every result; the window never limits it
CEILING_MAX_CHAIN = 24
CEILING_PAGE_SIZE = 5  # the agents' default page size
# The agent as the paper ran it: its architecture, no tool rules, no memory brought in.
BARE: dict[str, Any] = {"architecture": "memgpt", "tool_rules": [], "memory_hits": 0}
# variant: the settings it changes from a new agent's defaults; each names its architecture,
# so a change of the default changes no variant's meaning
AGENT_VARIANTS: dict[str, dict[str, Any]] = {
    "memgpt": {"architecture": "memgpt"}, "memgpt-bare": BARE, "reply": {"architecture": "reply"}}
# the scripted perfect agent in each architecture, bare
CEILING_VARIANTS: dict[str, dict[str, Any]] = {
    "ceiling": BARE, "ceiling-reply": {**BARE, "architecture": "reply"}}


def score(task: str, reply: str, case: Case) -> float:
    """The task's score of a reply."""
    if task == "nested-kv":
        return uuid_score(reply, str(case.expected))
    if task == "doc-qa":
        expected = case.expected
        answers = expected if isinstance(expected, list | tuple) else [expected]
        return contains_answer(reply, [str(answer) for answer in answers])
    return locomo_score(reply, case.expected, case.group)


def ceiling_policy(task: str, case: Case, reply: bool = False
                   ) -> NestedKvPolicy | AnswerInResultsPolicy:
    """The scripted perfect agent for a task's case (in the reply architecture's form)."""
    if task == "nested-kv":
        return NestedKvPolicy(reply)
    policy = AnswerInResultsPolicy("archival_memory_search", reply)
    policy.start(case)
    return policy


def run_ceiling_case(engine: Engine, runtime: ScriptedRuntime, task: str, case: Case,
                     variant: str = "ceiling") -> CaseResult:
    """One archival case played by the scripted policy through the agent's real loop, in the
    variant's architecture."""
    settings = CEILING_VARIANTS[variant]
    runtime.script = ceiling_policy(task, case, settings["architecture"] == "reply")
    run = AgentRun("ceiling", None, CEILING_N_CTX, CEILING_MAX_CHAIN, settings, greet=False)
    return run_agent_case(engine, task, case, run, variant)


@dataclass(frozen=True)
class AgentRun:
    """Who answers through the agent: a model alias (None: the registry's default), its
    window, the agent's step cap per question, its settings (None: the defaults) and
    whether it greets a new user first, as `chat` has it (the scripted ceiling does not)."""

    label: str
    alias: str | None
    n_ctx: int | None
    max_chain: int
    settings: dict | None = None
    greet: bool = True


def run_agent_case(engine: Engine, task: str, case: Case, run: AgentRun,
                   variant: str = "memgpt", turns: list | None = None) -> CaseResult:
    """One case through the agent: a copy of a template whose archival (or recall, with
    `turns`) holds the material, the question sent as a user message, the reply scored."""
    start = time.perf_counter()
    name = case_agent(engine, run.alias, run.n_ctx, run.max_chain, Material.of(case, turns),
                      run.settings, run.greet)
    turn = ask(engine, name, case.question)
    result = turn_result(turn, case, start, model=run.label, task=task, variant=variant)
    result.score = score(task, result.given, case)
    if task == "doc-qa" and result.score:  # a correct answer: read, or copied out?
        result.extra["echoed"] = echoes(result.given, case.passages)
    return result


def ceiling_engine(engine_factory: Callable[[RuntimeFactory], Engine]
                   ) -> tuple[Engine, ScriptedRuntime]:
    """An engine whose every runtime is one scripted runtime (the policies set its script)."""
    runtime = ScriptedRuntime([], n_ctx=CEILING_N_CTX)
    return engine_factory(lambda *args, **kwargs: runtime), runtime


def locomo_evidence_recall(engine: Engine, turns: list, cases: list[Case], pages: int = 2
                           ) -> list[float]:
    """For each question, the share of its evidence turns among the first `pages` pages of a
    recall text search with the question's words: the turns found and the turn after each
    (what conversation_search shows)."""
    name = fresh_agent(engine, None, CEILING_N_CTX, CEILING_MAX_CHAIN, settings=BARE)
    ids = fill_recall(engine, name, turns, turns[0].speaker)
    id_of = {turn.dia_id: message_id for turn, message_id in zip(turns, ids, strict=True)}
    recall, page_size = engine.recall_storage(name), CEILING_PAGE_SIZE
    shares = []
    for case in cases:
        found = [m for page in range(1, pages + 1)
                 for m in recall.search_text(case.question, page, page_size).items]
        shown = {m.id for m in found} | {m.id for m in recall.next_messages(found).values()}
        wanted = [id_of.get(e.strip()) for e in case.evidence]
        shares.append(sum(w in shown for w in wanted) / len(wanted) if wanted else 1.0)
    return shares
