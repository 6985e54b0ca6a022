"""The PostgreSQL store: agents, recall and archival in one PostgreSQL database with pgvector,
for several servers sharing their agents (the embedded DuckDB + hnswlib store is the default).

The same record and recall classes run on it, through a connection that speaks their SQL
(`?` parameters); what differs is here (the schema and its migrations, the connection and its
faults, the leases) and in recall.py (text search) and archival.py (pgvector). psycopg 3
with a connection pool.
"""

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from ...errors import AgentLeasedError, LeaseLostError, MemgptLocalError, StoreUnavailableError
from ..agents import AgentStore
from ..archival import passage_count, passage_hashes
from ..embeddings import TextEmbedder
from ..sql import first_value
from ..stores import redact_url
from .archival import PostgresArchival, vector_text
from .recall import PostgresRecall


def _m001_schema(con: "Connection") -> None:
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


def _m002_leases(con: "Connection") -> None:
    # who holds each agent's lease (the lock itself is a session advisory lock: it ends with
    # the session of the server that took it, so a server that dies loses its leases)
    con.execute("""CREATE TABLE leases (
        agent TEXT PRIMARY KEY, holder TEXT NOT NULL, since TIMESTAMPTZ NOT NULL)""")


def _m003_json_as_written(con: "Connection") -> None:
    # JSONB sorts an object's keys: core memory came back with its blocks in another order
    # (the prompt changed) and a stored call with its arguments reordered. JSON keeps the text
    # as written, as DuckDB does. (Rows stored before keep the order JSONB gave them.)
    for table, column in (("agents", "settings"), ("agents", "core_memory"),
                          ("agents", "in_context"), ("messages", "function_args"),
                          ("passages", "metadata")):
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP DEFAULT")
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE JSON "
                    f"USING {column}::text::json")
    con.execute("ALTER TABLE agents ALTER COLUMN in_context SET DEFAULT '[]'")


def _m004_lease_epochs(con: "Connection") -> None:
    # each taking of a lease counts up its epoch; a step's transaction checks the epoch its
    # process took, so a process that lost its lease session (and its lock) writes nothing
    con.execute("ALTER TABLE leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0")


MIGRATIONS: list[Callable] = [_m001_schema, _m002_leases, _m003_json_as_written,
                              _m004_lease_epochs]


LEASES_LOST = ("The connection holding this process's leases on the PostgreSQL store was lost; "
               "its agents may be taken by another process. Try again.")
LOST = ("The connection to the PostgreSQL store was lost mid-step (the server restarted or "
        "dropped it); the step was rolled back, and the next one reconnects.")


class Connection:
    """The store's connection as the stores use it: their SQL (`?` parameters), JSON read as
    text; a connection lost between steps is replaced, one lost mid-step ends the step."""

    def __init__(self, store: "PostgresStore"):
        self.store = store

    @property
    def raw(self) -> psycopg.Connection:
        """The psycopg connection in use."""
        return self.store.raw

    def execute(self, sql: str, params: list | tuple | None = None) -> psycopg.Cursor:
        """Run one statement; its cursor holds the result."""
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
    return sql.replace("%", "%%").replace("?", "%s")


def _value(value: Any) -> Any:
    """A parameter as psycopg takes it (a list of ids as a PostgreSQL array)."""
    return list(value) if isinstance(value, tuple) else value


def _text_json(connection: psycopg.Connection) -> None:
    """JSON and JSONB columns read back as their text, as DuckDB gives them."""
    set_json_loads(lambda data: data if isinstance(data, str) else bytes(data).decode(),
                   connection)


CONNECT_TIMEOUT_S, SESSION_OPTIONS = 10, "-c timezone=UTC"


