"""The reply architecture with a scripted model: plain replies end the turn, calls continue it,
the history is stored as the paper's agent stores it and shown in each architecture's form."""

import json

import numpy as np
from fakes import call
from hypothesis import given
from hypothesis import strategies as st
from test_agent import make_agent, roles

from memgpt_local.agent.architectures import (
    MemgptArchitecture,
    ReplyArchitecture,
    is_note,
    without_repeats,
)
from memgpt_local.agent.context import static_instructions
from memgpt_local.agent.recollection import ENTRY_FUNCTION
from memgpt_local.agent.settings import AgentSettings
from memgpt_local.agent.streaming import PlainStreamer
from memgpt_local.agent.turn import ReplyText
from memgpt_local.llm.decoding import TokenPieces
from memgpt_local.llm.echo import EchoGuard, rest_of_text, shown_text
from memgpt_local.llm.gbnf import regex_to_gbnf
from memgpt_local.llm.reply_constraint import ReplyOrCallProcessor
from memgpt_local.memory.messages import Message


def reply_agent(tmp_path, script, **settings):
    return make_agent(tmp_path, script, architecture="reply", **settings)


def test_a_plain_reply_streams_reaches_the_user_and_ends_the_turn(tmp_path):
    agent = reply_agent(tmp_path, ["Hello Priya, nice to meet you!"])
    streamed = []
    turn = agent.send("Hi, I am Priya.", lambda e: isinstance(e, ReplyText) and
                      streamed.append(e.text))
    assert turn.replies == ["Hello Priya, nice to meet you!"]
    assert "".join(streamed) == turn.replies[0]
    assert [(s.kind, s.function, s.heartbeat) for s in turn.steps] == [
        ("reply", "send_message", False)]
    assert roles(agent) == ["system", "user", "function_call", "function_result"]
    stored = agent.queue[2]
    assert stored.function_name == "send_message"
    assert stored.function_args == {"message": "Hello Priya, nice to meet you!"}


def test_a_call_runs_and_another_step_follows_without_heartbeats(tmp_path):
    script = [json.dumps({"function": "core_memory_append",
                          "arguments": {"label": "human", "content": "Name: Priya"}}),
              "Nice to meet you, Priya."]
    agent = reply_agent(tmp_path, script)
    agent.runtime.enforce_schema = True
    turn = agent.send("I am Priya.")
    assert [s.kind for s in turn.steps] == ["call", "reply"]
    assert "Name: Priya" in agent.core.blocks["human"].value
    schema = json.dumps(agent.call_schema())
    assert "request_heartbeat" not in schema and "send_message" in schema
    shown = agent.queue_manager.parts().queue
    assert shown[-3:] == [
        {"role": "assistant", "content": json.dumps(
            {"function": "core_memory_append",
             "arguments": {"label": "human", "content": "Name: Priya"}})},
        {"role": "user", "content": shown[-2]["content"]},
        {"role": "assistant", "content": "Nice to meet you, Priya."}]
    assert shown[-2]["content"].startswith("[function result: core_memory_append]")
    assert "Heartbeat" not in shown[-2]["content"]
    assert all(e["content"] != "Sent." and "Sent." not in e["content"] for e in shown)


def test_switching_architecture_shows_the_same_history_in_the_other_form(tmp_path):
    agent = make_agent(tmp_path, [call("send_message", message="Hi! Who are you?")])
    agent.send("Hello")
    memgpt_view = MemgptArchitecture().entries(agent.queue)
    reply_view = ReplyArchitecture().entries(agent.queue)
    assert json.loads(memgpt_view[-2].message["content"])["function"] == "send_message"
    assert reply_view[-1].message == {"role": "assistant", "content": "Hi! Who are you?"}
    assert len(reply_view) == len(memgpt_view) - 1  # its "Sent." result is not shown
    # and back: a reply agent's reply reads as a send_message call to the paper's agent
    other = reply_agent(tmp_path / "other", ["Fine, thanks."])
    other.send("How are you?")
    call_text = MemgptArchitecture().entries(other.queue)[-2].message["content"]
    assert json.loads(call_text) == {"function": "send_message",
                                     "arguments": {"message": "Fine, thanks."}}


