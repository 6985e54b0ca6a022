"""Tool rules: parsing and checking (Letta's kinds and names), the solver, and the proof that
no model output breaks them: each step's constraint holds only the functions they allow."""

import tempfile
from pathlib import Path

import pytest
from fakes import call
from hypothesis import given, settings
from hypothesis import strategies as st
from test_agent import make_agent

from memgpt_local.agent.functions import offered
from memgpt_local.agent.rules import (
    KINDS,
    Call,
    RuleSolver,
    ToolRuleError,
    parse_rule,
    parse_rules,
)
from memgpt_local.agent.settings import AgentSettings
from memgpt_local.agent.stop_reason import StopReason

NAMES = list(offered())  # the standard functions
SEARCH, SEND, CONVO = "archival_memory_search", "send_message", "conversation_search"


def test_letta_rules_parse_and_keep_their_shape():
    letta = [{"tool_name": SEARCH, "type": "run_first", "prompt_template": None},
             {"tool_name": SEARCH, "type": "constrain_child_tools", "prompt_template": None,
              "children": [SEND, CONVO], "child_arg_nodes": None},
             {"tool_name": CONVO, "type": "conditional", "default_child": SEND,
              "child_output_mapping": {"True": SEND}, "require_output_mapping": False},
             {"tool_name": SEND, "type": "exit_loop"},
             {"tool_name": "core_memory_append", "type": "continue_loop"},
             {"tool_name": SEARCH, "type": "max_count_per_step", "max_count_limit": 2},
             {"tool_name": SEARCH, "type": "required_before_exit"}]
    rules = parse_rules(letta, NAMES, max_chain=6)
    assert [r.type for r in rules] == [r["type"] for r in letta]
    assert rules[1].to_dict() == {"type": "constrain_child_tools", "tool_name": SEARCH,
                                  "children": [SEND, CONVO]}
    assert set(KINDS) == {r.type for r in rules}


@pytest.mark.parametrize(("rules", "message"), [
    ([{"type": "run_first", "tool_name": "web_search"}],
     "run_first on 'web_search': unknown function 'web_search'"),
    ([{"type": "run_fast", "tool_name": SEND}], "type must be one of"),
    ([{"type": "constrain_child_tools", "tool_name": SEND, "children": []}], "children"),
    ([{"type": "constrain_child_tools", "tool_name": SEND, "children": ["nope"]}],
     "unknown function 'nope'"),
    ([{"type": "max_count_per_step", "tool_name": SEND, "max_count_limit": 0}],
     "max_count_limit"),
    ([{"type": "run_first", "tool_name": SEND, "colour": "red"}], "unknown fields ['colour']"),
    ([{"type": "exit_loop", "tool_name": SEND}, {"type": "continue_loop", "tool_name": SEND}],
     "both name send_message"),
    ([{"type": "exit_loop", "tool_name": SEND},
      {"type": "constrain_child_tools", "tool_name": SEND, "children": [SEARCH]}],
     "exit_loop and constrain_child_tools both name send_message"),
    ([{"type": "run_first", "tool_name": SEARCH},
      {"type": "max_count_per_step", "tool_name": SEARCH, "max_count_limit": 1},
      {"type": "constrain_child_tools", "tool_name": CONVO, "children": [SEARCH]}],
     "no function allowed after conversation_search (constrain_child_tools on "
     "conversation_search, max_count_per_step on archival_memory_search)"),
    ("run_first", "must be a list"),
])
def test_bad_rules_are_one_line_naming_the_rule(rules, message):
    with pytest.raises(ToolRuleError, match=None) as error:
        parse_rules(rules, NAMES, max_chain=6)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_settings_check_their_rules():
    with pytest.raises(ValueError, match="unknown function 'web_search'"):
        AgentSettings.checked({"tool_rules": [{"type": "exit_loop", "tool_name": "web_search"}]})
    with pytest.raises(ValueError, match="memory_hits"):
        AgentSettings.checked({"memory_hits": 99})


