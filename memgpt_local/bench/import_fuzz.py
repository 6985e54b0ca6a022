"""The import campaign: agent files mutated at random (the six published Letta files and our
own exports, in both formats: types swapped, fields removed, deep nesting, huge and invalid
text) sent to the import of a server and of the command line. Every one must be refused in
one line or accepted whole: never a traceback or a 500, a refused file changes nothing, and an
accepted agent answers on every route that reads it."""

import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import Engine, EngineConfig
from .scripted import PAPER_CALLS, Findings, HashingEmbedder, ScriptedRuntime, call

REPLACEMENTS: tuple[Any, ...] = (None, True, False, 0, -1, 2**63, 1.5, "", "x", [], {}, ["x"],
                                 {"x": 1}, [[]])
KINDS = ("swap", "swap", "swap", "remove", "remove", "deep", "deep_text", "huge", "bad_text")
BAD_CHARACTERS = ("\ud800", "\udfff", "\x00")
READ_ROUTES = ("", "/messages", "/export", "/export?format=af", "/context", "/core-memory",
               "/recall?query=a", "/archival?query=a")
Request = Callable[..., tuple[int, str]]  # (method, path, json=...) -> (status, body text)


@dataclass
class ImportFuzzReport(Findings):
    """Files tried and how each ended."""

    import_cases: int = 0
    accepted: int = 0
    refused: int = 0
    tracebacks: int = 0
    server_errors: int = 0
    unclear_refusals: int = 0
    store_changed: int = 0
    agents_unreadable: int = 0


def seed_documents(shared: Path, folder: Path) -> dict[str, tuple[str, Any]]:
    """The documents to mutate, by name: (kind "af" or "ours", the decoded document)."""
    documents = {}
    for path in sorted((shared / "agentfile").glob("*.af")):
        data = json.loads(path.read_text())
        documents[path.name] = ("af", json.loads(data) if isinstance(data, str) else data)
    with Engine(EngineConfig(folder / "seed"), embedder=HashingEmbedder(),
                runtime_factory=lambda *a, **k: ScriptedRuntime(_answer, 2048)) as engine:
        engine.create_agent("seed", "smollm2-135m", 2048, human="Name: Ann.",
                            settings=PAPER_CALLS)
        agent = engine.open_agent("seed")
        agent.send("My cat is Miso.")
        agent.insert_passage("Ann keeps bees.")
        engine.close_agent(agent)
        documents["ours.json"] = ("ours", engine.transfer.export_document("seed"))
        documents["ours.af"] = ("af", engine.transfer.export_letta_document("seed"))
    return documents


def _answer(messages: list[dict]) -> str:
    return call("send_message", message="Noted.")


def mutated(document: Any, rng: random.Random) -> tuple[Any, str]:
    """A copy of a document with one random change, and what the change was."""
    copy = json.loads(json.dumps(document))
    holder, key = _random_place(copy, rng)
    kind = rng.choice(KINDS)
    if kind == "remove" and isinstance(holder, dict | list) and len(holder):
        del holder[key]
        return copy, f"removed {key!r}"
    old = holder[key] if holder is not None else copy
    new = _replacement(kind, old, rng)
    if holder is None:
        return new, f"{kind} at the top"
    holder[key] = new
    return copy, f"{kind} at {key!r}"


def _random_place(document: Any, rng: random.Random) -> tuple[Any, Any]:
    """A container in the document and a key of it (None, None: the document itself): a
    depth chosen first, then a place at that depth, so the top fields are hit as often as the
    leaves of long message lists."""
    by_depth: dict[int, list[tuple[Any, Any]]] = {0: [(None, None)]}
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        keys = list(value) if isinstance(value, dict) else range(len(value))
        for key in keys:
            by_depth.setdefault(depth, []).append((value, key))
            if isinstance(value[key], dict | list):
                pending.append((value[key], depth + 1))
    return rng.choice(by_depth[rng.choice(sorted(by_depth))])


