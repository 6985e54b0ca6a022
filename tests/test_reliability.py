"""Defects found by testing (issue 10): each test failed before its fix."""

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeRuntime, HashingEmbedder, call
from test_agent import fake_stores, make_agent
from test_cli_agents import invoke

from memgpt_local.agent.loop import Agent
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.errors import ContextOverflowError, MemgptLocalError
from memgpt_local.llm.kvcache import SnapshotStore
from memgpt_local.memory.agents import AgentRecord, AgentStore
from memgpt_local.memory.archival import ArchivalStorage
from memgpt_local.memory.core import CoreMemory
from memgpt_local.memory.database import Database
from memgpt_local.memory.embedded import EmbeddedStore
from memgpt_local.memory.recall import Message, RecallStorage


@contextmanager
def deadline(seconds: int):
    """Fail (instead of hanging the run) when the block takes longer than `seconds`."""
    def expire(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_fixed_part_that_does_not_fit_fails_at_once_with_what_to_change(tmp_path):
    db = EmbeddedStore(tmp_path)
    full = "Something remembered about the user. " * 54  # about 2,000 characters a block
    AgentStore(db.con).save(AgentRecord("big", "fake", {"n_ctx": 1024},
                                        CoreMemory.default(full[:2000], full[:2000])))
    agent = Agent(AgentStore(db.con).get("big"),
                  FakeRuntime(lambda m: call("send_message", message="hi"), 1024),
                  fake_stores(db, "big"))
    with deadline(20), pytest.raises(ContextOverflowError) as raised:
        agent.send("hello " * 300)
    message = str(raised.value)
    assert "1024" in message and "--n-ctx" in message and "core memory" in message


def _fail_when_storing_results(agent: Agent) -> None:
    """Make the step's transaction roll back after its function ran (as Ctrl-C would)."""
    append = agent.recall.append

    def interrupted(message):
        if message.role == "function_result":
            raise KeyboardInterrupt
        return append(message)

    agent.recall.append = interrupted


def _memory_state(agent: Agent) -> dict:
    """The agent's state without the digests of the last prompt it was shown (a rolled-back
    step was still shown its prompt)."""
    return {k: v for k, v in agent.state.to_dict().items() if k != "last_prompt"}


def _index_ids(agent: Agent) -> list[int]:
    return sorted(agent.archival.index.get_ids_list())


STEPS = {
    "archival insert": call("archival_memory_insert", content="The ghost passage.",
                            request_heartbeat=False),
    "core append": call("core_memory_append", label="human", content="Likes ghosts.",
                        request_heartbeat=False),
}


@pytest.mark.parametrize("step", STEPS)
def test_a_rolled_back_step_changes_nothing_in_memory_or_in_the_index(tmp_path, step):
    agent = make_agent(tmp_path, [call("send_message", message="Hi."), STEPS[step],
                                  call("send_message", message="Still here.")])
    agent.archival.insert(["A passage stored before."])
    agent.send("hello")  # first login and this message are stored and committed
    before = (agent.core.to_dict(), [m.id for m in agent.queue], agent.recall.count(),
              _memory_state(agent))
    _fail_when_storing_results(agent)
    with pytest.raises(KeyboardInterrupt):
        agent.send("save this")
    del agent.recall.append
    user_message = agent.queue[-1]  # the event was committed before the step
    assert user_message.content == "save this" and agent.record.in_context == [
        m.id for m in agent.queue]
    assert (agent.core.to_dict(), [m.id for m in agent.queue[:-1]], agent.recall.count() - 1,
            _memory_state(agent)) == before
    page = agent.archival.search("ghost passage", page=1)
    assert page.total == 1 and "ghost" not in page.items[0]["content"]
    assert agent.archival.count() == 1 and len(_index_ids(agent)) == 1
    agent.close()
    reopened = ArchivalStorage(agent.stores.db.con, "sam", tmp_path / "archival",
                               HashingEmbedder(), progress=False)
    assert sorted(reopened.index.get_ids_list()) == [1]
    assert agent.send("are you there?").replies == ["Still here."]


def test_opening_an_archive_drops_ids_duckdb_lacks_and_adds_rows_the_index_lacks(tmp_path):
    db = Database(tmp_path)
    archival = ArchivalStorage(db.con, "ann", tmp_path / "idx", HashingEmbedder(), False)
    (first,) = archival.insert(["first passage"])
    archival.index.add_items(HashingEmbedder().embed(["ghost passage"]), np.array([99]))
    archival.close()  # saved holding a ghost (99) that DuckDB never had
    crashed = ArchivalStorage(db.con, "ann", tmp_path / "idx", HashingEmbedder(), False)
    (second,) = crashed.insert(["second passage"])  # stored, but this index is never saved
    reopened = ArchivalStorage(db.con, "ann", tmp_path / "idx", HashingEmbedder(), False)
    assert not reopened.rebuilt
    assert sorted(reopened.index.get_ids_list()) == sorted([first, second, 99])  # 99 deleted
    found = reopened.search("passage", mode="vector", page_size=10)
    assert sorted(p["id"] for p in found.items) == [first, second] and found.total == 2


def test_archival_storage_is_opened_outside_the_steps_transaction(tmp_path):
    opened_in_transaction = []
    db = EmbeddedStore(tmp_path)
    AgentStore(db.con).save(AgentRecord("sam", "fake", {"n_ctx": 2048}, CoreMemory.default()))
    stores = fake_stores(db, "sam")
    open_archival = stores._open_archival

    def spy():
        try:
            db.con.begin()  # DuckDB refuses a nested transaction
            db.con.rollback()
            opened_in_transaction.append(False)
        except Exception:
            opened_in_transaction.append(True)
        return open_archival()

    stores._open_archival = spy
    agent = Agent(AgentStore(db.con).get("sam"), FakeRuntime([call(
        "archival_memory_search", query="anything", page=1, request_heartbeat=False)]), stores)
    agent.send("look it up")
    assert opened_in_transaction == [False]


# --- agents import: validated first, then all or nothing ------------------------------------
def _exported_agent(home: Path) -> tuple[dict, Path]:
    """An agent with messages and a passage, exported to a file; returns the document too."""
    with Engine(EngineConfig(home), runtime_factory=lambda *a, **k: FakeRuntime(
            lambda m: call("send_message", message="Hello Ann."), k["n_ctx"])) as engine:
        engine.create_agent("ann", "smollm2-135m", 2048)
        engine.open_agent("ann").send("I am Ann and I like sailing.")
        archival = engine.archival_storage("ann", progress=False)
        archival.insert(["Ann sails a small boat called Petrel."])
        archival.close()
        path = home / "ann.json"
        engine.transfer.export_agent("ann", path)
    return json.loads(path.read_text()), path


def _home_rows(home: Path) -> tuple:
    with Database(home) as db:
        return tuple(db.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("agents", "messages", "passages"))


def _mangled(document: dict) -> dict[str, dict]:
    cases = {}
    for name, change in {
        "unknown top key": lambda d: d.update(extra=1),
        "newer version": lambda d: d.update(version=2),
        "missing agent field": lambda d: d["agent"].pop("summary"),
        "block over its limit": lambda d: d["agent"]["core_memory"]["human"].update(limit=3),
        "window out of range": lambda d: d["agent"]["settings"].update(n_ctx=10),
        "unknown setting": lambda d: d["agent"]["settings"].update(turbo=True),
        "context names a missing message": lambda d: d["agent"]["in_context_seqs"].append(999),
        "bad role": lambda d: d["messages"][-1].update(role="root"),
        "bad date": lambda d: d["messages"][0].update(created_at="yesterday"),
        "passage without content": lambda d: d["passages"][0].pop("content"),
        "name with a slash": lambda d: d["agent"].update(name="../ann"),
    }.items():
        copy = json.loads(json.dumps(document))
        change(copy)
        cases[name] = copy
    return cases


def test_a_bad_agent_file_is_refused_whole_with_one_line(tmp_path):
    document, path = _exported_agent(tmp_path / "source")
    home = tmp_path / "target"
    files = {name: json.dumps(doc) for name, doc in _mangled(document).items()}
    files["truncated"] = path.read_text()[: len(path.read_text()) // 2]
    files["not JSON"] = "\x00\xff binary"
    before = _home_rows(home)
    for case, text in files.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with Engine(EngineConfig(home)) as engine, pytest.raises(MemgptLocalError) as raised:
            engine.transfer.import_agent(bad)
        assert "\n" not in str(raised.value) and str(bad) in str(raised.value), case
        assert _home_rows(home) == before, case


def test_an_interrupted_import_leaves_nothing_and_a_second_import_no_duplicates(
        tmp_path, monkeypatch):
    document, path = _exported_agent(tmp_path / "source")
    home = tmp_path / "target"
    original_insert = ArchivalStorage.insert

    def interrupted(self, *args, **kwargs):
        original_insert(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C after messages, record and passages were written

    monkeypatch.setattr(ArchivalStorage, "insert", interrupted)
    with Engine(EngineConfig(home)) as engine, pytest.raises(KeyboardInterrupt):
        engine.transfer.import_agent(path)
    assert _home_rows(home) == (0, 0, 0)
    monkeypatch.setattr(ArchivalStorage, "insert", original_insert)
    with Engine(EngineConfig(home)) as engine:
        record = engine.transfer.import_agent(path)
        assert engine.show_agent("ann")["recall_messages"] == len(document["messages"])
        archival = engine.archival_storage("ann", progress=False)
        assert sorted(archival.index.get_ids_list()) == [
            row[0] for row in engine.db.con.execute("SELECT id FROM passages").fetchall()]
        archival.close()
        assert len(record.in_context) == len(document["agent"]["in_context_seqs"])


def test_load_creates_a_whole_agent_through_the_one_creation_path(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Ann keeps bees on the roof of her flat in Leeds.")
    home = tmp_path / "home"
    assert invoke(home, "load", str(notes), "--agent", "bees").exit_code == 0
    listing = invoke(home, "agents", "list")
    assert listing.exit_code == 0 and "bees" in listing.output
    info = json.loads(invoke(home, "agents", "show", "bees", "--json").output)
    assert info["n_ctx"] == 8192 and info["archival_passages"] == 1
    assert info["core_memory"]["persona"]["value"]  # the default persona, like any new agent


COMMON = ["hello", "first", "new", "thanks", "know", "want", "seven", "sorry", "help"]


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "newer than the index"])
def test_recall_search_finds_common_words(tmp_path, indexed):
    db = Database(tmp_path)
    recall = RecallStorage(db.con, "ann")
    filler = [Message("user", f"We talked about topic number {i} today.") for i in range(30)]
    said = [Message("user", "Hello! Thanks for the help, sorry I am new here."),
            Message("user", "I want a dog, you know, the first of seven I would like.")]
    if indexed:
        recall.bulk_import(filler[:15] + said + filler[15:])
        recall.rebuild_text_index()
    else:
        recall.bulk_import(filler)
        recall.rebuild_text_index()
        recall.bulk_import(said)  # newer than the index
    for word in COMMON:
        found = recall.search_text(word, page_size=50).items
        assert found and all(word in m.content.lower() for m in found), word
    best = recall.search_text("when did I first say I want a dog?").items[0]
    assert best.content.startswith("I want a dog")


def test_the_lock_file_is_never_followed_through_a_link(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate me")
    home = tmp_path / "home"
    home.mkdir()
    (home / "memgpt.lock").symlink_to(victim)
    with pytest.raises(MemgptLocalError, match="link"):
        Database(home)
    assert victim.read_text() == "do not truncate me"


def test_temporaries_left_by_a_crash_are_swept(tmp_path):
    dead = _finished_pid()
    kv, index_dir = tmp_path / "kv", tmp_path / "archival"
    for directory in (kv, index_dir):
        directory.mkdir()
        (directory / f"abc.kv.tmp{dead}").write_bytes(b"half a snapshot")
        (directory / f"abc.kv.tmp{os.getpid()}").write_bytes(b"being written now")
    SnapshotStore(kv)
    ArchivalStorage(Database(tmp_path / "home").con, "ann", index_dir, HashingEmbedder(), False)
    for directory in (kv, index_dir):
        assert sorted(p.name for p in directory.glob("*.tmp*")) == [f"abc.kv.tmp{os.getpid()}"]


def _finished_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_database_from_a_newer_version_is_refused_unchanged(tmp_path):
    with Database(tmp_path) as db:
        db.con.execute("INSERT INTO migrations (version, name) VALUES (99, '_m099_future')")
    before = (tmp_path / "memgpt.duckdb").read_bytes()
    with pytest.raises(MemgptLocalError, match="schema version 99.*knows schema"):
        Database(tmp_path)
    assert (tmp_path / "memgpt.duckdb").read_bytes() == before
    with pytest.raises(MemgptLocalError):  # and the lock was released: the error again
        Database(tmp_path)


def test_read_only_commands_say_who_holds_the_home_and_wait_for_it(tmp_path):
    invoke(tmp_path, "agents", "create", "ann")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from memgpt_local.memory.database import Database; d = Database(Path(sys.argv[1])); "
         "print('ready', flush=True); time.sleep(3)", str(tmp_path), "chat"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for command in (["agents", "list"], ["agents", "show", "ann"]):
            refused = invoke(tmp_path, *command)
            assert refused.exit_code == 1 and "Traceback" not in refused.output
            assert f"pid {holder.pid}" in refused.output and "chat" in refused.output
            assert "--wait" in refused.output
        waited = invoke(tmp_path, "agents", "show", "ann", "--wait")
        assert waited.exit_code == 0 and "ann" in waited.output
    finally:
        holder.kill()
        holder.wait()


def test_streamed_text_of_a_failed_call_is_withdrawn(tmp_path, capsys):
    from memgpt_local.cli.chat import _listener

    cut_off = call("send_message", message="Half a reply that never")[:-8]
    agent = make_agent(tmp_path, [cut_off, call("send_message", message="The whole reply.")])
    events = []
    listen = _listener(quiet=True, name="sam")
    turn = agent.send("hi", lambda event: (events.append(event.name), listen(event)))
    assert turn.replies == ["The whole reply."]
    assert events.index("withdraw") < events.index("step") < len(events) - 1
    assert [k for k in events if k != "reply"] == ["withdraw", "step", "step"]
    shown = capsys.readouterr().out
    assert shown.index("Half a reply") < shown.index("[withdrawn") < shown.index("The whole")


@pytest.mark.parametrize("text", ["", "  \n ", "word " * 1500, "x" * 100_000, "hi\x00there",
                                  "lone \ud800 half"])
def test_empty_too_long_or_unstorable_messages_are_refused_with_nothing_stored(tmp_path, text):
    from memgpt_local.agent.loop import MessageError

    agent = make_agent(tmp_path, [call("send_message", message="Hi.")])
    with pytest.raises(MessageError,
                       match="empty|too long for the 2048-token window|no store can hold"):
        agent.send(text)
    assert agent.recall.count() == 0 and agent.queue == []


def test_words_in_most_messages_only_count_when_nothing_rarer_is_asked(tmp_path):
    recall = RecallStorage(Database(tmp_path).con, "ann")
    recall.bulk_import([Message("user", f"the weather on day {i}") for i in range(30)]
                       + [Message("user", "the dog barked")])
    recall.rebuild_text_index()
    assert [m.content for m in recall.search_text("the dog").items] == ["the dog barked"]
    assert recall.search_text("the").total == 31
    assert recall.search_text("?!").total == 0  # no word at all: a substring search
