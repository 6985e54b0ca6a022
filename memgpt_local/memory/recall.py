"""Recall storage: every message an agent has seen, in DuckDB, searchable by text and date."""

import json
from datetime import UTC, date, datetime

import duckdb

from .messages import ROLES, Message
from .paging import Page, page_bounds
from .textindex import TextIndex


def parse_date(text: str, name: str) -> date:
    """An ISO date (YYYY-MM-DD); anything else raises ValueError written for the model."""
    try:
        return date.fromisoformat(text.strip()[:10])
    except (ValueError, AttributeError):
        raise ValueError(f"{name} must be an ISO date like 2024-05-31, got {text!r}") from None


def _check_roles(roles: set[str]) -> None:
    bad = roles - set(ROLES)
    if bad:
        raise ValueError(f"Unknown role(s) {sorted(bad)}; valid: {', '.join(ROLES)}")


def _args_json(args: dict | None) -> str | None:
    return json.dumps(args) if args is not None else None


_COLUMNS = "id, seq, role, content, function_name, function_args, created_at, tokens"


def _row_to_message(row) -> Message:
    id_, seq, role, content, fname, fargs, created, tokens = row
    return Message(role, content, fname, json.loads(fargs) if fargs else None, created, tokens,
                   seq, id_)


class RecallStorage:
    """One agent's messages in the home database."""

    def __init__(self, con: duckdb.DuckDBPyConnection, agent: str):
        self.con = con
        self.agent = agent
        self.text_index = TextIndex(con, "messages")

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
        _check_roles({message.role})
        message.seq = self.next_seq()
        message.created_at = message.created_at or datetime.now(UTC)
        message.id = self.con.execute(
            "INSERT INTO messages VALUES (nextval('message_ids'), ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            [self.agent, message.seq, message.role, message.content, message.function_name,
             _args_json(message.function_args),
             message.created_at, message.tokens]).fetchone()[0]
        return message

    def bulk_import(self, messages: list[Message]) -> int:
        """Import many past messages at once through Arrow, keeping their time stamps."""
        import pyarrow as pa

        _check_roles({m.role for m in messages})
        base = self.next_seq()
        table = pa.table({
            "seq": pa.array(range(base, base + len(messages)), pa.int64()),
            "role": [m.role for m in messages],
            "content": [m.content for m in messages],
            "function_name": pa.array([m.function_name for m in messages], pa.string()),
            "function_args": pa.array([_args_json(m.function_args) for m in messages],
                                      pa.string()),
            "created_at": pa.array([m.created_at or datetime.now(UTC) for m in messages],
                                   pa.timestamp("us", tz="UTC")),
            "tokens": pa.array([m.tokens for m in messages], pa.int32()),
        })
        self.con.register("incoming_messages", table)
        self.con.execute(
            "INSERT INTO messages SELECT nextval('message_ids'), ?, seq, role, content, "
            "function_name, function_args, created_at, tokens FROM incoming_messages",
            [self.agent])
        self.con.unregister("incoming_messages")
        return len(messages)

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

    def rebuild_text_index(self) -> None:
        """Rebuild the BM25 index over every stored message (all agents)."""
        self.text_index.rebuild()

    def search_text(self, query: str, page: int = 1, page_size: int = 5) -> Page:
        """BM25 over every message holding a word of the query, best first, then the newest;
        a query without words the index knows (punctuation, other scripts) is matched as a
        substring instead."""
        offset, limit = page_bounds(page, page_size)
        indexed = self.text_index.refresh()
        stems = self.text_index.query_stems(query)
        if stems:
            hits = self.text_index.scores_sql(stems, indexed)
            params = [self.agent]
        else:
            hits = ("SELECT id, 0.0 AS score FROM messages WHERE agent = ? "
                    "AND contains(lower(content), ?)")
            params = [self.agent, query.strip().lower(), self.agent]
        ids = self.con.execute(f"""
            WITH hits AS ({hits})
            SELECT id FROM hits JOIN messages USING (id)
            WHERE messages.agent = ? ORDER BY score DESC, seq DESC""", params).fetchall()
        ranked = [row[0] for row in ids]  # ids only: the text is read for one page below
        by_id = {m.id: m for m in self.get(ranked[offset:offset + limit])}
        return Page([by_id[i] for i in ranked[offset:offset + limit]], page, page_size,
                    len(ranked))

    def next_messages(self, messages: list[Message]) -> dict[int, Message]:
        """The message stored right after each given one (its reply, in a conversation), by
        the given message's id; the newest message has none."""
        after = {m.seq + 1: m.id for m in messages if m.seq is not None}
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
