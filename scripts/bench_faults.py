"""Fault campaigns: fuzz, kills, injection and bad input, as one JSON object.

    .venv/bin/python scripts/bench_faults.py --json
    .venv/bin/python scripts/bench_faults.py --fuzz-steps 1000 --kills 5 --json   # quicker
    .venv/bin/python scripts/bench_faults.py --skip fuzz,injection,bad-input --store URL

Every failure count should be 0: prompt_over_window, invariant_violations, messages_lost,
messages_duplicated, agents_unopenable, index_mismatches, injections, tracebacks, home_changed,
and the import campaign's import_tracebacks, import_server_errors, import_unclear_refusals,
import_store_changed, import_agents_unreadable.
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from memgpt_local.bench.bad_input import home_digest, run_bad_inputs
from memgpt_local.bench.fuzz import run_fuzz
from memgpt_local.bench.import_fuzz import (
    ImportFuzzReport,
    encoded,
    mutated,
    seed_documents,
    try_cli_import,
    try_http_import,
)
from memgpt_local.bench.injection import run_injection
from memgpt_local.bench.kills import run_kills
from memgpt_local.server.process import ServerProcess

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

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


def imports(http_cases: int, cli_cases: int, folder: Path, seed: int = 1) -> dict:
    """The import campaign's figures: mutated agent files through a real server's import and
    the command line's."""
    start = time.perf_counter()
    documents = seed_documents(SHARED, folder / "seed")
    names = sorted(documents)
    rng = random.Random(seed)
    report = ImportFuzzReport()
    server = ServerProcess(_folder(folder / "server"))
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            def request(method: str, path: str, **kwargs) -> tuple[int, str]:
                response = client.request(method, path, **kwargs)
                return response.status_code, response.text

            for number in range(http_cases):
                name = rng.choice(names)
                kind, document = documents[name]
                changed, what = mutated(document, rng)
                try_http_import(request, kind, encoded(changed, rng), f"{name}: {what}", report)
                if number % 50 == 0:
                    _log(f"imports over HTTP: {number}/{http_cases}")
    finally:
        server.stop()
    for number in range(cli_cases):
        name = rng.choice(names)
        kind, document = documents[name]
        changed, what = mutated(document, rng)
        try_cli_import(folder / "cli-home", _folder(folder / "cli"), kind,
                       encoded(changed, rng), f"{name}: {what}", report, _digest)
        _log(f"imports on the command line: {number + 1}/{cli_cases}")
    return {"import_cases": report.import_cases, "imports_accepted": report.accepted,
            "imports_refused": report.refused, "import_tracebacks": report.tracebacks,
            "import_server_errors": report.server_errors,
            "import_unclear_refusals": report.unclear_refusals,
            "import_store_changed": report.store_changed,
            "import_agents_unreadable": report.agents_unreadable,
            "import_problems": report.problems,
            "imports_s": round(time.perf_counter() - start, 1)}


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(home: Path) -> str:
    return home_digest(home) if (home / "memgpt.duckdb").exists() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-steps", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--import-cases", type=int, default=500,
                        help="Mutated agent files sent to a server's import.")
    parser.add_argument("--cli-import-cases", type=int, default=40,
                        help="Mutated agent files imported on the command line.")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="Models whose control tokens the injection campaign tries.")
    parser.add_argument("--skip", default="", help="Campaigns to leave out, comma-separated "
                        "(fuzz, kills, injection, bad-input, imports).")
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
        if "imports" not in skip:
            results |= imports(args.import_cases, args.cli_import_cases, Path(folder))
    print(json.dumps(results, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
