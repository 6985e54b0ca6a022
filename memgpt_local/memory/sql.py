"""What the stores' shared SQL needs of a connection: DuckDB's own, or the PostgreSQL store's
wrapper (postgres/store.py's Connection, which speaks DuckDB's `?` placeholders)."""

from typing import Any, Protocol


class SqlConnection(Protocol):
    """A connection that runs one statement and returns its cursor."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def scalar(cursor: Any) -> Any:
    """The first column of a query's one row (an aggregate always has one)."""
    return first_value(cursor.fetchone())


def first_value(row: tuple | None) -> Any:
    """The first value of a row a statement always returns."""
    if row is None:
        raise LookupError("the query returned no row")
    return row[0]
