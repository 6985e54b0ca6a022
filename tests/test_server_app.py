"""The server in process: its queue to the engine (order, a full queue, a timeout; as HTTP a 503
with Retry-After, never a request that waits forever; with several threads, never two jobs of
one agent at once and the engine used by one thread outside remote model calls), and generated
bad input, which must get a 4xx and never a 500."""

import json
import threading
import time
from pathlib import Path

import pytest
from fakes import FakeRuntime, HashingEmbedder
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from memgpt_local.agent.settings import NEW_AGENT_SETTINGS
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.server.app import create_app
from memgpt_local.server.host import ServerSettings
from memgpt_local.server.worker import EngineWorker, ServerBusyError


def blocker(worker: EngineWorker) -> threading.Event:
    """Occupy the worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()
    worker.submit(lambda: (started.set(), release.wait(10)))
    assert started.wait(5)
    return release


def test_one_agents_jobs_run_one_at_a_time_in_order():
    worker = EngineWorker(max_waiting=50)
    ran, running = [], []

    def job(number: int):
        running.append(number)
        assert len(running) == 1  # never two at once
        time.sleep(0.001)
        ran.append(number)
        running.remove(number)
        return number

    release = blocker(worker)
    tickets = [worker.submit(lambda n=n: job(n), key="agent") for n in range(30)]
    release.set()
    assert [t.future.result(5) for t in tickets] == list(range(30)) == ran
    worker.stop()


def test_a_full_queue_is_refused_at_once():
    worker = EngineWorker(max_waiting=2)
    release = blocker(worker)
    waiting = [worker.submit(lambda: "ok") for _ in range(2)]
    with pytest.raises(ServerBusyError) as refused:
        worker.submit(lambda: "too many")
    assert refused.value.retry_after_s > 0
    release.set()
    assert [t.future.result(5) for t in waiting] == ["ok", "ok"]
    worker.stop()


def test_a_job_that_waits_too_long_is_cancelled_and_never_runs():
    worker = EngineWorker(max_waiting=4, start_timeout_s=0.2)
    release = blocker(worker)
    ran = []
    started = time.monotonic()
    with pytest.raises(ServerBusyError, match="waited 0.2 s"):
        worker.run(lambda: ran.append("late"))
    assert time.monotonic() - started < 2
    release.set()
    assert worker.run(lambda: "next") == "next" and ran == []
    worker.stop()


def test_job_errors_reach_the_caller_and_the_worker_goes_on():
    worker = EngineWorker()
    with pytest.raises(ZeroDivisionError):
        worker.run(lambda: 1 / 0)
    assert worker.run(lambda: 2) == 2
    worker.stop()


class Overlaps:
    """What jobs on a worker did at once: per key, and on the engine (outside unlocked())."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.on_engine = self.most_on_engine = self.in_flight = self.most_in_flight = 0
        self.ran: list[int] = []

    def job(self, worker: EngineWorker, number: int, key: str, wait_s: float) -> int:
        """Enter with a key, use the engine, wait on a 'model' unlocked, use it again."""
        with self.lock:
            assert key not in self.keys, f"two jobs of {key} at once"
            self.keys.append(key)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self._use_engine()
        with worker.unlocked():
            time.sleep(wait_s)
        self._use_engine()
        with self.lock:
            self.keys.remove(key)
            self.in_flight -= 1
            self.ran.append(number)
        return number

    def _use_engine(self) -> None:
        with self.lock:
            self.on_engine += 1
            self.most_on_engine = max(self.most_on_engine, self.on_engine)
        time.sleep(0.0005)
        with self.lock:
            self.on_engine -= 1


@settings(max_examples=20, deadline=None)
@given(max_turns=st.integers(1, 4),
       jobs=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 4)), min_size=1,
                     max_size=12))
def test_parallel_turns_never_share_an_agent_or_the_engine(max_turns, jobs):
    worker = EngineWorker(max_waiting=50, max_turns=max_turns)
    seen = Overlaps()
    tickets = [worker.submit(lambda n=n, k=k, w=w: seen.job(worker, n, k, w / 1000), key=k,
                             turn=True) for n, (k, w) in enumerate(jobs)]
    assert [t.future.result(10) for t in tickets] == list(range(len(jobs)))
    worker.stop()
    assert sorted(seen.ran) == list(range(len(jobs)))  # each ran, once
    assert seen.most_on_engine == 1 and seen.most_in_flight <= max_turns


def test_turns_overlap_model_calls_and_a_busy_agent_lets_others_pass():
    worker = EngineWorker(max_waiting=10, max_turns=2)
    seen = Overlaps()
    first = worker.submit(lambda: seen.job(worker, 0, "a", 0.3), key="a", turn=True)
    second = worker.submit(lambda: seen.job(worker, 1, "a", 0.0), key="a", turn=True)
    third = worker.submit(lambda: seen.job(worker, 2, "b", 0.0), key="b", turn=True)
    assert [t.future.result(5) for t in (first, second, third)] == [0, 1, 2]
    assert seen.ran == [2, 0, 1]  # b ran during a's model call; a's second job after its first
    assert seen.most_in_flight == 2
    worker.stop()


