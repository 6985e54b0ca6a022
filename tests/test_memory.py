"""Memory tiers through the real parts: DuckDB files, hnswlib index, the real embedding model."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes import HashingEmbedder
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.memory.agents import AgentRecord
from memgpt_local.memory.archival import ArchivalStorage
from memgpt_local.memory.core import BlockChange, CoreMemory, CoreMemoryError
from memgpt_local.memory.database import MIGRATIONS, Database, HomeLockedError
from memgpt_local.memory.documents import split_passages
from memgpt_local.memory.keywords import KeywordIndex
from memgpt_local.memory.recall import Message, RecallStorage


@pytest.fixture(scope="module")
def embedder():
    from memgpt_local.memory.embeddings import load_embedder

    return load_embedder()


@pytest.fixture()
def db(tmp_path):
    with Database(tmp_path) as database:
        yield database


def test_migrations_are_recorded_and_idempotent(tmp_path):
    with Database(tmp_path) as first:
        versions = first.con.execute("SELECT version FROM migrations ORDER BY 1").fetchall()
        assert [v for (v,) in versions] == list(range(1, len(MIGRATIONS) + 1))
    with Database(tmp_path) as second:
        assert second.version == len(MIGRATIONS)


def test_second_writer_gets_a_clear_error(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from memgpt_local.memory.database import Database; d = Database(Path(sys.argv[1])); "
         "print('ready', flush=True); time.sleep(30)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(HomeLockedError, match=f"pid {holder.pid}"):
            Database(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    with Database(tmp_path, wait=True, timeout_s=5):
        pass


def test_agent_record_round_trip(store):
    records = store.records()
    agent = AgentRecord("ann", "smollm2-135m", {"n_ctx": 2048},
                        CoreMemory.default("I am a helper.", "Ann likes tea."), "old talk", [3, 4])
    records.save(agent)
    loaded = records.get("ann")
    assert loaded == agent
    with pytest.raises(Exception, match="Agents: ann"):
        records.get("zed")
    assert records.listing()[0] | {"updated_at": None} == {
        "name": "ann", "model": "smollm2-135m", "n_ctx": "2048", "messages": 0, "passages": 0,
        "updated_at": None}


def test_core_memory_limits_and_errors_read_well():
    memory = CoreMemory.default("persona text", "", limit=40)
    memory.append("human", "Name: Ann")
    assert memory.block("human").value == "Name: Ann"
    memory.replace("human", "Ann", "Anna")
    assert memory.block("human").value == "Name: Anna"
    with pytest.raises(CoreMemoryError, match="Text not found in 'human'"):
        memory.replace("human", "Bob", "Rob")
    with pytest.raises(CoreMemoryError,
                       match=r"'persona' would have 53 characters; its limit is 40"):
        memory.append("persona", "x" * 40)
    with pytest.raises(CoreMemoryError, match="Blocks: persona, human"):
        memory.append("goals", "x")
    assert CoreMemory.from_dict(memory.to_dict()) == memory


def test_a_question_finds_its_answer_in_a_small_recall(store):
    recall = store.recall("ann")
    for text in ["Hello there", "My dog is called Biscuit", "Noted.", "How are you?"]:
        recall.append(Message("user", text))
    recall.rebuild_text_index()
    # every word the index holds is in more than a tenth of its 4 rows, "what" in none
    found = recall.search_text("What is my dog called?").items
    assert found and found[0].content == "My dog is called Biscuit"


CHAT = ["The weather was grey and windy all day today.", "I finally fixed the squeaky door.",
        "The library near my office is closing for repairs.", "My train is late again.",
        "I spent the afternoon sorting my old photographs.", "The soup is on the stove.",
        "That is lovely, I am glad the day went well.", "My neighbour is playing the piano."]


def test_a_question_finds_a_fact_said_before_the_words_that_followed_it(store):
    # a chat's index is built at its first search; what is said after it must be weighed by
    # how often it is said, not as the rarest word of all
    recall = store.recall("ann")
    recall.append(Message("user", "I have a cat named Miso."))
    assert recall.search_text("Miso").items  # the first search: the index is built here
    for text in CHAT * 3:
        recall.append(Message("user", text))
    found = recall.search_text("What is the name of my cat?").items
    assert found[0].content == "I have a cat named Miso."


def _scores(recall, word: str) -> dict[int, float]:
    index = recall.text_index
    sql = index.scores_sql(index.query_stems(word), index.indexed_up_to())
    return dict(recall.con.execute(sql).fetchall())


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(["cat", "the", "my", "miso", "is", "walk"]),
                               min_size=1, max_size=6).map(" ".join), min_size=2, max_size=25),
       indexed_share=st.floats(0.0, 1.0), word=st.sampled_from(["cat", "the", "miso", "walk"]))
def test_rows_newer_than_the_index_score_as_if_it_held_them(texts, indexed_share, word):
    with tempfile.TemporaryDirectory() as home, Database(Path(home)) as database:
        recall = RecallStorage(database.con, "ann")
        indexed = max(1, int(len(texts) * indexed_share))
        for text in texts[:indexed]:
            recall.append(Message("user", text))
        recall.rebuild_text_index()
        for text in texts[indexed:]:
            recall.append(Message("user", text))
        stale = _scores(recall, word)
        recall.rebuild_text_index()
        fresh = _scores(recall, word)
    assert stale.keys() == fresh.keys()
    assert all(stale[i] == pytest.approx(fresh[i]) for i in fresh)


def test_recall_search_by_text_date_and_pages(store):
    recall = store.recall("ann")
    start = datetime(2023, 5, 1, 9, tzinfo=UTC)
    imported = recall.bulk_import([Message("user" if i % 2 else "assistant",
                                           f"day {i} we talked about gardening and roses",
                                           created_at=start + timedelta(days=i))
                                   for i in range(30)])
    assert imported == 30 and recall.count() == 30
    recall.rebuild_text_index()
    recall.append(Message("user", "My cat is called Whiskers"))  # after the index build
    page = recall.search_text("Whiskers")
    assert [m.content for m in page.items] == ["My cat is called Whiskers"]
    found = recall.search_text("day 4 roses", page_size=30).items
    replies = recall.next_messages(found)
    assert all(replies[m.id].seq == m.seq + 1 for m in found if m.seq < 30)
    assert replies[found[0].id].content.startswith("day 5 ")  # "day 4" ranks first
    assert recall.next_messages(page.items) == {}  # the newest message has none yet
    first = recall.search_text("roses", page=1, page_size=7)
    assert first.header() == "page 1 of 5, total 30"
    last = recall.search_text("roses", page=5, page_size=7)
    assert len(last.items) == 2
    dated = recall.search_date("2023-05-03", "2023-05-05")
    assert [m.created_at.date().isoformat() for m in dated.items] == [
        "2023-05-03", "2023-05-04", "2023-05-05"]
    assert [m.seq for m in dated.items] == [3, 4, 5]
    with pytest.raises(ValueError, match="ISO date"):
        recall.search_date("yesterday", "2023-05-05")


def test_archival_dedup_modes_delete_and_rebuild(store, embedder):
    keys = [f"{i:08x}-1111-2222-3333-{i * 7919:012x}" for i in range(50)]
    archival = store.archival("ann", embedder, progress=False)
    assert archival.search("anything").items == []
    ids = archival.insert([f"key {k} holds value v{i}" for i, k in enumerate(keys)]
                          + ["Ann loves hiking in the Alps."])
    assert len(ids) == 51
    assert archival.insert(["Ann loves hiking in the Alps."]) == []
    assert archival.search(keys[7], mode="keyword").items[0]["content"].endswith("v7")
    assert archival.search(keys[7]).items[0]["content"].endswith("v7")  # hybrid default
    vector = archival.search("mountain walks", mode="vector", page_size=100)
    assert vector.items[0]["content"] == "Ann loves hiking in the Alps."
    assert len(vector.items) == 51  # k clamped to the number of passages
    assert archival.delete(ids[:1]) == 1 and archival.count() == 50
    if store.kind == "embedded":
        archival.index_path.write_bytes(b"corrupt")
    reopened = store.archival("ann", embedder, progress=False)
    assert reopened.rebuilt == (store.kind == "embedded") and reopened.count() == 50
    assert reopened.search(keys[9]).items[0]["content"].endswith("v9")
    assert all(not p["content"].endswith("v0") for p in reopened.search(keys[0]).items)


def test_keyword_search_inside_an_open_transaction(store, embedder):
    """An agent step runs in a transaction: both search modes still find what is committed."""
    archival = store.archival("ann", embedder, progress=False)
    archival.insert(["Pepper is Ann's cat.", "Ann works night shifts at the hospital."])
    with store.transaction():
        assert [p["content"] for p in archival.search("cat", mode="keyword").items] == [
            "Pepper is Ann's cat."]
        assert archival.search("night shifts").items[0]["content"].startswith("Ann works")


def test_what_a_transaction_rolled_back_is_never_found(store, embedder):
    archival = store.archival("ann", embedder, progress=False)
    kept = archival.insert(["Ann's locker code is 4417."])
    with pytest.raises(RuntimeError), store.transaction():
        archival.stage()
        archival.insert(["Ann's bike lock code is 9921."])
        store.recall("ann").append(Message("user", "my bike lock code is 9921"))
        raise RuntimeError("the step failed")
    archival.rollback()
    for mode, query in [("keyword", "code"), ("vector", "bike lock 9921"),
                        ("hybrid", "bike lock code 9921")]:
        assert [p["id"] for p in archival.search(query, mode=mode).items] == kept
    assert archival.count() == 1 and store.recall("ann").count() == 0


def test_keyword_index_matches_whole_words_and_ranks_the_phrase_first():
    index = KeywordIndex()
    index.add([(1, "Ann's cat is black."), (2, "The black cat, Ann's pet."),
               (5, "key 123e4567-e89b-12d3 is Ann's"), (3, "Category: cats")])
    assert index.search("CAT", k=10) == [1, 2]  # whole words only: not "Category", "cats"
    assert index.search("black cat", k=10) == [2, 1]  # the exact phrase first
    assert index.search("black cat", k=1) == [2]
    assert index.search("123E4567-e89b-12d3", k=10) == [5]
    assert index.search("e89b", k=10) == [5]
    assert index.search("cat dog", k=10) == [] and index.search("?!", k=10) == []
    index.remove([1, 99])
    assert index.search("ann", k=10) == [2, 5] and len(index) == 3


def test_an_agent_finds_its_passages_among_many_of_another(store):
    """A shared vector index is filtered after its scan: an archive beside a much bigger one
    must still get its own nearest passages, as many as asked for."""
    store.archival("big", HashingEmbedder(), progress=False).insert(
        [f"big note {i} about trains and boats" for i in range(5000)])
    small = store.archival("small", HashingEmbedder(), progress=False)
    mine = set(small.insert([f"small note {i} about cats" for i in range(400)]))
    found = small.search("note about trains and boats", mode="vector", page_size=100)
    assert found.total == 100 and {p["id"] for p in found.items} <= mine


def test_keyword_search_follows_inserts_and_deletes(store, embedder):
    archival = store.archival("ann", embedder, progress=False)
    first = archival.insert(["Ann's locker code is 4417."])
    assert [p["id"] for p in archival.search("4417", mode="keyword").items] == first
    second = archival.insert(["The gym locker 4417 is broken."])
    assert [p["id"] for p in archival.search("locker 4417", mode="keyword").items] == second + first
    archival.delete(first)
    assert [p["id"] for p in archival.search("4417", mode="keyword").items] == second


def test_rows_stored_after_the_last_index_save_are_caught_up(db, embedder, tmp_path):
    archival = ArchivalStorage(db.con, "ann", tmp_path / "idx", embedder, progress=False)
    archival.insert(["The first passage, saved with the index."])
    archival.close()
    archival.insert(["Ann's cat is called Whiskers."])  # no close: as if the process died
    reopened = ArchivalStorage(db.con, "ann", tmp_path / "idx", embedder, progress=False)
    assert not reopened.rebuilt
    assert reopened.index.get_current_count() == reopened.count() == 2
    hits = reopened.search("pet cat name", mode="vector", page_size=1).items
    assert hits[0]["content"] == "Ann's cat is called Whiskers."


def test_deleted_passages_stay_deleted_after_reopening(store, embedder):
    archival = store.archival("ann", embedder, progress=False)
    ids = archival.insert(["Paris is in France.", "Rome is in Italy."])
    archival.delete(ids[:1])
    archival.close()
    reopened = store.archival("ann", embedder, progress=False)
    assert not reopened.rebuilt
    contents = [p["content"] for p in reopened.search("Paris France", mode="vector").items]
    assert contents == ["Rome is in Italy."]


def test_index_grows_past_its_initial_capacity(db, embedder, tmp_path):
    archival = ArchivalStorage(db.con, "big", tmp_path / "idx", embedder, progress=False)
    archival.insert([f"passage number {i}" for i in range(1500)])
    assert archival.index.get_max_elements() >= 1500 and archival.count() == 1500


LOADER = """
import sys
from pathlib import Path
from memgpt_local.memory.archival import ArchivalStorage
from memgpt_local.memory.database import Database
from memgpt_local.memory.embeddings import load_embedder
db = Database(Path(sys.argv[1]))
archival = ArchivalStorage(db.con, "ann", Path(sys.argv[1]) / "idx", load_embedder())
for batch in range(1000):
    stored = archival.insert([f"batch {batch} passage {i}" for i in range(64)])
    print(len(stored), flush=True)
