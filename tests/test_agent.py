"""The agent loop with a scripted model: functions, errors, heartbeats, warning, flush, resume."""

import json
import random
import tempfile
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import FakeRuntime, HashingEmbedder, call
from hypothesis import example, given, settings
from hypothesis import strategies as st

from memgpt_local.agent.context import queue_entry
from memgpt_local.agent.loop import Agent
from memgpt_local.agent.queue import Summarizer
from memgpt_local.agent.recollection import ROOM_SHARE, recollect
from memgpt_local.agent.settings import AgentSettings, AgentState, stored
from memgpt_local.agent.steps import parse_call
from memgpt_local.agent.stop_reason import StopReason
from memgpt_local.agent.turn import MemoryBrought, ReplyText
from memgpt_local.agent.window import context_report
from memgpt_local.llm.base import Runtime, SamplingSettings
from memgpt_local.memory.agents import AgentRecord
from memgpt_local.memory.core import CoreMemory, CoreMemoryError
from memgpt_local.memory.embedded import EmbeddedStore
from memgpt_local.memory.recall import Message
from memgpt_local.memory.stores import AgentStores

FIXED = datetime(2030, 5, 17, 9, 30, tzinfo=UTC)


OPEN_STORE = {}  # the store opener of the running test: every test here runs on both kinds


@pytest.fixture(autouse=True)
def _each_store_kind(open_test_store):
    OPEN_STORE["open"] = open_test_store
    yield
    OPEN_STORE.clear()


def open_store(folder):
    """The running test's store for a folder (embedded, or a PostgreSQL database); the
    embedded one for tests of other modules that borrow make_agent."""
    return OPEN_STORE.get("open", EmbeddedStore)(folder)


def fake_stores(db, name: str) -> AgentStores:
    """The stores the engine would build, with the hashing embedder for archival."""
    return AgentStores(db, name, db.records(), db.recall(name),
                       lambda: db.archival(name, HashingEmbedder()))


def make_agent(tmp_path, script, n_ctx=2048, clock=None, **settings) -> Agent:
    db = open_store(tmp_path)
    store = db.records()
    if not store.exists("sam"):
        store.save(AgentRecord("sam", "fake", {"n_ctx": n_ctx, **settings},
                               CoreMemory.default("I am Sam.", "Nothing yet.")))
    return Agent(store.get("sam"), FakeRuntime(script, n_ctx), fake_stores(db, "sam"),
                 *([clock] if clock else []))


def recorded(agent: Agent) -> list[Message]:
    return agent.recall.search_date("2000-01-01", "2100-01-01", page_size=1000).items


def roles(agent: Agent) -> list[str]:
    return [m.role for m in recorded(agent)]


def test_send_message_reaches_the_user_and_everything_is_recorded(tmp_path):
    agent = make_agent(tmp_path, [call("send_message", "greet", message="Hello!")])
    replies = []
    turn = agent.send("Hi there", lambda e: isinstance(e, ReplyText) and replies.append(e.text))
    assert turn.replies == ["Hello!"] and "".join(replies) == "Hello!"
    assert turn.stopped is None and turn.stop_reason is None and len(turn.steps) == 1
    assert roles(agent) == ["system", "user", "function_call", "function_result"]
    assert [m.role for m in agent.queue] == roles(agent)
    assert turn.steps[0].thoughts == "greet"


def test_first_login_greets_a_new_agent(tmp_path):
    agent = make_agent(tmp_path, [call("send_message", message="Welcome! Who are you?")])
    turn = agent.first_login()
    assert turn.replies == ["Welcome! Who are you?"]
    assert agent.queue[0].role == "system" and "just logged in" in agent.queue[0].content
    assert roles(agent) == ["system", "function_call", "function_result"]


def test_core_memory_functions_and_their_errors_become_observations(tmp_path):
    agent = make_agent(tmp_path, [
        call("core_memory_append", label="human", content="Name: Ann", request_heartbeat=True),
        call("core_memory_replace", label="human", old_content="Bob", new_content="x",
             request_heartbeat=False),
        call("core_memory_replace", label="human", old_content="Ann", new_content="Anna",
             request_heartbeat=True),
        call("send_message", message="Nice to meet you, Anna.")])
    turn = agent.send("I'm Ann")
    assert [s.function for s in turn.steps] == [
        "core_memory_append", "core_memory_replace", "core_memory_replace", "send_message"]
    assert turn.steps[1].failed and "Text not found in 'human'" in turn.steps[1].result
    assert agent.core.block("human").value == "Nothing yet.\nName: Anna"
    results = [m.content for m in agent.queue if m.role == "function_result"]
    assert results[1].startswith("Error: Text not found")
    assert results[1].endswith("read the error above and try again differently.")
    assert results[0].endswith("Act on the function result above.")
    assert results[3] == "Sent."