def test_other_jobs_run_while_every_turn_waits_on_its_model():
    worker = EngineWorker(max_waiting=10, max_turns=2)
    model = threading.Event()

    def turn():
        with worker.unlocked():
            model.wait(10)

    turns = [worker.submit(turn, key=k, turn=True) for k in "ab"]
    third = worker.submit(turn, key="c", turn=True)
    deadline = time.monotonic() + 5
    while worker.running() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.running() == 2 and worker.waiting() == 1  # the third turn waits its turn
    assert worker.run(lambda: "listed") == "listed"  # a list, a search: not held up
    model.set()
    for ticket in (*turns, third):
        ticket.future.result(5)
    worker.stop()


@pytest.fixture
def app_client(tmp_path):
    app = create_app(Engine(EngineConfig(tmp_path)),
                     ServerSettings(max_waiting=1, queue_timeout_s=0.3))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, app.state.host.worker


def test_http_answers_503_with_retry_after_when_busy(app_client):
    client, worker = app_client
    release = blocker(worker)
    timed_out = client.get("/agents")  # waits 0.3 s in the queue, then gives up
    assert timed_out.status_code == 503 and int(timed_out.headers["retry-after"]) > 0
    assert timed_out.json()["error"]["type"] == "server_busy"
    worker.submit(lambda: None)  # the queue (1 place) is full now
    full = client.get("/agents")
    assert full.status_code == 503 and "busy" in full.json()["error"]["message"]
    assert client.get("/health").json()["waiting"] == 1  # health never waits
    release.set()
    deadline = time.monotonic() + 10  # the two jobs drain (a loaded machine takes a while)
    while (worker.waiting() or worker.running()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get("/agents").status_code == 200


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=80),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
AGENT_BODIES = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=70) | JSON, "model": st.sampled_from(["smollm2-135m", "nope"]) | JSON,
    "n_ctx": st.integers(-10, 10**7) | JSON, "persona": st.text(max_size=50) | JSON,
    "tool_rules": JSON | st.just([{"type": "run_first", "tool_name": "send_message"}]),
    "memory_hits": st.integers(-2, 30) | JSON})


@settings(max_examples=60, deadline=None)
@given(body=AGENT_BODIES | JSON)
def test_no_body_makes_a_500_or_a_half_written_agent(tmp_path_factory, body):
    app = create_app(Engine(EngineConfig(tmp_path_factory.mktemp("home"))))
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        response = client.post("/agents", json=body)
        assert response.status_code in (201, 400, 409, 422), response.text
        listed = client.get("/agents").json()
        if response.status_code == 201:
            assert [a["name"] for a in listed] == [response.json()["name"]]
            assert client.get(f"/agents/{listed[0]['name']}").status_code == 200
        else:
            assert listed == [] and response.json()["error"]["message"]


@pytest.fixture(scope="module")
def agent_client(tmp_path_factory):
    """An app on the real model with one agent, for many requests."""
    app = create_app(Engine(EngineConfig(tmp_path_factory.mktemp("home"))))
    with TestClient(app, raise_server_exceptions=False, base_url="http://127.0.0.1") as client:
        assert client.post("/agents", json={"name": "ann", "n_ctx": 2048}).status_code == 201
        yield client


QUERY_TEXT = st.text(max_size=40) | st.sampled_from(["*", '"', "'", "%", "NOT", "a OR", "\\x00"])
DATES = st.none() | st.dates().map(str) | st.text(max_size=12)


@pytest.mark.real
@settings(max_examples=60, deadline=None)
@given(query=st.none() | QUERY_TEXT, start=DATES, end=DATES,
       page=st.none() | st.integers(-3, 10**6) | st.text(max_size=5))
def test_no_search_makes_a_500(agent_client, query, start, end, page):
    params = {key: value for key, value in
              {"query": query, "start": start, "end": end, "page": page}.items()
              if value is not None}
    response = agent_client.get("/agents/ann/recall", params=params)
    assert response.status_code in (200, 400, 422), response.text
    if response.status_code == 200:
        assert set(response.json()) == {"page", "pages", "page_size", "total", "items"}
    else:
        assert response.json()["error"]["message"]


RULE = {"type": "run_first", "tool_name": "archival_memory_search"}


