"""The PostgreSQL store: agents, recall and archival in one PostgreSQL database with pgvector,
for several servers sharing their agents (the embedded DuckDB + hnswlib store is the default).

The same record, recall and archival classes run on it, through a connection that speaks their
SQL (`?` parameters); what differs is here: the schema and its migrations, recall's text search
(PostgreSQL full-text search) and archival (pgvector's HNSW index and full-text search, fused
by the same reciprocal rank fusion). Archival rows live only in the database, so a rolled-back
step was never searchable. psycopg 3 with a connection pool.
"""

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime

import numpy as np

from ..errors import AgentLeasedError, MemgptLocalError, StoreUnavailableError
from .agents import AgentStore
from .archival import CANDIDATES, SEARCH_MODES, _fuse, content_hash
from .messages import Message
from .paging import Page, page_bounds
from .recall import RecallStorage, _args_json, _check_roles

EF_SEARCH = 200  # pgvector's hnsw.ef_search for a query (its default, 40, loses outliers)
HNSW_SEARCH_LIMIT = 1000  # the largest ef_search pgvector takes


def _m001_schema(con) -> None:
    con.execute("""CREATE TABLE agents (
        name TEXT PRIMARY KEY, model TEXT NOT NULL, settings JSONB NOT NULL,
        core_memory JSONB NOT NULL, summary TEXT NOT NULL DEFAULT '',
        in_context JSONB NOT NULL DEFAULT '[]',
        created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL)""")
    con.execute("CREATE SEQUENCE message_ids START 1")
    con.execute("""CREATE TABLE messages (
        id BIGINT PRIMARY KEY DEFAULT nextval('message_ids'), agent TEXT NOT NULL,
        seq BIGINT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, function_name TEXT,
        function_args JSONB, created_at TIMESTAMPTZ NOT NULL, tokens INTEGER,
        words TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
        UNIQUE (agent, seq))""")
    con.execute("CREATE INDEX messages_words ON messages USING gin (words)")
    con.execute("CREATE INDEX messages_dates ON messages (agent, created_at)")
    con.execute("CREATE SEQUENCE passage_ids START 1")
    con.execute("""CREATE TABLE passages (
        id BIGINT PRIMARY KEY, agent TEXT NOT NULL, content TEXT NOT NULL,
        content_hash TEXT NOT NULL, source TEXT, metadata JSONB,
        embedding vector NOT NULL, created_at TIMESTAMPTZ NOT NULL, embedded_with TEXT,
        words TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
        UNIQUE (agent, content_hash))""")
    con.execute("CREATE INDEX passages_words ON passages USING gin (words)")
    con.execute("CREATE INDEX passages_agent ON passages (agent, id)")


def _m002_leases(con) -> None:
    # who holds each agent's lease (the lock itself is a session advisory lock: it ends with
    # the session of the server that took it, so a server that dies loses its leases)
    con.execute("""CREATE TABLE leases (
        agent TEXT PRIMARY KEY, holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL)""")


MIGRATIONS: list[Callable] = [_m001_schema, _m002_leases]


LOST = ("The connection to the PostgreSQL store was lost mid-step (the server restarted or "
        "dropped it); the step was rolled back, and the next one reconnects.")


class Connection:
    """The store's connection as the stores use it: their SQL (`?` parameters), JSON read as
    text; a connection lost between steps is replaced, one lost mid-step ends the step."""

    def __init__(self, store: "PostgresStore"):
        self.store = store

    @property
    def raw(self):
        """The psycopg connection in use."""
        return self.store.raw

    def execute(self, sql: str, params: list | tuple | None = None):
        """Run one statement; its cursor holds the result."""
        import psycopg

        args = (sql,) if params is None else (_placeholders(sql), [_value(p) for p in params])
        try:
            return self.raw.execute(*args)
        except psycopg.OperationalError:
            if not self.raw.broken:
                raise
            self.store.reconnect()
            if self.store.in_transaction:
                raise StoreUnavailableError(LOST) from None
            return self.raw.execute(*args)  # between steps: once more, on a new connection


