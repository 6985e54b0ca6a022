"""The reply architecture on the real SmolLM2 model, greedy: every turn ends in a plain reply
that streams as it is written, every call parses, the constraint's branches hold token by
token, and a new process resumes the agent from its context snapshot."""

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import numpy as np

from memgpt_local.agent.loop import call_schema
from memgpt_local.agent.turn import ReplyText
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.llm.base import SamplingSettings

CLOCK = datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
N_CTX = 2048
MESSAGES = ["Hi! My name is Priya and I live in Lisbon.", "My cat is called Miso.",
            "What is my cat's name?"]
LABELS = ["persona", "human"]


def engine(home: Path) -> Engine:
    return Engine(EngineConfig(home), clock=lambda: CLOCK)


def test_every_turn_ends_in_a_streamed_plain_reply(tmp_path):
    with engine(tmp_path) as eng:
        eng.create_agent("priya", "smollm2-135m", N_CTX, settings={"architecture": "reply"})
        agent = eng.open_agent("priya")
        turns = [agent.first_login()]
        for text in MESSAGES:
            streamed: list[str] = []
            turns.append(agent.send(text, lambda e, out=streamed:
                                    isinstance(e, ReplyText) and out.append(e.text)))
            reply = turns[-1].replies[-1]
            assert "".join(streamed).strip().startswith(reply[:40])
    schema = call_schema(LABELS, heartbeat=False)
    for turn in turns:
        assert turn.stopped is None and turn.steps[-1].kind == "reply"
        assert turn.replies and turn.replies[-1].strip()
        assert not turn.replies[-1].lstrip().startswith("{")
        for step in turn.steps:
            assert not step.failed
            if step.kind == "call":
                jsonschema.validate({"function": step.function, "arguments": {
                    k: v for k, v in step.arguments.items() if k != "request_heartbeat"}},
                    schema)


def test_a_new_process_resumes_a_reply_agent_from_its_context_snapshot(tmp_path):
    with engine(tmp_path) as eng:
        eng.create_agent("priya", "smollm2-135m", N_CTX, settings={"architecture": "reply"})
        eng.open_agent("priya").send(MESSAGES[0])
    with engine(tmp_path) as eng:
        step = eng.open_agent("priya").send(MESSAGES[1]).steps[0]
    assert step.stats.prefix_source == "context"
    assert step.stats.evaluated_tokens <= 1.2 * step.new_tokens


SMALL_TALK = ["The weather was grey and windy all day today.",
              "I cooked a big pot of lentil soup for dinner.",
              "My train to work was late again this morning.",
              "I watched a documentary about volcanoes last night.",
              "I am thinking about repainting the kitchen walls green.",
              "My neighbour plays the piano every evening.",
              "I went for a long walk along the canal after lunch.",
              "The library near my office is closing for repairs."]


def test_a_fact_that_left_the_window_is_brought_back_and_answered(tmp_path):
    # greedy and on a fixed clock: the fact of turn 1 is flushed out of the 2,048 window
    # by small talk, the memory brought to the question holds it, and SmolLM2 answers
    with engine(tmp_path) as eng:
        eng.create_agent("priya", "smollm2-135m", N_CTX, settings={"architecture": "reply"})
        agent = eng.open_agent("priya")
        fact = "My cat is called Miso."
        agent.send(fact)
        talk = 0
        while agent.state.flushes == 0 or any(fact in m.content for m in agent.queue):
            assert talk < 60, "the fact never left the window"
            agent.send(SMALL_TALK[talk % len(SMALL_TALK)])
            talk += 1
        turn = agent.send("What is my cat's name?")
    assert turn.memory is not None and f"user: {fact}" in turn.memory
    assert turn.steps[-1].kind == "reply" and "Miso" in turn.replies[-1]


def _first_tokens(smollm, processor, prompt: str, count: int) -> tuple[list[bytes], str]:
    tokens = smollm.chat_tokens([{"role": "user", "content": prompt}]).tokens
    generation = smollm.generate(tokens, max_tokens=count, processor=processor,
                                 sampling=SamplingSettings()).finish()
    return [smollm.pieces.piece(t) for t in generation.tokens], generation.text


def test_the_branches_hold_token_by_token_on_the_real_vocabulary(smollm):
    schema = call_schema(LABELS, ("conversation_search", "core_memory_append"), heartbeat=False)
    both = smollm.reply_constraint(schema).processor()
    both.reset()
    first = both.allowed(smollm.llm.n_vocab())
    pieces = [smollm.pieces.piece(t) for t in np.flatnonzero(first)]
    assert all(p.startswith(b"{") or (p.strip() and not p.lstrip().startswith(b"{"))
               for p in pieces)
    _, text = _first_tokens(smollm, both, "Hello! How are you?", 40)
    assert text.strip() and not text.lstrip().startswith("{")  # SmolLM2 greets in words
    calls_only = smollm.constraint(schema).processor()
    _, call_text = _first_tokens(smollm, calls_only, "Search for my cat.", 120)
    jsonschema.validate(json.loads(call_text), schema)
    assert "request_heartbeat" not in call_text