def test_tool_rules_and_memory_hits_are_set_checked_and_carried(agent_client):
    bad = agent_client.patch("/agents/ann", json={"tool_rules": [
        {"type": "run_first", "tool_name": "web_search"}], "memory_hits": 2})
    assert bad.status_code == 400 and "unknown function 'web_search'" in bad.json()["error"][
        "message"]
    unchanged = agent_client.get("/agents/ann").json()
    assert unchanged["tool_rules"] == NEW_AGENT_SETTINGS["tool_rules"]  # the defaults
    assert unchanged["memory_hits"] == NEW_AGENT_SETTINGS["memory_hits"]
    changed = agent_client.patch("/agents/ann", json={"tool_rules": [RULE], "memory_hits": 2})
    assert changed.status_code == 200, changed.text
    assert changed.json()["tool_rules"] == [RULE] and changed.json()["memory_hits"] == 2
    document = agent_client.get("/agents/ann/export").json()
    assert document["agent"]["settings"]["tool_rules"] == [RULE]
    copy = agent_client.post("/agents/import", params={"name": "ann-copy"}, json=document)
    assert copy.status_code == 201 and copy.json()["tool_rules"] == [RULE]
    assert agent_client.patch("/agents/ann", json={"state": {}}).status_code == 422
    refused = agent_client.post("/agents", json={"name": "bob", "tool_rules": [
        {"type": "max_count_per_step", "tool_name": "send_message", "max_count_limit": 0}]})
    assert refused.status_code == 400 and "max_count_limit" in refused.text
    assert agent_client.get("/agents/bob").status_code == 404


def test_optional_functions_are_offered_through_the_api(agent_client):
    refused = agent_client.patch("/agents/ann", json={"extra_functions": ["rm_rf"]})
    assert refused.status_code == 400 and "rm_rf is not an optional function" in refused.text
    assert agent_client.get("/agents/ann").json()["extra_functions"] == []
    changed = agent_client.patch("/agents/ann", json={"extra_functions": ["core_memory_rethink"]})
    assert changed.status_code == 200 and changed.json()["extra_functions"] == [
        "core_memory_rethink"]
    made = agent_client.post("/agents", json={"name": "bob",
                                              "extra_functions": ["core_memory_rethink"]})
    assert made.status_code == 201 and made.json()["extra_functions"] == ["core_memory_rethink"]


def test_the_architecture_is_chosen_switched_and_carried_over_http(agent_client):
    assert agent_client.get("/agents/ann").json()["architecture"] == "reply"  # the default
    refused = agent_client.patch("/agents/ann", json={"architecture": "letta"})
    assert refused.status_code == 422 and "'memgpt' or 'reply'" in refused.text
    changed = agent_client.patch("/agents/ann", json={"architecture": "memgpt"})
    assert changed.status_code == 200 and changed.json()["architecture"] == "memgpt"
    document = agent_client.get("/agents/ann/export").json()
    copy = agent_client.post("/agents/import", params={"name": "ann-paper"}, json=document)
    assert copy.status_code == 201 and copy.json()["architecture"] == "memgpt"
    made = agent_client.post("/agents", json={"name": "rae", "architecture": "memgpt"})
    assert made.status_code == 201 and made.json()["architecture"] == "memgpt"


LETTA_FILES = Path(__file__).resolve().parents[2] / "shared" / "data" / "agentfile"


def test_letta_agent_files_in_and_out_over_http(agent_client):
    """POST /agents/import/af takes an .af (a JSON object, or the JSON string some published
    files are), all or nothing; GET /agents/NAME/export?format=af gives one back."""
    twice_encoded = json.loads((LETTA_FILES / "memgpt_agent.af").read_text())
    assert isinstance(twice_encoded, str)
    imported = agent_client.post("/agents/import/af", json=twice_encoded,
                                 params={"name": "letta-one", "our_instructions": True})
    assert imported.status_code == 201, imported.text
    (row,) = imported.json()
    assert row["name"] == "letta-one" and row["tools_mapped"]["memory_insert"] == (
        "core_memory_append")
    assert agent_client.get("/agents/letta-one").json()["core_memory"]["human"]["value"]
    again = agent_client.post("/agents/import/af", json=twice_encoded,
                              params={"name": "letta-one"})
    assert again.status_code == 409
    builder = json.loads((LETTA_FILES / "lettabot-builder.af").read_text())
    assert len(json.dumps(builder)) > 2**20  # over the JSON limit, within the upload one
    both = agent_client.post("/agents/import/af", json=builder)  # one agent's blocks do not
    assert both.status_code == 201 and "does not fit" in both.text  # fit the model: it comes
    sleeper = "Nameless Agent-sleeptime"  # over whole, and says why it cannot run
    assert "does not fit" in agent_client.get(f"/agents/{sleeper}").json()["cannot_run"]
    run = agent_client.post(f"/agents/{sleeper}/messages", json={"text": "Hi"})
    assert run.status_code == 400 and "does not fit its" in run.json()["error"]["message"]
    one = agent_client.post("/agents/import/af", json=builder,
                            params={"agent": "lettabot-builder", "our_instructions": True,
                                    "name": "builder-2"})
    assert one.status_code == 201 and [r["name"] for r in one.json()] == ["builder-2"]
    bad = agent_client.post("/agents/import/af", json={"agents": [{"name": "x",
                                                                   "block_ids": ["nope"]}]})
    assert bad.status_code == 400 and "names block 'nope'" in bad.json()["error"]["message"]
    out = agent_client.get("/agents/letta-one/export", params={"format": "af"})
    assert out.status_code == 200 and out.json()["agents"][0]["name"] == "letta-one"


