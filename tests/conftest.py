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
