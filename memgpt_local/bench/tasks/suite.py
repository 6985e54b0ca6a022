"""A benchmark run: every case of the chosen tasks for every model and variant, recorded as
JSON lines (finished cases are skipped when a run resumes), then summarised."""

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from ...engine import Engine, EngineConfig
from ...memory.embeddings import TextEmbedder, load_embedder
from . import data
from .baseline import retrieved_order, run_baseline_case
from .runner import CachingEmbedder, CaseResult
from .validity import SOURCES, ProbingRuntime, run_validity_case
from .variants import (
    AGENT_VARIANTS,
    CEILING_VARIANTS,
    AgentRun,
    ceiling_engine,
    locomo_evidence_recall,
    run_agent_case,
    run_ceiling_case,
)

TASKS = ("nested-kv", "doc-qa", "locomo", "call-validity")
VARIANTS = ("memgpt", "memgpt-bare", "reply", "baseline", "ceiling", "ceiling-reply")
RESULTS = "results.jsonl"
MEMGPT_MAX_CHAIN = 8  # steps per question: nested-KV level 4 takes 6 (5 searches, the answer)
DEFAULT_LIMIT = 10  # cases per level, K or category: the default suite's size
DEFAULT_N_CTX = 8192  # one window for every model
DEFAULT_VALIDITY_CASES = 1  # call-validity: source cases per level, K or category
BENCH_NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)  # the agents' clock: after LoCoMo's dates,
# and fixed, so that greedy runs repeat exactly (the prompt shows the time)


Turns = list | None  # LoCoMo's conversation turns (other tasks have none)


@dataclass
class BenchConfig:
    """What a run covers."""

    tasks: list[str]
    models: list[str]
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    limit: int | None = DEFAULT_LIMIT  # cases per level, K or category; None: all
    seed: int = 1337
    data: Path | None = None
    out: Path = Path("bench-results")
    n_ctx: int | None = DEFAULT_N_CTX  # None: each model's own
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    distractors: list[int] = field(default_factory=lambda: [10, 50])
    validity_cases: int = DEFAULT_VALIDITY_CASES


def task_cases(task: str, config: BenchConfig) -> tuple[list[data.Case], Turns]:
    """A task's cases (`limit` per group, shuffled by the seed) and, for LoCoMo, its turns."""
    turns = None
    if task == "nested-kv":
        cases = data.load_nested_kv(config.data, config.levels)
    elif task == "doc-qa":
        cases = [c for k in config.distractors for c in data.load_doc_qa(config.data, k)]
    else:
        turns, cases = data.load_locomo(config.data)
    return _limited(cases, config.limit, config.seed), turns


def _limited(cases: list[data.Case], limit: int | None, seed: int) -> list[data.Case]:
    groups: dict[int, list[data.Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    chosen = []
    for group in sorted(groups):
        members = groups[group]
        random.Random(seed).shuffle(members)
        chosen += members[:limit] if limit else members
    return chosen


def finished(out: Path) -> set[tuple]:
    """The (model, task, variant, case) already recorded in a results folder."""
    path = out / RESULTS
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["model"], r["task"], r["variant"], r["case_id"]) for r in rows}


