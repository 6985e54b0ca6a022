"""The package's public surface: what `import memgpt_local` offers a Python user, cheaply."""

import subprocess
import sys

import memgpt_local


def test_everything_in_all_is_there_and_errors_share_one_base():
    for name in memgpt_local.__all__:
        assert getattr(memgpt_local, name) is not None, name
    errors = [getattr(memgpt_local, n) for n in memgpt_local.__all__ if n.endswith("Error")]
    assert all(issubclass(error, memgpt_local.MemgptLocalError) for error in errors)
    assert sorted(dir(memgpt_local)) == sorted(memgpt_local.__all__)


def test_importing_the_package_loads_no_model_runtime():
    """The command line imports the package first: it must not pull llama.cpp or torch."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, memgpt_local; print("
                             "sorted({'llama_cpp', 'torch', 'duckdb', 'memgpt_local.engine'} "
                             "& set(sys.modules)))"], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_docstrings_example_runs(tmp_path):
    """The example in memgpt_local's docstring, on the packaged model in a fresh home."""
    from memgpt_local import Engine, EngineConfig

    with Engine(EngineConfig(tmp_path)) as engine:
        engine.create_agent("sam", n_ctx=2048)
        agent = engine.open_agent("sam")
        turn = agent.send("Hi! My name is Ann.")
        engine.close_agent(agent)
    assert turn.steps and not any(step.failed for step in turn.steps)
