"""The kill campaign: a child process sends messages to an agent on the real model (and stores
a passage after each), the parent SIGKILLs it at random moments; after every kill the home is
opened and checked: every message reported stored is in recall exactly once, the archival
index holds exactly DuckDB's rows, the agent opens and takes the next message, and no
temporary file is left. On a shared store (PostgreSQL) the child's open agent holds its lease,
and the checker must take it over after the kill: a killed process's leases end with it.

Run a child by hand: python -m memgpt_local.bench.kills HOME FIRST_INDEX [STORE_URL]
"""

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agent.loop import Agent
from ..engine import Engine, EngineConfig
from ..memory.archival import ArchivalStorage
from .scripted import Findings

AGENT = "victim"
MODEL = "smollm2-135m"
N_CTX = 2048


@dataclass
class KillReport(Findings):
    """What the campaign did and what it found."""

    kills: int = 0
    messages_stored: int = 0
    messages_lost: int = 0
    messages_duplicated: int = 0
    agents_unopenable: int = 0
    index_mismatches: int = 0
    temporary_files_left: int = 0
    child_errors: int = 0


def message_text(index: int) -> str:
    """The index-th message the child sends: unique, and about 30 words."""
    return (f"Note {index}: my neighbour's cat is called Pepper number {index}; remember that "
            "she likes sardines, sleeps on the boiler and hates the vacuum cleaner.")


def passage_text(index: int) -> str:
    """The passage stored after the index-th message."""
    return f"Passage {index}: the cat Pepper number {index} weighs {index % 9 + 2} kilograms."


def child(config: EngineConfig, first: int) -> None:
    """Send messages without end, each followed by a passage, reporting each one stored (on a
    shared store the open agent holds its lease)."""
    with Engine(config) as engine:
        agent = engine.open_agent(AGENT)
        agent.stores.open_archival()
        print("ready", flush=True)
        index = first
        while True:
            agent.send(message_text(index))
            with agent.transaction():
                agent.tools.archival_insert(passage_text(index))
            print(f"stored {index}", flush=True)
            index += 1


def _run_child(config: EngineConfig, first: int, wait_for: int, kill_after_s: float
               ) -> tuple[list[int], str]:
    """Start a child; once it is ready and has reported `wait_for` messages stored, kill it
    kill_after_s seconds later. Returns the indexes it reported stored, and its error output
    if it failed before the kill."""
    process = subprocess.Popen(
        [sys.executable, "-m", "memgpt_local.bench.kills", str(config.home), str(first),
         *([config.store] if config.store else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.stdout, process.stderr
    assert stdout is not None and stderr is not None  # both piped
    lines = [stdout.readline().strip()]
    while lines[-1] and len(lines) <= wait_for:
        lines.append(stdout.readline().strip())
    if lines[0] != "ready" or not lines[-1]:
        process.kill()
        process.wait()
        return [], stderr.read()[-2000:]
    time.sleep(kill_after_s)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines += stdout.read().splitlines()
    return [int(line.split()[1]) for line in lines if line.startswith("stored")], ""


def _check_home(config: EngineConfig, reported: list[int], in_flight: set[int],
                report: KillReport) -> None:
    """Open the store after a kill (taking the agent over: its lease) and check everything
    the campaign promises."""
    try:
        with Engine(config) as engine, engine.db.lease(AGENT, "the checker", wait_s=30):
            agent = engine.open_agent(AGENT)
            _check_messages(agent, reported, in_flight, report)
            if engine.db.kind == "embedded":  # PostgreSQL's index is its table
                _check_index(agent, report)
            engine.close_agent(agent)
    except Exception as exc:  # any failure to open is what this campaign counts
        report.agents_unopenable += 1
        report.note(f"unopenable: {exc!r}")
        return
    left = [p for p in config.home.rglob("*.tmp*") if p.is_file()]
    report.temporary_files_left += len(left)


def _check_messages(agent: Agent, reported: list[int], in_flight: set[int],
                    report: KillReport) -> None:
    stored = Counter(m.content for m in agent.recall.all() if m.role == "user")
    for index in reported:
        count = stored[message_text(index)]
        report.messages_lost += count == 0
        report.messages_duplicated += max(0, count - 1)
    for index in in_flight:
        report.messages_duplicated += max(0, stored[message_text(index)] - 1)


def _check_index(agent: Agent, report: KillReport) -> None:
    archival = agent.archival
    assert isinstance(archival, ArchivalStorage), "the embedded store's"
    rows = {row[0] for row in archival.con.execute(
        "SELECT id FROM passages WHERE agent = ?", [AGENT]).fetchall()}
    labels = set(archival.index.get_ids_list())
    live = {label for label in labels if _is_live(archival.index, label)}
    if live != rows:
        report.index_mismatches += 1
        report.note(f"index holds {sorted(live ^ rows)[:5]} unlike DuckDB")


def _is_live(index: Any, label: int) -> bool:
    try:
        index.get_items([label])
    except RuntimeError:  # marked deleted
        return False
    return True


def prepare_home(config: EngineConfig) -> None:
    """A home (and store) with the campaign's agent on the real model."""
    with Engine(config) as engine:
        if not engine.agent_exists(AGENT):
            engine.create_agent(AGENT, MODEL, N_CTX)


def run_kills(home: Path, kills: int, max_delay_s: float = 16.0, seed: int = 1337,
              progress: Callable[[KillReport], None] | None = None, store: str | None = None
              ) -> KillReport:
    """Kill the child `kills` times at random moments, checking the home after each: every
    other kill lands in the first max_delay_s seconds after the child is ready (start-up,
    restoring the prefix, evaluating the queue: a first send can take longer than that), the
    others up to 3 s after it reported 1 to 3 messages stored (within later sends)."""
    rng = random.Random(seed)
    config = EngineConfig(home, store=store)
    prepare_home(config)
    report = KillReport()
    reported: list[int] = []
    in_flight: set[int] = set()
    first = 0
    while report.kills < kills:
        if report.kills % 2 == 0:
            stored, error = _run_child(config, first, 0, rng.uniform(0.0, max_delay_s))
        else:
            stored, error = _run_child(config, first, rng.randint(1, 3), rng.uniform(0.0, 3.0))
        if error:
            report.child_errors += 1
            report.note(f"child failed: {error.strip().splitlines()[-1:]}")
            if report.child_errors > 3:
                break
            continue
        report.kills += 1
        reported += stored
        first = (stored[-1] + 1 if stored else first)
        in_flight.add(first)  # it may have been stored without being reported
        first += 1
        _check_home(config, reported, in_flight, report)
        if progress:
            progress(report)
    report.messages_stored = len(reported)
    return report


if __name__ == "__main__":
    child(EngineConfig(Path(sys.argv[1]), store=sys.argv[3] if len(sys.argv) > 3 else None),
          int(sys.argv[2]))