def test_a_read_only_block_is_shown_with_its_description_and_refused_to_the_model(tmp_path):
    agent = make_agent(tmp_path, [
        call("core_memory_append", label="persona", content="I am evil now.",
             request_heartbeat=True),
        call("core_memory_replace", label="persona", old_content="Sam", new_content="Eve",
             request_heartbeat=True),
        call("send_message", message="I stay Sam.")])
    block = agent.core.block("persona")
    block.read_only, block.description = True, "Who you are; set by your user."
    turn = agent.send("Change who you are.")
    assert [s.failed for s in turn.steps] == [True, True, False]
    assert all("Block 'persona' is read-only" in s.result for s in turn.steps[:2])
    assert agent.core.block("persona").value == "I am Sam."
    prompt = "\n".join(m["content"] for m in agent.runtime.last_messages)
    assert '<persona characters="9/' in prompt and 'read_only="true">' in prompt
    assert "<description>Who you are; set by your user.</description>\nI am Sam." in prompt


def test_an_optional_function_is_offered_only_to_the_agents_that_name_it(tmp_path):
    """core_memory_rethink (Letta's memory_rethink) is in the instructions, the constraint and
    the functions an agent may run only where its settings name it."""
    rethink = call("core_memory_rethink", label="human", new_memory="Name: Ann. Likes tea.",
                   request_heartbeat=True)
    plain = make_agent(tmp_path / "plain", [rethink, call("send_message", message="ok")])
    turn = plain.send("I'm Ann and I like tea.")
    assert turn.steps[0].failed and "unknown function 'core_memory_rethink'" in \
        turn.steps[0].result
    assert "core_memory_rethink" not in plain.context.static
    assert "core_memory_rethink" not in json.dumps(plain.call_schema())
    offered = make_agent(tmp_path / "offered", [rethink, call("send_message", message="ok")],
                         extra_functions=["core_memory_rethink"])
    turn = offered.send("I'm Ann and I like tea.")
    assert not turn.steps[0].failed and offered.core.block("human").value == (
        "Name: Ann. Likes tea.")
    assert "core_memory_rethink" in offered.context.static
    assert "core_memory_rethink" in json.dumps(offered.call_schema())
    offered.core.block("persona").read_only = True
    with pytest.raises(CoreMemoryError, match="Block 'persona' is read-only"):
        offered.core.rethink("persona", "I am Eve.")
    with pytest.raises(CoreMemoryError, match="its limit is"):
        offered.core.rethink("human", "x" * (offered.core.block("human").limit + 1))
    assert offered.core.block("human").value == "Name: Ann. Likes tea."


def test_settings_name_only_optional_functions():
    with pytest.raises(ValueError, match="send_mail is not an optional function; the optional "
                                         "functions are core_memory_rethink"):
        AgentSettings.checked({"extra_functions": ["send_mail"]})
    assert AgentSettings.checked({"extra_functions": ["core_memory_rethink"]}).functions()[
        "core_memory_rethink"].name == "core_memory_rethink"


def test_searches_are_paginated(tmp_path):
    script = [call("conversation_search", query="garden", page=2, request_heartbeat=True),
              call("conversation_search", query="garden", page=9, request_heartbeat=True),
              call("conversation_search_date", start_date="last week", end_date="2024-01-01",
                   page=1, request_heartbeat=True),
              call("send_message", message="done")]
    agent = make_agent(tmp_path, script, page_size=2)
    agent.recall.bulk_import([Message("user", f"my garden has {i} roses") for i in range(5)])
    turn = agent.send("What about the garden?")
    # 5 imported, the user message and the search call itself mention the garden
    assert turn.steps[0].result.startswith("Page 2 of 4, total 7:")
    assert turn.steps[1].failed and "Page 9 does not exist" in turn.steps[1].result
    assert turn.steps[2].failed and "start_date must be an ISO date" in turn.steps[2].result


