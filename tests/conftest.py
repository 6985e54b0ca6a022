"""Shared fixtures: an isolated home directory and the real packaged test model."""

import os
import tempfile

import pytest

# Every test run gets its own home (caches, snapshots, databases), never the user's.
os.environ["MEMGPT_LOCAL_HOME"] = tempfile.mkdtemp(prefix="memgpt-local-test-home-")

SEED = 1337


@pytest.fixture(scope="session")
def registry():
    """The model registry as shipped (plus nothing from the user)."""
    from memgpt_local.models import Registry

    return Registry.load()


@pytest.fixture(scope="session")
def smollm(registry, tmp_path_factory):
    """The real SmolLM2-135M runtime with a 2048-token window, loaded once."""
    from memgpt_local.runtime import ModelRuntime

    return ModelRuntime(registry.get("smollm2-135m"), n_ctx=2048, seed=SEED,
                        snapshot_dir=tmp_path_factory.mktemp("kv"))