"""


def test_sigkill_while_loading_leaves_stores_consistent(tmp_path, embedder):
    child = subprocess.Popen([sys.executable, "-c", LOADER, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    reported = sum(int(child.stdout.readline()) for _ in range(3))
    time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with Database(tmp_path, wait=True, timeout_s=10) as database:
        archival = ArchivalStorage(database.con, "ann", tmp_path / "idx", embedder,
                                   progress=False)
        assert archival.count() >= reported
        assert archival.index.get_current_count() == archival.count()
        assert archival.search("batch 1 passage 5", mode="keyword").items


def test_load_command_reports_and_is_idempotent(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from memgpt_local.cli import cli

    monkeypatch.setenv("MEMGPT_LOCAL_HOME", str(tmp_path / "home"))
    notes = tmp_path / "notes.md"
    notes.write_text("# Trip\n\n" + " ".join(f"Sentence {i} about the trip." for i in range(200)))
    records = tmp_path / "facts.jsonl"
    records.write_text(json.dumps({"text": "Paris is the capital of France."}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["load", str(notes), str(records), str(bad), "--agent", "ann"])
    assert result.exit_code == 0, result.output
    assert "Created agent 'ann'" in result.output
    assert f"Warning: not loaded: {bad}" in result.output
    assert "Loaded 2 file(s)" in result.output and " 0 already stored" in result.output
    again = runner.invoke(cli, ["load", str(notes), str(records), "--agent", "ann"])
    assert "0 new passage(s)" in again.output
    with Database(Path(tmp_path / "home")) as database:
        sources = database.con.execute("SELECT DISTINCT source FROM passages").fetchall()
        assert {s for (s,) in sources} == {str(notes), str(records)}


def test_passages_fit_the_embedding_models_token_budget(embedder):
    from memgpt_local.memory.documents import split_passages

    text = " ".join(f"word{i}" for i in range(600))
    passages = split_passages(text, embedder.count_tokens, max_tokens=64, overlap_tokens=10)
    assert len(passages) > 5
    assert all(embedder.count_tokens(p) <= 64 for p in passages)
    for before, after in zip(passages, passages[1:], strict=False):
        assert after.split()[0] in before.split()  # neighbours overlap
    assert passages[-1].split()[-1] == "word599"


class CountingTokenizer:
    """A tokenizer that records how many characters it was given: per word, or (joined) one
    token per word and one per space, so words counted apart undercount a passage."""

    def __init__(self, joined: bool):
        self.joined, self.chars = joined, 0

    def __call__(self, text: str) -> int:
        self.chars += len(text)
        words = text.split()
        return len(words) + (len(words) - 1 if self.joined else 0)


@settings(max_examples=150, deadline=None)
@given(words=st.lists(st.text("abcdé.,", min_size=1, max_size=12), max_size=300),
       max_tokens=st.integers(6, 90), overlap_share=st.floats(0, 0.45), joined=st.booleans())
def test_passages_cover_the_text_in_order_and_fit_the_budget(words, max_tokens, overlap_share,
                                                             joined):
    words = [f"{word}{index}" for index, word in enumerate(words)]  # each word findable
    count = CountingTokenizer(joined)
    passages = split_passages(" ".join(words), count, max_tokens, int(max_tokens * overlap_share))
    spans = [(words.index(p.split()[0]), words.index(p.split()[-1]) + 1) for p in passages]
    assert [p.split() for p in passages] == [words[a:b] for a, b in spans]
    assert (spans[0][0] if spans else 0) == 0 and (spans[-1][1] if spans else 0) == len(words)
    for (a, b), (c, _) in zip(spans, spans[1:], strict=False):
        assert a < c <= b  # each starts inside or right after the one before: nothing skipped
    assert all(count(p) <= max_tokens or len(p.split()) == 1 for p in passages)


def test_splitting_counts_each_token_a_bounded_number_of_times():
    """Four times the text is four times the tokenizer's work (it was quadratic: each passage's
    end searched by counting up to half the rest of the document)."""
    work = []
    for size in (2_000, 8_000):
        count = CountingTokenizer(joined=False)
        split_passages(" ".join(f"w{i % 5000}" for i in range(size)), count, 200, 30)
        work.append(count.chars)
    assert work[1] / work[0] < 4.5


def test_passages_made_by_another_embedder_are_embedded_again(store, embedder):
    """A changed model or precision: the stored vectors no longer match the queries' space."""
    old = store.archival("ann", HashingEmbedder(), progress=False)
    old.insert(["Ann's cat is called Whiskers.", "The train to Lyon leaves at nine."])
    old.close()
    reopened = store.archival("ann", embedder, progress=False)
    assert reopened.rebuilt and reopened.count() == 2
    size = "len(embedding)" if store.kind == "embedded" else "vector_dims(embedding)"
    assert store.con.execute(f"SELECT DISTINCT embedded_with, {size} FROM passages"
                             ).fetchall() == [(embedder.name, embedder.dim)]
    hits = reopened.search("pet name", mode="vector", page_size=1).items
    assert hits[0]["content"] == "Ann's cat is called Whiskers."
    assert not store.archival("ann", embedder, progress=False).rebuilt