def test_the_notes_of_a_turn_come_before_the_user_message_they_follow():
    # the memory brought to a turn and an alert are stored after the user's message; the
    # reply architecture shows them before it, so the model answers the user's own words
    queue = stored([("system", None, "A new user has just logged in."),
                    ("user", None, "What is my dog called?"),
                    ("function_result", ENTRY_FUNCTION, "user: My dog is Biscuit."),
                    ("system", None, "Memory pressure: 72%"),
                    ("function_call", "conversation_search", '{"function": "x"}'),
                    ("function_result", "conversation_search", "No results.")])
    shown = [e.message["content"] for e in ReplyArchitecture().entries(queue)]
    assert shown[:4] == ["[system] A new user has just logged in.",
                         "[memory] user: My dog is Biscuit.", "[system] Memory pressure: 72%",
                         "What is my dog called?"]
    assert shown[5].startswith("[function result: conversation_search]")
    memgpt = [e.message["content"] for e in MemgptArchitecture().entries(queue)]
    assert memgpt[1].endswith("What is my dog called?")  # the paper's order, unchanged


def test_a_reply_agent_brings_a_line_still_in_view_beside_the_question(tmp_path):
    # a small model answers from a line set just before the question, not from the same
    # line further up; the paper's agent keeps bringing only what left the context
    for architecture, brought in (("reply", True), ("memgpt", False)):
        agent = make_agent(tmp_path / architecture, [call("send_message", message="Noted.")] * 2,
                           architecture=architecture, memory_hits=3)
        agent.send("I have a dog called Biscuit.")
        turn = agent.send("What is my dog called?")
        assert any(m.content == "I have a dog called Biscuit." for m in agent.queue)  # in view
        assert (turn.memory is not None and "user: I have a dog called Biscuit." in
                turn.memory) is brought
        assert "What is my dog called" not in (turn.memory or "")  # never the message itself


def test_an_empty_summary_says_the_conversation_has_just_begun_only_where_it_has(tmp_path):
    # an agent whose recall holds a conversation it never summarised (an imported one) was
    # told "the conversation has just begun", and a small model answered with those words;
    # the paper's agent keeps its text
    past = [Message(("user", "assistant")[i % 2], f"Old message {i}.") for i in range(6)]
    for architecture, imported in (("reply", ""), ("memgpt", "has just begun")):
        new = make_agent(tmp_path / architecture / "new", None, architecture=architecture)
        assert "the conversation has just begun" in new.queue_manager.parts().summary
        agent = make_agent(tmp_path / architecture / "imported", None,
                           architecture=architecture)
        agent.recall.bulk_import(past)
        summary = agent.queue_manager.parts().summary
        assert (imported in summary) if imported else summary == ""
        agent.record.summary = "Priya talked about her cat."
        assert "Priya talked about her cat." in agent.queue_manager.parts().summary


NOTE_OR_NOT = st.sampled_from([
    ("user", None), ("system", None), ("function_result", ENTRY_FUNCTION), ("assistant", None),
    ("function_call", "conversation_search"), ("function_result", "conversation_search")])


@given(st.lists(NOTE_OR_NOT, max_size=12))
def test_notes_move_only_before_the_user_message_they_follow(kinds):
    queue = stored([(role, name, f"{role} {i}") for i, (role, name) in enumerate(kinds)])
    keys = [e.key for e in ReplyArchitecture().entries(queue)]
    assert sorted(keys) == sorted(str(m.id) for m in queue)  # each shown once
    others = [m for m in queue if not is_note(m)]
    assert [k for k in keys if k in {str(m.id) for m in others}] == [str(m.id) for m in others]
    for i, message in enumerate(queue):  # a note stands where its nearest non-note says
        if not is_note(message):
            continue
        before = next((m for m in reversed(queue[:i]) if not is_note(m)), None)
        if before is None:
            continue
        at, anchor = keys.index(str(message.id)), keys.index(str(before.id))
        if before.role == "user":
            assert at < anchor and all(is_note(queue[int(k) - 1]) for k in keys[at:anchor])
        else:
            assert at > anchor


def stored(rows: list[tuple[str, str | None, str]]) -> list[Message]:
    """Messages as recall stores them (ids in order)."""
    return [Message(role, content, function_name=name, id=i + 1, seq=i + 1)
            for i, (role, name, content) in enumerate(rows)]


