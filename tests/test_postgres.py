"""The PostgreSQL store's own faults, on a real PostgreSQL with pgvector (scripts/postgres.sh):
bad URLs and refused passwords as one line, a database without pgvector, a connection lost
between steps (reconnected) and in the middle of one (rolled back, the agent resumable)."""

import json

import psycopg
import pytest
from click.testing import CliRunner
from fakes import FakeRuntime, HashingEmbedder, call

from memgpt_local.agent.loop import Agent
from memgpt_local.cli import cli
from memgpt_local.engine import EngineConfig, open_store
from memgpt_local.errors import MemgptLocalError
from memgpt_local.memory.agents import AgentRecord
from memgpt_local.memory.core import CoreMemory
from memgpt_local.memory.postgres import LOST
from memgpt_local.memory.stores import AgentStores


def _with_part(url: str, **parts) -> str:
    """The URL with its password, port or database changed."""
    scheme, rest = url.split("://", 1)
    auth, place = rest.rsplit("@", 1)
    user, password = auth.split(":", 1)
    host_port, database = place.split("/", 1)
    host, port = host_port.rsplit(":", 1)
    values = {"password": password, "port": port, "database": database} | parts
    return f"{scheme}://{user}:{values['password']}@{host}:{values['port']}/{values['database']}"


def test_bad_urls_and_refused_passwords_are_one_line(postgres_server, tmp_path):
    cases = [(_with_part(postgres_server, password="wrong"), "password authentication failed"),
             (_with_part(postgres_server, port="1"), "Connection refused"),
             (_with_part(postgres_server, database="nothere"), 'database "nothere" does not'),
             ("mysql://root@localhost/db", "is not a PostgreSQL URL")]
    for url, reason in cases:
        result = CliRunner().invoke(cli, ["--store", url, "agents", "list"],
                                    env={"MEMGPT_LOCAL_HOME": str(tmp_path)})
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0], result.output
        assert "wrong" not in lines[0]  # the password is never shown
    assert not (tmp_path / "memgpt.duckdb").exists()  # nothing was made at home instead


def test_a_database_without_pgvector_is_one_line(postgres_server, tmp_path):
    """A user who may not create the extension: the store says what is missing."""
    base = postgres_server.rsplit("/", 1)[0]
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("CREATE ROLE plain LOGIN PASSWORD 'plainpw'")
        admin.execute("CREATE DATABASE plain_db OWNER plain")
    url = base.replace(base.split("://")[1].split("@")[0], "plain:plainpw") + "/plain_db"
    with pytest.raises(MemgptLocalError, match="has no pgvector extension.*scripts/postgres.sh"):
        open_store(EngineConfig(tmp_path, store=url))


def _terminate_others(admin_url: str, database: str) -> None:
    """End every session on a database but the caller's: as a restart or a network cut."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      "%s AND pid <> pg_backend_pid()", [database])


class CuttingEmbedder(HashingEmbedder):
    """Embeds as HashingEmbedder, but cuts the store's connections while it does, once."""

    def __init__(self, cut):
        self.cut = cut

    def embed(self, texts):
        if self.cut:
            self.cut, cut = None, self.cut
            cut()
        return super().embed(texts)


def _agent(store, script, embedder) -> Agent:
    records = store.records()
    if not records.exists("sam"):
        records.save(AgentRecord("sam", "fake", {"n_ctx": 2048},
                                 CoreMemory.default("I am Sam.", "Nothing yet.")))
    stores = AgentStores(store, "sam", records, store.recall("sam"),
                         lambda: store.archival("sam", embedder))
    return Agent(records.get("sam"), FakeRuntime(script, 2048), stores)


def _whole_steps(store) -> bool:
    """Every stored call has its result right after it."""
    roles = [m.role for m in store.recall("sam").all()]
    return all(roles[i + 1] == "function_result" for i, r in enumerate(roles)
               if r == "function_call")


def test_a_connection_lost_mid_step_rolls_the_step_back_and_the_agent_resumes(
        postgres_server, tmp_path):
    from conftest import _database_for

    url = _database_for(postgres_server, tmp_path)
    database = url.rsplit("/", 1)[1]
    store = open_store(EngineConfig(tmp_path, store=url))
    embedder = CuttingEmbedder(lambda: _terminate_others(postgres_server, database))
    agent = _agent(store, [call("archival_memory_insert", content="Ann's code is 4417.",
                                request_heartbeat=True),
                           call("send_message", message="Saved.")], embedder)
    with pytest.raises(MemgptLocalError) as lost:
        agent.send("Remember my code: 4417.")  # the insert's embedding cuts the connection
    assert str(lost.value) == LOST
    store.close()
    store = open_store(EngineConfig(tmp_path, store=url))
    assert _whole_steps(store) and store.passage_count("sam") == 0
    again = _agent(store, [call("archival_memory_insert", content="Ann's code is 4417.",
                                request_heartbeat=True),
                           call("send_message", message="Saved.")], HashingEmbedder())
    turn = again.send("Remember my code: 4417.")
    assert turn.replies == ["Saved."] and store.passage_count("sam") == 1
    assert _whole_steps(store)
    store.close()


