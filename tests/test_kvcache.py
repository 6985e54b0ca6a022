"""Prefix KV snapshots on disk: restored by a new process, ignored when stale or corrupt."""

import errno
import json
import subprocess
import sys

from conftest import load_runtime

from memgpt_local.llm.runtime import ModelRuntime

SYSTEM = "You are a careful assistant who answers in one short sentence. " * 12
QUESTION = "Name a colour of the sky."

PROBE = """
import json, sys
from pathlib import Path
from memgpt_local.llm.kvcache import SnapshotStore
from memgpt_local.llm.models import Registry
from memgpt_local.llm.runtime import ModelRuntime
cache = Path(sys.argv[1])
runtime = ModelRuntime(Registry.load().get("smollm2-135m"), SnapshotStore(cache),
                       cache / "grammar", n_ctx=2048)
chat = runtime.chat_tokens([{"role": "system", "content": sys.argv[2]},
                            {"role": "user", "content": sys.argv[3]}])
g = runtime.generate(chat.tokens, max_tokens=16, prefix_len=chat.message_ends[0]).finish()
print(json.dumps({"text": g.text, "source": g.stats.prefix_source,
                  "evaluated": g.stats.evaluated_tokens}))
"""


def _ask(runtime: ModelRuntime) -> tuple[str, str, int]:
    chat = runtime.chat_tokens([{"role": "system", "content": SYSTEM},
                                {"role": "user", "content": QUESTION}])
    generation = runtime.generate(chat.tokens, max_tokens=16,
                                  prefix_len=chat.message_ends[0]).finish()
    return generation.text, generation.stats.prefix_source, generation.stats.evaluated_tokens


def _fresh(registry, directory) -> ModelRuntime:
    return load_runtime(registry.get("smollm2-135m"), directory)


def test_restore_in_a_new_process_equals_cold_evaluation(registry, tmp_path):
    text, source, cold_evaluated = _ask(_fresh(registry, tmp_path))
    assert source == "cold" and len(list(tmp_path.glob("*.kv"))) == 1
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), SYSTEM, QUESTION],
                         capture_output=True, text=True, check=True)
    restored = json.loads(out.stdout.strip().splitlines()[-1])
    assert restored["source"] == "restored"
    assert restored["text"] == text
    assert restored["evaluated"] < cold_evaluated / 4


def test_second_call_in_the_same_process_is_warm(registry, tmp_path):
    runtime = _fresh(registry, tmp_path)
    first = _ask(runtime)
    second = _ask(runtime)
    assert (first[1], second[1]) == ("cold", "warm")
    assert second[0] == first[0]


def test_corrupt_snapshot_is_ignored_and_rebuilt(registry, tmp_path):
    text, _, _ = _ask(_fresh(registry, tmp_path))
    snapshot = next(tmp_path.glob("*.kv"))
    data = bytearray(snapshot.read_bytes())
    data[-1000:-990] = bytes(10)  # flip bytes inside the KV data
    snapshot.write_bytes(bytes(data))
    again, source, _ = _ask(_fresh(registry, tmp_path))
    assert (again, source) == (text, "cold")
    snapshot.write_bytes(b"garbage")
    again, source, _ = _ask(_fresh(registry, tmp_path))
    assert (again, source) == (text, "cold")


def test_snapshot_of_other_settings_is_not_used(registry, tmp_path):
    _ask(_fresh(registry, tmp_path))
    other = load_runtime(registry.get("smollm2-135m"), tmp_path, n_ctx=1024)
    assert _ask(other)[1] == "cold"
    assert len(list(tmp_path.glob("*.kv"))) == 2


def test_a_full_disk_costs_the_snapshot_not_the_answer(registry, tmp_path, monkeypatch):
    from memgpt_local.llm import kvcache

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kvcache, "write_atomic", full_disk)
    runtime = _fresh(registry, tmp_path)
    first = _ask(runtime)
    second = _ask(runtime)
    assert (first[1], second[1]) == ("cold", "warm") and second[0] == first[0]
    assert not list(tmp_path.glob("*.kv"))
