"""`store copy`: every agent of one store written into another (a home into PostgreSQL, or
back), with its messages, passages and stored embeddings. Each agent is copied in one
transaction, so an interrupted copy resumes where it stopped; each is verified by its counts
and a digest read back from the target. The KV snapshot cache stays with each machine."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .engine import STORE_SCHEMES, EngineConfig, open_store
from .errors import MemgptLocalError
from .memory.copying import read_agent, write_agent
from .memory.database import DB_FILE
from .memory.stores import Store


class StoreCopyError(MemgptLocalError):
    """A copy that cannot go on; what was copied before stays, verified."""


def store_config(place: str, base: EngineConfig) -> EngineConfig:
    """A home folder or a PostgreSQL URL, as the configuration that opens its store."""
    if place.startswith(STORE_SCHEMES):
        return replace(base, store=place)
    return replace(base, home=Path(place).expanduser(), store=None)


def check_source(config: EngineConfig) -> None:
    """A source home must hold a store (opening one would make an empty one and copy
    nothing, reported as equal)."""
    if not config.store and not (config.home / DB_FILE).is_file():
        raise StoreCopyError(f"{config.home} holds no memgpt-local store ({DB_FILE}): give the "
                             "home folder an earlier run used, or a PostgreSQL URL.")


def copy_store(source: EngineConfig, target: EngineConfig,
               progress: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Copy every agent of the source store that the target lacks; check the ones it has.
    Returns, per agent: its counts, its digest and whether it was copied now."""
    check_source(source)
    origin = open_store(source)
    try:
        destination = open_store(target)
        try:
            return [_copy_agent(origin, destination, name, progress)
                    for name in origin.records().names()]
        finally:
            destination.close()
    finally:
        origin.close()


def _copy_agent(origin: Store, destination: Store, name: str,
                progress: Callable[[str], None]) -> dict:
    rows = read_agent(origin, name)
    digest = rows.digest()
    there = destination.records().exists(name)
    if not there:
        write_agent(destination, rows)
    copied = read_agent(destination, name).digest()
    if copied != digest:
        raise StoreCopyError(
            (f"Agent '{name}' is in the target already, with other contents: delete it there, "
             "or copy into another store" if there else
             f"Agent '{name}' did not read back the same from the target (its copy was kept "
             "for inspection)") + f"; {'nothing' if there else 'nothing more'} was copied.")
    state = "already there" if there else "copied"
    counts = rows.counts()
    progress(f"{name}: {state}, {counts['messages']} messages, {counts['passages']} passages, "
             f"digest {digest[:16]}")
    return {"agent": name, **counts, "digest": digest, "state": state}
