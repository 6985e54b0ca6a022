"""Creating, opening, exporting and importing agents: the glue between the stores, the model
runtime and the agent loop, used by the CLI."""

import json
from datetime import datetime
from pathlib import Path

from . import context as ctx
from .agent import Agent, AgentSettings
from .agents import AgentRecord, AgentStore
from .database import Database
from .errors import MemgptLocalError
from .memory.core import DEFAULT_LIMIT, CoreMemory
from .memory.recall import Message, RecallStorage
from .models import Registry

EXPORT_FORMAT = "memgpt-local-agent"
MIN_QUEUE_TOKENS = 256
PER_MESSAGE_OVERHEAD = 8


def _fixed_tokens(count, name: str, core: CoreMemory, settings: AgentSettings) -> int:
    """Tokens the prompt needs before any message, with every block full."""
    full = CoreMemory()
    for block in core.blocks.values():
        filler = (block.value or "Some remembered detail. ") * (block.limit // 20 + 1)
        full.add_block(block.label, filler[: block.limit], block.limit)
    texts = [ctx.static_instructions(name),
             ctx.core_memory_text(full, ctx.memory_counts(10**6, 10**6)), ctx.summary_text("")]
    return (sum(count(t) for t in texts) + settings.summary_tokens
            + settings.response_tokens + PER_MESSAGE_OVERHEAD * len(texts))


def fit_block_limits(count, name: str, core: CoreMemory, settings: AgentSettings) -> list[str]:
    """Shrink block limits until the fixed part leaves room for messages; return notes."""
    notes = []
    while (_fixed_tokens(count, name, core, settings) + MIN_QUEUE_TOKENS > settings.n_ctx):
        for block in core.blocks.values():
            block.limit = max(len(block.value), int(block.limit * 0.8))
        if all(b.limit <= max(len(b.value), 100) for b in core.blocks.values()):
            raise MemgptLocalError(f"A {settings.n_ctx}-token window is too small for the "
                                   "instructions and core memory; use a larger --n-ctx.")
        notes = [f"Core memory limits lowered to fit the {settings.n_ctx}-token window: "
                 + ", ".join(f"{b.label} {b.limit}" for b in core.blocks.values())]
    return notes


def create_agent(db: Database, name: str, model: str | None = None, n_ctx: int | None = None,
                 persona: str | None = None, human: str | None = None,
                 block_limit: int = DEFAULT_LIMIT) -> tuple[AgentRecord, list[str]]:
    """Create and store a new agent; returns it with notes for the user."""
    from .gguf import vocab_counter

    store = AgentStore(db.con)
    if store.exists(name):
        raise MemgptLocalError(f"An agent named '{name}' already exists.")
    spec = Registry.load().get(model)
    settings = AgentSettings(n_ctx=n_ctx or spec.n_ctx)
    core = CoreMemory.default(persona if persona is not None else ctx.default_text("persona.txt"),
                              human if human is not None else ctx.default_text("human.txt"),
                              block_limit)
    notes = fit_block_limits(vocab_counter(spec), name, core, settings)
    record = AgentRecord(name, spec.alias, {**vars(settings), "state": {}}, core)
    store.save(record)
    return record, notes


def last_agent_name(db: Database) -> str | None:
    """The agent used most recently."""
    row = db.con.execute("SELECT name FROM agents ORDER BY updated_at DESC LIMIT 1").fetchone()
    return row[0] if row else None


def open_agent(db: Database, name: str, model: str | None = None) -> Agent:
    """Load an agent with its model runtime (another model alias may be given)."""
    from .runtime import ModelRuntime

    record = AgentStore(db.con).get(name)
    spec = Registry.load().get(model or record.model)
    settings = AgentSettings.from_dict(record.settings)
    return Agent(record, db, ModelRuntime(spec, n_ctx=settings.n_ctx, seed=settings.seed))


def export_agent(db: Database, name: str, path: Path) -> dict:
    """Write one portable JSON file with the agent, its messages and its passages."""
    record = AgentStore(db.con).get(name)
    messages = db.con.execute(
        "SELECT id, seq, role, content, function_name, function_args, created_at, tokens "
        "FROM messages WHERE agent = ? ORDER BY seq", [name]).fetchall()
    passages = db.con.execute("SELECT content, source, metadata FROM passages WHERE agent = ? "
                              "ORDER BY id", [name]).fetchall()
    seq_of = {m[0]: m[1] for m in messages}
    data = {
        "format": EXPORT_FORMAT, "version": 1,
        "agent": {"name": record.name, "model": record.model, "settings": record.settings,
                  "core_memory": record.core_memory.to_dict(), "summary": record.summary,
                  "in_context_seqs": [seq_of[i] for i in record.in_context if i in seq_of]},
        "messages": [{"seq": m[1], "role": m[2], "content": m[3], "function_name": m[4],
                      "function_args": json.loads(m[5]) if m[5] else None,
                      "created_at": m[6].isoformat(), "tokens": m[7]} for m in messages],
        "passages": [{"content": p[0], "source": p[1],
                      "metadata": json.loads(p[2]) if p[2] else None} for p in passages],
    }
    path.write_text(json.dumps(data, ensure_ascii=False))
    return {"messages": len(messages), "passages": len(passages)}


def import_agent(db: Database, path: Path, new_name: str | None = None) -> AgentRecord:
    """Recreate an exported agent (passages are embedded again with the local model)."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != EXPORT_FORMAT:
            raise ValueError("not a memgpt-local agent export")
    except (OSError, ValueError) as exc:
        raise MemgptLocalError(f"Cannot import {path}: {exc}") from exc
    agent = data["agent"]
    name = new_name or agent["name"]
    store = AgentStore(db.con)
    if store.exists(name):
        raise MemgptLocalError(f"An agent named '{name}' already exists; pass --name.")
    recall = RecallStorage(db.con, name)
    recall.bulk_import([Message(m["role"], m["content"], m["function_name"],
                                m["function_args"], datetime.fromisoformat(m["created_at"]),
                                m["tokens"]) for m in data["messages"]])
    id_of = dict(db.con.execute("SELECT seq, id FROM messages WHERE agent = ?",
                                [name]).fetchall())
    record = AgentRecord(name, agent["model"], agent["settings"],
                         CoreMemory.from_dict(agent["core_memory"]), agent["summary"],
                         [id_of[s] for s in agent["in_context_seqs"]])
    store.save(record)
    if data["passages"]:
        _import_passages(db, name, data["passages"])
    return record


def _import_passages(db: Database, name: str, passages: list[dict]) -> None:
    from .embeddings import get_embedder
    from .memory.archival import ArchivalStorage

    archival = ArchivalStorage(db.con, name, db.home / "archival", get_embedder())
    groups: dict[str, list[str]] = {}
    for passage in passages:
        key = json.dumps([passage["source"], passage["metadata"]])
        groups.setdefault(key, []).append(passage["content"])
    for key, contents in groups.items():
        source, metadata = json.loads(key)
        archival.insert(contents, source=source, metadata=metadata)
    archival.close()
