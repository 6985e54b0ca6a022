"""The variants that answer a case: the ceiling (a scripted perfect agent over the real memory
tiers) so far; the model-driven agent and the fixed-context baseline build on the same runner."""

import time

from ...engine import Engine
from ..scripted import ScriptedRuntime
from .ceiling import AnswerInResultsPolicy, NestedKvPolicy
from .data import Case
from .runner import CaseResult, ask, fill_archival, fill_recall, fresh_agent, turn_result
from .scoring import contains_answer, locomo_score, uuid_score

CEILING_N_CTX = 16384  # the scripted policy reads every result; the window never limits it
CEILING_MAX_CHAIN = 24
CEILING_PAGE_SIZE = 5  # the agents' default page size


def score(task: str, reply: str, case: Case) -> float:
    """The task's score of a reply."""
    if task == "nested-kv":
        return uuid_score(reply, str(case.expected))
    if task == "doc-qa":
        return contains_answer(reply, list(case.expected))
    return locomo_score(reply, case.expected, case.group)


def ceiling_policy(task: str, case: Case):
    """The scripted perfect agent for a task's case."""
    if task == "nested-kv":
        return NestedKvPolicy()
    policy = AnswerInResultsPolicy("archival_memory_search")
    policy.start(case)
    return policy


def run_ceiling_case(engine: Engine, runtime: ScriptedRuntime, task: str, case: Case
                     ) -> CaseResult:
    """One archival case played by the scripted policy through the agent's real loop."""
    start = time.perf_counter()
    name = fresh_agent(engine, None, CEILING_N_CTX, CEILING_MAX_CHAIN)
    fill_archival(engine, name, case.passages)
    runtime.script = ceiling_policy(task, case)
    turn = ask(engine, name, case.question)
    result = turn_result(turn, case, start, model="ceiling", task=task, variant="ceiling")
    result.score = score(task, result.given, case)
    return result


def ceiling_engine(engine_factory) -> tuple[Engine, ScriptedRuntime]:
    """An engine whose every runtime is one scripted runtime (the policies set its script)."""
    runtime = ScriptedRuntime([], n_ctx=CEILING_N_CTX)
    return engine_factory(lambda *args, **kwargs: runtime), runtime


def locomo_evidence_recall(engine: Engine, turns: list, cases: list[Case], pages: int = 2
                           ) -> list[float]:
    """For each question, the share of its evidence turns among the first `pages` pages of a
    recall text search with the question's words (what conversation_search returns)."""
    name = fresh_agent(engine, None, CEILING_N_CTX, CEILING_MAX_CHAIN)
    ids = fill_recall(engine, name, turns, turns[0].speaker)
    id_of = {turn.dia_id: message_id for turn, message_id in zip(turns, ids, strict=True)}
    recall, page_size = engine.recall_storage(name), CEILING_PAGE_SIZE
    shares = []
    for case in cases:
        found = {m.id for page in range(1, pages + 1)
                 for m in recall.search_text(case.question, page, page_size).items}
        wanted = [id_of.get(e.strip()) for e in case.evidence]
        shares.append(sum(w in found for w in wanted) / len(wanted) if wanted else 1.0)
    return shares
