"""The bad-input campaign: the command line, run as a user runs it (a new process each time),
fed binary and mangled files, huge and empty messages, bad names, bad export files, a broken
models.toml and missing or truncated GGUF files. Each must end with one clear error line and a
non-zero exit, never a traceback, and leave the home's tables exactly as they were. The
functions get bad pages and dates too: each must be a readable error for the model."""

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..agent.functions import execute
from ..engine import Engine, EngineConfig
from .scripted import PAPER_CALLS, Findings, ScriptedRuntime, call

TABLES = ("agents", "messages", "passages", "migrations")
AGENT = "ann"


@dataclass
class Case:
    """One bad input: the command's arguments, what to feed it, and what to set up first."""

    name: str
    args: list[str]
    stdin: bytes = b""
    models_toml: str | None = None  # written to the home for this case only


@dataclass
class BadInputReport(Findings):
    """Cases run and how they failed to fail well."""

    bad_inputs: int = 0
    tracebacks: int = 0
    unclear_errors: int = 0
    zero_exits: int = 0
    home_changed: int = 0


def home_digest(home: Path) -> str:
    """A digest of every table's contents (read-only; no lock needed once nothing runs)."""
    con = duckdb.connect(str(home / "memgpt.duckdb"), read_only=True)
    try:
        rows = [con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
                for table in TABLES]
    finally:
        con.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _files(folder: Path, exported: Path) -> dict[str, Path]:
    """The bad files the cases read."""
    document = json.loads(exported.read_text())
    raw = exported.read_text()
    variants = {
        "binary.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "latin1.txt": "Caf\u00e9 cr\u00e8me".encode("latin-1"),
        "empty.txt": b"",
        "truncated.json": raw[: len(raw) // 2].encode(),
        "mangled.json": raw.replace('"messages"', '"mess').encode(),
        "array.json": b"[1, 2, 3]",
        "version9.json": json.dumps({**document, "version": 9}).encode(),
        "unknown-key.json": json.dumps({**document, "extra": True}).encode(),
        "huge-block.json": json.dumps(_with(document, "core_memory", {
            "persona": {"value": "x" * 3000, "limit": 2000}})).encode(),
        "window.json": json.dumps(_with(document, "settings", {
            **document["agent"]["settings"], "n_ctx": -1})).encode(),
        "no-name.json": json.dumps(_with(document, "name", "")).encode(),
        "truncated.gguf": b"GGUF\x03\x00\x00\x00" + b"\x00" * 1000,
    }
    paths = {}
    for name, data in variants.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    (folder / "a-folder").mkdir(exist_ok=True)
    return paths


def _with(document: dict, key: str, value: Any) -> dict:
    copy = json.loads(json.dumps(document))
    copy["agent"][key] = value
    return copy


def cases(files: dict[str, Path], folder: Path) -> list[Case]:
    """The bad inputs, at least 40."""
    f = {name: str(path) for name, path in files.items()}
    names = ["a/b", "", "\x07bell", "..", ".hidden", "x" * 65, " lead", "tab\tname", "back\\slash"]
    toml_cases = {
        "syntax error": "[models.broken\nfile = ",
        "entry without a file": "[models.nofile]\nn_ctx = 2048\n",
        "missing GGUF": f"[models.gone]\npath = '{folder}/gone.gguf'\n",
        "truncated GGUF": f"[models.cut]\npath = '{f['truncated.gguf']}'\n",
    }
    toml_model = {"syntax error": "broken", "entry without a file": "nofile",
                  "missing GGUF": "gone", "truncated GGUF": "cut"}
    return [
        Case("load a binary file", ["load", f["binary.png"], "--agent", AGENT]),
        Case("load invalid UTF-8", ["load", f["latin1.txt"], "--agent", AGENT]),
        Case("load an empty file", ["load", f["empty.txt"], "--agent", AGENT]),
        Case("load a missing file", ["load", f"{folder}/missing.txt", "--agent", AGENT]),
        Case("load a folder", ["load", f"{folder}/a-folder", "--agent", AGENT]),
        Case("load for a bad name", ["load", f["latin1.txt"], "--agent", "a/b"]),
        Case("load with 0-token passages", ["load", f["latin1.txt"], "--agent", AGENT,
                                            "--max-tokens", "0"]),
        Case("send an empty message", ["send", "--agent", AGENT, ""]),
        Case("send blanks", ["send", "--agent", AGENT, "   \n\t "]),
        Case("send 10 MB", ["send", "--agent", AGENT, "-"], stdin=b"word " * 2_000_000),
        Case("send invalid UTF-8", ["send", "--agent", AGENT, "-"], stdin=b"\xff\xfe\xfa" * 10),
        Case("send to nobody", ["send", "--agent", "nobody", "hi"]),
        Case("chat with a bad name", ["chat", "--agent", "a/b"], stdin=b"/exit\n"),
        Case("chat with an unknown model", ["chat", "--agent", "newbie", "--model", "nope"],
             stdin=b"/exit\n"),
        *[Case(f"create agent named {n!r}", ["agents", "create", n]) for n in names],
        Case("create with a 10-token window", ["agents", "create", "tiny", "--n-ctx", "10"]),
        Case("create with a negative window", ["agents", "create", "neg", "--n-ctx", "-5"]),
        Case("create with 0-character blocks", ["agents", "create", "zero",
                                                "--block-limit", "0"]),
        Case("create with a binary persona", ["agents", "create", "bin",
                                              "--persona", f["binary.png"]]),
        Case("create with a Latin-1 persona", ["agents", "create", "lat",
                                               "--persona", f["latin1.txt"]]),
        Case("create on an unknown model", ["agents", "create", "um", "--model", "nope"]),
        Case("create a name taken", ["agents", "create", AGENT]),
        Case("show nobody", ["agents", "show", "nobody"]),
        Case("delete nobody", ["agents", "delete", "nobody", "--yes"]),
        Case("export nobody", ["agents", "export", "nobody", f"{folder}/out.json"]),
        Case("export into a missing folder", ["agents", "export", AGENT,
                                              f"{folder}/missing/out.json"]),
        *[Case(f"import {n}", ["agents", "import", f[n], "--name", "copy"]) for n in [
            "truncated.json", "mangled.json", "array.json", "version9.json",
            "unknown-key.json", "huge-block.json", "window.json", "no-name.json",
            "binary.png", "empty.txt"]],
        Case("import under a bad name", ["agents", "import", f["version9.json"], "--name",
                                         "x/y"]),
        *[Case(f"models.toml: {what}", ["agents", "create", "m", "--model", toml_model[what]],
               models_toml=text) for what, text in toml_cases.items()],
        Case("run an unknown model", ["models", "run", "--model", "nope", "hi"]),
    ]


def _run(case: Case, home: Path) -> subprocess.CompletedProcess:
    toml = home / "models.toml"
    if case.models_toml is not None:
        toml.write_text(case.models_toml)
    try:
        return subprocess.run([sys.executable, "-m", "memgpt_local", *case.args],
                              input=case.stdin, capture_output=True, timeout=300,
                              env={**os.environ, "MEMGPT_LOCAL_HOME": str(home)})
    finally:
        toml.unlink(missing_ok=True)


def _judge(case: Case, result: subprocess.CompletedProcess, report: BadInputReport) -> None:
    output = (result.stdout + result.stderr).decode(errors="replace")
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    if "Traceback" in output:
        report.tracebacks += 1
        report.note(f"{case.name}: traceback: " + output.strip().splitlines()[-1][:200])
    elif result.returncode == 0:
        report.zero_exits += 1
        report.note(f"{case.name}: exit code 0: " + output.strip()[-200:])
    elif len(errors) != 1:
        report.unclear_errors += 1
        report.note(f"{case.name}: no single error line: " + output.strip()[-200:])


def prepare_home(home: Path, folder: Path) -> Path:
    """A home with one agent that has a message and a passage (embedded by the configured
    model, as the command line will open it); returns its export file."""
    def answer(messages: list[dict]) -> str:
        return call("send_message", message="Noted.")

    with Engine(EngineConfig(home),
                runtime_factory=lambda *a, n_ctx, seed: ScriptedRuntime(answer, n_ctx)) as engine:
        engine.create_agent(AGENT, None, 2048, settings=PAPER_CALLS)
        engine.open_agent(AGENT).send("I keep bees on the roof.")
        archival = engine.archival_storage(AGENT, progress=False)
        archival.insert(["The bees live on the roof."])
        archival.close()
        exported = folder / "ann.json"
        engine.transfer.export_agent(AGENT, exported)
    return exported


def _function_cases() -> list[tuple[str, str]]:
    pages = [("conversation_search", {"query": "bees", "page": p}) for p in (-1, 0, 10**9)]
    pages += [("archival_memory_search", {"query": "bees", "page": p}) for p in (-3, 10**12)]
    dates = [("conversation_search_date", {"start_date": s, "end_date": e, "page": 1})
             for s, e in [("2024-13-45", "2024-01-01"), ("", ""), ("2025-01-02", "2025-01-01"),
                          ("yesterday", "today"), ("2024-01-01T99:00", "9999-99-99")]]
    return [(name, json.dumps({"function": name, "arguments": {
        **arguments, "request_heartbeat": False}})) for name, arguments in pages + dates]


def run_function_cases(home: Path, report: BadInputReport) -> None:
    """Bad pages and dates as the model might write them: readable errors, no exceptions."""
    with Engine(EngineConfig(home),
                runtime_factory=lambda *a, n_ctx, seed: ScriptedRuntime([], n_ctx)) as engine:
        agent = engine.open_agent(AGENT)
        agent.stores.open_archival()
        for name, text in _function_cases():
            report.bad_inputs += 1
            try:
                outcome = execute(json.loads(text), agent.tools, 2000)
            except Exception as exc:  # what this campaign counts
                report.tracebacks += 1
                report.note(f"{name}: raised {exc!r}")
                continue
            if not (outcome.failed and outcome.result.startswith("Error:")):
                report.unclear_errors += 1
                report.note(f"{name}: not an error: {outcome.result[:100]}")


def run_bad_inputs(folder: Path, progress: Callable[[str], None] | None = None
                   ) -> BadInputReport:
    """Run every case against one home, checking the home's digest after each."""
    home = folder / "home"
    files = _files(folder, prepare_home(home, folder))
    report = BadInputReport()
    before = home_digest(home)
    for case in cases(files, folder):
        report.bad_inputs += 1
        _judge(case, _run(case, home), report)
        if home_digest(home) != before:
            report.home_changed += 1
            report.note(f"{case.name}: the home changed")
            before = home_digest(home)
        if progress:
            progress(case.name)
    run_function_cases(home, report)
    if home_digest(home) != before:
        report.home_changed += 1
        report.note("functions: the home changed")
    return report