def test_embedding_settings_come_from_the_environment(monkeypatch, tmp_path):
    from memgpt_local.engine import Engine
    from memgpt_local.errors import MemgptLocalError
    from memgpt_local.memory.embeddings import default_model_path

    def embedder():  # the engine reads its settings when it is made
        return Engine().embedder()

    monkeypatch.setenv("MEMGPT_LOCAL_EMBEDDING_PRECISION", "fp16")
    with pytest.raises(MemgptLocalError, match="valid: int8, fp32"):
        embedder()
    monkeypatch.setenv("MEMGPT_LOCAL_EMBEDDING_PRECISION", "fp32")
    monkeypatch.setenv("MEMGPT_LOCAL_EMBEDDING_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(MemgptLocalError, match="nowhere"):
        embedder()
    monkeypatch.setenv("MEMGPT_LOCAL_EMBEDDING_MODEL", str(default_model_path()))
    other = embedder()
    assert other.name == f"{default_model_path()}/fp32" and other.precision == "fp32"
    assert other.embed_query("a walk in the hills").shape == (1, other.dim)


def test_query_embedding_matches_the_batch_path(embedder):
    """embed_query runs a TorchScript trace of the model: it must give what embed() gives."""
    import numpy as np

    for text in ["cat", "What did Ann say about Lyon?", "word " * 400]:
        np.testing.assert_allclose(embedder.embed_query(text), embedder.embed([text]),
                                   atol=1e-5)
    assert embedder._query_encoder.traced is not None


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "ok\udfff"])
def test_core_memory_refuses_text_no_store_can_hold(text):
    """A NUL or a lone surrogate, from a user's edit or a model's call, is refused naming the
    character (PostgreSQL cannot store a NUL); the block is unchanged."""
    core = CoreMemory.default("I help.", "Ann", 200)
    for edit in (lambda: core.put("human", BlockChange(value=text)),
                 lambda: core.put("notes", BlockChange(value="x", description=text)),
                 lambda: core.append("human", text),
                 lambda: core.replace("human", "Ann", text),
                 lambda: core.rethink("human", text)):
        with pytest.raises(CoreMemoryError, match=r"U\+(0000|D[89A-F][0-9A-F]{2})"):
            edit()
    assert core.blocks["human"].value == "Ann" and "notes" not in core.blocks