def record(out: Path, result: CaseResult) -> None:
    """Append one case's result to the results file."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / RESULTS).open("a", encoding="utf-8") as file:
        file.write(json.dumps(result.as_dict(), ensure_ascii=False, default=str) + "\n")


class ScoreBar:
    """A progress bar over cases that shows the running mean score."""

    def __init__(self, label: str, cases: list[data.Case], show: bool = True):
        from tqdm import tqdm

        self.bar = tqdm(cases, desc=label, unit="case", disable=not show or not cases)
        self.total, self.count = 0.0, 0

    def __iter__(self) -> Iterator[data.Case]:
        return iter(self.bar)

    def add(self, result: CaseResult) -> None:
        """Count a finished case into the running score."""
        self.total, self.count = self.total + result.score, self.count + 1
        self.bar.set_postfix(score=f"{self.total / self.count:.2f}")

    def close(self) -> None:
        """End the bar."""
        self.bar.close()


class BenchRun:
    """One run: an engine per answering side over scratch homes, one shared caching
    embedder, and the results folder."""

    def __init__(self, config: BenchConfig, embedder: TextEmbedder | None = None,
                 show_progress: bool = True):
        self.config = config
        self.show_progress = show_progress
        self.embedder = CachingEmbedder(embedder or load_embedder(None, "int8"))
        self._scratch = tempfile.TemporaryDirectory(prefix="memgpt-bench-")
        self.done = finished(config.out)

    def engine(self, name: str, **kwargs: Any) -> Engine:
        """An engine over a scratch home of this run."""
        home = Path(self._scratch.name) / name
        return Engine(EngineConfig(home, kv_budget_bytes=2 * 1024**3), embedder=self.embedder,
                      clock=lambda: BENCH_NOW, **kwargs)

    def close(self) -> None:
        """Remove the scratch homes."""
        self._scratch.cleanup()

    def todo(self, model: str, task: str, variant: str, cases: list[data.Case]
             ) -> list[data.Case]:
        """The cases not yet recorded."""
        return [c for c in cases if (model, task, variant, c.case_id) not in self.done]

    def run(self) -> None:
        """Every task, model and variant; each finished case recorded at once."""
        for task in self.config.tasks:
            if task == "call-validity":
                for model in self.config.models:
                    self._validity(model)
                continue
            cases, turns = task_cases(task, self.config)
            if set(CEILING_VARIANTS) & set(self.config.variants):
                self._ceiling(task, cases, turns)
            for model in self.config.models:
                self._model(task, model, cases, turns)

    def cases(self, model: str, task: str, variant: str, cases: list[data.Case]
              ) -> Iterator[tuple[data.Case, Callable[[CaseResult], None]]]:
        """The cases still to run, under a progress bar, each with the function that
        records its result."""
        bar = ScoreBar(f"{task} {model} {variant}", self.todo(model, task, variant, cases),
                       self.show_progress)
        try:
            for case in bar:
                yield case, partial(self._record, bar)
        finally:
            bar.close()

    def _save(self, result: CaseResult) -> None:
        record(self.config.out, result)
        self.done.add((result.model, result.task, result.variant, result.case_id))

    def _record(self, bar: ScoreBar, result: CaseResult) -> None:
        self._save(result)
        bar.add(result)

    def _ceiling(self, task: str, cases: list[data.Case], turns: Turns) -> None:
        engine, runtime = ceiling_engine(lambda factory: self.engine("ceiling",
                                                                     runtime_factory=factory))
        with engine:
            if turns is not None:  # what the ceiling measures here is retrieval alone
                if "ceiling" in self.config.variants:
                    self._evidence_recall(engine, task, cases, turns)
                return
            for variant in CEILING_VARIANTS:
                if variant in self.config.variants:
                    for case, save in self.cases("ceiling", task, variant, cases):
                        save(run_ceiling_case(engine, runtime, task, case, variant))

    def _evidence_recall(self, engine: Engine, task: str, cases: list[data.Case],
                         turns: Turns) -> None:
        todo = self.todo("ceiling", task, "ceiling", cases)
        if not todo:
            return
        shares = locomo_evidence_recall(engine, turns or [], todo)
        for case, share in zip(todo, shares, strict=True):
            self._save(CaseResult("ceiling", task, "ceiling", case.group, case.case_id,
                                  case.question, case.expected, "", share, 0.0,
                                  extra={"evidence_recall": share}))

    def _model(self, task: str, model: str, cases: list[data.Case], turns: Turns) -> None:
        with self.engine(f"model-{model}") as engine:
            for variant, settings in AGENT_VARIANTS.items():
                if variant not in self.config.variants:
                    continue
                run = AgentRun(model, model, self.config.n_ctx, MEMGPT_MAX_CHAIN, settings)
                for case, save in self.cases(model, task, variant, cases):
                    save(run_agent_case(engine, task, case, run, variant, turns))
            if "baseline" in self.config.variants:
                self._baseline(engine, task, model, cases, turns)

    def _validity(self, model: str) -> None:
        """Call validity: the agent's prompts on cases of the other tasks, decoded with and
        without the constraint (it needs the agent's steps, so it runs with `memgpt`)."""
        if "memgpt" not in self.config.variants:
            return
        config = replace(self.config, limit=self.config.validity_cases)
        done = {key[3].rsplit("/", 1)[0] for key in self.done
                if key[:2] == (model, "call-validity")}
        with self.engine(f"validity-{model}", runtime_wrapper=ProbingRuntime) as engine:
            for source in SOURCES:
                cases, turns = task_cases(source, config)
                todo = [c for c in cases if f"{source}/{c.case_id}" not in done]
                bar = ScoreBar(f"call-validity {model} ({source} prompts, free)", todo,
                               self.show_progress)
                for case in bar:
                    for result in run_validity_case(engine, source, case, model,
                                                    self.config.n_ctx, turns):
                        self._save(result)
                        if result.variant == "free":
                            bar.add(result)
                bar.close()

    def _baseline(self, engine: Engine, task: str, model: str, cases: list[data.Case],
                  turns: Turns) -> None:
        runtime = engine.runtime(model, self.config.n_ctx)
        try:
            for case, save in self.cases(model, task, "baseline", cases):
                material = baseline_material(engine, task, case, turns)
                save(run_baseline_case(runtime, task, case, material, model,
                                       keep_newest=turns is not None))
        finally:
            engine.runtimes.release(runtime)


def baseline_material(engine: Engine, task: str, case: data.Case, turns: list | None
                      ) -> list[str]:
    """What the baseline puts in its prompt, most useful first where it cannot all fit:
    the pairs in stored order, the passages ranked by the retriever, the conversation (of
    which the newest turns are kept)."""
    if task == "nested-kv":
        return case.passages
    if task == "doc-qa":
        return retrieved_order(engine, case)
    return [f"[{t.when:%Y-%m-%d %H:%M}] {t.speaker}: {t.text}" for t in turns or []]
