"""The fixed-context baseline: the same model with no memory tiers. The task's material goes
straight into the prompt, as much as fits the window, before the question, so that consecutive
cases share their prefix and the runtime's KV reuse keeps the baseline cheap."""

import time

from ...engine import Engine
from ...llm.base import Generation, Runtime
from .data import Case
from .runner import CaseResult, fill_archival, fresh_agent
from .variants import score

INSTRUCTIONS = ("Answer the question at the end using the material below. Reply with the "
                "answer only, in a few words.\n\nMaterial:\n")
ANSWER_TOKENS = 64
TEMPLATE_OVERHEAD = 32  # tokens a chat template adds around two messages, at most


def baseline_messages(material: list[str], question: str) -> list[dict]:
    """The prompt: instructions and material first, the question last."""
    return [{"role": "system", "content": INSTRUCTIONS + "\n".join(material)},
            {"role": "user", "content": question}]


def fitting_count(runtime: Runtime, material: list[str], question: str) -> int:
    """How many leading items of the material fit the window with the question and answer."""
    budget = (runtime.n_ctx - ANSWER_TOKENS - TEMPLATE_OVERHEAD
              - runtime.count_tokens(INSTRUCTIONS) - runtime.count_tokens(question))
    used = 0
    for count, item in enumerate(material):
        used += runtime.count_tokens(item) + 1  # and its newline
        if used > budget:
            return count
    return len(material)


def answer_from_prompt(runtime: Runtime, material: list[str], question: str,
                       keep_newest: bool = False) -> tuple[Generation, int]:
    """The model's greedy answer with as much material as fits (the first items, or the
    last ones with keep_newest); returns the generation and how many items went in."""
    ordered = material[::-1] if keep_newest else material
    count = fitting_count(runtime, ordered, question)
    while True:
        chosen = ordered[:count][::-1] if keep_newest else ordered[:count]
        prompt = runtime.chat_tokens(baseline_messages(chosen, question))
        if not count or len(prompt.tokens) + ANSWER_TOKENS <= runtime.n_ctx:
            break
        count -= max(1, count // 20)  # the estimate erred: drop a few more
    return runtime.generate(prompt.tokens, max_tokens=ANSWER_TOKENS).finish(), count


def retrieved_order(engine: Engine, case: Case) -> list[str]:
    """The case's passages ranked for its question by the agents' own retriever."""
    name = fresh_agent(engine, None, None, 1)
    fill_archival(engine, name, case.passages)
    archival = engine.archival_storage(name, progress=False)
    try:
        page = archival.search(case.question, page=1, page_size=len(case.passages))
    finally:
        archival.close()
    ranked = [p["content"] for p in page.items]
    return ranked + [p for p in case.passages if p not in set(ranked)]


def run_baseline_case(runtime: Runtime, task: str, case: Case, material: list[str],
                      label: str, keep_newest: bool = False) -> CaseResult:
    """One case answered from the prompt alone."""
    start = time.perf_counter()
    generation, count = answer_from_prompt(runtime, material, case.question, keep_newest)
    stats = generation.stats
    return CaseResult(
        model=label, task=task, variant="baseline", group=case.group, case_id=case.case_id,
        question=case.question, expected=case.expected, given=generation.text,
        score=score(task, generation.text, case), wall_s=time.perf_counter() - start,
        prompt_tokens=stats.prompt_tokens, evaluated_tokens=stats.evaluated_tokens,
        generated_tokens=stats.generated_tokens,
        stopped="answer cut at the token limit" if stats.finish_reason == "length" else None,
        extra={"material_items": count, "material_total": len(material)})
