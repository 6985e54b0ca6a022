"""Recall storage: every message an agent has seen, in DuckDB, searchable by text and date."""

from datetime import UTC, datetime

import duckdb

from .message_log import MessageLog, args_json, check_roles
from .messages import Message
from .paging import Page, page_bounds
from .textindex import TextIndex


class RecallStorage(MessageLog):
    """One agent's messages in the home database (DuckDB), with its BM25 text index."""

    def __init__(self, con: duckdb.DuckDBPyConnection, agent: str):
        super().__init__(con, agent)
        self.text_index = TextIndex(con, "messages")

    def bulk_import(self, messages: list[Message]) -> int:
        """Import many past messages at once through Arrow, keeping their time stamps."""
        import pyarrow as pa

        check_roles({m.role for m in messages})
        base = self.next_seq()
        table = pa.table({
            "seq": pa.array(range(base, base + len(messages)), pa.int64()),
            "role": [m.role for m in messages],
            "content": [m.content for m in messages],
            "function_name": pa.array([m.function_name for m in messages], pa.string()),
            "function_args": pa.array([args_json(m.function_args) for m in messages],
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