def test_blocks_of_any_label_are_created_edited_and_listed_over_http(agent_client):
    created = agent_client.post("/agents", json={
        "name": "blocky", "n_ctx": 2048,
        "blocks": {"project": {"value": "A boat.", "description": "What we build"},
                   "persona": {"read_only": True}}})
    assert created.status_code == 201, created.text
    blocks = created.json()["core_memory"]
    assert blocks["project"] == {"value": "A boat.", "limit": blocks["project"]["limit"],
                                 "description": "What we build"}
    assert blocks["persona"]["read_only"]
    edited = agent_client.put("/agents/blocky/core-memory/project",
                              json={"read_only": True, "limit": 100})
    assert edited.status_code == 200, edited.text
    assert edited.json()["project"] == {"value": "A boat.", "limit": 100,
                                        "description": "What we build", "read_only": True}
    added = agent_client.put("/agents/blocky/core-memory/todo", json={"limit": 50})
    assert added.status_code == 200 and added.json()["todo"] == {"value": "", "limit": 50}
    too_big = agent_client.put("/agents/blocky/core-memory/todo", json={"limit": 100_000})
    assert too_big.status_code == 400 and "too little for messages" in too_big.text
    assert agent_client.get("/agents/blocky/core-memory").json()["todo"]["limit"] == 50


def test_an_upload_is_split_and_embedded_while_other_agents_jobs_run(tmp_path, monkeypatch):
    """Only the writes of an upload wait their turn on the worker: while its documents are
    read, split and embedded, another agent's job runs (it used to wait on the whole load)."""
    engine = Engine(EngineConfig(tmp_path), embedder=HashingEmbedder(),
                    runtime_factory=lambda *args, **kw: FakeRuntime(lambda m: "", 2048))
    preparing, release = threading.Event(), threading.Event()
    prepare = engine.prepare_documents

    def slow_prepare(*args, **kwargs):
        preparing.set()
        assert release.wait(10)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(engine, "prepare_documents", slow_prepare)
    with TestClient(create_app(engine), base_url="http://127.0.0.1") as client:
        assert client.post("/agents", json={"name": "doc", "n_ctx": 2048}).status_code == 201
        upload = threading.Thread(target=lambda: uploads.append(client.post(
            "/agents/doc/documents", files=[("files", ("a.md", b"Bees make honey."))])))
        uploads: list = []
        upload.start()
        assert preparing.wait(10)
        assert client.get("/agents/doc").json()["archival_passages"] == 0  # not waiting on it
        release.set()
        upload.join(10)
    assert uploads[0].status_code == 201 and uploads[0].json()["passages"] == 1


@pytest.mark.parametrize("content", [[{"type": "text", "text": 5}], [{"text": "no type"}],
                                     [{"type": "text", "text": ["x"]}], 7, [[]]])
def test_an_odd_openai_message_content_is_a_422_not_a_500(tmp_path, content):
    engine = Engine(EngineConfig(tmp_path), embedder=HashingEmbedder(),
                    runtime_factory=lambda *args, **kw: FakeRuntime(lambda m: "", 2048))
    with TestClient(create_app(engine), base_url="http://127.0.0.1",
                    raise_server_exceptions=False) as client:
        response = client.post("/v1/chat/completions", json={
            "model": "x", "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("model", ["ollama:llama3.2:3b", "/etc/passwd.gguf", "hf:org/repo"])
def test_a_client_names_registered_models_only(app_client, tmp_path, model):
    """A model on the server's disk is never read or registered on a client's word."""
    client, _ = app_client
    refused = client.post("/agents", json={"name": "bob", "model": model})
    assert refused.status_code == 422 and "models add" in refused.text
    assert client.get("/agents/bob").status_code == 404
    assert not (tmp_path / "models.toml").exists()


def test_a_turns_stop_reason_is_typed_in_the_api(app_client):
    """Clients read why the loop ended a turn as one of the loop's reasons, not prose."""
    from memgpt_local.agent.stop_reason import StopReason

    client, _ = app_client
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["StopReason"]["enum"] == [reason.value for reason in StopReason]
    assert "stop_reason" in schemas["TurnOut"]["properties"]