def test_the_solver_follows_letta_semantics():
    rules = [parse_rule(r, NAMES) for r in [
        {"type": "run_first", "tool_name": SEARCH},
        {"type": "constrain_child_tools", "tool_name": SEARCH, "children": [SEND, SEARCH]},
        {"type": "max_count_per_step", "tool_name": SEARCH, "max_count_limit": 2},
        {"type": "conditional", "tool_name": CONVO, "child_output_mapping": {"yes": SEND},
         "require_output_mapping": True},
        {"type": "required_before_exit", "tool_name": "core_memory_append"}]]
    solver = RuleSolver(rules, NAMES)
    assert solver.allowed([], 0, 6).functions == [SEARCH]
    one = [Call(SEARCH, "found")]
    assert solver.allowed(one, 1, 6).functions == [SEND, SEARCH]
    assert solver.allowed(one * 2, 2, 6).functions == [SEND]
    assert solver.allowed([Call(CONVO, " YES ")], 1, 6).functions == [SEND]
    assert solver.allowed([Call(CONVO, "no")], 1, 6).functions == []  # required mapping
    assert solver.allowed([Call(SEND)], 5, 6).functions == ["core_memory_append"]
    assert solver.continues(Call(SEND), False, False, [Call(SEND)])  # required still left
    done = [Call("core_memory_append"), Call(SEND)]
    assert not solver.continues(Call(SEND), False, False, done)
    assert solver.continues(Call(SEARCH), False, False, [Call("core_memory_append"),
                                                         Call(SEARCH)])  # has children


def test_under_the_reply_architecture_a_reply_is_offered_only_where_it_may_end_the_turn():
    rules = parse_rules([{"type": "required_before_exit", "tool_name": SEARCH},
                         {"type": "constrain_child_tools", "tool_name": CONVO,
                          "children": [SEND, SEARCH]}], NAMES, 6, replies_end_turn=True)
    solver = RuleSolver(rules, NAMES, replies_end_turn=True)
    first = solver.allowed([], 0, 6)
    assert SEND not in first.functions and SEARCH in first.functions
    assert str(first.narrowed_by[-1]) == f"required_before_exit on {SEARCH}"
    assert SEND in solver.allowed([Call(SEARCH)], 1, 6).functions  # a reply may end it now
    assert solver.allowed([Call(SEARCH), Call(CONVO)], 2, 6).functions == [SEND, SEARCH]
    # the same rules under the paper's architecture allow send_message at once
    assert SEND in RuleSolver(rules, NAMES).allowed([], 0, 6).functions


def test_a_rule_set_that_leaves_a_reply_agent_no_way_out_is_refused():
    rules = [{"type": "run_first", "tool_name": SEND}, {"type": "continue_loop", "tool_name": SEND}]
    assert parse_rules(rules, NAMES, 6)  # the paper's agent sends and goes on
    with pytest.raises(ToolRuleError, match="no function allowed at the first step"):
        parse_rules(rules, NAMES, 6, replies_end_turn=True)


# --- no model output breaks a rule ------------------------------------------------------------

def _rule(kind: str, tool: str, others: list[str], limit: int) -> dict:
    rule = {"type": kind, "tool_name": tool}
    if kind == "constrain_child_tools":
        rule["children"] = others
    elif kind == "max_count_per_step":
        rule["max_count_limit"] = limit
    elif kind == "conditional":
        rule["child_output_mapping"] = {"Sent.": others[0]}
        rule["default_child"] = others[-1]
    return rule


RULES = st.lists(st.builds(_rule, st.sampled_from(KINDS), st.sampled_from(NAMES),
                           st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True),
                           st.integers(1, 3)), max_size=5)
OUTPUTS = st.lists(st.one_of(st.builds(
    lambda function, heartbeat, text: call(function, "t", message=text, query=text,
                                           content=text, label="human", page=1,
                                           request_heartbeat=heartbeat),
    st.sampled_from(NAMES), st.booleans(), st.sampled_from(["", "x", "Sent."])),
    st.sampled_from(["Hello there.", "  ", "Sure: {not a call}"])),  # plain text (a reply)
    min_size=40, max_size=40)