def test_conversation_search_shows_the_message_after_each_hit(tmp_path):
    script = [call("conversation_search", query="cat", page=1, request_heartbeat=True),
              call("send_message", message="Whiskers")]
    agent = make_agent(tmp_path, script)
    agent.recall.bulk_import([Message("user", "What should I call my new cat?"),
                              Message("assistant", "How about Whiskers?"),
                              Message("user", "My cat likes fish."),
                              Message("assistant", "My cat does too.")])
    result = agent.send("hello").steps[0].result
    lines = result.splitlines()
    asked = lines.index(next(line for line in lines if "call my new cat?" in line))
    assert lines[asked + 1].startswith("  then [") and "How about Whiskers?" in lines[asked + 1]
    # a reply that is itself found is listed once, as a hit
    assert sum("My cat does too." in line for line in lines) == 1
    assert not any(line.startswith("  then") and "My cat does too." in line for line in lines)


def test_archival_functions(tmp_path):
    script = [call("archival_memory_insert", content="Ann's cat is called Whiskers.",
                   request_heartbeat=True),
              call("archival_memory_search", query="Whiskers", page=1, request_heartbeat=True),
              call("send_message", message="Your cat is Whiskers.")]
    agent = make_agent(tmp_path, script)
    turn = agent.send("Remember my cat Whiskers")
    assert turn.steps[0].result == "Saved to archival memory."
    assert "Whiskers" in turn.steps[1].result and "total 1" in turn.steps[1].result
    assert agent.archival_count() == 1


def test_pause_heartbeats_and_timed_heartbeat(tmp_path):
    agent = make_agent(tmp_path, [call("pause_heartbeats", minutes=30, request_heartbeat=False),
                                  call("send_message", message="tick")],
                       timed_heartbeat_minutes=5)
    agent.send("Please be quiet for a while")
    assert agent.heartbeats_paused()
    assert agent.timed_heartbeat() is None
    agent.state.heartbeats_paused_until = None
    turn = agent.timed_heartbeat()
    assert turn.replies == ["tick"]
    assert "idle for 5 minutes" in agent.queue[-3].content


def test_heartbeat_chain_is_capped(tmp_path):
    looping = call("conversation_search", query="x", page=1, request_heartbeat=True)
    agent = make_agent(tmp_path, lambda messages: looping, max_chain=4)
    turn = agent.send("go")
    assert len(turn.steps) == 4 and "after 4 chained steps" in turn.stopped
    assert turn.stop_reason is StopReason.STEP_CAP


def test_repeated_failures_stop_the_loop_with_a_clear_message(tmp_path):
    failing = call("core_memory_replace", label="human", old_content="nope", new_content="x",
                   request_heartbeat=False)
    agent = make_agent(tmp_path, lambda messages: failing, max_failures=3)
    turn = agent.send("go")
    assert len(turn.steps) == 3
    assert "3 failed function calls in a row" in turn.stopped
    assert turn.stop_reason is StopReason.FAILED_CALLS
    samplings = [(s.temperature, s.repeat_penalty, s.seed) for s in agent.runtime.samplings]
    assert samplings == [(0.0, 1.0, 1337), (0.7, 1.3, 1338), (0.7, 1.3, 1339)]  # retries sample
    agent.runtime.script = lambda messages: call("send_message", message="ok")
    agent.send("again")
    assert agent.runtime.samplings[-1].temperature == 0.0  # greedy again after a success


def test_cut_off_or_invalid_output_is_an_error_for_the_model(tmp_path):
    agent = make_agent(tmp_path, ['{"function": "send_mess', call("send_message", message="ok")])
    turn = agent.send("hi")
    assert turn.steps[0].failed and "not one JSON function call" in turn.steps[0].result
    assert turn.replies == ["ok"]


def test_unparsable_output_errors_say_why():
    assert "cut off at 320 tokens" in parse_call('{"function": "send', "length", 320)[1]
    assert "repeated the same words" in parse_call('{"thoughts": "a a a', "loop", 320)[1]
    assert parse_call('{"function": "x", "arguments": {}}', "stop", 320) == (
        {"function": "x", "arguments": {}}, "")


