"""BM25 text indexes over DuckDB tables, built by the FTS extension (loaded offline)."""

from pathlib import Path

import duckdb

REINDEX_MIN_NEW_ROWS = 5000
INDEX_VERSION = 2  # bump when the index settings change: older indexes are then rebuilt
IGNORE = r"(\\.|[^a-z0-9])+"  # digits are kept: numbers and IDs are words too


def fts_extension_path() -> Path:
    """The FTS extension shipped by the duckdb-extension-fts package (never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("duckdb_extension_fts")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "extensions" / f"v{duckdb.__version__}" / "fts.duckdb_extension"


def load_fts(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's full-text search extension from the local package file."""
    con.execute(f"LOAD '{fts_extension_path()}'")


class TextIndex:
    """A BM25 index over a table's `content` column, keyed by its `id` column.

    The index is a snapshot: rows with ids above `refresh()`'s return value are not in it and
    are left to the caller (a substring scan over them is cheap). It is rebuilt once enough
    new rows have piled up: max(5,000, 10% of the indexed rows)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, table: str):
        load_fts(con)
        self.con = con
        self.table = table
        self.schema = f"fts_main_{table}"
        self.state_name = f"{table}/v{INDEX_VERSION}"

    def rebuild(self) -> None:
        """Index every row of the table now."""
        top = self.con.execute(f"SELECT coalesce(max(id), 0) FROM {self.table}").fetchone()[0]
        self.con.execute(f"PRAGMA create_fts_index('{self.table}', 'id', 'content', "
                         f"stemmer='porter', stopwords='english', ignore='{IGNORE}', "
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
        newer = self.con.execute(f"SELECT count(*) FROM {self.table} WHERE id > ?",
                                 [max(indexed, 0)]).fetchone()[0]
        if indexed < 0 or newer >= max(REINDEX_MIN_NEW_ROWS, indexed // 10):
            self.rebuild()
            return self.indexed_up_to()
        return indexed

    def query_terms(self, query: str) -> list[tuple[int, int]]:
        """(term id, document frequency) of the query's words that the index knows, the words
        tokenized, filtered and stemmed as the index's rows were."""
        stems = [row[0] for row in self.con.execute(
            f"SELECT DISTINCT stem(t, 'porter') FROM (SELECT unnest({self.schema}.tokenize(?)) "
            f"AS t) WHERE t <> '' AND t NOT IN (SELECT sw FROM {self.schema}.stopwords)",
            [query]).fetchall()]
        if not stems:
            return []
        # literal terms (only a-z and 0-9 survive tokenize) let the sorted dict skip row groups
        literals = ", ".join("'" + stem.replace("'", "''") + "'" for stem in stems)
        return self.con.execute(f"SELECT termid, df FROM {self.schema}.dict "
                                f"WHERE term IN ({literals})").fetchall()

    def scores_sql(self, terms: list[tuple[int, int]]) -> str:
        """A SELECT of (id, score) for the indexed rows holding any of the query's terms.

        BM25 as match_bm25 computes it (k=1.2, b=0.75), but starting from the query's
        postings instead of scoring every row; term ids are literals from the index."""
        values = ", ".join(f"({int(t)}, {int(df)})" for t, df in terms) or "(-1, 1)"
        ids = ", ".join(str(int(t)) for t, _ in terms) or "-1"
        return f"""
            WITH q(termid, df) AS (VALUES {values}),
            tf AS (SELECT docid, termid, count(*) AS tf FROM {self.schema}.terms
                   WHERE termid IN ({ids}) GROUP BY docid, termid),
            st AS (SELECT num_docs, avgdl FROM {self.schema}.stats)
            SELECT docs.name AS id, sum(log((st.num_docs - q.df + 0.5) / (q.df + 0.5) + 1)
                * tf.tf * 2.2 / (tf.tf + 1.2 * (0.25 + 0.75 * docs.len / st.avgdl))) AS score
            FROM tf JOIN q USING (termid) JOIN {self.schema}.docs AS docs USING (docid), st
            GROUP BY docs.name"""
