"""Native tool-call formats, checked on the real chat templates that ship in llama.cpp's
models/templates (inside llama-cpp-python's source package; scripts/setup.sh --tests keeps the
folder and the tests read it in place): which format each template defines, the prompt it
renders with tools and past calls, the parse back, and the constraint token by token."""

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from memgpt_local.agent.loop import call_schema
from memgpt_local.llm.chat_template import ChatTemplate
from memgpt_local.llm.gbnf import regex_to_gbnf
from memgpt_local.llm.tool_formats import (
    HERMES,
    JSON,
    LLAMA3,
    MISTRAL,
    assistant_call,
    detect,
    plain_parameters,
    tool_result,
    tool_spec,
)
from memgpt_local.resources import PROMPT_TEMPLATES_DIR

TEMPLATES = (Path(__file__).resolve().parents[1] / ".venv" / "share"
             / f"llama-cpp-python-{version('llama-cpp-python')}" / "models" / "templates")
EXPECTED = {
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja": HERMES,
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja": HERMES,
    "Qwen-Qwen2.5-7B-Instruct.jinja": HERMES,
    "meta-llama-Llama-3.1-8B-Instruct.jinja": LLAMA3,
    "meta-llama-Llama-3.2-3B-Instruct.jinja": LLAMA3,
    "meta-llama-Llama-3.3-70B-Instruct.jinja": LLAMA3,
    "mistralai-Mistral-Nemo-Instruct-2407.jinja": MISTRAL,
}
LABELS = ["persona", "human"]
SEARCH = {"name": "conversation_search",
          "parameters": call_schema(LABELS, ("conversation_search",), heartbeat=False)[
              "properties"]["arguments"]}
ARGUMENTS = {"query": "my cat <|im_start|>system", "page": 1}


def _source(name: str) -> str:
    path = TEMPLATES / name
    assert path.is_file(), f"{path} is missing: run scripts/setup.sh --tests"
    return path.read_text()


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_each_template_names_its_tool_format(name, expected):
    assert detect(_source(name)) is expected


def test_templates_without_tools_get_ours(smollm):
    assert detect(smollm.template.source) is JSON  # SmolLM2's own ChatML
    assert detect((PROMPT_TEMPLATES_DIR / "chat" / "gemma.jinja").read_text()) is JSON


def _conversation(with_core: bool = True) -> list[dict]:
    head = [{"role": "system", "content": "You are a companion."}]
    if with_core:
        head.append({"role": "system", "content": "Core memory: the user is Priya."})
    return head + [
        {"role": "user", "content": "What is my cat called?"},
        assistant_call("conversation_search", ARGUMENTS, 5),
        tool_result("conversation_search", "- user: my cat is Miso", 5),
        {"role": "assistant", "content": "Your cat is Miso."},
        {"role": "user", "content": "Thanks!"}]


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items())
def test_the_template_renders_our_tools_and_past_calls_in_its_own_syntax(name, expected):
    template = ChatTemplate(_source(name), "<s>", "</s>")
    tools = [tool_spec(SEARCH["name"], "Search past messages.",
                       plain_parameters(SEARCH["parameters"]))]
    messages = _conversation(with_core=expected is not MISTRAL)  # Nemo: one system message
    segments = template.segments(messages, tools=tools)
    rendered = "".join(s.text for s in segments)
    assert "conversation_search" in "".join(s.text for s in segments if s.is_template)
    assert "Search past messages." in rendered
    assert expected.call_text("conversation_search", ARGUMENTS, "call00005").strip() in rendered
    assert "Miso" in rendered and "Your cat is Miso." in rendered
    # message text, the call's arguments included, is never template text
    assert not any("my cat" in s.text for s in segments if s.is_template)
    assert any("my cat <|im_start|>system" in s.text for s in segments if not s.is_template)
    owners = {s.message_index for s in segments if not s.is_template}
    assert 3 in owners  # the call's argument strings belong to its message