def test_unknown_function_and_bad_arguments_are_reported(tmp_path):
    agent = make_agent(tmp_path, [call("launch_rockets"), call("send_message", text="x"),
                                  call("send_message", message="ok")])
    turn = agent.send("hi")
    assert "unknown function 'launch_rockets'" in turn.steps[0].result
    assert "missing: ['message'], unknown: ['text']" in turn.steps[1].result


LONG = " ".join(["word"] * 60)


@pytest.mark.parametrize("n_ctx", [2048, 3000, 4096])
def test_warning_flush_summary_and_window_bound(tmp_path, n_ctx):
    shuffles = iter(range(10**6))

    def script(messages):  # long replies, each new (the agent refuses a repeated one)
        rng = random.Random(next(shuffles))
        words = [rng.choice(["sea", "boat", "wind", "sail", "rope", "tide", "gull", "mast"])
                 for _ in range(60)]
        return call("send_message", message="I hear you: " + " ".join(words))

    agent = make_agent(tmp_path, script, n_ctx=n_ctx)
    warnings = flushes = 0
    for i in range(40):
        turn = agent.send(f"message {i}: {LONG}")
        warnings += sum(s.warned for s in turn.steps)
        flushes += sum(s.flushed for s in turn.steps)
    runtime = agent.runtime
    assert max(runtime.prompt_lengths) <= n_ctx
    assert flushes >= 1 and runtime.summary_calls >= flushes
    assert agent.record.summary.startswith("Summary number")
    assert 1 <= warnings <= flushes + 1  # one warning per pressure period
    assert agent.recall.count() == 1 + 40 * 3 + warnings  # nothing deleted from recall
    assert agent.queue[0].role != "function_result"  # a call is never cut from its result


@settings(max_examples=20, deadline=None)
@given(short=st.integers(4, 16), long_words=st.integers(300, 1000))
def test_one_flush_makes_room_for_a_long_message(short, long_words):
    # evicting half the queue may not make room for a long message; a second flush's summary
    # would read the whole window again behind the first one's, so the first cut goes further:
    # a second flush comes only where the first took everything older than the message
    with tempfile.TemporaryDirectory() as home:
        agent = make_agent(Path(home), [call("send_message", message="Noted.")] * (short + 1))
        for i in range(short):
            agent.send(f"message {i}: {LONG}")
        calls = agent.runtime.summary_calls
        text = " ".join(["word"] * long_words)
        turn = agent.send(text)
        flushes = agent.runtime.summary_calls - calls
        assert flushes >= turn.steps[0].flushed
        if flushes > 1:
            message = next(m for m in recorded(agent) if m.content == text)
            assert all(m.seq >= message.seq for m in agent.queue)
        assert max(agent.runtime.prompt_lengths) <= agent.runtime.n_ctx


@settings(max_examples=25, deadline=None)
@example(short=4, long_words=725, summary_words=150, architecture="memgpt", memory_hits=3)
@example(short=4, long_words=900, summary_words=5, architecture="reply", memory_hits=3)
@given(short=st.integers(0, 16), long_words=st.integers(300, 1000),
       summary_words=st.integers(5, 150), architecture=st.sampled_from(["memgpt", "reply"]),
       memory_hits=st.sampled_from([0, 3]))
def test_the_users_message_is_in_every_prompt_of_its_turn(short, long_words, summary_words,
                                                           architecture, memory_hits):
    # a flush may evict anything older than the turn's event, never the event itself: the
    # memory-pressure alert or the memory brought in after it must not make it evictable
    shown = []

    def script(messages):
        shown.append(any("zebra" in m["content"] for m in messages))
        return call("send_message", message=f"Noted {len(shown)}.")

    with tempfile.TemporaryDirectory() as home:
        agent = make_agent(Path(home), script, architecture=architecture,
                           memory_hits=memory_hits)
        agent.runtime.summarize = lambda messages: " ".join(["gist"] * summary_words)
        for i in range(short):
            agent.send(f"message {i}: {LONG}")
        del shown[:]
        agent.send("zebra " + " ".join(["word"] * long_words))
        assert shown and all(shown)
        assert max(agent.runtime.prompt_lengths) <= agent.runtime.n_ctx


