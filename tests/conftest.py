"""Shared fixtures: an isolated home directory and the real packaged test model."""

import os
import tempfile
from pathlib import Path

import pytest

# Every test run gets its own home (caches, snapshots, databases), never the user's.
os.environ["MEMGPT_LOCAL_HOME"] = tempfile.mkdtemp(prefix="memgpt-local-test-home-")

SEED = 1337


@pytest.fixture(scope="session")
def registry():
    """The model registry as shipped (plus nothing from the user)."""
    from memgpt_local.llm.models import Registry

    return Registry.load()


@pytest.fixture(scope="session")
def smollm(registry, tmp_path_factory):
    """The real SmolLM2-135M runtime with a 2048-token window, loaded once."""
    return load_runtime(registry.get("smollm2-135m"), tmp_path_factory.mktemp("kv"))


def load_runtime(spec, cache: Path, n_ctx: int = 2048):
    """A real llama.cpp runtime whose KV snapshots (and constraint indexes) go to `cache`."""
    from memgpt_local.llm.kvcache import SnapshotStore
    from memgpt_local.llm.runtime import ModelRuntime

    return ModelRuntime(spec, SnapshotStore(cache), cache / "grammar", n_ctx=n_ctx, seed=SEED)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL with pgvector (scripts/postgres.sh), started once for the run: the
    URL of its database; stopped and removed at the end. Its data lives outside pytest's
    temporary folders: a second pytest run makes those private to root again (mode 700), and
    the server, which runs as another user, then lost its data directory mid-run."""
    import shutil
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp(prefix="memgpt-local-postgres-")
    started = subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "start", folder],
                             capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    yield started.stdout.strip().splitlines()[-1]
    subprocess.run(["bash", str(REPO / "scripts" / "postgres.sh"), "stop", folder],
                   capture_output=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


def _database_for(server_url: str, folder: Path) -> str:
    """The URL of a database of the test server that belongs to a folder (made on first use):
    the same folder, the same database, as with the embedded store."""
    import hashlib

    import psycopg

    name = "t_" + hashlib.sha1(str(folder).encode()).hexdigest()[:20]
    with psycopg.connect(server_url, autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            admin.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


STORES = ["embedded", "postgresql"]


@pytest.fixture(params=STORES)
def store_kind(request):
    """Each store kind in turn: a test that takes it runs on both."""
    return request.param


@pytest.fixture()
def open_test_store(store_kind, request):
    """Opens a store of the kind for a folder (a home): the embedded store in it, or a
    PostgreSQL database of its own on the test server."""
    from memgpt_local.engine import EngineConfig, open_store

    server = request.getfixturevalue("postgres_server") if store_kind == "postgresql" else None

    def opener(folder: Path, **config):
        url = _database_for(server, folder) if server else None
        return open_store(EngineConfig(folder, store=url), **config)

    return opener


@pytest.fixture()
def store(open_test_store, tmp_path):
    """An open, empty store of each kind."""
    opened = open_test_store(tmp_path / "home")
    yield opened
    opened.close()
