"""The PostgreSQL store (pgvector): agents, recall and archival of many processes in one
database, behind the same Store protocol as the embedded one."""

from .store import LOST, PostgresStore

__all__ = ["LOST", "PostgresStore"]
