"""The engine: the one place that wires MemGPT's layers together.

It owns the home directory and its database, the model registry, a pool of loaded model
runtimes shared by every agent of the same model file and settings, the embedding model (loaded
on first use) and the KV snapshot store. It creates, opens, lists, shows, exports, imports and
deletes agents, handing each the runtime and stores it needs. Its defaults are the only code
that reads the environment.
"""

import os
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from .agent import context as ctx
from .agent.loop import Agent
from .agent.settings import NEW_AGENT_SETTINGS, AgentSettings, AgentState, stored
from .errors import MemgptLocalError, SettingsError
from .files import parse_size
from .llm.adapters import adapter_report
from .llm.base import DEFAULT_SEED, Runtime
from .llm.catalogue import ModelCatalogue
from .llm.gguf import memory_estimate, tool_format_name, trained_context, vocab_counter
from .llm.kvcache import DEFAULT_BUDGET_BYTES, SnapshotStore
from .llm.models import ModelSpec, Registry
from .llm.pool import RuntimePool
from .llm.runtime import ModelRuntime
from .llm.scan import suggestion
from .llm.system import hardware_report
from .memory.agents import AgentExistsError, AgentRecord, AgentStore, check_agent_name
from .memory.core import DEFAULT_LIMIT, BlockChange, CoreMemory
from .memory.documents import (
    EmbeddedAhead,
    LoadReport,
    PreparedDocuments,
    prepare_documents,
    store_documents,
)
from .memory.embedded import EmbeddedStore
from .memory.embeddings import MODEL_ENV, PRECISION_ENV, TextEmbedder, load_embedder
from .memory.stores import AgentStores, ArchivalStore, RecallStore, Store, redact_url
from .transfer import AgentTransfer

HOME_ENV = "MEMGPT_LOCAL_HOME"
STORE_ENV = "MEMGPT_LOCAL_STORE"
STORE_SCHEMES = ("postgresql://", "postgres://")
KV_BUDGET_ENV = "MEMGPT_LOCAL_KV_BUDGET"
GPU_BUDGET_ENV = "MEMGPT_LOCAL_GPU_BUDGET"
RuntimeFactory = Callable[..., Runtime]