def _placeholders(sql: str) -> str:
    """`?` parameters as psycopg's `%s` (a literal `%` doubled)."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


def _value(value):
    """A parameter as psycopg takes it (a list of ids as a PostgreSQL array)."""
    return list(value) if isinstance(value, tuple) else value


def _text_json(connection) -> None:
    """JSON and JSONB columns read back as their text, as DuckDB gives them."""
    from psycopg.types.json import set_json_loads

    set_json_loads(lambda data: data if isinstance(data, str) else bytes(data).decode(),
                   connection)


CONNECT_OPTIONS = {"connect_timeout": 10, "options": "-c timezone=UTC"}


def _check_reachable(url: str) -> None:
    """Connect once; a wrong URL, a refused password or a server that is down is one line."""
    import psycopg

    try:
        psycopg.connect(url, **CONNECT_OPTIONS).close()
    except (psycopg.Error, ValueError) as exc:
        raise StoreUnavailableError(
            f"Cannot use the PostgreSQL store at {redact(url)}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The server's or the driver's reason, from the first line of psycopg's message."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for marker in ("FATAL:", "failed:"):
        if marker in first:
            return first.rsplit(marker, 1)[-1].strip()
    return first


def redact(url: str) -> str:
    """A store URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


class PostgresStore:
    """The PostgreSQL store: one connection for this process's steps, from a pool that
    also serves its leases."""

    kind = "postgresql"
    shared = True  # several processes may use it at once: turns take leases

    def __init__(self, url: str, pool_size: int = 4):
        from psycopg_pool import ConnectionPool

        self.url = url
        self.in_transaction = False
        _check_reachable(url)  # a clear line at once, not a pool retrying in the background
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                   configure=_text_json, timeout=10, kwargs=CONNECT_OPTIONS,
                                   check=ConnectionPool.check_connection)
        self.raw = self._connection()
        self.con = Connection(self)
        self._leases = None  # the session holding this process's leases, made on first use
        self._lease_guard = threading.Lock()
        try:
            self.version = self._migrate()
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        """Where the store is, for messages (no password)."""
        return redact(self.url)

    def _connection(self):
        raw = self.pool.getconn()
        raw.autocommit = True  # each statement on its own, but inside transaction()
        return raw

    def reconnect(self) -> None:
        """Give a broken connection back (the pool drops it) and take a working one."""
        broken, self.raw = self.raw, None
        self.pool.putconn(broken)
        try:
            self.raw = self._connection()
        except Exception as exc:  # the pool's timeout: the server is still away
            raise StoreUnavailableError(f"The PostgreSQL store at {self.describe()} cannot be "
                                       f"reached again: {_reason(exc)}") from None

    def _migrate(self) -> int:
        import psycopg

        try:
            self.con.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"The PostgreSQL store at {redact(self.url)} has no pgvector extension "
                f"({str(exc).splitlines()[0]}): install pgvector there, or start a local one "
                "with scripts/postgres.sh start DIR.") from None
        with self.transaction():
            self.con.execute("SELECT pg_advisory_xact_lock(7041)")  # one migrator at a time
            self.con.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY "
                             "KEY, name TEXT, applied_at TIMESTAMPTZ DEFAULT now())")
            done = {r[0] for r in self.con.execute("SELECT version FROM migrations").fetchall()}
            if done and max(done) > len(MIGRATIONS):
                raise MemgptLocalError(
                    f"The PostgreSQL store has schema version {max(done)}, written by a newer "
                    f"memgpt-local; this version knows {len(MIGRATIONS)}. Upgrade memgpt-local "
                    "(nothing was changed).")
            for version, migration in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    migration(self.con)
                    self.con.execute("INSERT INTO migrations (version, name) VALUES (?, ?)",
                                     [version, migration.__name__])
        return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block in one transaction: all of it is stored, or none (a connection lost
        meanwhile: none, said in one line)."""
        import psycopg

        raw = self.raw
        self.in_transaction = True
        try:
            with ExitStack() as stack:
                raw = self._begun(stack)
                yield
        except psycopg.OperationalError:
            if not raw.broken:
                raise
            if self.raw is raw:
                self.reconnect()
            raise StoreUnavailableError(LOST) from None
        finally:
            self.in_transaction = False

    def _begun(self, stack: ExitStack):
        """Begin a transaction (on a new connection if the one held broke while idle: the
        server restarted between steps); return the connection it runs on."""
        import psycopg

        try:
            stack.enter_context(self.raw.transaction())
        except psycopg.OperationalError:
            if not self.raw.broken:
                raise
            self.reconnect()
            stack.enter_context(self.raw.transaction())
        return self.raw

    @contextmanager
    def lease(self, name: str, holder: str, wait_s: float = 10.0) -> Iterator[None]:
        """Hold an agent for a turn: no other process runs one of its turns meanwhile. An
        agent another holds is waited for up to wait_s, then AgentLeasedError names the
        holder. The lock lives in this process's lease session, so it ends with it."""
        key = _lease_key(name)
        deadline = time.monotonic() + wait_s
        while not self._lease_query("SELECT pg_try_advisory_lock(%s)", [key])[0]:
            if time.monotonic() > deadline:
                row = self._lease_query("SELECT holder FROM leases WHERE agent = %s", [name])
                raise AgentLeasedError(
                    f"Agent '{name}' is running a turn on {row[0] if row else 'another server'}"
                    f"; waited {wait_s:g} s. Try again when it is done.")
            time.sleep(0.05)
        try:
            self._lease_query("INSERT INTO leases VALUES (%s, %s, now()) ON CONFLICT (agent) "
                              "DO UPDATE SET holder = excluded.holder, since = excluded.since "
                              "RETURNING agent", [name, holder])
            yield
        finally:
            self._lease_query("SELECT pg_advisory_unlock(%s)", [key])

    def _lease_query(self, sql: str, params: list) -> tuple | None:
        """One statement on the lease session (opened on first use, kept: it holds the
        locks); a lease session that broke has lost its locks, which is said."""
        import psycopg

        with self._lease_guard:
            if self._leases is None:
                self._leases = self._connection()
            try:
                return self._leases.execute(sql, params).fetchone()
            except psycopg.OperationalError:
                if not self._leases.broken:
                    raise
                self.pool.putconn(self._leases)
                self._leases = None
                raise StoreUnavailableError(LOST) from None

    def records(self) -> AgentStore:
        """The agent records."""
        return AgentStore(self.con)

    def recall(self, name: str) -> "PostgresRecall":
        """An agent's recall storage."""
        return PostgresRecall(self.con, name)

    def archival(self, name: str, embedder, progress: bool = True) -> "PostgresArchival":
        """An agent's archival storage."""
        return PostgresArchival(self.con, name, embedder, progress)

    def passage_count(self, name: str) -> int:
        """Passages stored for an agent (no embedding model)."""
        return self.con.execute("SELECT count(*) FROM passages WHERE agent = ?",
                                [name]).fetchone()[0]

    def stored_passages(self, name: str) -> list[dict]:
        """An agent's passages (content, source, metadata), oldest first."""
        rows = self.con.execute("SELECT content, source, metadata FROM passages WHERE agent = ? "
                                "ORDER BY id", [name]).fetchall()
        return [{"content": content, "source": source,
                 "metadata": json.loads(metadata) if metadata else None}
                for content, source, metadata in rows]

    def put_passages(self, name: str, rows: list[tuple]) -> None:
        """Store passages with their embeddings as they are (a copy from another store)."""
        with self.raw.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
                "embedding, created_at, embedded_with) VALUES (nextval('passage_ids'), %s, %s, "
                "%s, %s, %s, %s::vector, %s, %s)",
                [(name, *row[:4], _vector(row[4]), *row[5:]) for row in rows])

    def forget_files(self, name: str) -> None:
        """Nothing of an agent is kept in files here."""

    def close(self) -> None:
        """Give the connection back and close the pool."""
        if self.raw is not None:
            for held in (self.raw, self._leases):
                if held is not None:
                    self.pool.putconn(held)
            self.raw = self._leases = None
            self.pool.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PostgresRecall(RecallStorage):
    """Recall storage on PostgreSQL: full-text search over a stored tsvector."""

    def __init__(self, con: Connection, agent: str):
        self.con = con
        self.agent = agent

    def bulk_import(self, messages: list[Message]) -> int:
        """Import many past messages at once, keeping their time stamps."""
        _check_roles({m.role for m in messages})
        base = self.next_seq()
        now = datetime.now(UTC)
        with self.con.raw.cursor() as cursor, cursor.copy(
                "COPY messages (agent, seq, role, content, function_name, function_args, "
                "created_at, tokens) FROM STDIN") as copy:
            for i, m in enumerate(messages):
                copy.write_row((self.agent, base + i, m.role, m.content, m.function_name,
                                _args_json(m.function_args), m.created_at or now, m.tokens))
        return len(messages)

    def rebuild_text_index(self) -> None:
        """Nothing to rebuild: PostgreSQL keeps its text index up to date."""

    def search_text(self, query: str, page: int = 1, page_size: int = 5) -> Page:
        """Messages holding a word of the query (stemmed), ranked by PostgreSQL's ts_rank
        with length normalisation, then the newest; a query without words is matched as a
        substring instead."""
        offset, limit = page_bounds(page, page_size)
        any_word = "replace(plainto_tsquery('english', ?)::text, '&', '|')::tsquery"
        words = self.con.execute(f"SELECT {any_word}::text", [query]).fetchone()[0]
        if words:
            sql = (f"SELECT id, ts_rank(words, q, 1) AS score, seq FROM messages, "
                   f"(SELECT {any_word} AS q) query WHERE agent = ? AND words @@ q")
            params = [query, self.agent]
        else:
            sql = ("SELECT id, 0.0 AS score, seq FROM messages WHERE agent = ? AND "
                   "strpos(lower(content), ?) > 0")
            params = [self.agent, query.strip().lower()]
        ranked = [row[0] for row in self.con.execute(
            f"SELECT id FROM ({sql}) hits ORDER BY score DESC, seq DESC", params).fetchall()]
        by_id = {m.id: m for m in self.get(ranked[offset:offset + limit])}
        return Page([by_id[i] for i in ranked[offset:offset + limit]], page, page_size,
                    len(ranked))


