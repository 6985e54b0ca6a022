"""Imports that cannot break anything: the six published Letta files and our own exports,
mutated at random (types swapped, fields removed, deep nesting, huge and invalid text), sent
to the server's import and the command line's. Never a traceback or a 500; a refused file
changes nothing; an accepted agent answers on every route that reads it. The same campaign,
longer and through a real server, is in scripts/bench_faults.py."""

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import FakeRuntime, HashingEmbedder, call
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_local.bench.bad_input import home_digest
from memgpt_local.bench.import_fuzz import (
    ImportFuzzReport,
    encoded,
    mutated,
    seed_documents,
    try_http_import,
)
from memgpt_local.cli import cli
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.server.app import create_app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict:
    return seed_documents(SHARED, tmp_path_factory.mktemp("seed"))


@pytest.fixture(scope="module")
def request_app(tmp_path_factory):
    """An HTTP request function on an app over an engine with a scripted model."""
    engine = Engine(EngineConfig(tmp_path_factory.mktemp("home")), embedder=HashingEmbedder(),
                    runtime_factory=lambda *a, **k: FakeRuntime(
                        lambda messages: call("send_message", message="Hi."), 8192))
    with TestClient(create_app(engine), base_url="http://127.0.0.1",
                    raise_server_exceptions=False) as client:
        def request(method: str, path: str, **kwargs) -> tuple[int, str]:
            response = client.request(method, path, **kwargs)
            return response.status_code, response.text

        yield request


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["memgpt_agent.af", "customer_service.af", "lettabot-builder.af",
                             "deep_research_agent.af", "ours.json", "ours.af"]),
       rng=st.randoms(use_true_random=False))
def test_a_mutated_file_over_http_is_refused_in_a_line_or_accepted_whole(
        documents, request_app, name, rng):
    kind, document = documents[name]
    changed, what = mutated(document, rng)
    report = ImportFuzzReport()
    try_http_import(request_app, kind, encoded(changed, rng), f"{name}: {what}", report)
    assert (report.server_errors, report.unclear_refusals, report.store_changed,
            report.agents_unreadable) == (0, 0, 0, 0), report.problems


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.sampled_from(["memgpt_agent.af", "outreach_workflow_agent.af", "ours.json",
                             "ours.af"]),
       seed=st.integers(0, 10**6))
def test_a_mutated_file_on_the_command_line_is_one_line_or_imported(
        documents, tmp_path_factory, name, seed):
    kind, document = documents[name]
    rng = random.Random(seed)
    changed, what = mutated(document, rng)
    folder = tmp_path_factory.mktemp("cli")
    path = folder / ("case.af" if kind == "af" else "case.json")
    path.write_text(json.dumps(encoded(changed, rng)), encoding="utf-8", errors="surrogatepass")
    env = {"MEMGPT_LOCAL_HOME": str(folder / "home")}
    CliRunner().invoke(cli, ["agents", "list"], env=env)  # the home exists, empty
    before = home_digest(folder / "home")
    result = CliRunner().invoke(cli, ["agents", "import", str(path)]
                                + (["--our-instructions"] if kind == "af" else []), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        what, result.exception)
    if result.exit_code != 0:
        assert len(result.output.strip().splitlines()) == 1, (what, result.output)
        assert home_digest(folder / "home") == before, what


def test_the_documents_that_broke_imports_are_refused_in_one_line(documents, request_app):
    """The cases the review found: wrong types where objects belong, deep JSON in a message,
    a lone surrogate, tool-call arguments nested 900 deep."""
    _, letta = documents["memgpt_agent.af"]
    agent = letta["agents"][0]
    deep_args = '{"a":' * 900 + "1" + "}" * 900
    cases = [{**agent, "tool_rules": ["x"]}, {**agent, "metadata": [1]},
             {**agent, "llm_config": "x"},
             {**agent, "messages": [{**agent["messages"][0], "tool_calls": ["x"]}]},
             {**agent, "messages": [{**agent["messages"][0], "content": "[" * 100_000}]},
             {**agent, "name": "a\ud800b"},
             {**agent, "messages": [{**agent["messages"][0], "role": "assistant",
                                     "tool_calls": [{"id": "c", "type": "function",
                                                     "function": {"name": "send_message",
                                                                  "arguments": deep_args}}]}]}]
    for number, case in enumerate(cases):
        report = ImportFuzzReport()
        try_http_import(request_app, "af", {**letta, "agents": [case]}, f"case {number}",
                        report)
        assert (report.server_errors, report.unclear_refusals, report.store_changed,
                report.agents_unreadable) == (0, 0, 0, 0), report.problems