def test_the_reply_instructions_offer_no_send_message_and_no_heartbeats():
    reply = static_instructions("", (), "reply")
    assert "send_message" not in reply and "request_heartbeat" not in reply
    assert "conversation_search(query: string, page: integer)" in reply
    assert "send_message" in static_instructions("", (), "memgpt")


def test_settings_name_a_known_architecture():
    assert AgentSettings.from_dict({}).architecture == "memgpt"  # agents stored before
    assert AgentSettings.checked({"architecture": "reply"}).architecture == "reply"
    try:
        AgentSettings.checked({"architecture": "letta"})
    except ValueError as exc:
        assert "memgpt, reply" in str(exc)
    else:
        raise AssertionError("an unknown architecture was accepted")


def test_a_reply_that_loops_is_kept_once():
    looped = "I like cats. " + "You are my friend and " * 3
    assert without_repeats(looped.rstrip()) == "I like cats. You are my friend and"
    assert without_repeats("No loop here at all.") == "No loop here at all."


def test_a_short_phrase_looped_many_times_is_kept_once():
    # the loop guard stops a span of 8+ tokens written three times: of a 3-token phrase,
    # nine copies; the reply (as SmolLM2 wrote it) keeps one
    looped = "What have you ever seen" + ", or seen" * 9
    assert without_repeats(looped) == "What have you ever seen, or seen"


@given(st.text(max_size=40), st.text(min_size=8, max_size=20), st.integers(3, 12))
def test_a_looped_tail_is_cut_to_one_copy(prefix, phrase, copies):
    looped = prefix + phrase * copies
    kept = without_repeats(looped)
    assert looped.startswith(kept)
    assert len(kept) <= len(prefix) + len(phrase)
    assert without_repeats(kept) == kept  # nothing repeated is left to cut


def test_the_plain_streamer_passes_replies_and_holds_calls_back():
    seen = []
    reply = PlainStreamer(seen.append)
    for piece in ["  ", "Hel", "lo"]:
        reply.feed(piece)
    assert "".join(seen) == "Hello"
    held = []
    called = PlainStreamer(held.append)
    for piece in [" ", "{\"function\"", ": \"x\"}"]:
        called.feed(piece)
    assert held == [] and called.emitted == 0


PIECES = [b"{", b'{"', b"Hello", b" Hi", b" ", b"\n", b" {", b"", b"ok"]


class _CallStub:
    """A call processor over PIECES that allows only tokens starting with `{` at first."""

    regex = r"\{.*\}"

    def __init__(self):
        self.advanced = []

    def reset(self):
        self.advanced = []

    def allowed(self, n):
        return np.array([p.startswith(b"{") for p in PIECES][:n])

    def __call__(self, input_ids, logits):
        self.advanced.append(int(input_ids[-1]))
        return logits


def _processor(reply=True, call=True):
    pieces = TokenPieces(lambda t: PIECES[t], len(PIECES))
    return ReplyOrCallProcessor(_CallStub() if call else None, reply, pieces)


def test_the_first_token_offers_exactly_a_call_or_a_reply_not_starting_with_a_brace():
    processor = _processor()
    logits = processor(np.array([100]), np.zeros(len(PIECES)))
    allowed = [PIECES[t] for t in np.flatnonzero(np.isfinite(logits))]
    assert allowed == [b"{", b'{"', b"Hello", b" Hi", b"ok"]
    text_only = _processor(call=False)(np.array([100]), np.zeros(len(PIECES)))
    assert [PIECES[t] for t in np.flatnonzero(np.isfinite(text_only))] == [b"Hello", b" Hi",
                                                                           b"ok"]


def _guarded_in_process(processor, tokens: list[int]) -> str:
    """What the echo guard shows of tokens sampled under the processor, called as llama.cpp
    calls it: the logits of each token are asked before the token is known."""
    guard, shown, ids = EchoGuard(span=4), "", [100]
    for token in tokens:
        processor(np.array(ids), np.zeros(len(PIECES)))
        ids.append(token)
        shown += shown_text(guard, processor, token, PIECES[token].decode())
        if guard.looped:
            return shown
    return shown + rest_of_text(guard, "")


