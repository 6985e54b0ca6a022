"""Per-agent context snapshots: an agent's whole KV state survives the process, on the real
model; and the snapshot store's byte budget, least recently used first."""

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.llm.kvcache import SnapshotStore, shared_prefix
from memgpt_local.llm.runtime import ModelRuntime

CLOCK = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
N_CTX = 4096
MESSAGES = ["Hi! I am Dana, I live in Porto and I teach chemistry at a secondary school.",
            "What do you remember about my job?",
            "Also, I have a dog called Miso who loves the beach."]


def engine(home: Path, **config) -> Engine:
    """An engine on a home with a fixed clock, so greedy runs repeat exactly."""
    return Engine(EngineConfig(home, **config), clock=lambda: CLOCK)


def send_in_new_engine(home: Path, text: str, **config):
    """One message through a fresh engine: a new runtime whose KV cache holds nothing."""
    with engine(home, **config) as eng:
        if not eng.agent_exists("dana"):
            eng.create_agent("dana", "smollm2-135m", N_CTX)
        return eng.open_agent("dana").send(text)


def calls(turn) -> list:
    return [(s.thoughts, s.function, s.arguments, s.result) for s in turn.steps]


def context_files(home: Path) -> list[Path]:
    return sorted((home / "cache" / "kv").glob("agent-*.kv"))


@pytest.fixture(scope="module")
def conversations(tmp_path_factory):
    """The same three messages sent in one process, and with a new engine for each."""
    one_home, restart_home = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("restart")
    with engine(one_home) as eng:
        eng.create_agent("dana", "smollm2-135m", N_CTX)
        agent = eng.open_agent("dana")
        in_one = [agent.send(text) for text in MESSAGES]
    restarted = [send_in_new_engine(restart_home, text) for text in MESSAGES]
    return in_one, restarted, restart_home


@pytest.fixture
def resumed_home(conversations, tmp_path) -> Path:
    """A copy of the restarted conversation's home, for a test to change."""
    return Path(shutil.copytree(conversations[2], tmp_path / "home"))


@pytest.fixture
def spy(monkeypatch) -> list:
    """The (tokens, prefix_len) of every agent step the real runtime generates."""
    seen = []
    original = ModelRuntime.generate

    def generate(self, tokens, *args, **kwargs):
        if kwargs.get("context"):
            seen.append((list(tokens), kwargs["prefix_len"]))
        return original(self, tokens, *args, **kwargs)

    monkeypatch.setattr(ModelRuntime, "generate", generate)
    return seen


def test_a_new_process_resumes_from_the_agents_context_snapshot(conversations):
    in_one, restarted, home = conversations
    assert len(context_files(home)) == 1
    assert all(t.saved_context and t.saved_context.bytes > 0 for t in restarted)
    for turn, warm in zip(restarted[1:], in_one[1:], strict=True):
        first = turn.steps[0].stats
        assert first.prefix_source == "context"
        # exactly what the same process evaluates with its cache kept
        assert first.evaluated_tokens == warm.steps[0].stats.evaluated_tokens
        assert first.evaluated_tokens < first.prompt_tokens / 4


def test_greedy_steps_after_a_restore_equal_the_same_process(conversations):
    in_one, restarted, _ = conversations
    assert [calls(t) for t in restarted] == [calls(t) for t in in_one]


def test_edited_core_memory_keeps_only_the_shared_part(resumed_home, spy):
    snapshot_tokens = _snapshot_tokens(resumed_home)
    with engine(resumed_home) as eng:
        record = eng.records.get("dana")
        record.core_memory.blocks["human"].value += "\nDana's favourite colour is green."
        eng.records.save(record)
    turn = send_in_new_engine(resumed_home, "Which colour do I like?")
    tokens, prefix_len = spy[0]
    stats = turn.steps[0].stats
    shared = shared_prefix(snapshot_tokens, tokens)
    assert prefix_len < shared < len(snapshot_tokens)
    # never more than the static-prefix path costs, never more reuse than is really shared
    assert len(tokens) - shared <= stats.evaluated_tokens <= len(tokens) - prefix_len
    assert stats.prefix_source == "context"
    assert _snapshot_tokens(resumed_home)[:len(tokens)].tolist() == tokens