def test_model_calls_and_saves_go_through_the_model_gate_with_no_transaction_open(tmp_path):
    """A flushing step lets a server run other agents' jobs during its summary call, as
    during its step's call and the turn's context save: the model gate is entered for each,
    never inside a transaction."""
    replies = iter(range(10**6))
    agent = make_agent(tmp_path, lambda messages: call(
        "send_message", message=f"Reply {next(replies)}: " + LONG), n_ctx=2048)
    entered = []

    @contextmanager
    def gate():
        entered.append(agent.stores.db.in_transaction)
        yield

    agent.model_gate = gate
    steps = flushes = 0
    for i in range(25):
        turn = agent.send(f"message {i}: {LONG}")
        steps += len(turn.steps)
        flushes += sum(s.flushed for s in turn.steps)
    assert flushes >= 2
    turns = 25  # and the context saved at the end of each turn (a server's slot save)
    assert len(entered) == steps + agent.runtime.summary_calls + turns
    assert not any(entered)


def test_agent_resumes_where_it_stopped(tmp_path):
    agent = make_agent(tmp_path, [call("core_memory_append", label="human", content="Ann",
                                       request_heartbeat=False)])
    agent.send("I am Ann")
    queue_ids = [m.id for m in agent.queue]
    agent.stores.db.close()
    again = make_agent(tmp_path, [call("send_message", message="Hi Ann")])
    assert [m.id for m in again.queue] == queue_ids
    assert again.core.block("human").value.endswith("Ann")
    assert again.send("Who am I?").replies == ["Hi Ann"]


def test_a_resumed_agent_builds_the_prompt_the_old_process_would_have(tmp_path):
    def script(messages):
        return call("send_message", message=f"Reply to {messages[-1]['content'][-12:]}")

    def agent_at(home):
        return make_agent(home, script, clock=lambda: FIXED)

    first, twin = agent_at(tmp_path / "a"), agent_at(tmp_path / "b")
    for text in ["one", "two"]:
        first.send(text)
        twin.send(text)
    first.stores.db.close()
    resumed = agent_at(tmp_path / "a")  # a new process: everything read from the database
    turns = [agent.send("three") for agent in (resumed, twin)]
    assert resumed.runtime.last_messages == twin.runtime.last_messages
    new, twin_new = (turn.steps[0].new_tokens for turn in turns)
    assert new == twin_new < turns[0].steps[0].stats.prompt_tokens / 4


def test_every_step_names_the_agents_context_and_every_turn_saves_it(tmp_path):
    agent = make_agent(tmp_path, [call("archival_memory_search", query="x"),
                                  call("send_message", message="Done."),
                                  call("send_message", message="Again.")])
    first, second = agent.send("hello"), agent.send("more")
    runtime = agent.runtime
    assert len(first.steps) == 2 and len(second.steps) == 1
    assert runtime.contexts == ["sam"] * 3
    assert runtime.saved_contexts == ["sam", "sam"]  # once per turn, after its last step


def test_the_agent_stamps_messages_and_counts_with_its_clock(tmp_path):
    from datetime import UTC, datetime

    fixed = datetime(2030, 5, 17, 9, 30, tzinfo=UTC)
    db = open_store(tmp_path)
    db.records().save(AgentRecord("sam", "fake", {"n_ctx": 2048}))
    runtime = FakeRuntime([call("send_message", message="Hi")])
    agent = Agent(db.records().get("sam"), runtime, fake_stores(db, "sam"), lambda: fixed)
    agent.send("hello")
    assert {m.created_at for m in agent.recall.all()} == {fixed}
    assert "2030-05-17 09:30 UTC" in runtime.last_messages[1]["content"]
    assert "[2030-05-17 09:30] hello" in [m["content"] for m in runtime.last_messages]


def test_settings_ignore_state_keys():
    settings = AgentSettings.from_dict({"n_ctx": 2048, "state": {"warned": True}})
    assert settings.n_ctx == 2048


def test_settings_are_stored_flat_with_their_sampling_fields():
    flat = {**AgentSettings().to_dict(), "temperature": 0.5, "seed": 7}
    assert list(flat)[-3:] == ["temperature", "repeat_penalty", "seed"]
    settings = AgentSettings.from_dict(flat)
    assert settings.sampling == SamplingSettings(temperature=0.5, seed=7)
    assert settings.to_dict() == flat


