"""Agents copied whole from one store to another (`store copy`): the record, every message with
its date, every passage with its stored embedding (nothing is embedded again), and a digest of
each agent that is the same on both sides when the copy is exact."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .agents import AgentRecord
from .messages import Message
from .stores import Store

PASSAGE_COLUMNS = "content, content_hash, source, metadata, embedding, created_at, embedded_with"


@dataclass
class AgentRows:
    """One agent as a store holds it: its record (in_context as message seqs), its messages
    in order and its passages with their embeddings."""

    record: AgentRecord
    in_context_seqs: list[int]
    messages: list[Message]
    passages: list[tuple]  # PASSAGE_COLUMNS, the embedding as float32 values

    def digest(self) -> str:
        """A digest of everything copied (ids aside, which each store assigns), the order of
        core memory's blocks and of a call's arguments included: both are in the prompt."""
        digest = hashlib.sha256()
        record = self.record
        digest.update(json.dumps([record.name, record.model, record.settings, record.summary,
                                  self.in_context_seqs], sort_keys=True).encode())
        digest.update(json.dumps(record.core_memory.to_dict()).encode())
        for m in self.messages:
            digest.update(json.dumps([m.seq, m.role, m.content, m.function_name,
                                      m.function_args, m.stamp(), m.tokens],
                                     default=str).encode())
        for content, hashed, source, metadata, embedding, created, embedded_with in \
                self.passages:
            digest.update(json.dumps([content, hashed, source, _json(metadata),
                                      created.isoformat(), embedded_with]).encode())
            digest.update(np.asarray(embedding, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def counts(self) -> dict:
        """How many messages and passages."""
        return {"messages": len(self.messages), "passages": len(self.passages)}


def _json(value: Any) -> Any:
    """A JSON column's value, parsed (stores give text; None stays None)."""
    return json.loads(value) if isinstance(value, str) else value


def read_agent(store: Store, name: str) -> AgentRows:
    """An agent's rows from a store."""
    record = store.records().get(name)
    messages = store.recall(name).all()
    seq_of = {m.id: m.seq for m in messages if m.seq is not None}
    rows = store.con.execute(f"SELECT {PASSAGE_COLUMNS} FROM passages WHERE agent = ? "
                             "ORDER BY id", [name]).fetchall()
    passages = [(*row[:3], _json(row[3]), _floats(row[4]), *row[5:]) for row in rows]
    return AgentRows(record, [seq_of[i] for i in record.in_context if i in seq_of], messages,
                     passages)


def _floats(embedding: Any) -> list[float]:
    """A stored embedding's values (pgvector gives its text form)."""
    return json.loads(embedding) if isinstance(embedding, str) else list(embedding)


def write_agent(store: Store, rows: AgentRows) -> None:
    """Write an agent's rows into a store that does not hold it, in one transaction."""
    with store.transaction():
        recall = store.recall(rows.record.name)
        recall.bulk_import([Message(m.role, m.content, m.function_name, m.function_args,
                                    m.created_at, m.tokens) for m in rows.messages])
        id_of = recall.ids_by_seq()
        record = rows.record
        store.records().save(AgentRecord(record.name, record.model, record.settings,
                                         record.core_memory, record.summary,
                                         [id_of[s] for s in rows.in_context_seqs]))
        store.put_passages(record.name, [(*p[:3], json.dumps(p[3]) if p[3] is not None
                                          else None, *p[4:]) for p in rows.passages])