def test_a_snapshot_of_another_window_is_not_used(resumed_home):
    with engine(resumed_home) as eng:
        record = eng.records.get("dana")
        record.settings["n_ctx"] = 2048
        eng.records.save(record)
    turn = send_in_new_engine(resumed_home, MESSAGES[1])
    assert turn.steps[0].stats.prefix_source == "cold"
    assert len(context_files(resumed_home)) == 2  # one for each window


@pytest.mark.parametrize("damage", ["flipped", "garbage", "truncated"])
def test_a_damaged_snapshot_is_removed_and_the_prefix_path_taken(resumed_home, spy, damage):
    path = context_files(resumed_home)[0]
    data = bytearray(path.read_bytes())
    if damage == "flipped":
        data[-5000:-4990] = bytes(b ^ 0xFF for b in data[-5000:-4990])
    path.write_bytes({"flipped": bytes(data), "garbage": b"garbage",
                      "truncated": bytes(data[: len(data) // 2])}[damage])
    turn = send_in_new_engine(resumed_home, MESSAGES[1])
    tokens, prefix_len = spy[0]
    stats = turn.steps[0].stats
    assert stats.prefix_source in ("restored", "warm")
    assert stats.evaluated_tokens == len(tokens) - prefix_len
    store = SnapshotStore(path.parent)
    header = store.header(path, _model_key(path))  # rewritten whole at the turn's end
    assert header is not None and store.data(header) is not None


def test_budget_zero_keeps_no_snapshot(resumed_home):
    turn = send_in_new_engine(resumed_home, MESSAGES[1], kv_budget_bytes=0)
    assert turn.steps[0].stats.prefix_source == "cold"
    assert turn.saved_context is None
    assert list((resumed_home / "cache" / "kv").glob("*.kv")) == []


def test_deleting_an_agent_deletes_its_context_snapshots(resumed_home):
    kv = resumed_home / "cache" / "kv"
    assert {p.name.startswith("agent-") for p in kv.glob("*.kv")} == {True, False}
    with engine(resumed_home) as eng:
        eng.delete_agent("dana")
    assert context_files(resumed_home) == []
    assert list(kv.glob("*.kv"))  # the static prefix's snapshot serves other agents


def _snapshot_tokens(home: Path):
    path = context_files(home)[0]
    return SnapshotStore(path.parent).header(path, _model_key(path)).tokens


def _model_key(path: Path) -> str:
    import json

    raw = path.read_bytes()
    length = int.from_bytes(raw[8:12], "little")
    return json.loads(raw[12:12 + length])["model_key"]


# --- the store's budget, without a model ---------------------------------------------------
OPERATIONS = st.lists(st.tuples(st.sampled_from(["write", "use"]), st.integers(0, 5),
                                st.integers(1, 120)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(budget=st.integers(0, 400), operations=OPERATIONS)
def test_the_store_keeps_the_most_recently_used_files_that_fit(tmp_path_factory, budget,
                                                               operations):
    store = SnapshotStore(tmp_path_factory.mktemp("kv"), budget)
    scratch = SnapshotStore(tmp_path_factory.mktemp("scratch"), 10**9)  # measures file sizes
    sizes: dict[str, int] = {}
    order: list[str] = []  # least recently used first
    for action, number, size in operations:
        name = f"agent{number}"
        path = store.context_file("model", name)
        if action == "write":
            data = memoryview(bytes(size))
            store.write(path, "model", [1, 2, 3], data)
            sizes[name] = scratch.write(scratch.context_file("model", name), "model",
                                        [1, 2, 3], data)
            order = [n for n in order if n != name]
            if sizes[name] <= budget:  # a file over the whole budget is not kept at all
                order.append(name)
        elif action == "use" and name in sizes:
            header = store.header(path, "model")
            assert header is not None and store.data(header) is not None
            order = [n for n in order if n != name] + [name]
        total = 0
        for position, kept in enumerate(reversed(order)):
            total += sizes[kept]
            if total > budget:
                order = order[len(order) - position:]
                break
        sizes = {n: sizes[n] for n in order}
        assert {p.name for p in store.directory.glob("*.kv")} == {
            store.context_file("model", n).name for n in order}
        assert store.total_bytes() <= budget


# --- one model, many agents -----------------------------------------------------------------
def test_every_agent_of_a_model_shares_one_static_prefix(tmp_path):
    with engine(tmp_path) as eng:
        for name in ("ada", "bob"):
            eng.create_agent(name, "smollm2-135m", N_CTX)
        first = eng.open_agent("ada").send(MESSAGES[0])
        second = eng.open_agent("bob").send(MESSAGES[0])
    assert first.steps[0].stats.prefix_source == "cold"
    assert second.steps[0].stats.prefix_source == "warm"  # ada's prefix serves bob
    prefixes = [p for p in (tmp_path / "cache" / "kv").glob("*.kv")
                if not p.name.startswith("agent-")]
    assert len(prefixes) == 1


def test_switching_agents_restores_contexts_kept_in_memory(tmp_path):
    with engine(tmp_path, kv_memory_bytes=2 * 1024**3) as eng:
        agents = {}
        for name in ("ada", "bob"):
            eng.create_agent(name, "smollm2-135m", N_CTX)
            agents[name] = eng.open_agent(name)
        turns = [agents[name].send(text) for text in MESSAGES[:2] for name in ("ada", "bob")]
        assert context_files(tmp_path) == []  # both contexts fit in memory
        assert eng.snapshots.memory_bytes() == sum(t.saved_context.bytes for t in turns[2:])
    assert len(context_files(tmp_path)) == 2  # written to disk when the engine closed
    for switch in turns[2:]:  # ada after bob, bob after ada
        step = switch.steps[0]
        assert step.stats.prefix_source == "context"
        assert step.stats.evaluated_tokens <= 1.2 * step.new_tokens


MEMORY_OPERATIONS = st.lists(st.tuples(st.integers(0, 4), st.integers(1, 100)), max_size=30)


@settings(max_examples=100, deadline=None)
@given(memory=st.integers(0, 300), operations=MEMORY_OPERATIONS)
def test_contexts_beyond_the_memory_budget_spill_to_disk(tmp_path_factory, memory, operations):
    store = SnapshotStore(tmp_path_factory.mktemp("kv"), 10**9, memory)
    latest: dict[str, bytes] = {}
    for number, size in operations:
        name, data = f"agent{number}", bytes([number]) * size
        store.keep(store.context_file("model", name), "model", [number] * 3,
                   memoryview(bytearray(data)))
        latest[name] = data
        assert store.memory_bytes() <= memory
    for phase in ("before", "after flush"):
        for name, data in latest.items():  # the latest snapshot of each, in memory or on disk
            header = store.header(store.context_file("model", name), "model")
            assert header is not None, (phase, name)
            assert bytes(store.data(header)) == data
            assert header.tokens.tolist() == [int(name[-1])] * 3
        store.flush()
    assert store.memory_bytes() == 0
    assert len(list(store.directory.glob("agent-*.kv"))) == len(latest)


def test_a_flush_in_a_new_process_summarises_over_the_restored_snapshot(tmp_path):
    # the first step of a resumed agent that must flush asks for its summary at the end of
    # the main context: that call restores the agent's snapshot as a step would, and reads
    # little beyond the new text: the message, the memory brought to it, the pressure alert,
    # the request, and the last turn again behind its memory entry, put away when it ended
    # (it once read the whole window again: 1,824 tokens); one flush makes room for them
    with engine(tmp_path) as eng:
        eng.create_agent("dana", "smollm2-135m", 2048)
        agent = eng.open_agent("dana")
        for text in MESSAGES:
            agent.send(text)
    with engine(tmp_path) as eng:
        agent = eng.open_agent("dana")
        # about half the window: it flushes however long the replies before it were (30
        # copies did only while SmolLM2's replies repeated their paragraphs)
        copies = agent.runtime.n_ctx // 2 // agent.runtime.count_tokens(MESSAGES[0] + " ")
        long_message = " ".join([MESSAGES[0]] * copies)
        size = agent.runtime.count_tokens(long_message)
        assert 500 <= size <= agent.runtime.n_ctx // 2
        turn = agent.send(long_message)
        brought = agent.runtime.count_tokens(turn.memory or "")
    first = turn.steps[0]
    assert first.flushed and agent.state.flushes == 1
    assert 0 < first.summary_eval_tokens <= size + brought + 300