def _check_reachable(url: str) -> None:
    """Connect once; a wrong URL, a refused password or a server that is down is one line."""
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S,
                        options=SESSION_OPTIONS).close()
    except (psycopg.Error, ValueError) as exc:
        raise StoreUnavailableError(
            f"Cannot use the PostgreSQL store at {redact_url(url)}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The server's or the driver's reason, from the first line of psycopg's message."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for marker in ("FATAL:", "failed:"):
        if marker in first:
            return first.rsplit(marker, 1)[-1].strip()
    return first


class PostgresStore:
    """The PostgreSQL store: one connection for this process's steps, from a pool that
    also serves its leases."""

    kind = "postgresql"
    shared = True  # several processes may use it at once: turns take leases

    def __init__(self, url: str, pool_size: int = 4):
        self.url = url
        self.in_transaction = False
        _check_reachable(url)  # a clear line at once, not a pool retrying in the background
        self.pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True,
                                   configure=_text_json, timeout=10,
                                   kwargs={"connect_timeout": CONNECT_TIMEOUT_S,
                                           "options": SESSION_OPTIONS},
                                   check=ConnectionPool.check_connection)
        # the session holding this process's leases, made on first use
        self._leases: psycopg.Connection | None = None
        self._lease_guard = threading.Lock()
        self._held: dict[str, list[int]] = {}  # agent -> [epoch taken, acquires not released]
        self.raw = self._connection()
        self.con = Connection(self)
        try:
            self.version = self._migrate()
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        """Where the store is, for messages (no password)."""
        return redact_url(self.url)

    def _connection(self) -> psycopg.Connection:
        raw = self.pool.getconn()
        raw.autocommit = True  # each statement on its own, but inside transaction()
        return raw

    def reconnect(self) -> None:
        """Give a broken connection back (the pool drops it) and take a working one."""
        self.pool.putconn(self.raw)
        try:
            self.raw = self._connection()
        except Exception as exc:  # the pool's timeout: the server is still away
            raise StoreUnavailableError(f"The PostgreSQL store at {self.describe()} cannot be "
                                       f"reached again: {_reason(exc)}") from None

    def _migrate(self) -> int:
        try:
            self.con.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                f"The PostgreSQL store at {redact_url(self.url)} has no pgvector extension "
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

    def _begun(self, stack: ExitStack) -> psycopg.Connection:
        """Begin a transaction (on a new connection if the one held broke while idle: the
        server restarted between steps); return the connection it runs on."""
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
        """Hold an agent while a block runs (see acquire)."""
        self.acquire(name, holder, wait_s)
        try:
            yield
        finally:
            self.release(name)

    def acquire(self, name: str, holder: str, wait_s: float = 10.0) -> None:
        """Take an agent's lease: no other process runs one of its turns until release().
        An agent another process holds is waited for up to wait_s, then AgentLeasedError
        names the holder. The lock lives in this process's lease session, so it ends with it
        (and the same process may take it again: each acquire needs its release)."""
        key = _lease_key(name)
        deadline = time.monotonic() + wait_s
        while not first_value(self._lease_query("SELECT pg_try_advisory_lock(%s)", [key])):
            if time.monotonic() > deadline:
                row = self._lease_query("SELECT holder FROM leases WHERE agent = %s", [name])
                raise AgentLeasedError(
                    f"Agent '{name}' is in use by {row[0] if row else 'another process'}; "
                    f"waited {wait_s:g} s. Try again when it is done.")
            time.sleep(0.05)
        if name in self._held:  # taken again by this process (the lock is re-entrant)
            self._held[name][1] += 1
            return
        epoch = first_value(self._lease_query(
            "INSERT INTO leases VALUES (%s, %s, now(), 1) ON CONFLICT (agent) DO UPDATE SET "
            "holder = excluded.holder, since = excluded.since, epoch = leases.epoch + 1 "
            "RETURNING epoch", [name, holder]))
        self._held[name] = [epoch, 1]

    def release(self, name: str) -> None:
        """Give back one acquire() of an agent's lease (a lease session that broke has given
        them all back already)."""
        held = self._held.get(name)
        if held is not None:
            held[1] -= 1
            if held[1] <= 0:
                del self._held[name]
        try:
            self._lease_query("SELECT pg_advisory_unlock(%s)", [_lease_key(name)])
        except StoreUnavailableError:
            self._held.clear()  # the session ended: no lock of this process is left

    def fence(self, name: str) -> None:
        """Inside a transaction of an agent's: refuse to write unless this process still holds
        the lease it took (another process that took it since has counted its epoch up); the
        row stays locked until the commit, so no one takes the lease in between."""
        held = self._held.get(name)
        if held is None:
            return
        row = self.con.execute("SELECT epoch, holder FROM leases WHERE agent = ? FOR SHARE",
                               [name]).fetchone()
        if row is None or row[0] != held[0]:
            raise LeaseLostError(
                f"This process lost its lease on agent '{name}' (its lease connection to "
                f"PostgreSQL dropped) and {row[1] if row else 'another process'} took the "
                "agent since: this step was not stored; its turn goes on there.")

    def _lease_query(self, sql: str, params: list) -> tuple | None:
        """One statement on the lease session (opened on first use, kept: it holds the
        locks); a lease session that broke has lost its locks, which is said."""
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
                raise StoreUnavailableError(LEASES_LOST) from None

    def records(self) -> AgentStore:
        """The agent records."""
        return AgentStore(self.con)

    def recall(self, name: str) -> PostgresRecall:
        """An agent's recall storage."""
        return PostgresRecall(self.con, name)

    def archival(self, name: str, embedder: TextEmbedder, progress: bool = True
                 ) -> PostgresArchival:
        """An agent's archival storage."""
        return PostgresArchival(self.con, name, embedder, progress)

    def passage_count(self, name: str) -> int:
        """Passages stored for an agent (no embedding model)."""
        return passage_count(self.con, name)

    def passage_hashes(self, name: str) -> set[str]:
        """The content hashes of an agent's passages."""
        return passage_hashes(self.con, name)

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
                [(name, *row[:4], vector_text(row[4]), *row[5:]) for row in rows])

    def forget_files(self, name: str) -> None:
        """Nothing of an agent is kept in files here."""

    def close(self) -> None:
        """Give the connections back (the lease session's ends this process's leases) and
        close the pool."""
        if self.pool.closed:
            return
        for held in (self.raw, self._leases):
            if held is not None:
                self.pool.putconn(held)
        self._leases = None
        self.pool.close()

    def __enter__(self) -> "PostgresStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _lease_key(name: str) -> int:
    """The advisory lock key of an agent's lease: 64 bits of a digest of its name."""
    return int.from_bytes(hashlib.sha256(f"lease:{name}".encode()).digest()[:8], "big",
                          signed=True)


