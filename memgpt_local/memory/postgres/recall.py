"""Recall storage on PostgreSQL: the messages table with a stored English tsvector and its GIN
index, searched with BM25's weighting as the embedded store's index does (rare words count
most; words in more than a tenth of the messages are left out while a rarer one remains),
document frequencies read from PostgreSQL's own statistics of the column."""

import math
from datetime import UTC, datetime

from ..message_log import MessageLog, args_json, check_roles
from ..messages import Message
from ..paging import Page, page_bounds

COMMON_FRACTION = 0.1  # as the embedded store's text index (textindex.py)
ANALYZE_AFTER_ROWS = 10_000  # a bulk import this large refreshes the statistics at once


class PostgresRecall(MessageLog):
    """One agent's messages in the PostgreSQL store."""

    def bulk_import(self, messages: list[Message]) -> int:
        """Import many past messages at once (COPY), keeping their time stamps."""
        check_roles({m.role for m in messages})
        base = self.next_seq()
        now = datetime.now(UTC)
        with self.con.raw.cursor() as cursor, cursor.copy(
                "COPY messages (agent, seq, role, content, function_name, function_args, "
                "created_at, tokens) FROM STDIN") as copy:
            for i, m in enumerate(messages):
                copy.write_row((self.agent, base + i, m.role, m.content, m.function_name,
                                args_json(m.function_args), m.created_at or now, m.tokens))
        if len(messages) >= ANALYZE_AFTER_ROWS and not self.con.raw.info.transaction_status:
            self.con.execute("ANALYZE messages")  # the word statistics search weighs by
        return len(messages)

    def rebuild_text_index(self) -> None:
        """Refresh the word statistics (PostgreSQL keeps the index itself up to date)."""
        self.con.execute("ANALYZE messages")

    def search_text(self, query: str, page: int = 1, page_size: int = 5) -> Page:
        """Messages holding a word of the query (stemmed), BM25-weighted, best first, then
        the newest; a query without words is matched as a substring instead."""
        offset, limit = page_bounds(page, page_size)
        weights = self._weights(self._lexemes(query))
        if weights:
            scores = " + ".join("? * ts_rank(words, plainto_tsquery('simple', ?), 1)"
                                for _ in weights)
            any_word = " || ".join("plainto_tsquery('simple', ?)" for _ in weights)
            sql = (f"SELECT id, {scores} AS score, seq FROM messages WHERE agent = ? "
                   f"AND words @@ ({any_word})")
            params = [v for lexeme, idf in weights.items() for v in (idf, lexeme)]
            params += [self.agent, *weights]
        else:
            sql = ("SELECT id, 0.0 AS score, seq FROM messages WHERE agent = ? AND "
                   "strpos(lower(content), ?) > 0")
            params = [self.agent, query.strip().lower()]
        ranked = [row[0] for row in self.con.execute(
            f"SELECT id FROM ({sql}) hits ORDER BY score DESC, seq DESC", params).fetchall()]
        by_id = {m.id: m for m in self.get(ranked[offset:offset + limit])}
        return Page([by_id[i] for i in ranked[offset:offset + limit]], page, page_size,
                    len(ranked))

    def _lexemes(self, query: str) -> list[str]:
        """The query's words as the column holds them (English stems, no stop words)."""
        return [row[0] for row in self.con.execute(
            "SELECT unnest(tsvector_to_array(to_tsvector('english', ?)))", [query]).fetchall()]

    def _weights(self, lexemes: list[str]) -> dict[str, float]:
        """Each worth-searching lexeme's BM25 inverse document frequency."""
        rows, frequency, rare_below = self._statistics()
        share = {lexeme: frequency.get(lexeme, rare_below) for lexeme in lexemes}
        kept = [x for x in lexemes if share[x] <= COMMON_FRACTION] or lexemes
        return {x: math.log((rows - share[x] * rows + 0.5) / (share[x] * rows + 0.5) + 1)
                for x in kept}

    def _statistics(self) -> tuple[float, dict[str, float], float]:
        """Rows in the table, the share of rows holding each common lexeme, and a share
        below every one listed (PostgreSQL's estimates: ANALYZE keeps them)."""
        rows = max(1.0, float(self.con.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'messages'").fetchone()[0]))
        stats = self.con.execute(
            "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats "
            "WHERE tablename = 'messages' AND attname = 'words'").fetchone()
        if not stats or not stats[0]:
            return rows, {}, 0.0
        elements, frequencies = stats
        return rows, dict(zip(elements, frequencies, strict=False)), frequencies[-3] / 2
