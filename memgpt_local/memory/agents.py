"""Agent records in the home database: model, settings, core memory, summary, context ids."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import MemgptLocalError
from .core import CoreMemory
from .sql import SqlConnection, scalar

MAX_NAME_LENGTH = 64


class AgentNotFoundError(MemgptLocalError):
    """An agent name that is not in the home database."""


class AgentExistsError(MemgptLocalError):
    """A new agent's name that another agent has already."""


class InvalidAgentNameError(MemgptLocalError, ValueError):
    """A name that cannot name an agent."""


def check_agent_name(name: str) -> str:
    """The name, if it can name an agent (and its files); else InvalidAgentNameError."""
    if (not 1 <= len(name) <= MAX_NAME_LENGTH or name != name.strip() or name.startswith(".")
            or not name.isprintable() or "/" in name or "\\" in name):
        raise InvalidAgentNameError(
            f"Invalid agent name {name!r}: use 1 to {MAX_NAME_LENGTH} printable characters, "
            "without / or \\, control characters, or a leading dot or space.")
    return name


@dataclass
class AgentRecord:
    """Everything needed to resume an agent exactly where it stopped."""

    name: str
    model: str
    settings: dict = field(default_factory=dict)
    core_memory: CoreMemory = field(default_factory=CoreMemory.default)
    summary: str = ""
    in_context: list[int] = field(default_factory=list)


class AgentStore:
    """Create, read, save and delete agent records."""

    def __init__(self, con: SqlConnection):
        self.con = con

    def names(self) -> list[str]:
        """Every agent's name, oldest first."""
        return [r[0] for r in self.con.execute(
            "SELECT name FROM agents ORDER BY created_at").fetchall()]

    def exists(self, name: str) -> bool:
        """Whether an agent of that name exists."""
        return scalar(self.con.execute("SELECT count(*) FROM agents WHERE name = ?",
                                       [name])) > 0

    def last_used(self) -> str | None:
        """The name of the agent saved most recently."""
        row = self.con.execute("SELECT name FROM agents ORDER BY updated_at DESC LIMIT 1"
                               ).fetchone()
        return row[0] if row else None

    def listing(self) -> list[dict]:
        """Every agent with its model, window, message and passage counts, last used first."""
        rows = self.con.execute("""
            SELECT a.name, a.model, a.settings->>'n_ctx',
                   (SELECT count(*) FROM messages m WHERE m.agent = a.name),
                   (SELECT count(*) FROM passages p WHERE p.agent = a.name), a.updated_at
            FROM agents a ORDER BY a.updated_at DESC""").fetchall()
        keys = ("name", "model", "n_ctx", "messages", "passages", "updated_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def get(self, name: str) -> AgentRecord:
        """Load an agent; an unknown name lists the agents that exist."""
        row = self.con.execute("SELECT name, model, settings, core_memory, summary, in_context "
                               "FROM agents WHERE name = ?", [name]).fetchone()
        if row is None:
            known = ", ".join(self.names()) or "none yet"
            raise AgentNotFoundError(f"No agent named '{name}'. Agents: {known}")
        return AgentRecord(row[0], row[1], json.loads(row[2]),
                           CoreMemory.from_dict(json.loads(row[3])), row[4], json.loads(row[5]))

    def save(self, agent: AgentRecord) -> None:
        """Insert or update an agent record."""
        now = datetime.now(UTC)
        self.con.execute(
            "INSERT INTO agents VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "model = excluded.model, settings = excluded.settings, "
            "core_memory = excluded.core_memory, summary = excluded.summary, "
            "in_context = excluded.in_context, updated_at = excluded.updated_at",
            [agent.name, agent.model, json.dumps(agent.settings),
             json.dumps(agent.core_memory.to_dict()), agent.summary,
             json.dumps(agent.in_context), now, now])

    def delete(self, name: str) -> None:
        """Delete an agent with its messages and passages (in the caller's transaction)."""
        self.get(name)
        self.delete_rows(name)

    def copy_rows(self, source: str, target: str) -> dict[int, int]:
        """Copy an agent's messages and passages (stored embeddings included) under another
        name, with new ids and the same order; return each copied message's new id by its
        old one. The caller holds the transaction and saves the target's record."""
        self.con.execute(
            "INSERT INTO messages (id, agent, seq, role, content, function_name, function_args,"
            " created_at, tokens) SELECT nextval('message_ids'), ?, seq, role, content, "
            "function_name, function_args, created_at, tokens FROM messages WHERE agent = ? "
            "ORDER BY seq", [target, source])
        self.con.execute(
            "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
            "embedding, created_at, embedded_with) SELECT nextval('passage_ids'), ?, content, "
            "content_hash, source, metadata, embedding, created_at, embedded_with "
            "FROM passages WHERE agent = ? ORDER BY id", [target, source])
        return dict(self.con.execute(
            "SELECT old.id, new.id FROM messages old JOIN messages new USING (seq) "
            "WHERE old.agent = ? AND new.agent = ?", [source, target]).fetchall())

    def delete_rows(self, name: str) -> None:
        """Delete every row stored under a name: the record, messages and passages (in the
        caller's transaction)."""
        for table in ("messages", "passages"):
            self.con.execute(f"DELETE FROM {table} WHERE agent = ?", [name])
        self.con.execute("DELETE FROM agents WHERE name = ?", [name])

    def delete_orphan_rows(self, name: str) -> None:
        """Delete messages and passages stored under a name no agent has (left by a failed
        import of an older version); never those of an agent, even one another process has
        just created."""
        for table in ("messages", "passages"):
            self.con.execute(f"DELETE FROM {table} WHERE agent = ? AND NOT EXISTS "
                             "(SELECT 1 FROM agents WHERE name = ?)", [name, name])