class PostgresArchival:
    """One agent's archival memory on PostgreSQL: pgvector's HNSW index (cosine) for meaning,
    full-text search for whole words, fused by rank."""

    def __init__(self, con: Connection, agent: str, embedder, progress: bool = True):
        self.con = con
        self.agent = agent
        self.embedder = embedder
        self.progress = progress
        self.rebuilt = False
        self.dim = embedder.dim
        self._ensure_index()
        self._reembed_stale_rows()

    def _ensure_index(self) -> None:
        """An HNSW index for vectors of this embedder's size (one per size in use)."""
        self.con.execute(
            f"CREATE INDEX IF NOT EXISTS passages_embedding_{self.dim} ON passages USING hnsw "
            f"((embedding::vector({self.dim})) vector_cosine_ops) "
            f"WHERE vector_dims(embedding) = {self.dim}")

    def _reembed_stale_rows(self) -> int:
        """Embed again the rows another embedder made, in committed batches."""
        rows = self.con.execute(
            "SELECT id, content FROM passages WHERE agent = ? AND embedded_with IS DISTINCT "
            "FROM ? ORDER BY id", [self.agent, self.embedder.name]).fetchall()
        for start in range(0, len(rows), 256):
            batch = rows[start:start + 256]
            vectors = self.embedder.embed([content for _, content in batch])
            with self.con.raw.cursor() as cursor:
                cursor.executemany(
                    "UPDATE passages SET embedding = %s::vector, embedded_with = %s "
                    "WHERE id = %s", [(_vector(v), self.embedder.name, passage_id)
                                      for (passage_id, _), v in zip(batch, vectors,
                                                                    strict=True)])
        self.rebuilt = bool(rows)
        return len(rows)

    def count(self) -> int:
        """Number of passages stored for the agent."""
        return self.con.execute("SELECT count(*) FROM passages WHERE agent = ?",
                                [self.agent]).fetchone()[0]

    def insert(self, texts: list[str], source: str | None = None,
               metadata: dict | None = None) -> list[int]:
        """Store new passages (duplicates of stored ones are skipped); return the new ids."""
        unique = list(dict.fromkeys(t for t in texts if t.strip()))
        hashes = [content_hash(t) for t in unique]
        known = {row[0] for row in self.con.execute(
            "SELECT content_hash FROM passages WHERE agent = ? AND content_hash = ANY(?)",
            [self.agent, hashes]).fetchall()}
        fresh = [t for t, h in zip(unique, hashes, strict=True) if h not in known]
        if not fresh:
            return []
        vectors = self.embedder.embed(fresh)
        now, meta = datetime.now(UTC), json.dumps(metadata) if metadata else None
        rows = self.con.execute(
            "INSERT INTO passages (id, agent, content, content_hash, source, metadata, "
            "embedding, created_at, embedded_with) SELECT nextval('passage_ids'), ?, c, h, ?, "
            "?::jsonb, e::vector, ?, ? FROM unnest(?::text[], ?::text[], ?::text[]) "
            "WITH ORDINALITY AS t(c, h, e, n) ORDER BY n RETURNING id",
            [self.agent, source, meta, now, self.embedder.name, fresh,
             [content_hash(t) for t in fresh], [_vector(v) for v in vectors]]).fetchall()
        return [row[0] for row in rows]

    def delete(self, ids: list[int]) -> int:
        """Delete passages by id; return how many were deleted."""
        return len(self.con.execute(
            "DELETE FROM passages WHERE agent = ? AND id = ANY(?) RETURNING id",
            [self.agent, list(ids)]).fetchall())

    def search(self, query: str, mode: str = "hybrid", page: int = 1,
               page_size: int = 5) -> Page:
        """Search passages: 'vector', 'keyword' (whole words) or 'hybrid' (rank fusion)."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}; valid: {', '.join(SEARCH_MODES)}")
        offset, limit = page_bounds(page, page_size)
        want = max(CANDIDATES, offset + limit)
        if mode == "vector":
            ranked = self._vector_ids(query, want)
        elif mode == "keyword":
            ranked = self._keyword_ids(query, want)
        else:
            ranked = _fuse(self._vector_ids(query, want), self._keyword_ids(query, want))
        return Page(self._passages(ranked[offset:offset + limit]), page, page_size, len(ranked))

    def _vector_ids(self, query: str, k: int) -> list[int]:
        if not query.strip():
            return []
        vector = _vector(self.embedder.embed_query(query))
        with self.con.raw.transaction():  # SET LOCAL lasts for this transaction only
            ef_search = min(HNSW_SEARCH_LIMIT, max(EF_SEARCH, k))
            self.con.execute(f"SET LOCAL hnsw.ef_search = {ef_search}")
            rows = self.con.execute(
                f"SELECT id FROM passages WHERE agent = ? AND vector_dims(embedding) = "
                f"{self.dim} ORDER BY embedding::vector({self.dim}) <=> ?::vector({self.dim}) "
                "LIMIT ?", [self.agent, vector, k]).fetchall()
        return [row[0] for row in rows]

    def _keyword_ids(self, query: str, k: int) -> list[int]:
        """Passages holding every word of the query, the exact phrase first."""
        rows = self.con.execute(
            "SELECT id FROM passages, plainto_tsquery('simple', ?) q, "
            "phraseto_tsquery('simple', ?) p WHERE agent = ? AND numnode(q) > 0 "
            "AND words @@ q ORDER BY words @@ p DESC, id LIMIT ?",
            [query, query, self.agent, k]).fetchall()
        return [row[0] for row in rows]

    def _passages(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        rows = self.con.execute("SELECT id, content, source, created_at FROM passages "
                                "WHERE agent = ? AND id = ANY(?)", [self.agent, ids]).fetchall()
        by_id = {r[0]: {"id": r[0], "content": r[1], "source": r[2], "created_at": r[3]}
                 for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def stage(self) -> None:
        """Nothing to hold back: the rows are the index."""

    def commit(self) -> None:
        """Nothing to do after a commit."""

    def rollback(self) -> None:
        """Nothing to forget after a rollback."""

    def close(self) -> None:
        """Nothing to save."""


def _lease_key(name: str) -> int:
    """The advisory lock key of an agent's lease: 64 bits of a digest of its name."""
    return int.from_bytes(hashlib.sha256(f"lease:{name}".encode()).digest()[:8], "big",
                          signed=True)


def _vector(values) -> str:
    """A vector in pgvector's text form, each float32 value exactly."""
    return "[" + ",".join(repr(float(x)) for x in np.asarray(values, np.float32).ravel()) + "]"
