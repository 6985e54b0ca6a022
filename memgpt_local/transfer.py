"""The engine's part that moves agents between homes and implementations: our own agent files,
Letta's Agent Files (.af) and copies - each written all or nothing, after the whole file was
validated. The engine builds it over itself (`engine.transfer`); what it uses of the engine is
the AgentHome protocol.
"""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from .agent import agentfile, portable
from .agent.agentfile_export import agent_file
from .agent.context import fit_block_limits, static_instructions
from .agent.settings import AgentSettings, stored
from .errors import MemgptLocalError
from .files import write_atomic
from .llm.gguf import vocab_counter
from .llm.kvcache import SnapshotStore
from .llm.models import ModelSpec
from .memory.agents import AgentRecord, AgentStore
from .memory.stores import AgentStores, RecallStore, Store


class AgentHome(Protocol):
    """What the transfer part uses of the engine: its store, records, snapshots and models."""

    @property
    def db(self) -> Store:
        """The store of agents, messages and passages."""

    @property
    def records(self) -> AgentStore:
        """The agent records of the store."""

    @property
    def snapshots(self) -> SnapshotStore:
        """The KV snapshot files."""

    def model_spec(self, alias: str | None = None) -> ModelSpec:
        """A registered model (the default when no alias)."""

    def recall_storage(self, name: str) -> RecallStore:
        """An agent's recall storage."""

    def agent_stores(self, name: str) -> AgentStores:
        """An agent's stores, archival opened on demand."""

    def free_name(self, name: str, hint: str = "") -> str:
        """A valid name no agent has (leftovers under it removed), else AgentExistsError."""