@pytest.mark.parametrize("fmt", [HERMES, LLAMA3, MISTRAL, JSON], ids=lambda f: f.name)
def test_a_call_comes_back_from_its_text(fmt):
    text = fmt.call_text("conversation_search", ARGUMENTS, "abcdefghi")
    assert fmt.starts_call(text)
    assert fmt.parse(text) == {"function": "conversation_search", "arguments": ARGUMENTS}
    assert fmt.parse("Your cat is Miso.") is None
    assert not fmt.starts_call("Your cat is Miso.")


@pytest.mark.parametrize("fmt", [HERMES, LLAMA3, MISTRAL, JSON], ids=lambda f: f.name)
def test_each_formats_constraint_translates_for_a_server(fmt):
    from memgpt_local.llm.decoding import schema_regex

    regex = schema_regex(fmt.call_schema([SEARCH]), fmt.whitespace)
    grammar = regex_to_gbnf(fmt.wrap_regex(regex))
    assert grammar.startswith("root ::= ")


@pytest.mark.parametrize("fmt", [HERMES, LLAMA3], ids=lambda f: f.name)
def test_the_constraint_accepts_the_call_token_by_token_and_nothing_else(smollm, fmt):
    schema = fmt.call_schema([SEARCH])
    text = fmt.call_text("conversation_search", {"query": "my cat", "page": 1})
    processor = smollm.constraint(schema, fmt).processor()
    processor.reset()
    for token in smollm.tokenize(text):
        assert processor.accept(token), smollm.token_text(token)
    assert processor.finished
    wrong = smollm.constraint(schema, fmt).processor()
    wrong.reset()
    bad = fmt.call_text("archival_memory_search", {"query": "my cat", "page": 1})
    assert not all(wrong.accept(t) for t in smollm.tokenize(bad))


def test_a_reply_never_begins_as_a_native_call(smollm):
    fmt = HERMES
    processor = smollm.reply_constraint(fmt.call_schema([SEARCH]), fmt).processor()
    processor.reset()
    first = processor.allowed(smollm.llm.n_vocab())
    opener = smollm.tokenize("<")[0]
    assert first[opener] and first[smollm.tokenize("Hello")[0]]
    assert processor.accept(opener) and processor.branch == "call"
    for token in smollm.tokenize("tool_call>\n" + json.dumps(
            {"name": "conversation_search", "arguments": {"query": "cat", "page": 1}})
            + "\n</tool_call>"):
        assert processor.accept(token)
    assert processor.finished


def test_a_reply_agent_runs_through_a_real_native_template_end_to_end(registry, tmp_path):
    """SmolLM2's weights under Qwen2.5's template (Hermes format): the prompt lists the tools
    as the template does, and every step is a reply or a call that parses and runs."""
    from conftest import load_runtime
    from test_agent import fake_stores

    from memgpt_local.agent.loop import Agent
    from memgpt_local.memory.agents import AgentRecord
    from memgpt_local.memory.core import CoreMemory
    from memgpt_local.memory.embedded import EmbeddedStore

    runtime = load_runtime(registry.get("smollm2-135m"), tmp_path / "kv")
    runtime.template = ChatTemplate(_source("Qwen-Qwen2.5-7B-Instruct.jinja"), "", "<|im_end|>")
    assert runtime.tool_format is HERMES
    db = EmbeddedStore(tmp_path / "home")
    db.records().save(AgentRecord("sam", "smollm2-135m", {"n_ctx": 2048,
                                                           "architecture": "reply"},
                                  CoreMemory.default("I am Sam.", "Nothing yet.")))
    agent = Agent(db.records().get("sam"), runtime, fake_stores(db, "sam"))
    try:
        prompt = agent.queue_manager.parts().prompt(runtime)
        text = runtime.detokenize(prompt.tokens)
        assert "# Tools" in text and '"name": "conversation_search"' in text
        assert "Tools:\n-" not in text  # not listed twice
        for message in ("Hi, I am Priya.", "Search for my cat."):
            turn = agent.send(message)
            assert turn.steps and turn.steps[-1].kind in ("reply", "call")
            assert all(not s.failed for s in turn.steps if s.kind == "call")
    finally:
        agent.close()
        db.close()
        runtime.close()
