"""CLI: the memory-task benchmarks (`bench TASK`) and the merged report of runs (`bench report`)."""

from pathlib import Path

import click
from click_default_group import DefaultGroup

from ..bench.tasks.suite import (
    DEFAULT_LIMIT,
    DEFAULT_N_CTX,
    DEFAULT_VALIDITY_CASES,
    TASKS,
    VARIANTS,
    BenchConfig,
    BenchRun,
)
from .common import engine, int_range, user_errors


def _int_list(text: str, name: str, low: int, high: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a comma-separated list of numbers.",
                                 param_hint=name) from None
    if not values or any(not low <= v <= high for v in values):
        raise click.BadParameter(f"each must be between {low} and {high}.", param_hint=name)
    return values


def _variants(text: str) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown or not chosen:
        raise click.BadParameter(f"unknown {', '.join(unknown) or 'nothing'}; valid: "
                                 f"{', '.join(VARIANTS)}.", param_hint="--variant")
    return chosen


@click.group(cls=DefaultGroup, default="run", default_if_no_args=False)
def bench() -> None:
    """Memory-task benchmarks: bench TASK --model A [--model B] ..., bench report DIR..."""


@bench.command("run")
@click.argument("task", type=click.Choice([*TASKS, "all"]))
@click.option("--model", "-m", "models", multiple=True,
              help="Model alias (repeatable; default: the registry's default model).")
@click.option("--variant", default=",".join(VARIANTS), show_default=True,
              help="Comma-separated: memgpt (the agent with its defaults, the paper's "
                   "architecture), memgpt-bare (no tool rules, no memory brought to the turn), "
                   "reply (the defaults, plain replies and tool calls), baseline, ceiling.")
@click.option("--limit", type=click.IntRange(0), default=DEFAULT_LIMIT, show_default=True,
              help="Cases per level, K or category (0: all).")
@click.option("--seed", default=1337, show_default=True, help="Chooses and orders the cases.")
@click.option("--data", type=click.Path(exists=True, path_type=Path),
              help="A data file or folder in the shared formats (default: ../shared/data).")
@click.option("--out", default="bench-results", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Results folder; a run there resumes, skipping finished cases.")
@click.option("--n-ctx", type=int_range("n_ctx"), default=DEFAULT_N_CTX,
              show_default=True, help="The window of every model (one size, so that models "
              "compare fairly).")
@click.option("--levels", default="1,2,3,4", show_default=True, help="Nested-KV levels (1-6).")
@click.option("--k", "distractors", default="10,50", show_default=True,
              help="Doc-QA distractor counts.")
@click.option("--validity-cases", type=click.IntRange(1), default=DEFAULT_VALIDITY_CASES,
              show_default=True,
              help="call-validity: cases per level, K or category of the other tasks whose "
              "agent steps give its prompts.")
@user_errors
def run(task: str, models: tuple[str, ...], variant: str, limit: int, seed: int,
        data: Path | None, out: Path, n_ctx: int | None, levels: str, distractors: str,
        validity_cases: int) -> None:
    """Run a task (or all) for each model and variant; results go to --out."""
    with engine() as eng:  # the aliases are checked before anything runs
        aliases = [eng.model_spec(m or None).alias for m in models or [None]]
    config = BenchConfig(list(TASKS) if task == "all" else [task], aliases, _variants(variant),
                         limit or None, seed, data, out, n_ctx, _int_list(levels, "--levels", 1, 6),
                         _int_list(distractors, "--k", 0, 199), validity_cases)
    runner = BenchRun(config)
    try:
        runner.run()
    finally:
        runner.close()
    from ..bench.tasks.report import write_report

    click.echo(write_report([out], out))
    click.echo(f"Results: {out / 'results.jsonl'}; summary: {out / 'summary.md'}", err=True)


@bench.command("report")
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", default="bench-report", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Where to write it.")
def report(folders: tuple[Path, ...], out: Path) -> None:
    """Merge the results of several runs into one table and one set of plots."""
    from ..bench.tasks.report import write_report

    click.echo(write_report(list(folders), out))