def test_the_echo_guard_sees_a_replys_first_token():
    # the branch is known only from the second token's logits on; unseen, a repeat of the
    # first token showed before the guard ended the reply ("I'm so glad... \n\nI")
    hello, hi, newline = 2, 3, 5
    said = _guarded_in_process(_processor(), [hello, hi, newline, hello, hi, newline, hello])
    assert said == "Hello Hi\n"
    assert not _processor(reply=False).free_text  # a call is forced: never free text
    call = _processor()
    _guarded_in_process(call, [0, 1])
    assert call.branch == "call" and not call.free_text


def test_a_brace_first_hands_every_later_token_to_the_call_constraint():
    processor = _processor()
    processor(np.array([100]), np.zeros(len(PIECES)))
    processor(np.array([100, 1]), np.zeros(len(PIECES)))
    assert processor.branch == "call" and processor.call.advanced == [1]
    text = _processor()
    text(np.array([100]), np.zeros(len(PIECES)))
    after = text(np.array([100, 2]), np.zeros(len(PIECES)))
    assert text.branch == "reply" and np.isfinite(after).all() and text.finished
    assert text.finish_tokens == 0 and not text.close_string()


def test_a_server_gets_both_branches_as_one_grammar():
    grammar = regex_to_gbnf(_processor().regex)
    assert grammar.startswith("root ::= (") and "|" in grammar
    processor = _processor()
    assert processor.accept(4)  # a blank first: only a reply may follow
    assert not processor.accept(0)
    assert processor.accept(2) and processor.branch == "reply"


def test_a_reply_written_as_a_send_message_call_is_the_reply(tmp_path):
    agent = reply_agent(tmp_path, [call("send_message", message="Hello there.")])
    turn = agent.send("Hi")
    assert turn.replies == ["Hello there."] and [s.kind for s in turn.steps] == ["reply"]


def test_a_model_with_a_native_tool_format_calls_in_it_and_sees_its_calls_that_way(tmp_path):
    from fakes import FakeRuntime

    from memgpt_local.llm.tool_formats import HERMES

    script = [HERMES.call_text("core_memory_append", {"label": "human",
                                                      "content": "Name: Priya"}),
              "Nice to meet you, Priya."]
    runtime = FakeRuntime(script)
    runtime.tool_format = HERMES
    agent = make_agent(tmp_path, None, architecture="reply")
    agent = type(agent)(agent.record, runtime, agent.stores)
    streamed = []
    turn = agent.send("I am Priya.", lambda e: isinstance(e, ReplyText) and
                      streamed.append(e.text))
    assert [s.kind for s in turn.steps] == ["call", "reply"]
    assert "Name: Priya" in agent.core.blocks["human"].value
    assert "".join(streamed) == "Nice to meet you, Priya."  # the call was never streamed
    names = [t["function"]["name"] for t in runtime.last_tools]
    assert "core_memory_append" in names and "send_message" not in names
    assert "Tools:" not in runtime.last_messages[0]["content"]  # the template lists them
    call, result = runtime.last_messages[-2:]  # the reply's prompt ends with the result
    assert call["tool_calls"][0]["function"] == {
        "name": "core_memory_append", "arguments": {"label": "human", "content": "Name: Priya"}}
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]


def test_the_plain_streamer_waits_until_a_native_opener_is_ruled_out():
    seen = []
    streamer = PlainStreamer(seen.append, "<tool_call>")
    for piece in ["<", "tool", "_call>", "{}"]:
        streamer.feed(piece)
    assert seen == []
    reply = PlainStreamer(seen.append, "<tool_call>")
    for piece in ["<", "3 you"]:
        reply.feed(piece)
    assert "".join(seen) == "<3 you"


def test_a_native_call_that_does_not_parse_goes_back_to_the_model_as_an_error(tmp_path):
    """An output that opens a call in the model's format but is not one: the step fails with
    a readable error as its result, and the model gets another step."""
    from fakes import FakeRuntime

    from memgpt_local.llm.tool_formats import HERMES

    runtime = FakeRuntime(["<tool_call>\n{\"name\": \"core_memory_append\"", "Hello!"])
    runtime.tool_format = HERMES
    agent = make_agent(tmp_path, None, architecture="reply")
    agent = type(agent)(agent.record, runtime, agent.stores)
    turn = agent.send("Hi")
    assert [s.kind for s in turn.steps] == ["call", "reply"] and turn.steps[0].failed
    assert "not one JSON function call" in runtime.last_messages[-1]["content"]
