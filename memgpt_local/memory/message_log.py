"""One agent's messages in SQL that both stores speak (DuckDB, and PostgreSQL through its
connection wrapper): appending, reading in order, the message after each, date search. Each
store's recall (recall.py, postgres/recall.py) builds on it and adds its own bulk import and
text search."""

import json
from datetime import UTC, date, datetime
from typing import Any

from .messages import ROLES, Message
from .paging import Page, page_bounds


def parse_date(text: str, name: str) -> date:
    """An ISO date (YYYY-MM-DD); anything else raises ValueError written for the model."""
    try:
        return date.fromisoformat(text.strip()[:10])
    except (ValueError, AttributeError):
        raise ValueError(f"{name} must be an ISO date like 2024-05-31, got {text!r}") from None


def check_roles(roles: set[str]) -> None:
    """ValueError naming any role a message cannot have."""
    bad = roles - set(ROLES)
    if bad:
        raise ValueError(f"Unknown role(s) {sorted(bad)}; valid: {', '.join(ROLES)}")


def args_json(args: dict | None) -> str | None:
    """A call's arguments as stored."""
    return json.dumps(args) if args is not None else None


_COLUMNS = "id, seq, role, content, function_name, function_args, created_at, tokens"


def _row_to_message(row: Any) -> Message:
    id_, seq, role, content, fname, fargs, created, tokens = row
    return Message(role, content, fname, json.loads(fargs) if fargs else None, created, tokens,
                   seq, id_)


class MessageLog:
    """One agent's rows of the messages table."""

    def __init__(self, con: Any, agent: str):
        self.con = con
        self.agent = agent

    def count(self) -> int:
        """Number of messages stored for the agent."""
        return self.con.execute("SELECT count(*) FROM messages WHERE agent = ?",
                                [self.agent]).fetchone()[0]

    def next_seq(self) -> int:
        """The sequence number the next message of the agent gets."""
        return self.con.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE agent = ?",
                                [self.agent]).fetchone()[0]

    def append(self, message: Message) -> Message:
        """Store one message (sequence number and time stamp assigned when missing)."""
        check_roles({message.role})
        message.seq = self.next_seq()
        message.created_at = message.created_at or datetime.now(UTC)
        message.id = self.con.execute(
            "INSERT INTO messages VALUES (nextval('message_ids'), ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            [self.agent, message.seq, message.role, message.content, message.function_name,
             args_json(message.function_args),
             message.created_at, message.tokens]).fetchone()[0]
        return message

    def get(self, ids: list[int]) -> list[Message]:
        """Messages by id, in sequence order."""
        if not ids:
            return []
        # a literal id list lets DuckDB use the primary-key index (a parameter list scans)
        id_list = ", ".join(str(int(i)) for i in ids)
        rows = self.con.execute(f"SELECT agent, {_COLUMNS} FROM messages WHERE id IN "
                                f"({id_list}) ORDER BY seq").fetchall()
        return [_row_to_message(r[1:]) for r in rows if r[0] == self.agent]

    def all(self) -> list[Message]:
        """Every message of the agent, in sequence order."""
        rows = self.con.execute(f"SELECT {_COLUMNS} FROM messages WHERE agent = ? ORDER BY seq",
                                [self.agent]).fetchall()
        return [_row_to_message(r) for r in rows]

    def ids_by_seq(self) -> dict[int, int]:
        """Each message's id by its sequence number."""
        return dict(self.con.execute("SELECT seq, id FROM messages WHERE agent = ?",
                                     [self.agent]).fetchall())

    def next_messages(self, messages: list[Message]) -> dict[int, Message]:
        """The message stored right after each given one (its reply, in a conversation), by
        the given message's id; the newest message has none."""
        after = {m.seq + 1: m.id for m in messages if m.seq is not None and m.id is not None}
        if not after:
            return {}
        seq_list = ", ".join(str(int(seq)) for seq in after)
        rows = self.con.execute(f"SELECT {_COLUMNS} FROM messages WHERE agent = ? AND seq IN "
                                f"({seq_list})", [self.agent]).fetchall()
        return {after[row[1]]: _row_to_message(row) for row in rows}

    def search_date(self, start: str, end: str, page: int = 1, page_size: int = 5) -> Page:
        """Messages between two ISO dates, both inclusive (UTC), oldest first."""
        first, last = parse_date(start, "start_date"), parse_date(end, "end_date")
        if last < first:
            raise ValueError(f"end_date {last} is before start_date {first}")
        offset, limit = page_bounds(page, page_size)
        rows = self.con.execute(f"""
            SELECT {_COLUMNS}, count(*) OVER () FROM messages
            WHERE agent = ? AND created_at >= ?::DATE::TIMESTAMPTZ
              AND created_at < (?::DATE + 1)::TIMESTAMPTZ
            ORDER BY seq LIMIT ? OFFSET ?""",
            [self.agent, first, last, limit, offset]).fetchall()
        total = rows[0][-1] if rows else 0
        return Page([_row_to_message(r[:-1]) for r in rows], page, page_size, total)

