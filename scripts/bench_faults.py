"""Fault campaigns: fuzz, kills, injection and bad input, as one JSON object.

    .venv/bin/python scripts/bench_faults.py --json
    .venv/bin/python scripts/bench_faults.py --fuzz-steps 1000 --kills 5 --json   # quicker
    .venv/bin/python scripts/bench_faults.py --skip fuzz,injection,bad-input --store URL

Every failure count should be 0: prompt_over_window, invariant_violations, messages_lost,
messages_duplicated, agents_unopenable, index_mismatches, injections, tracebacks, home_changed.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from memgpt_local.bench.bad_input import run_bad_inputs
from memgpt_local.bench.fuzz import run_fuzz
from memgpt_local.bench.injection import run_injection
from memgpt_local.bench.kills import run_kills

MODELS = ("smollm2-135m", "gemma3-270m")


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fuzz(steps: int) -> dict:
    """The fuzz campaign's figures."""
    start = time.perf_counter()
    report = run_fuzz(steps)
    return {"fuzz_steps": report.steps, "fuzz_turns": report.turns,
            "fuzz_rejected_messages": report.rejected_messages,
            "prompt_over_window": report.prompt_over_window,
            "invariant_violations": report.invariant_violations,
            "fuzz_failures": report.problems, "fuzz_s": round(time.perf_counter() - start, 1)}


def kills(count: int, folder: Path, store: str | None = None) -> dict:
    """The kill campaign's figures."""
    start = time.perf_counter()
    report = run_kills(folder / "kills", count, store=store, progress=lambda r: _log(
        f"kill {r.kills}/{count}: lost {r.messages_lost}, duplicated "
        f"{r.messages_duplicated}, index mismatches {r.index_mismatches}"))
    return {"kills": report.kills, "kill_store": "postgresql" if store else "embedded",
            "kill_messages_stored": report.messages_stored,
            "messages_lost": report.messages_lost,
            "messages_duplicated": report.messages_duplicated,
            "agents_unopenable": report.agents_unopenable,
            "index_mismatches": report.index_mismatches,
            "temporary_files_left": report.temporary_files_left,
            "kill_child_errors": report.child_errors, "kill_problems": report.problems,
            "kills_s": round(time.perf_counter() - start, 1)}


def injection(models: list[str]) -> dict:
    """The injection campaign's figures, summed over the models (and per model)."""
    per_model = {}
    for alias in models:
        _log(f"injection: {alias}")
        report = run_injection(alias)
        per_model[alias] = {"attempts": report.attempts, "injections": report.injections,
                            "prompts_checked": report.prompts_checked,
                            "paths_reached": len(report.paths_reached),
                            "constraint_control_tokens": report.constraint_control_tokens,
                            "leaked": report.leaked}
    return {"injection_attempts": sum(m["attempts"] for m in per_model.values()),
            "injections": sum(m["injections"] + m["constraint_control_tokens"]
                              for m in per_model.values()),
            "injection_by_model": per_model}


def bad_inputs(folder: Path) -> dict:
    """The bad-input campaign's figures."""
    report = run_bad_inputs(folder / "bad", progress=lambda name: _log(f"bad input: {name}"))
    return {"bad_inputs": report.bad_inputs, "tracebacks": report.tracebacks,
            "unclear_errors": report.unclear_errors, "zero_exits": report.zero_exits,
            "home_changed": report.home_changed, "bad_input_problems": report.problems}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-steps", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--models", default=",".join(MODELS),
                        help="Models whose control tokens the injection campaign tries.")
    parser.add_argument("--skip", default="", help="Campaigns to leave out, comma-separated "
                        "(fuzz, kills, injection, bad-input).")
    parser.add_argument("--store", metavar="URL", help="Run the kill campaign on this "
                        "PostgreSQL store (an empty database; scripts/postgres.sh start DIR).")
    parser.add_argument("--json", action="store_true", help="Print only the JSON object.")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="memgpt-faults-") as folder:
        if "fuzz" not in skip:
            results |= fuzz(args.fuzz_steps)
        if "kills" not in skip:
            results |= kills(args.kills, Path(folder), args.store)
        if "injection" not in skip:
            results |= injection(args.models.split(","))
        if "bad-input" not in skip:
            results |= bad_inputs(Path(folder))
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