def test_settings_and_state_stored_as_json_before_load_typed_and_store_the_same():
    """An agent stored before the typed settings (a dict, its state a nested dict) reads as
    AgentSettings and AgentState, and is written back with the same keys and values."""
    from memgpt_local.memory.agents import AgentRecord

    state = {"warned": True, "flushes": 4, "heartbeats_paused_until": "2030-05-17T09:30:00+00:00",
             "core_counts": {"agent_name": "sam", "blocks": 2}, "core_digest": "0a1b",
             "last_prompt": {"static": "c3", "core": "d4"}}
    before = {**AgentSettings(n_ctx=2048, memory_hits=3).to_dict(), "state": state}
    record = AgentRecord("sam", "smollm2-135m", json.loads(json.dumps(before)))
    settings, loaded = AgentSettings.of(record), AgentState.of(record)
    assert (settings.n_ctx, settings.memory_hits, loaded.flushes, loaded.warned) == (2048, 3, 4,
                                                                                   True)
    assert loaded.last_prompt["core"] == "d4"
    assert stored(settings, loaded) == before
    assert AgentState.of(AgentRecord("new", "m", {"n_ctx": 2048})) == AgentState()


@given(st.builds(AgentState, warned=st.booleans(), flushes=st.integers(0, 10**6),
                 heartbeats_paused_until=st.none() | st.text(max_size=30),
                 core_digest=st.none() | st.text(max_size=16),
                 last_prompt=st.dictionaries(st.text(max_size=8), st.text(max_size=8),
                                             max_size=5)))
def test_any_state_comes_back_from_its_stored_form(state):
    assert AgentState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_the_fake_runtime_meets_the_runtime_protocol():
    assert isinstance(FakeRuntime([]), Runtime)


HEAD = [{"role": "system", "content": "static instructions"},
        {"role": "system", "content": "core memory"}, {"role": "system", "content": "summary"}]


def test_summary_is_asked_for_at_the_end_of_the_main_context():
    runtime = FakeRuntime([], n_ctx=300)
    evicted = [Message("user", f"message {i} about sailing") for i in range(3)]
    newest = {"role": "user", "content": "newest " * 150}  # only fits without it
    summary = Summarizer(runtime, max_tokens=40, seed=1).summarize(
        "old", evicted, context=HEAD + [queue_entry(m) for m in evicted] + [newest])
    assert summary == "Summary number 1 of the talk so far."
    sent = runtime.last_messages
    assert sent[:-1] == HEAD + [queue_entry(m) for m in evicted]
    assert "the oldest 3 messages" in sent[-1]["content"]


def test_summary_falls_back_to_standalone_chunks_that_fit():
    runtime = FakeRuntime([], n_ctx=300)
    evicted = [Message("user", "word " * 120), Message("user", "more " * 120)]
    summary = Summarizer(runtime, max_tokens=40, seed=1).summarize(
        "old", evicted, context=HEAD + [queue_entry(m) for m in evicted])
    assert runtime.summary_calls == 2 and summary == "Summary number 2 of the talk so far."
    assert runtime.last_messages[0]["content"].startswith("You maintain the running summary")
    assert max(runtime.prompt_lengths) <= 300


# --- memory brought to the model ----------------------------------------------------------------

def test_memory_is_brought_to_each_user_turn_once_and_stored(tmp_path):
    script = [call("send_message", message="Noted.")] * 3
    agent = make_agent(tmp_path, script, memory_hits=1, clock=lambda: FIXED)
    first = agent.send("My sister Maria plays the cello.")
    assert first.memory is None  # only the message itself would match, and it is in context
    agent.insert_passage("Pepper the cat sleeps on the red sofa.")
    agent.insert_passage("The boat is moored in Brest.")
    events = []
    turn = agent.send("Where does Pepper the cat sleep, and who plays the cello?",
                      events.append)
    assert events[0] == MemoryBrought(turn.memory)
    assert "- Pepper the cat sleeps on the red sofa." in turn.memory
    assert "Brest" not in turn.memory  # one hit a tier
    assert "conversation memory" not in turn.memory  # Maria's message is still in context
    prompt = "\n".join(m["content"] for m in agent.runtime.last_messages)
    assert f"[memory] {turn.memory}" in prompt  # the turn's steps read it
    entry = [m for m in recorded(agent) if m.function_name == "memory"][-1]
    assert entry.role == "function_result" and entry.content == turn.memory  # kept in recall
    assert all(m.function_name != "memory" for m in agent.queue)  # the turn is over: put away
    again = agent.send("Where does Pepper the cat sleep?")
    assert "red sofa" in again.memory  # brought again: the last entry left the context
    prompt = "\n".join(m["content"] for m in agent.runtime.last_messages)
    assert prompt.count("red sofa") == 1
    agent.stores.db.close()
    resumed = make_agent(tmp_path, [], memory_hits=1, clock=lambda: FIXED)
    assert [m.id for m in resumed.queue] == [m.id for m in agent.queue]