def _broken(solver: RuleSolver, steps: list, stopped: str | None, max_chain: int) -> list[str]:
    """Every way a turn's steps break the rules (under the reply architecture, a reply is
    the turn's last step)."""
    history: list[Call] = []
    problems = []
    for index, step in enumerate(steps):
        if step.function not in solver.allowed(history, index, max_chain).functions:
            problems.append(f"step {index}: {step.function} not allowed after {history}")
        history.append(Call(step.function, step.result))
    last = steps[-1] if steps else None
    if last and stopped is None and not last.failed:
        if solver.required_left(history):
            problems.append(f"turn ended with {solver.required_left(history)} not called")
        if solver.of("continue_loop", last.function) or solver.has_children(last.function):
            problems.append(f"turn ended after {last.function}, which must continue")
    for index, step in enumerate(steps[:-1]):
        if solver.of("exit_loop", step.function) and not step.failed:
            problems.append(f"turn went on after exit_loop {step.function} at step {index}")
        if solver.replies_end_turn and step.kind == "reply":
            problems.append(f"turn went on after the reply of step {index}")
    return problems


@pytest.mark.parametrize("architecture", ["memgpt", "reply"])
@settings(max_examples=60, deadline=None)
@given(rules=RULES, outputs=OUTPUTS, max_chain=st.integers(2, 6))
def test_no_model_output_breaks_the_rules(architecture, rules, outputs, max_chain):
    replies_end_turn = architecture == "reply"
    try:
        parsed = parse_rules(rules, NAMES, max_chain, replies_end_turn)
    except ToolRuleError:
        return  # refused on the way in: tested above
    with tempfile.TemporaryDirectory() as home:
        agent = make_agent(Path(home), outputs, tool_rules=rules, max_chain=max_chain,
                           architecture=architecture)
        agent.runtime.enforce_schema = True
        solver = RuleSolver(parsed, NAMES, replies_end_turn)
        for text in ("Hello", "Tell me more", "Bye"):
            turn = agent.send(text)
            assert not _broken(solver, turn.steps, turn.stopped, max_chain)
            assert (turn.stopped is None) == (turn.stop_reason is None)  # a reason and a line
            if turn.stop_reason is StopReason.NO_FUNCTION_ALLOWED:
                assert "allow no function" in turn.stopped
            for step in turn.steps:
                allowed = step.allowed or NAMES
                assert step.function in allowed
                assert (step.kind == "reply") == (replies_end_turn and step.function == SEND)
        agent.close()
        agent.stores.db.close()


# --- through the engine and the real model -----------------------------------------------------

def test_rules_travel_with_an_exported_agent(tmp_path):
    from memgpt_local.engine import Engine, EngineConfig
    from memgpt_local.errors import SettingsError

    rules = [{"type": "run_first", "tool_name": SEARCH},
             {"type": "max_count_per_step", "tool_name": SEARCH, "max_count_limit": 2}]
    with Engine(EngineConfig(tmp_path)) as engine:
        engine.create_agent("ann", settings={"tool_rules": rules, "memory_hits": 3})
        with pytest.raises(SettingsError, match="unknown function 'web'"):
            engine.configure_agent("ann", {"tool_rules": [{"type": "exit_loop",
                                                           "tool_name": "web"}]})
        document = engine.transfer.export_document("ann")
        engine.transfer.import_document(document, "bob")
        shown = engine.show_agent("bob")
    assert shown["tool_rules"] == rules and shown["memory_hits"] == 3


@pytest.mark.real
def test_run_first_holds_in_every_turn_on_the_real_model(tmp_path):
    from datetime import UTC, datetime

    from memgpt_local.engine import Engine, EngineConfig

    clock = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with Engine(EngineConfig(tmp_path), clock=lambda: clock) as engine:
        engine.create_agent("ann", "smollm2-135m", 2048, settings={"tool_rules": [
            {"type": "run_first", "tool_name": SEARCH}]})
        agent = engine.open_agent("ann")
        agent.insert_passage("Ann's cat is called Miso.")
        turns = [agent.send(text) for text in ("Hi, I am Ann.", "What is my cat called?",
                                               "I moved to Lyon last year.")]
        engine.close_agent(agent)
    for turn in turns:
        assert turn.steps[0].function == SEARCH and turn.steps[0].allowed == [SEARCH]
        assert all(not s.stats.finish_reason == "loop" for s in turn.steps)
