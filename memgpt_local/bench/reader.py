"""Can a model read an answer out of memory that was brought to it, and what does answering
inside a function call cost? The agent's prompt (its instructions, the question as a user
message, then the `[memory]` entry as the agent stores it, the answer's passage first among
three) is decoded three ways: a plain-text answer, a call constrained to `send_message`, and a
call constrained to any of the agent's functions (what the agent decodes). Only the format
changes between them, so the differences are what the call costs a model, not retrieval."""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ..agent import context as ctx
from ..agent.loop import call_schema
from ..agent.recollection import ENTRY_FUNCTION, entry_text
from ..agent.settings import NEW_AGENT_SETTINGS, AgentSettings
from ..llm.base import Runtime
from ..memory.core import DEFAULT_LABELS
from ..memory.messages import Message
from .tasks.data import Case
from .tasks.scoring import echoes
from .tasks.suite import BENCH_NOW
from .tasks.variants import score

FORMATS = ("plain", "send_message call", "any call")
HITS: int = NEW_AGENT_SETTINGS["memory_hits"]  # passages in the entry, as a new agent brings
LABELS = list(DEFAULT_LABELS)


@dataclass
class FormatScore:
    """One format's figures on one task."""

    cases: int = 0
    correct: float = 0.0
    send_message_calls: int = 0
    generated_tokens: int = 0
    echoed: int = 0  # correct answers that copy ECHO_WORDS words in a row of a passage

    def as_dict(self) -> dict:
        """A JSON-ready form, with the share correct."""
        return {**asdict(self), "score": round(self.correct / self.cases, 3) if self.cases else 0}


def brought_passages(task: str, case: Case) -> list[str]:
    """The passages the entry holds: the one with the answer first, then the next two."""
    if task == "doc-qa":
        return case.passages[:HITS]  # the gold passage, then distractors
    key = case.question.split("key ", 1)[1].split(".", 1)[0]
    gold = next(p for p in case.passages if p.startswith(f"key {key} "))
    return [gold] + [p for p in case.passages if p != gold][:HITS - 1]


def prompt_messages(task: str, case: Case) -> list[dict]:
    """The agent's instructions, the question and the memory entry, as the agent renders them."""
    settings = AgentSettings()
    entry = entry_text(brought_passages(task, case), [], settings.result_max_chars)
    question = Message("user", case.question, created_at=BENCH_NOW)
    memory = Message("function_result", entry, function_name=ENTRY_FUNCTION)
    return [{"role": "system", "content": ctx.static_instructions()},
            ctx.queue_entry(question), ctx.queue_entry(memory)]


def answer_of(text: str, constrained: bool) -> tuple[str, bool]:
    """The answer a completion gives and whether it is a send_message call."""
    if not constrained:
        return text, False
    call = json.loads(text)
    if call.get("function") != "send_message":
        return "", False
    return str(call["arguments"].get("message", "")), True


def read_cases(runtime: Runtime, task: str, cases: list[Case],
               progress: Callable[[], None] | None = None) -> dict[str, dict]:
    """Each format's figures on the cases of one task (greedy, the agent's token budget)."""
    budget = AgentSettings().response_tokens
    processors = {"plain": None,
                  "send_message call": runtime.constraint(
                      call_schema(LABELS, ("send_message",))).processor(),
                  "any call": runtime.constraint(call_schema(LABELS)).processor()}
    figures = {name: FormatScore() for name in FORMATS}
    for case in cases:
        tokens = runtime.chat_tokens(prompt_messages(task, case)).tokens
        passages = brought_passages(task, case)
        for name, processor in processors.items():
            generation = runtime.generate(tokens, budget, processor=processor).finish()
            answer, sent = answer_of(generation.text, processor is not None)
            figure = figures[name]
            figure.cases += 1
            correct = score(task, answer, case)
            figure.correct += correct
            figure.echoed += bool(correct) and echoes(answer, passages)
            figure.send_message_calls += sent
            figure.generated_tokens += generation.stats.generated_tokens
        if progress:
            progress()
    return {name: figure.as_dict() for name, figure in figures.items()}