def test_a_connection_lost_between_steps_is_replaced(postgres_server, tmp_path):
    """A server restart while the model thinks: the next step reconnects and goes on."""
    from conftest import _database_for

    url = _database_for(postgres_server, tmp_path)
    database = url.rsplit("/", 1)[1]
    store = open_store(EngineConfig(tmp_path, store=url))

    def script(messages):
        if len(script.calls) == 1:
            _terminate_others(postgres_server, database)
        script.calls.append(messages)
        return [call("core_memory_append", label="human", content="Name: Ann",
                     request_heartbeat=True),
                call("send_message", message="Hi Ann.")][len(script.calls) - 1]

    script.calls = []
    agent = _agent(store, script, HashingEmbedder())
    turn = agent.send("I'm Ann.")
    assert turn.replies == ["Hi Ann."] and len(turn.steps) == 2
    assert store.records().get("sam").core_memory.block("human").value.endswith("Name: Ann")
    assert _whole_steps(store)
    store.close()


@pytest.mark.real
def test_two_servers_on_one_database_share_agents_and_never_interleave_a_turn(
        postgres_server, tmp_path):
    """Two `serve` processes on one database, 8 clients on 4 agents through both at once:
    every answer 200 or a clean 409/503, each agent's recall holding exactly the messages that
    were answered, each client's in its order, every turn whole and apart."""
    import threading

    import httpx
    from conftest import _database_for
    from test_server import assert_turns_whole

    from memgpt_local.server.process import ServerProcess

    url = _database_for(postgres_server, tmp_path)
    servers = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        servers.append(ServerProcess(tmp_path / folder, "--model", "smollm2-135m",
                                     "--store", url))
    try:
        agents = [f"shared{n}" for n in range(4)]
        with httpx.Client(base_url=servers[0].url, timeout=600) as http:
            for name in agents:
                assert http.post("/agents", json={"name": name, "n_ctx": 4096}
                                 ).status_code == 201
        answered: dict[tuple[int, int], int] = {}

        def client(number: int) -> None:  # clients 0-3 on the first server, 4-7 the second
            with httpx.Client(base_url=servers[number // 4].url, timeout=900) as own:
                for index in range(3):
                    response = own.post(f"/agents/{agents[number % 4]}/messages",
                                        json={"text": f"client {number} message {index}"})
                    assert response.status_code in (200, 409, 503), response.text
                    answered[(number, index)] = response.status_code

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(answered) == 24 and list(answered.values()).count(200) >= 12
        with httpx.Client(base_url=servers[1].url, timeout=600) as http:
            for position, name in enumerate(agents):
                messages = http.get(f"/agents/{name}/messages", params={"limit": 1000}).json()
                users = [m["content"] for m in messages if m["role"] == "user"]
                assert sorted(users) == sorted(
                    f"client {n} message {i}" for n in (position, position + 4)
                    for i in range(3) if answered[(n, i)] == 200)
                for number in (position, position + 4):
                    mine = [u for u in users if u.startswith(f"client {number} ")]
                    assert mine == sorted(mine)
                assert_turns_whole(messages)
    finally:
        for server in servers:
            assert server.stop() == 0


def _home_with_three_agents(home) -> dict:
    """A home whose 3 agents hold 10,000 messages between them, passages and core memory."""
    from datetime import UTC, datetime, timedelta

    from memgpt_local.engine import Engine
    from memgpt_local.memory.messages import Message

    start = datetime(2024, 1, 1, tzinfo=UTC)
    with Engine(EngineConfig(home), embedder=HashingEmbedder()) as engine:
        for number, name in enumerate(("ann", "bob", "cy")):
            engine.create_agent(name, "smollm2-135m", 2048, human=f"Name: {name}")
            recall = engine.recall_storage(name)
            count = 3334 if number < 2 else 3332
            with engine.db.transaction():
                recall.bulk_import([Message("user" if i % 2 else "assistant",
                                            f"{name} message {i} about boats",
                                            created_at=start + timedelta(minutes=i))
                                    for i in range(count)])
                record = engine.records.get(name)
                record.in_context = list(recall.ids_by_seq().values())[-20:]
                engine.records.save(record)
            archival = engine.archival_storage(name, progress=False)
            archival.insert([f"{name} keeps boat number {i} in dock {i % 7}" for i in range(40)])
            archival.close()
        return {name: engine.show_agent(name) for name in ("ann", "bob", "cy")}


def _report(output: str) -> dict:
    """store copy --json's report, by agent (the progress lines before it)."""
    (line,) = [line for line in output.splitlines() if line.startswith("[")]
    return {agent["agent"]: agent for agent in json.loads(line)}


def test_store_copy_moves_a_home_to_postgresql_and_back_with_equal_digests(
        postgres_server, tmp_path):
    from conftest import _database_for

    shown = _home_with_three_agents(tmp_path / "home")
    assert sum(agent["recall_messages"] for agent in shown.values()) == 10_000
    url = _database_for(postgres_server, tmp_path)
    env = {"MEMGPT_LOCAL_HOME": str(tmp_path / "unused")}
    there = CliRunner().invoke(cli, ["store", "copy", "--from", str(tmp_path / "home"),
                                     "--to", url, "--json"], env=env)
    assert there.exit_code == 0, there.output
    forth = _report(there.output)
    assert {name: agent["state"] for name, agent in forth.items()} == dict.fromkeys(
        ("ann", "bob", "cy"), "copied")
    again = CliRunner().invoke(cli, ["store", "copy", "--from", str(tmp_path / "home"),
                                     "--to", url], env=env)  # resumed: nothing left to do
    assert again.exit_code == 0 and "0 copied, 3 already there" in again.output
    back = CliRunner().invoke(cli, ["store", "copy", "--from", url, "--to",
                                    str(tmp_path / "back"), "--json"], env=env)
    assert back.exit_code == 0, back.output
    returned = _report(back.output)
    assert {n: a["digest"] for n, a in returned.items()} == {
        n: a["digest"] for n, a in forth.items()}
    from memgpt_local.engine import Engine

    for config in (EngineConfig(tmp_path / "x", store=url), EngineConfig(tmp_path / "back")):
        with Engine(config, embedder=HashingEmbedder()) as engine:
            assert engine.show_agent("bob") | {"flushes": 0} == shown["bob"] | {"flushes": 0}
            archival = engine.archival_storage("bob", progress=False)
            assert archival.search("boat number 12", mode="keyword").items[0]["content"] == \
                "bob keeps boat number 12 in dock 5"
            archival.close()
    with Engine(EngineConfig(tmp_path / "back"), embedder=HashingEmbedder()) as engine:
        engine.configure_agent("cy", {"memory_hits": 1})
    clash = CliRunner().invoke(cli, ["store", "copy", "--from", str(tmp_path / "back"),
                                     "--to", url], env=env)
    assert clash.exit_code == 1
    assert "Agent 'cy' is in the target already, with other contents" in clash.output


def _home_of_bare_agents(home) -> list[str]:
    """Agents with no passages, no messages, and neither; blocks in an order sorting would
    change, and a stored call whose arguments are not in sorted order."""
    from memgpt_local.engine import Engine
    from memgpt_local.memory.core import BlockChange
    from memgpt_local.memory.messages import Message

    with Engine(EngineConfig(home), embedder=HashingEmbedder()) as engine:
        for name in ("bare", "talk", "docs"):
            engine.create_agent(name, "smollm2-135m", 2048,
                                blocks={"aardvark": BlockChange(value="First added.")})
        engine.recall_storage("talk").append(Message(
            "function_call", "", "send_message", {"message": "Hi.", "a_later_key": 1}))
        archival = engine.archival_storage("docs", progress=False)
        archival.insert(["A passage."])
        archival.close()
        return [list(engine.show_agent(name)["core_memory"]) for name in ("bare", "talk")]


def test_store_copy_carries_agents_without_passages_or_messages_and_keeps_every_order(
        postgres_server, tmp_path):
    """Both ways: an agent with no passages used to end the copy in a DuckDB traceback, and
    JSONB gave core memory back with its blocks (and a call its arguments) sorted."""
    from conftest import _database_for

    from memgpt_local.engine import Engine

    orders = _home_of_bare_agents(tmp_path / "home")
    assert orders[0] == ["persona", "human", "aardvark"]
    url = _database_for(postgres_server, tmp_path)
    env = {"MEMGPT_LOCAL_HOME": str(tmp_path / "unused")}
    digests = []
    for source, target in ((str(tmp_path / "home"), url), (url, str(tmp_path / "back"))):
        result = CliRunner().invoke(cli, ["store", "copy", "--from", source, "--to", target,
                                          "--json"], env=env)
        assert result.exit_code == 0, result.output
        report = _report(result.output)
        assert {n: (a["messages"], a["passages"]) for n, a in report.items()} == {
            "bare": (0, 0), "talk": (1, 0), "docs": (0, 1)}
        digests.append({n: a["digest"] for n, a in report.items()})
    assert digests[0] == digests[1]
    for config in (EngineConfig(tmp_path / "x", store=url), EngineConfig(tmp_path / "back")):
        with Engine(config, embedder=HashingEmbedder()) as engine:
            assert list(engine.show_agent("bare")["core_memory"]) == orders[0]
            (call_message,) = engine.recall_storage("talk").all()
            assert list(call_message.function_args) == ["message", "a_later_key"]


def test_store_copy_from_a_home_that_does_not_exist_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["store", "copy", "--from", str(tmp_path / "nowhere"),
                                      "--to", str(tmp_path / "to")],
                                env={"MEMGPT_LOCAL_HOME": str(tmp_path / "unused")})
    assert result.exit_code == 1 and "holds no memgpt-local store" in result.output
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "to").exists()


