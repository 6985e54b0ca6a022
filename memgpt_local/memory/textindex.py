"""BM25 text indexes over DuckDB tables, built by the FTS extension (loaded offline)."""

from pathlib import Path

import duckdb

from .sql import scalar

REINDEX_MIN_NEW_ROWS = 5000
COMMON_FRACTION = 0.1  # query words in more rows than this are left out (see _selective)
SHORT_POSTINGS = 5000  # a word in at most this many rows is cheap to score
INDEX_VERSION = 3  # bump when the index settings change: older indexes are then rebuilt
IGNORE = r"(\\.|[^a-z0-9])+"  # digits are kept: numbers and IDs are words too


def fts_extension_path() -> Path:
    """The FTS extension shipped by the duckdb-extension-fts package (never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_extension_fts")
    assert spec is not None and spec.submodule_search_locations, "installed with duckdb"
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "extensions" / f"v{duckdb.__version__}" / "fts.duckdb_extension"


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's full-text search extension from the local package file."""
    con.execute(f"LOAD '{fts_extension_path()}'")


class TextIndex:
    """A BM25 index over a table's `content` column, keyed by its `id` column.

    The index is a snapshot: rows with ids above `refresh()`'s return value are not in it and
    are scored on the fly (see scores_sql). It is rebuilt once enough new rows have piled up:
    max(5,000, 10% of the indexed rows). It keeps every word: BM25 already weighs frequent
    words down, and a stop list made "hello", "first" or "want" unsearchable."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str):
        load_fts(con)
        self.con = con
        self.table = table
        self.schema = f"fts_main_{table}"
        self.state_name = f"{table}/v{INDEX_VERSION}"

    def rebuild(self) -> None:
        """Index every row of the table now."""
        top = scalar(self.con.execute(f"SELECT coalesce(max(id), 0) FROM {self.table}"))
        self.con.execute(f"PRAGMA create_fts_index('{self.table}', 'id', 'content', "
                         f"stemmer='porter', stopwords='none', ignore='{IGNORE}', "
                         "overwrite=1)")
        # sorted by term: a query's literal terms and term ids then skip most row groups
        self.con.execute(f"CREATE OR REPLACE TABLE {self.schema}.terms AS "
                         f"SELECT * FROM {self.schema}.terms ORDER BY termid, docid")
        self.con.execute(f"CREATE OR REPLACE TABLE {self.schema}.dict AS "
                         f"SELECT * FROM {self.schema}.dict ORDER BY term")
        self.con.execute("INSERT OR REPLACE INTO fts_state VALUES (?, ?)",
                         [self.state_name, top])

    def indexed_up_to(self) -> int:
        """The largest id in the index (-1 when there is no index yet)."""
        row = self.con.execute("SELECT indexed_up_to FROM fts_state WHERE name = ?",
                               [self.state_name]).fetchone()
        return row[0] if row else -1

    def refresh(self) -> int:
        """Rebuild the index if it is missing or stale; return the largest id it holds."""
        indexed = self.indexed_up_to()
        newer = scalar(self.con.execute(f"SELECT count(*) FROM {self.table} WHERE id > ?",
                                        [max(indexed, 0)]))
        if indexed < 0 or newer >= max(REINDEX_MIN_NEW_ROWS, indexed // 10):
            self.rebuild()
            return self.indexed_up_to()
        return indexed

    def query_stems(self, query: str) -> list[str]:
        """The query's words tokenized and stemmed as the index's rows were (every word
        counts: no stop list, so "hello", "first" and "want" are searchable)."""
        return [row[0] for row in self.con.execute(
            f"SELECT DISTINCT stem(t, 'porter') FROM (SELECT unnest({self.schema}.tokenize(?)) "
            "AS t) WHERE t <> ''", [query]).fetchall()]

    def _document_frequencies(self, stems: list[str]) -> dict[str, tuple[int, int]]:
        """(term id, document frequency) of the stems the index knows."""
        # literal terms (only a-z and 0-9 survive tokenize) let the sorted dict skip row groups
        literals = ", ".join(_literal(stem) for stem in stems)
        rows = self.con.execute(f"SELECT term, termid, df FROM {self.schema}.dict "
                                f"WHERE term IN ({literals})").fetchall()
        return {term: (termid, df) for term, termid, df in rows}

    def _selective(self, stems: list[str]) -> tuple[list[str], dict[str, tuple[int, int]]]:
        """The stems worth scoring with their (term id, df): words in more than a tenth of
        the rows ("i", "the") add little to BM25 but cost their whole postings list, so they
        are left out while a rarer indexed word of the query remains. Words the index does
        not hold are always kept (they can only match newer rows, which are scanned anyway);
        when no indexed word is rare, the rarest are kept too where their postings are short
        or every word is indexed (in a small recall every word is in a tenth of the rows)."""
        known = self._document_frequencies(stems)
        rows = scalar(self.con.execute(f"SELECT num_docs FROM {self.schema}.stats"))
        rare = [s for s in known if known[s][1] <= COMMON_FRACTION * rows]
        rarest = min((df for _, df in known.values()), default=0)
        if known and not rare and (rarest <= SHORT_POSTINGS or len(known) == len(stems)):
            rare = [s for s in known if known[s][1] == rarest]
        kept = [s for s in stems if s in rare or s not in known]
        return kept, {s: known[s] for s in kept if s in known}

    def scores_sql(self, stems: list[str], indexed_up_to: int) -> str:
        """A SELECT of (id, score) for every row holding any of the query's (selective)
        stems, BM25 as match_bm25 computes it (k=1.2, b=0.75). Indexed rows are scored from
        the stems' postings; rows newer than the index are tokenized on the fly, so a search
        never misses what was just said. The statistics (rows, mean length, rows per word)
        cover both: from the index's alone, a word first said after the index was built
        counted as the rarest of all, however common ("the", "my"), and outranked the words
        that matter (a chat's index is built at its first search and kept for 5,000 rows)."""
        stems, known = self._selective(stems)
        values = ", ".join(f"({_literal(s)}, {int(known.get(s, (-1, 0))[0])}, "
                           f"{int(known.get(s, (-1, 0))[1])})" for s in stems)
        ids = ", ".join(str(int(termid)) for termid, _ in known.values()) or "-1"
        return f"""
            WITH q_indexed(term, termid, df) AS (VALUES {values}),
            newer_words AS (
                SELECT id, stem(t, 'porter') AS term FROM (
                    SELECT id, unnest({self.schema}.tokenize(content)) AS t FROM {self.table}
                    WHERE id > {int(indexed_up_to)}) WHERE t <> ''),
            newer_len AS (SELECT id, count(*) AS len FROM newer_words GROUP BY id),
            newer_df AS (SELECT term, count(DISTINCT id) AS df FROM newer_words
                         JOIN q_indexed USING (term) GROUP BY term),
            q AS (SELECT term, termid, q_indexed.df + coalesce(newer_df.df, 0) AS df
                  FROM q_indexed LEFT JOIN newer_df USING (term)),
            newer_st AS (SELECT count(*) AS docs, coalesce(sum(len), 0) AS words
                         FROM newer_len),
            st AS (SELECT s.num_docs + n.docs AS num_docs,
                          greatest((coalesce(s.avgdl, 1) * s.num_docs + n.words)
                                   / greatest(s.num_docs + n.docs, 1), 1e-9) AS avgdl
                   FROM {self.schema}.stats AS s, newer_st AS n),
            indexed AS (
                SELECT docs.name AS id, docs.len, q.df, count(*) AS tf
                FROM {self.schema}.terms AS terms JOIN q USING (termid)
                JOIN {self.schema}.docs AS docs USING (docid)
                WHERE terms.termid IN ({ids}) GROUP BY docs.name, docs.len, q.term, q.df),
            newer AS (
                SELECT id, newer_len.len, q.df, count(*) AS tf
                FROM newer_words JOIN q USING (term) JOIN newer_len USING (id)
                GROUP BY id, newer_len.len, q.term, q.df),
            tf AS (SELECT * FROM indexed UNION ALL SELECT * FROM newer)
            SELECT id, sum(log((st.num_docs - tf.df + 0.5) / (tf.df + 0.5) + 1)
                * tf.tf * 2.2 / (tf.tf + 1.2 * (0.25 + 0.75 * tf.len / st.avgdl))) AS score
            FROM tf, st GROUP BY id"""


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