class AgentTransfer:
    """Export, import and copy agents, through the engine's store and records."""

    def __init__(self, home: AgentHome):
        self.home = home

    def export_document(self, name: str) -> dict:
        """The portable JSON document of an agent, its messages and its passages."""
        record = self.home.records.get(name)
        return portable.export_document(record, self.home.recall_storage(name).all(),
                                        self.home.db.stored_passages(name))

    def export_letta_document(self, name: str) -> dict:
        """The Letta Agent File (.af) document of an agent and its messages (passages are
        not in Letta's files)."""
        record = self.home.records.get(name)
        settings = AgentSettings.of(record)
        ours = static_instructions("", tuple(settings.extra_functions), settings.architecture)
        return agent_file(record, self.home.recall_storage(name).all(),
                          settings.instructions or ours)

    def export_agent(self, name: str, path: Path, letta: bool = False) -> dict:
        """Write one portable JSON file with the agent, its messages and its passages (or a
        Letta agent file with the agent and its messages)."""
        if letta:
            document = self.export_letta_document(name)
            counts = {"messages": len(document["agents"][0]["messages"]), "passages": 0}
        else:
            document = self.export_document(name)
            counts = {"messages": len(document["messages"]),
                      "passages": len(document["passages"])}
        try:
            write_atomic(path, json.dumps(document, ensure_ascii=False).encode())
        except OSError as exc:
            raise MemgptLocalError(f"Cannot write {path}: {exc.strerror}.") from None
        return counts

    def import_agent(self, path: Path, new_name: str | None = None) -> AgentRecord:
        """Recreate an exported agent from its file (see import_document)."""
        return self._import([portable.read_export(path)], [new_name])[0]

    def import_document(self, document: dict, new_name: str | None = None) -> AgentRecord:
        """Recreate an exported agent, all or nothing: the document is validated before
        anything is written, and everything is written in one transaction (passages are
        embedded again with the local model)."""
        return self._import([portable.checked_export(document)], [new_name])[0]

    def import_agent_file(self, path: Path, only: str | None = None, model: str | None = None,
                          new_name: str | None = None, our_instructions: bool = False
                          ) -> list[agentfile.AfAgent]:
        """Every agent of a Letta agent file (or the one named `only`, or under new_name the
        only one), on a local model (default: the default model), with its own system prompt
        or ours, all or nothing; each with what its import did."""
        spec = self.home.model_spec(model)
        agents = agentfile.read_agent_file(path, spec.alias, spec.n_ctx, our_instructions)
        return self._import_letta(agents, str(path), only, new_name, spec)

    def import_letta_document(self, document: dict | str, only: str | None = None,
                              model: str | None = None, new_name: str | None = None,
                              our_instructions: bool = False) -> list[agentfile.AfAgent]:
        """import_agent_file for a document already read (the HTTP API's body)."""
        spec = self.home.model_spec(model)
        agents = agentfile.checked_agent_file(document, spec.alias, spec.n_ctx,
                                              our_instructions)
        return self._import_letta(agents, "the agent file", only, new_name, spec)

    def _import_letta(self, agents: list[agentfile.AfAgent], source: str, only: str | None,
                      new_name: str | None, spec: ModelSpec) -> list[agentfile.AfAgent]:
        """Write the agents read from an .af (or the one named `only`), fitted to the model."""
        if only is not None:
            names = [a.export.record.name for a in agents]
            agents = [a for a in agents if a.export.record.name == only]
            if not agents:
                raise portable.ExportFileError(f"{source} has no agent named {only!r}; it "
                                               f"has: {', '.join(names)}.")
        for imported in agents:
            _fit_window(imported, vocab_counter(spec), spec.alias)
        if new_name and len(agents) > 1:
            raise portable.ExportFileError(f"{source} has {len(agents)} agents: choose the one "
                                           "to rename with --agent NAME.")
        self._import([a.export for a in agents], [new_name] * len(agents))
        return agents

    def _import(self, exports: list[portable.AgentExport], new_names: list[str | None]
                ) -> list[AgentRecord]:
        """Write agents, all in one transaction, once every name is known to be free."""
        for export, new_name in zip(exports, new_names, strict=True):
            export.record.name = self.home.free_name(new_name or export.record.name,
                                                "; pass --name")
        stores = [self.home.agent_stores(e.record.name) for e in exports]
        for each, export in zip(stores, exports, strict=True):
            if export.passages:
                each.open_archival()
        try:
            with self._transaction(stores):
                for each, export in zip(stores, exports, strict=True):
                    _write_import(each, export)
        finally:
            for each in stores:
                each.close()
        return [e.record for e in exports]

    def _transaction(self, stores: list[AgentStores]) -> AbstractContextManager:
        """One agent's store transaction (archival included), or for several agents of an
        .af, which holds no passages, one database transaction over them all."""
        return stores[0].transaction() if len(stores) == 1 else self.home.db.transaction()

    def copy_agent(self, source: str, target: str) -> AgentRecord:
        """A new agent that starts as a copy of another: core memory, settings, summary, every
        message and passage, all or nothing. The stored embeddings are copied (nothing is
        embedded again); the copy's archival index is built from them when first opened."""
        record = self.home.records.get(source)
        record.name = self.home.free_name(target)
        with self.home.db.transaction():
            new_id = self.home.records.copy_rows(source, target)
            record.in_context = [new_id[i] for i in record.in_context if i in new_id]
            self.home.records.save(record)
        return record

def _fit_window(imported: agentfile.AfAgent, count: Callable[[str], int], model: str
                ) -> None:
    """Settings stored whole, as a new agent's are; block limits lowered to fit the window
    where they can be, and said so - unless an export of ours on the same window brought
    limits that fit it already. Blocks whose text alone is too long refuse the import: such
    an agent could not answer a message on this model."""
    record = imported.export.record
    settings = AgentSettings.of(record)
    record.settings = stored(settings)
    if imported.limits_fitted:
        return
    try:
        imported.notes += fit_block_limits(count, record.name, record.core_memory, settings)
    except MemgptLocalError:  # imported whole all the same: nothing the user brought is lost
        imported.notes.append(f"it does not fit the {settings.n_ctx}-token window of {model} "
                              "and will not run until it does (agents show says how)")


def _write_import(stores: AgentStores, export: portable.AgentExport) -> None:
    first_seq = stores.recall.next_seq()
    stores.recall.bulk_import(export.messages)
    id_of = stores.recall.ids_by_seq()
    position = {m.seq: i for i, m in enumerate(export.messages)}
    export.record.in_context = [id_of[first_seq + position[s]] for s in export.in_context_seqs]
    stores.save(export.record)
    groups: dict[str, list[str]] = {}
    for passage in export.passages:
        key = json.dumps([passage["source"], passage["metadata"]])
        groups.setdefault(key, []).append(passage["content"])
    for key, contents in groups.items():
        source, metadata = json.loads(key)
        stores.archival.insert(contents, source=source, metadata=metadata)