def _replacement(kind: str, old: Any, rng: random.Random) -> Any:
    if kind == "deep":
        value: Any = "x"
        for _ in range(rng.choice((70, 900))):
            value = [value] if rng.random() < 0.5 else {"a": value}
        return value
    if kind == "deep_text":
        return rng.choice(("[" * 100_000, '{"a":' * 900 + "1" + "}" * 900))
    if kind == "huge":
        return "x" * rng.choice((100_001, 2_000_000))
    if kind == "bad_text":
        text = old if isinstance(old, str) else "x"
        cut = rng.randrange(len(text) + 1)
        return text[:cut] + rng.choice(BAD_CHARACTERS) + text[cut:]
    return rng.choice(REPLACEMENTS)


def encoded(document: Any, rng: random.Random) -> Any:
    """The document as sent: itself, or (as some published files are) as one JSON string."""
    return json.dumps(document) if rng.random() < 0.25 else document


def try_http_import(request: Request, kind: str, document: Any, what: str,
                    report: ImportFuzzReport) -> None:
    """Send one document to the server's import and judge what it did."""
    report.import_cases += 1
    before = request("GET", "/agents")
    path = "/agents/import/af?our_instructions=true" if kind == "af" else "/agents/import"
    status, text = request("POST", path, content=json.dumps(document).encode(),  # ASCII:
                           headers={"Content-Type": "application/json"})  # any text goes
    if status >= 500:
        report.server_errors += 1
        report.note(f"HTTP {status} for {what}: {text[:200]}")
    elif status == 201:
        report.accepted += 1
        answer = json.loads(text)
        names = [row["name"] for row in answer] if kind == "af" else [answer["name"]]
        for name in names:
            _read_and_delete(request, name, what, report)
    else:
        report.refused += 1
        _judge_refusal(text, what, report)
        if request("GET", "/agents") != before:
            report.store_changed += 1
            report.note(f"refused {what} changed the store")


def _read_and_delete(request: Request, name: str, what: str, report: ImportFuzzReport) -> None:
    failed = [(route, status) for route in READ_ROUTES
              if (status := request("GET", f"/agents/{name}{route}")[0]) >= 500]
    if failed:
        report.agents_unreadable += 1
        report.note(f"agent from {what} unreadable: {failed}")
    request("DELETE", f"/agents/{name}")


def _judge_refusal(text: str, what: str, report: ImportFuzzReport) -> None:
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = ""
    if not message or "\n" in message or "Traceback" in message:
        report.unclear_refusals += 1
        report.note(f"refusal of {what} unclear: {text[:200]}")


def try_cli_import(home: Path, folder: Path, kind: str, document: Any, what: str,
                   report: ImportFuzzReport, digest: Callable[[Path], str]) -> None:
    """Import one document with `memgpt-local agents import` (a new process, as a user runs
    it) and judge what it did."""
    report.import_cases += 1
    path = folder / ("case.af" if kind == "af" else "case.json")
    path.write_text(json.dumps(document), encoding="utf-8", errors="surrogatepass")
    before = digest(home)
    result = subprocess.run(
        [sys.executable, "-c", "from memgpt_local.cli import cli; cli()", "agents", "import",
         str(path)] + (["--our-instructions"] if kind == "af" else []),
        capture_output=True, text=True, errors="replace", timeout=300,
        env={**_environment(), "MEMGPT_LOCAL_HOME": str(home)})
    if "Traceback" in result.stderr:
        report.tracebacks += 1
        report.note(f"traceback for {what}: {result.stderr.strip().splitlines()[-1][:200]}")
    elif result.returncode == 0:
        report.accepted += 1
        shutil.rmtree(home)  # the next case starts from an empty home
    else:
        report.refused += 1
        if len(result.stderr.strip().splitlines()) != 1:
            report.unclear_refusals += 1
            report.note(f"refusal of {what} unclear: {result.stderr[:200]}")
        if digest(home) != before:
            report.store_changed += 1
            report.note(f"refused {what} changed the home")


def _environment() -> dict:
    return dict(os.environ)