def test_a_process_that_lost_its_lease_writes_nothing_once_another_took_the_agent(
        postgres_server, tmp_path):
    """The lease is an advisory lock on its own connection: when that connection drops, a
    second server may take the agent. A step's transaction checks the lease's epoch and keeps
    its row locked to the commit: the first server's step in flight lands before the second
    takes over, and nothing of the first lands after; it says what happened."""
    import threading

    from conftest import _database_for

    from memgpt_local.engine import Engine
    from memgpt_local.errors import LeaseLostError
    from memgpt_local.memory.messages import Message

    url = _database_for(postgres_server, tmp_path)

    def engine(folder: str, holder: str) -> Engine:
        return Engine(EngineConfig(tmp_path / folder, store=url, holder=holder),
                      embedder=HashingEmbedder(), runtime_factory=lambda *a, **k: FakeRuntime(
                          lambda messages: call("send_message", message="Hi."), 2048))

    with engine("a", "server A") as first, engine("b", "server B") as second:
        first.create_agent("sam", "smollm2-135m", 2048)
        agent = first.open_agent("sam")
        first.db.acquire("sam", "server A")
        taken = threading.Thread(target=second.db.acquire, args=("sam", "server B", 10))
        with agent.stores.transaction():  # a step in flight when the lease session drops
            agent.stores.recall.append(Message("user", "In flight."))
            _terminate(postgres_server, first.db._leases.info.backend_pid)
            taken.start()
            taken.join(1)
            assert taken.is_alive()  # the second waits for this step's commit
        taken.join(10)
        assert not taken.is_alive()
        with pytest.raises(LeaseLostError, match="server B took the agent since"):
            agent.send("After the takeover.")
        texts = [m.content for m in second.recall_storage("sam").all()]
        assert "In flight." in texts and "After the takeover." not in texts
        first.db.release("sam")  # the lock went with the session: nothing to give back
        second.db.release("sam")