@dataclass(frozen=True)
class EngineConfig:
    """Where the engine keeps everything, and its limits."""

    home: Path
    embedding_model: str | None = None  # a local sentence-transformers folder; None: packaged
    embedding_precision: str = "int8"
    max_loaded_models: int = 2
    model_memory_bytes: int | None = None  # loaded models' weights and KV together (None: any)
    kv_budget_bytes: int = DEFAULT_BUDGET_BYTES  # every KV snapshot file together
    kv_memory_bytes: int = 0  # agents' context snapshots kept in memory (a server's switches)
    n_gpu_layers: int | None = None  # None: each model's own setting in models.toml
    gpu_budget_bytes: int | None = None  # GPU memory "auto" layers may fill (None: all free)
    store: str | None = None  # a PostgreSQL URL; None: the embedded store in the home
    holder: str = ""  # how other processes on a shared store name this one ("": host and pid)

    @classmethod
    def from_environment(cls) -> "EngineConfig":
        """The defaults, read from the environment once: $MEMGPT_LOCAL_HOME (else
        $XDG_DATA_HOME/memgpt-local, else ~/.local/share/memgpt-local), the embedding
        settings, $MEMGPT_LOCAL_KV_BUDGET (a size such as 4GiB) and $MEMGPT_LOCAL_STORE (a
        PostgreSQL URL: agents, recall and archival kept there instead of in the home)."""
        home = os.environ.get(HOME_ENV)
        if not home:
            home = str(Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share") / "memgpt-local")
        kv_budget = _size_from(KV_BUDGET_ENV)
        return cls(Path(home).expanduser(), os.environ.get(MODEL_ENV) or None,
                   os.environ.get(PRECISION_ENV) or "int8",
                   kv_budget_bytes=DEFAULT_BUDGET_BYTES if kv_budget is None else kv_budget,
                   gpu_budget_bytes=_size_from(GPU_BUDGET_ENV),
                   store=os.environ.get(STORE_ENV) or None)


def _size_from(variable: str) -> int | None:
    """A size an environment variable gives (4GiB, 500MB), else None."""
    value = os.environ.get(variable)
    try:
        return parse_size(value) if value else None
    except ValueError as exc:
        raise MemgptLocalError(f"${variable}: {exc}") from None


def open_store(config: EngineConfig, wait: bool = False) -> Store:
    """The store the configuration names: PostgreSQL for a URL, else the home's own."""
    if not config.store:
        return EmbeddedStore(config.home, wait=wait)
    if not config.store.startswith(STORE_SCHEMES):
        raise SettingsError(f"The store {config.store!r} is not a PostgreSQL URL: give one "
                            "like postgresql://user:password@host:5432/database (or none for "
                            "the home's own store).")
    from .memory.postgres import PostgresStore

    return PostgresStore(config.store)


def runtime_for(spec: ModelSpec, snapshots: SnapshotStore, grammar_dir: Path,
                n_ctx: int | None = None, seed: int = DEFAULT_SEED) -> Runtime:
    """The runtime an entry asks for: in process, or on the inference server it names."""
    if spec.server:
        from .llm.remote import RemoteRuntime

        return RemoteRuntime(spec, snapshots, grammar_dir, n_ctx=n_ctx, seed=seed)
    return ModelRuntime(spec, snapshots, grammar_dir, n_ctx=n_ctx, seed=seed)


def _server_report(spec: ModelSpec) -> dict | None:
    """For an entry on an inference server: where, and what a probe of it found."""
    if not spec.server:
        return None
    from .llm.remote import probe_server

    return probe_server(spec)


class Engine:
    """The home, its database, the registry, the loaded runtimes, the embedder and the KV
    snapshot store; agents are created, opened and managed through it (exported, imported
    and copied through its `transfer` part, transfer.py)."""

    def __init__(self, config: EngineConfig | None = None, wait: bool = False,
                 runtime_factory: RuntimeFactory | None = None,
                 clock: ctx.Clock = ctx.utc_now, embedder: TextEmbedder | None = None,
                 runtime_wrapper: Callable[[Runtime], Runtime] | None = None):
        self.config = config or EngineConfig.from_environment()
        self.home = self.config.home
        self.wait = wait
        self._runtime_factory = runtime_factory or runtime_for
        self._runtime_wrapper = runtime_wrapper  # instruments every runtime (benchmarks)
        self.clock = clock  # the agents' time (a fixed one makes greedy runs reproducible)
        self._embedder = embedder  # None: the configured model, loaded on first use
        self.models = ModelCatalogue(self.home / "models.toml", lambda: self.registry,
                                     self._reload_registry, self.config.gpu_budget_bytes)
        self.runtimes = RuntimePool(self._load_runtime, self.config.max_loaded_models,
                                    self.config.model_memory_bytes, self._memory_estimate)
        self._db: Store | None = None
        self._open: list[Agent] = []
        self.transfer = AgentTransfer(self)  # export, import and copy agents

    # --- what the engine owns -----------------------------------------------------------
    @cached_property
    def registry(self) -> Registry:
        """The models of models.toml, with the user's $home/models.toml laid over them."""
        return Registry.load(self.home / "models.toml", self.home / "models")

    def _reload_registry(self) -> None:
        self.__dict__.pop("registry", None)

    @property
    def db(self) -> Store:
        """The store (the home's own, its writer lock taken; or PostgreSQL), opened on first
        use."""
        if self._db is None:
            self._db = open_store(self.config, self.wait)
        return self._db

    @property
    def records(self) -> AgentStore:
        """The agent records of the store."""
        return self.db.records()

    @cached_property
    def snapshots(self) -> SnapshotStore:
        """The KV snapshot files (static prefixes, agents' contexts) of every loaded model."""
        return SnapshotStore(self.home / "cache" / "kv", self.config.kv_budget_bytes,
                             self.config.kv_memory_bytes)

    def embedder(self) -> TextEmbedder:
        """The embedding model, loaded on first use (seconds) and shared."""
        if self._embedder is not None:
            return self._embedder
        return load_embedder(self.config.embedding_model, self.config.embedding_precision)

    def _load_runtime(self, spec: ModelSpec, n_ctx: int) -> Runtime:
        spec = self.models.placed(spec, n_ctx)
        runtime = self._runtime_factory(spec, self.snapshots, self.home / "cache" / "grammar",
                                        n_ctx=n_ctx, seed=DEFAULT_SEED)
        return self._runtime_wrapper(runtime) if self._runtime_wrapper else runtime

    def _memory_estimate(self, spec: ModelSpec, n_ctx: int) -> int:
        return memory_estimate(self.models.placed(spec, n_ctx), n_ctx)

    def model_spec(self, alias: str | None = None) -> ModelSpec:
        """A registered model (the default when no alias; a model on disk named by its
        source is added first), with the engine's GPU setting."""
        alias = self.models.alias_for(alias)  # first: adding one reloads the registry
        spec = self.registry.get(alias)
        if self.config.n_gpu_layers is None:
            return spec
        return replace(spec, n_gpu_layers=self.config.n_gpu_layers)

    def runtime(self, alias: str | None = None, n_ctx: int | None = None) -> Runtime:
        """A loaded model (the registry's default when no alias), shared through the pool."""
        spec = self.model_spec(alias)
        self.check_window(spec, n_ctx or spec.n_ctx)
        return self.runtimes.acquire(spec, n_ctx or spec.n_ctx)

    def check_window(self, spec: ModelSpec, n_ctx: int) -> None:
        """Refuse a window larger than the model was trained for (an inference server checks
        its own), unless the entry stretches it; an engine given its own runtime factory (a
        scripted one) runs no model file, so has no trained window to keep to."""
        if spec.server or self._runtime_factory is not runtime_for:
            return
        largest = spec.largest_window(trained_context(spec))
        if largest and n_ctx > largest:
            raise SettingsError(
                f"A window of {n_ctx} tokens is more than '{spec.alias}' can use ({largest}, "
                f"as trained): choose n_ctx {largest} or less, or stretch it with "
                "rope_freq_scale in its models.toml entry (0.5 doubles it).")

    def parallel_slots(self, alias: str | None = None) -> int:
        """How many generations a model's backend runs at once (1 in process, not loaded)."""
        if not self.model_spec(alias).server:
            return 1
        runtime = self.runtime(alias)
        try:
            return runtime.parallel_slots()
        finally:
            self.runtimes.release(runtime)

    def recall_storage(self, name: str) -> RecallStore:
        """An agent's recall storage."""
        return self.db.recall(name)

    def archival_storage(self, name: str, progress: bool = True) -> ArchivalStore:
        """An agent's archival storage (loads the embedding model); close() it when done."""
        return self.db.archival(name, self.embedder(), progress=progress)

    # --- agents -----------------------------------------------------------------------------
    def create_agent(self, name: str, model: str | None = None, n_ctx: int | None = None,
                     persona: str | None = None, human: str | None = None,
                     block_limit: int = DEFAULT_LIMIT, settings: dict | None = None,
                     blocks: dict[str, BlockChange] | None = None
                     ) -> tuple[AgentRecord, list[str]]:
        """Create and store a new agent (settings: any to change from the defaults, such as
        tool_rules and memory_hits, checked first; blocks: more core-memory blocks, or changes
        to persona and human, each with block_limit unless it says); returns it with notes
        for the user."""
        name = self.free_name(name)
        spec = self.model_spec(model)
        defaults = AgentSettings(n_ctx=n_ctx or spec.n_ctx).to_dict() | NEW_AGENT_SETTINGS
        chosen = self._updated_settings(AgentSettings.from_dict(defaults), settings or {})
        self.check_window(spec, chosen.n_ctx)
        core = CoreMemory.default(
            persona if persona is not None else ctx.default_text("persona.txt"),
            human if human is not None else ctx.default_text("human.txt"), block_limit)
        for label, change in (blocks or {}).items():
            core.put(label, replace(change, limit=change.limit or block_limit))
        notes = ctx.fit_block_limits(vocab_counter(spec), name, core, chosen)
        record = AgentRecord(name, spec.alias, stored(chosen), core)
        self.records.save(record)
        return record, notes

    def configure_agent(self, name: str, changes: dict) -> dict:
        """Change some of an agent's settings (tool_rules, memory_hits, ...); all are checked
        before anything is written. Returns the agent's overview."""
        record = self.records.get(name)
        changed = self._updated_settings(AgentSettings.of(record), changes)
        record.settings = stored(changed, AgentState.of(record))
        self.records.save(record)
        return self.show_agent(name)

    def edit_block(self, name: str, label: str, change: BlockChange) -> dict:
        """A user's edit of a core-memory block, or a new block: checked to fit the agent's
        window with every block full, then saved; refused whole otherwise. Returns the
        agent's overview (a server releases the agent first, as for settings)."""
        record = self.records.get(name)
        record.core_memory.put(label, change)
        ctx.check_core_fits(vocab_counter(self.model_spec(record.model)), name,
                            record.core_memory, AgentSettings.of(record))
        self.records.save(record)
        return self.show_agent(name)

    @staticmethod
    def _updated_settings(current: AgentSettings, changes: dict) -> AgentSettings:
        try:
            return current.updated(changes)
        except ValueError as exc:
            raise SettingsError(f"Cannot change the settings: {exc}") from None

    @property
    def holder(self) -> str:
        """How other processes on a shared store name this one, in the leases it holds."""
        return self.config.holder or f"memgpt-local on {socket.gethostname()} " \
            f"(pid {os.getpid()})"

    def open_agent(self, name: str, model: str | None = None) -> Agent:
        """An agent with its runtime (another model alias may be given) and its stores; on a
        shared store, its lease held until close_agent."""
        with ExitStack() as undo:
            self.db.acquire(name, self.holder)
            undo.callback(self.db.release, name)
            record = self.records.get(name)
            spec = self.model_spec(model or record.model)
            problem = self._fit_problem(record, spec)
            if problem:
                raise SettingsError(problem)
            runtime = self.runtimes.acquire(spec, AgentSettings.of(record).n_ctx)
            undo.callback(self.runtimes.release, runtime)
            agent = Agent(record, runtime, self.agent_stores(name), self.clock)
            undo.pop_all()
        self._open.append(agent)
        return agent

    def run_problem(self, record: AgentRecord) -> str | None:
        """Why an agent cannot run (its model missing, a window the model cannot use, or one
        its instructions and core memory fill), in one line; None when it can."""
        try:
            return self._fit_problem(record, self.model_spec(record.model))
        except MemgptLocalError as exc:
            return str(exc)

    def _fit_problem(self, record: AgentRecord, spec: ModelSpec) -> str | None:
        """Why an agent does not fit its window on a model; errors for a window the model
        cannot use or a model that is not there."""
        settings = AgentSettings.of(record)
        self.check_window(spec, settings.n_ctx)
        return ctx.window_problem(vocab_counter(spec), record.name, record.core_memory,
                                  settings)

    def agent_stores(self, name: str) -> AgentStores:
        """An agent's stores: its records, recall, and archival opened when first used."""
        return AgentStores(self.db, name, self.records, self.recall_storage(name),
                           lambda: self.archival_storage(name))

    def close_agent(self, agent: Agent) -> None:
        """Save what the agent needs saved, hand its runtime back to the pool and its lease
        back to the store."""
        try:
            agent.close()
        finally:
            self.runtimes.release(agent.runtime)
            if agent in self._open:
                self._open.remove(agent)
                self.db.release(agent.record.name)

    def recall_messages(self, name: str) -> list:
        """Every message an agent has stored, oldest first."""
        self.records.get(name)
        return self.recall_storage(name).all()

    def last_agent_name(self) -> str | None:
        """The agent used most recently."""
        return self.records.last_used()

    def agent_exists(self, name: str) -> bool:
        """Whether an agent of that name exists."""
        return self.records.exists(name)

    def list_agents(self) -> list[dict]:
        """Every agent with its model, window and sizes, last used first."""
        return self.records.listing()

    def show_agent(self, name: str) -> dict:
        """Model, window, core memory, summary and counts of an agent (no model loaded)."""
        record = self.records.get(name)
        settings = AgentSettings.of(record)
        return {"name": name, "model": record.model, "n_ctx": settings.n_ctx,
                "core_memory": record.core_memory.to_dict(), "summary": record.summary,
                "in_context_messages": len(record.in_context),
                "recall_messages": self.recall_storage(name).count(),
                "archival_passages": self.db.passage_count(name),
                "flushes": AgentState.of(record).flushes,
                "cannot_run": self.run_problem(record),
                "tool_rules": settings.tool_rules, "memory_hits": settings.memory_hits,
                "architecture": settings.architecture,
                "extra_functions": settings.extra_functions}

    def delete_agent(self, name: str) -> None:
        """Delete an agent with its messages, passages, archival index files and context
        snapshots."""
        with self.db.transaction():
            self.records.delete(name)
        self._forget_files(name)

    def free_name(self, name: str, hint: str = "") -> str:
        """A valid name no agent has, with any rows or files a failed import left under it
        removed (AgentExistsError, with the hint, when an agent has it)."""
        if self.records.exists(check_agent_name(name)):
            raise AgentExistsError(f"An agent named '{name}' already exists{hint}.")
        self._clear_leftovers(name)
        return name

    def _clear_leftovers(self, name: str) -> None:
        """Remove rows and index files stored under a name that has no agent (left by a
        failed import of an older version), so a new agent of that name starts empty."""
        with self.db.transaction():
            self.records.delete_orphan_rows(name)
        self._forget_files(name)

    def _forget_files(self, name: str) -> None:
        """Remove the archival index files and context snapshots kept under a name."""
        self.db.forget_files(name)
        self.snapshots.delete_contexts(name)

    def load_documents(self, name: str, paths: list[Path], max_tokens: int = 200,
                       overlap: int = 30, on_passages: Callable[[int], None] | None = None
                       ) -> LoadReport:
        """Put files into an existing agent's archival memory."""
        self.records.get(name)
        prepared = self.prepare_documents(paths, max_tokens, overlap, on_passages,
                                          known=self.db.passage_hashes(name))
        return self.store_documents(name, prepared)

    def prepare_documents(self, paths: list[Path], max_tokens: int = 200, overlap: int = 30,
                          on_passages: Callable[[int], None] | None = None,
                          sources: dict[Path, str] | None = None,
                          known: frozenset[str] | set[str] = frozenset()
                          ) -> PreparedDocuments:
        """Read, split and embed files; touches no store, so a server runs it outside its
        lock (sources: the name each path is stored under; known: the content hashes an
        agent holds, from passage_hashes: not embedded again)."""
        return prepare_documents(paths, self.embedder(), max_tokens, overlap, on_passages,
                                 sources, known)

    def passage_hashes(self, name: str) -> set[str]:
        """The content hashes of an agent's passages (what a load need not embed again)."""
        return self.db.passage_hashes(name)

    def store_documents(self, name: str, prepared: PreparedDocuments) -> LoadReport:
        """Store prepared passages in an agent's archival memory (nothing embedded again)."""
        self.records.get(name)
        archival = self.db.archival(name, EmbeddedAhead(self.embedder(), prepared))
        try:
            return store_documents(prepared, archival)
        finally:
            archival.close()

    def doctor(self) -> dict:
        """The machine as llama.cpp sees it, and each registered model: present or how to get
        it, its GPU offload and threads."""
        models = []
        for alias in sorted(self.registry.specs):
            spec = self.model_spec(alias)
            path = spec.expected_path()
            present = bool(path and path.is_file())
            models.append({"alias": alias, "present": present,
                           "path": str(path) if present else None,
                           "how_to_get": None if present else spec.how_to_get(),
                           "n_gpu_layers": spec.n_gpu_layers, "threads": spec.threads(),
                           "tool_format": tool_format_name(spec) if present else None,
                           "adapter": adapter_report(spec),
                           "server": _server_report(spec)})
        found = self.models.scan()
        chosen = suggestion(found.models)
        return {**hardware_report(), "home": str(self.home),
                "store": self.config.store and redact_url(self.config.store), "models": models,
                "found": [m.as_dict() for m in found.models], "found_skipped": found.skipped,
                "suggested": chosen.as_dict() if chosen else None}

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close every open agent, unload every runtime and close the database."""
        for agent in list(self._open):
            self.close_agent(agent)
        if "snapshots" in self.__dict__:
            self.snapshots.flush()  # the contexts kept in memory, for the next process
        self.runtimes.close()
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