def test_memory_finds_what_left_the_context(tmp_path):
    script = [call("send_message", message="Noted.")] * 4
    agent = make_agent(tmp_path, script, memory_hits=3, clock=lambda: FIXED)
    agent.send("My dog is called Biscuit and he loves the beach.")
    agent.queue_manager.queue = agent.queue[-2:]  # as if a flush evicted the first messages
    turn = agent.send("What is my dog called?")
    assert "user: My dog is called Biscuit and he loves the beach." in turn.memory
    assert turn.memory.startswith("Memory related to the user's message")
    assert "  then" not in turn.memory  # the next message is a call, not conversation


@settings(max_examples=15, deadline=None)
@given(n_ctx=st.integers(1300, 4096), lengths=st.lists(st.integers(1, 20), min_size=1,
                                                        max_size=4))
def test_memory_brought_never_takes_more_than_its_share_of_the_window(n_ctx, lengths):
    with tempfile.TemporaryDirectory() as home:
        agent = make_agent(Path(home), [call("send_message", message="Noted.")], n_ctx=n_ctx,
                           memory_hits=3, clock=lambda: FIXED)
        for i, length in enumerate(lengths):
            agent.insert_passage(f"Pepper the cat {i} " + "sleeps on the red sofa. " * length)
        question = "Where does Pepper the cat sleep?"
        turn = agent.send(question)
        budget = agent.queue_manager.room() * ROOM_SHARE
        if turn.memory:
            assert agent.runtime.count_tokens(turn.memory) <= budget
        else:  # not even the best passage alone fits
            best = recollect(agent.recall, agent.archival, question, 1, agent.queue,
                             agent.settings.result_max_chars)
            assert agent.runtime.count_tokens(best) > budget


@settings(max_examples=15, deadline=None)
@given(n_ctx=st.integers(1400, 4000), lengths=st.lists(st.integers(1, 60), min_size=1,
                                                        max_size=6))
def test_the_context_report_adds_up_to_the_prompt_and_the_window(n_ctx, lengths):
    with tempfile.TemporaryDirectory() as home:
        agent = make_agent(Path(home), [call("send_message", message="Noted.")] * len(lengths),
                           n_ctx=n_ctx, clock=lambda: FIXED)
        for length in lengths:
            agent.send("word " * (10 * length))  # up to 600 words: flushes at small windows
            report = context_report(agent)
            prompt = agent.runtime.chat_tokens(agent.queue_manager.parts().messages())
            assert sum(report["parts"].values()) == report["prompt_tokens"] == len(prompt.tokens)
            assert report["parts"]["instructions"] == prompt.message_ends[0]
            reserve = agent.settings.response_tokens
            assert (report["window"], report["reply_reserve"], report["flush_tokens"]) == \
                (n_ctx, reserve, n_ctx - reserve)
            assert report["free"] == max(0, n_ctx - len(prompt.tokens) - reserve)
            assert report["queue_messages"] == len(agent.queue)


def test_no_memory_is_brought_when_the_setting_is_off(tmp_path):
    agent = make_agent(tmp_path, [call("send_message", message="Hi")] * 2)
    agent.insert_passage("Pepper the cat sleeps on the red sofa.")
    turn = agent.send("Where does Pepper sleep?")
    assert turn.memory is None and not [m for m in agent.queue if m.function_name == "memory"]


def test_every_step_is_told_the_replies_and_alerts_it_may_not_copy(tmp_path):
    script = [call("send_message", message="Hello! What is your name?"),
              call("core_memory_append", label="human", content="Ann",
                   request_heartbeat=True),
              call("send_message", message="Nice to meet you, Ann.")]
    agent = make_agent(tmp_path, script)
    agent.first_login()
    agent.send("I am Ann.")
    first_login, greeting = agent.queue[0].content, "Hello! What is your name?"
    assert agent.runtime.avoided[0] == [first_login]
    assert agent.runtime.avoided[1] == agent.runtime.avoided[2] == [greeting, first_login]
