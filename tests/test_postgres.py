"""The PostgreSQL store's own faults, on a real PostgreSQL with pgvector (scripts/postgres.sh):
bad URLs and refused passwords as one line, a database without pgvector, a connection lost
between steps (reconnected) and in the middle of one (rolled back, the agent resumable)."""

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
