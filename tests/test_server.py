"""The HTTP server, through a real `memgpt-local serve` process on loopback with the real
model: the whole API, the OpenAI client, concurrent clients on several agents, auth, limits,
bad input, a SIGKILL mid-request, and the thin client."""

import json
import threading

import httpx
import openai
import pytest
from click.testing import CliRunner

from memgpt_local.cli import cli
from memgpt_local.server.process import ServerProcess, free_port

pytestmark = pytest.mark.real
N_CTX = 4096
KEY = "k" * 32


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server without a key, on loopback."""
    process = ServerProcess(tmp_path_factory.mktemp("home"), "--model", "smollm2-135m")
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=600) as client:
        yield client


def create(http: httpx.Client, name: str) -> dict:
    response = http.post("/agents", json={"name": name, "n_ctx": N_CTX})
    assert response.status_code == 201, response.text
    return response.json()


def recall(http: httpx.Client, name: str) -> list[dict]:
    response = http.get(f"/agents/{name}/messages", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()


def assert_turns_whole(messages: list[dict]) -> None:
    """Every stored call is followed at once by its result: no step is half stored."""
    roles = [m["role"] for m in messages]
    for position, role in enumerate(roles):
        if role == "function_call":
            assert roles[position + 1] == "function_result", roles
    assert [m["seq"] for m in messages] == list(range(messages[0]["seq"],
                                                      messages[0]["seq"] + len(messages)))


# --- the whole API ---------------------------------------------------------------------------
def test_agents_memory_and_messages(http):
    created = create(http, "ada")
    assert created["model"] == "smollm2-135m" and created["n_ctx"] == N_CTX
    assert "ada" in [a["name"] for a in http.get("/agents").json()]
    blocks = http.put("/agents/ada/core-memory/human", json={"value": "Name: Dana."}).json()
    assert blocks["human"]["value"] == "Name: Dana."
    assert http.get("/agents/ada/core-memory").json() == blocks
    assert http.post("/agents/ada/archival", json={"text": "Dana's dog is Miso."}).json() == \
        {"inserted": 1}
    note = ("notes.md", b"The launch code is 4242.", "text/markdown")
    image = ("cat.png", b"\x89PNG", "image/png")
    upload = http.post("/agents/ada/documents", files=[("files", note), ("files", image)])
    assert upload.status_code == 201 and upload.json()["passages"] == 1
    assert list(upload.json()["failed"]) == ["cat.png"]
    refused = http.post("/agents/ada/documents", files=[("files", image)])
    assert refused.status_code == 400 and "cat.png" in refused.json()["error"]["message"]
    found = http.get("/agents/ada/archival", params={"query": "launch code"}).json()
    assert found["total"] >= 1 and "4242" in found["items"][0]["content"]
    dots = http.post("/agents/ada/documents", files=[("files", ("..", b"Dots are fine."))])
    assert dots.status_code == 201 and dots.json()["passages"] == 1
    sources = [p["source"] for p in http.get("/agents/ada/export").json()["passages"]]
    assert "notes.md" in sources and "upload.txt" in sources  # never the server's temp path
    assert not [s for s in sources if s and "memgpt-upload" in s]

    turn = http.post("/agents/ada/messages", json={"text": "Hi, I am Dana."}).json()
    assert turn["steps"] and all({"thoughts", "function", "arguments", "result", "stats"}
                                 <= set(step) for step in turn["steps"])
    sent = [s["arguments"]["message"] for s in turn["steps"]
            if s["function"] == "send_message" and not s["failed"]]
    assert turn["replies"] == sent
    messages = recall(http, "ada")
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Hi, I am Dana."]
    assert_turns_whole(messages)
    hits = http.get("/agents/ada/recall", params={"query": "Dana"}).json()
    assert hits["total"] >= 1 and any("Dana" in m["content"] for m in hits["items"])
    by_seq = {m["seq"]: m for m in messages}
    for hit in hits["items"]:  # the message after each hit, as the agent's search shows it
        assert hit["next"] is None or hit["next"] == by_seq[hit["seq"] + 1]
    context = http.get("/agents/ada/context").json()
    assert sum(context["parts"].values()) == context["prompt_tokens"]
    assert context["window"] == N_CTX and context["kv_cache"]["prefix"] in ("context", "snapshot")
    shown = http.get("/agents/ada").json()
    # the two inserted, and any the agent saved itself
    assert shown["recall_messages"] == len(messages) and shown["archival_passages"] >= 2


def test_streamed_steps_are_the_stored_steps(http):
    create(http, "ben")
    events = []
    with http.stream("POST", "/agents/ben/messages",
                     json={"text": "Hello! Please remember that I like tea.", "stream": True}
                     ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line[5:])))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and "step" in kinds and "error" not in kinds
    steps = [data for kind, data in events if kind == "step"]
    assert events[-1][1]["steps"] == steps
    calls = [m for m in recall(http, "ben") if m["role"] == "function_call"]
    assert [m["function_name"] or "(none)" for m in calls][-len(steps):] == \
        [s["function"] for s in steps]


def test_export_import_and_delete(http):
    create(http, "cai")
    document = http.get("/agents/cai/export").json()
    imported = http.post("/agents/import", params={"name": "cai-copy"}, json=document)
    assert imported.status_code == 201 and imported.json()["name"] == "cai-copy"
    assert http.delete("/agents/cai-copy").status_code == 204
    assert http.get("/agents/cai-copy").status_code == 404
    copied = http.post("/agents/cai/copy", json={"name": "cai-2"})
    assert copied.status_code == 201 and copied.json()["core_memory"] == \
        http.get("/agents/cai").json()["core_memory"]
    assert "/v1/chat/completions" in http.get("/openapi.json").json()["paths"]


# --- bad input: a 4xx with a JSON error, nothing written ---------------------------------------
@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("post", "/agents", {"name": ""}, 422),
    ("post", "/agents", {"name": "x/y"}, 400),
    ("post", "/agents", {"name": "ok", "model": "no-such-model"}, 400),
    ("post", "/agents", {"name": "ok", "color": "red"}, 422),
    ("get", "/agents/nobody", None, 404),
    ("post", "/agents/nobody/messages", {"text": "hi"}, 404),
    ("post", "/agents/ada/messages", {"text": ""}, 422),
    ("post", "/agents/ada/messages", {"text": "word " * 20_000}, 400),  # over half the window
    ("put", "/agents/ada/core-memory/no-such-label", {"value": "x"}, 400),  # not a label
    ("put", "/agents/ada/core-memory/human", {"value": "x" * 5000}, 400),  # over its limit
    ("get", "/agents/ada/recall", None, 400),
    ("get", "/agents/ada/recall?start=2024-13-01&end=2024-12-31", None, 422),
    ("get", "/agents/ada/recall?start=2024-02-01&end=2024-01-31", None, 400),
    ("get", "/agents/ada/archival?query=x&page=0", None, 422),
    ("post", "/agents/import", {"format": "nonsense"}, 400),
    ("post", "/agents/ada/copy", {"name": "ada"}, 409),  # a name taken
    ("post", "/agents/ada/copy", {"name": "a/b"}, 400),
    ("post", "/agents/nobody/copy", {"name": "new"}, 404),
    ("get", "/agents/nobody/context", None, 404),
    ("post", "/v1/chat/completions", {"model": "ada", "messages": [{"role": "system",
                                                                    "content": "x"}]}, 400),
    ("post", "/v1/chat/completions", {"model": "nobody", "messages": [{"role": "user",
                                                                      "content": "x"}]}, 404),
])
def test_bad_input_gets_a_json_error_and_changes_nothing(http, method, path, body, status):
    if not any(a["name"] == "ada" for a in http.get("/agents").json()):
        create(http, "ada")
    before = (http.get("/agents").json(), recall(http, "ada"), http.get("/agents/ada").json())
    response = http.request(method, path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "\n" not in error["message"] and error["type"]
    after = (http.get("/agents").json(), recall(http, "ada"), http.get("/agents/ada").json())
    assert after == before


def test_invalid_json_and_oversized_bodies(http):
    bad = http.post("/agents", content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "not valid JSON" in bad.json()["error"]["message"]
    big = http.post("/agents", content=b"x" * (2 * 1024**2),
                    headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    chunked = http.post("/agents", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    huge = http.post("/v1/chat/completions", content=b"x" * (50 * 1024**2),
                     headers={"content-type": "application/json"})  # a reset before the fix
    assert huge.status_code == 413 and huge.json()["error"]["type"] == "request_too_large"
    assert http.get("/health").status_code == 200


# --- the OpenAI client --------------------------------------------------------------------------
def test_the_openai_client_plain_and_streaming(server, http):
    create(http, "oli")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    assert "oli" in [model.id for model in client.models.list()]
    plain = client.chat.completions.create(
        model="oli", messages=[{"role": "user", "content": "Hi! My name is Ola."}])
    assert plain.choices[0].message.role == "assistant"
    assert isinstance(plain.choices[0].message.content, str)
    assert plain.usage.prompt_tokens > 0
    stream = client.chat.completions.create(
        model="oli", stream=True, messages=[{"role": "system", "content": "ignored"},
                                            {"role": "user", "content": "What is my name?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    users = [m for m in recall(http, "oli") if m["role"] == "user"]
    assert [m["content"] for m in users] == ["Hi! My name is Ola.", "What is my name?"]
    last_sent = [m["function_args"]["message"] for m in recall(http, "oli")[-20:]
                 if m["function_name"] == "send_message" and m["role"] == "function_call"
                 and m["function_args"]]
    assert text == "" or text.split("\n\n")[-1] in last_sent


# --- many clients, many agents, one model -------------------------------------------------------
def test_eight_clients_on_four_agents(server, http):
    agents = [f"crowd{n}" for n in range(4)]
    for name in agents:
        create(http, name)
    results: dict[tuple[int, int], int] = {}

    def client(number: int) -> None:
        agent = agents[number % 4]
        with httpx.Client(base_url=server.url, timeout=900) as own:
            for index in range(5):
                response = own.post(f"/agents/{agent}/messages",
                                    json={"text": f"client {number} message {index}"})
                results[(number, index)] = response.status_code

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 40 and set(results.values()) == {200}
    for position, name in enumerate(agents):
        messages = recall(http, name)
        users = [m["content"] for m in messages if m["role"] == "user"]
        assert sorted(users) == sorted(f"client {n} message {i}" for n in (position, position + 4)
                                       for i in range(5))
        for number in (position, position + 4):  # each client's messages in its order
            mine = [u for u in users if u.startswith(f"client {number} ")]
            assert mine == [f"client {number} message {i}" for i in range(5)]
        assert_turns_whole(messages)


# --- a server killed mid-request ----------------------------------------------------------------
def test_a_server_killed_mid_request_resumes_every_agent(tmp_path):
    first = ServerProcess(tmp_path, "--model", "smollm2-135m")
    with httpx.Client(base_url=first.url, timeout=600) as http:
        for name in ("kim", "lou"):
            create(http, name)
            assert http.post(f"/agents/{name}/messages", json={"text": "Hello."}).status_code \
                == 200
        with http.stream("POST", "/agents/kim/messages",
                         json={"text": "Interrupted message", "stream": True}) as response:
            next(response.iter_lines())  # the turn is under way
            first.kill()
    second = ServerProcess(tmp_path)
    try:
        with httpx.Client(base_url=second.url, timeout=600) as http:
            for name in ("kim", "lou"):
                messages = recall(http, name)
                assert_turns_whole(messages)
                texts = [m["content"] for m in messages if m["role"] == "user"]
                # the message was stored before its first step began: it stays, with the
                # steps that completed, each whole
                assert texts == (["Hello.", "Interrupted message"] if name == "kim"
                                 else ["Hello."])
                again = http.post(f"/agents/{name}/messages", json={"text": "Still there?"})
                assert again.status_code == 200 and again.json()["steps"]
                assert_turns_whole(recall(http, name))
    finally:
        assert second.stop() == 0


# --- auth and limits ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    home = tmp_path_factory.mktemp("keyed")
    (home / "key").write_text(KEY + "\n")
    process = ServerProcess(home, "--api-key-file", str(home / "key"), "--max-upload", "2KiB")
    yield process
    assert process.stop() == 0


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {KEY}", f"Bearer {KEY}x"])
def test_every_route_but_health_needs_the_key(keyed, header):
    headers = {"Authorization": header} if header else {}
    assert httpx.get(f"{keyed.url}/health").status_code == 200
    for method, path in [("get", "/agents"), ("post", "/agents"), ("get", "/v1/models"),
                         ("post", "/v1/chat/completions"), ("get", "/agents/x/recall")]:
        response = httpx.request(method, f"{keyed.url}{path}", headers=headers, json={})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["error"]["message"]


def test_the_key_opens_the_api_and_limits_uploads(keyed):
    headers = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{keyed.url}/agents", headers=headers).json() == []
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="wrong", max_retries=0).models.list()
    models = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=KEY).models.list()
    assert list(models) == []
    assert httpx.post(f"{keyed.url}/agents", headers=headers,
                      json={"name": "up"}).status_code == 201
    upload = httpx.post(f"{keyed.url}/agents/up/documents", headers=headers,
                        files=[("files", ("big.txt", b"word " * 1000, "text/plain"))])
    assert upload.status_code == 413
    assert httpx.get(f"{keyed.url}/agents/up", headers=headers).json()["archival_passages"] == 0


def test_serving_beyond_loopback_needs_the_names_clients_use(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"],
                                env={"MEMGPT_LOCAL_HOME": str(tmp_path)})
    assert result.exit_code == 1 and "--allowed-host NAME" in result.output
    assert result.output.count("\n") == 1
    (tmp_path / "short").write_text("abc\n")
    result = CliRunner().invoke(cli, ["serve", "--api-key-file", str(tmp_path / "short")],
                                env={"MEMGPT_LOCAL_HOME": str(tmp_path)})
    assert result.exit_code == 1 and "shorter than 16" in result.output


# --- the thin client ----------------------------------------------------------------------------
def test_the_thin_client_chats_and_sends(server, http):
    env = {"MEMGPT_LOCAL_HOME": "/nonexistent"}  # the client needs no home of its own
    result = CliRunner().invoke(
        cli, ["chat", "--server", server.url, "--agent", "tia? #1"],
        input="Hello, I am Tom.\n/memory\n/search Tom\n/archival anything\n/exit\n", env=env)
    assert result.exit_code == 0, result.output
    assert "Created agent 'tia? #1'" in result.output
    assert "tia? #1: smollm2-135m" in result.output  # /memory
    assert "page 1 of" in result.output  # /search and /archival
    users = [m["content"] for m in recall(http, "tia%3F%20%231") if m["role"] == "user"]
    assert users == ["Hello, I am Tom."]
    sent = CliRunner().invoke(cli, ["send", "--server", server.url, "--agent", "tia? #1",
                                    "--json", "Bye!"], env=env)
    assert sent.exit_code == 0, sent.output
    lines = [json.loads(line) for line in sent.output.splitlines()]
    assert all("function" in step for step in lines[:-1])
    local = {"replies", "stopped", "stop_reason", "memory", "saved_context"}
    assert set(lines[-1]) == local  # the same last line as a local send --json


def test_the_thin_client_says_when_the_server_is_away(tmp_path):
    result = CliRunner().invoke(cli, ["send", "--server", f"http://127.0.0.1:{free_port()}",
                                      "--agent", "x", "hi"])
    assert result.exit_code == 1 and "Cannot reach the server" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["chat", "--server", "127.0.0.1:8283"])
    assert result.exit_code == 1 and "must be a URL" in result.output