def _terminate(admin_url: str, pid: int) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_an_agent_open_in_one_process_is_refused_to_another_in_one_line(
        postgres_server, tmp_path):
    """A chat holds its agent's lease on a shared store: a send from elsewhere waits, then
    says who holds it; once the chat ends the agent is free."""
    from conftest import _database_for

    from memgpt_local.engine import Engine

    url = _database_for(postgres_server, tmp_path)
    config = EngineConfig(tmp_path / "a", store=url, holder="Ann's chat")
    with Engine(config, runtime_factory=lambda *a, **k: FakeRuntime(
            [call("send_message", message="Hi.")], 2048)) as engine:
        engine.create_agent("sam", "smollm2-135m", 2048)
        agent = engine.open_agent("sam")
        result = CliRunner().invoke(cli, ["--store", url, "send", "--agent", "sam", "Hello?"],
                                    env={"MEMGPT_LOCAL_HOME": str(tmp_path / "b")})
        assert result.exit_code == 1
        assert result.output.strip() == ("Error: Agent 'sam' is in use by Ann's chat; waited "
                                         "10 s. Try again when it is done.")
        engine.close_agent(agent)
        again = engine.open_agent("sam")  # free again once closed
        engine.close_agent(again)
        assert engine.recall_messages("sam") == []
