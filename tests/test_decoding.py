"""Constrained decoding: the schema, the proof that the constraint applies, the index cache."""

import json
import sys

import pytest

from memgpt_local.errors import ConstraintUnavailableError
from memgpt_local.llm import decoding
from memgpt_local.llm.base import SamplingSettings

FUNCTIONS = [
    {"name": "send_message", "parameters": {
        "type": "object", "properties": {"message": {"type": "string"}},
        "required": ["message"], "additionalProperties": False}},
    {"name": "core_memory_append", "parameters": {
        "type": "object", "properties": {
            "label": {"type": "string", "enum": ["persona", "human"]},
            "content": {"type": "string"}, "request_heartbeat": {"type": "boolean"}},
        "required": ["label", "content", "request_heartbeat"], "additionalProperties": False}},
]
PROMPT = "Write a haiku about autumn leaves."


def _check_call(text: str) -> dict:
    call = json.loads(text)
    spec = {f["name"]: f for f in FUNCTIONS}[call["function"]]
    assert set(call) <= {"thoughts", "function", "arguments"}
    assert set(call["arguments"]) == set(spec["parameters"]["required"])
    return call


def test_schema_is_a_union_discriminated_by_function_name():
    schema = decoding.function_call_schema(FUNCTIONS)
    variants = schema["oneOf"]
    assert [v["properties"]["function"]["const"] for v in variants] == [
        "send_message", "core_memory_append"]
    assert list(variants[0]["properties"]) == ["thoughts", "function", "arguments"]
    assert variants[1]["properties"]["arguments"] is not variants[0]["properties"]["arguments"]
    assert variants[1]["required"] == ["function", "arguments"]


def test_constraint_turns_unparseable_output_into_valid_calls(smollm):
    chat = smollm.chat_tokens([{"role": "user", "content": PROMPT}])
    free = smollm.generate(chat.tokens, max_tokens=60).finish().text
    with pytest.raises(json.JSONDecodeError):
        json.loads(free)
    constraint = smollm.constraint(decoding.function_call_schema(FUNCTIONS))
    processor = constraint.processor()
    for seed in (1, 2, 3):
        generation = smollm.generate(chat.tokens, max_tokens=400, processor=processor,
                                     sampling=SamplingSettings(temperature=0.8, seed=seed))
        call = _check_call(generation.finish().text)
        assert processor.finished, call
        assert generation.stats.constrained


def test_index_is_cached_in_memory_and_on_disk(smollm):
    schema = decoding.function_call_schema(FUNCTIONS[:1])
    assert smollm.constraint(schema).build.source in {"built", "disk"}
    assert smollm.constraint(schema).build.source == "memory"
    decoding.clear_memory_cache()
    assert smollm.constraint(schema).build.source == "disk"
    for cached in smollm.grammar_dir.glob("*.idx"):
        cached.write_bytes(b"not an index")
    decoding.clear_memory_cache()
    rebuilt = smollm.constraint(schema)
    assert rebuilt.build.source == "built"
    assert rebuilt.processor() is not None


def test_missing_outlines_core_fails_loudly(smollm, monkeypatch):
    monkeypatch.setitem(sys.modules, "outlines_core", None)
    with pytest.raises(ConstraintUnavailableError, match="outlines-core"):
        smollm.constraint(decoding.function_call_schema(FUNCTIONS))


def test_gemma_large_vocabulary_constrained_call(registry, tmp_path):
    from conftest import load_runtime

    gemma = load_runtime(registry.get("gemma3-270m"), tmp_path, n_ctx=1024)
    assert gemma.llm.n_vocab() == 262144
    chat = gemma.chat_tokens([{"role": "user", "content": PROMPT}])
    processor = gemma.constraint(decoding.function_call_schema(FUNCTIONS)).processor()
    generation = gemma.generate(chat.tokens, max_tokens=300, processor=processor).finish()
    _check_call(generation.text)


class _RunsCode:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['PLANTED_MARKER'], 'w').close()",))


def test_a_planted_cache_file_cannot_run_code(smollm, tmp_path, monkeypatch):
    import pickle

    marker = tmp_path / "ran"
    monkeypatch.setenv("PLANTED_MARKER", str(marker))
    schema = decoding.function_call_schema(FUNCTIONS[:1])
    key = smollm.constraint(schema).key
    for name in (f"{key[:32]}.index", f"{key[:32]}.idx"):  # the old and the new file name
        (smollm.grammar_dir / name).write_bytes(pickle.dumps(_RunsCode()))
    decoding.clear_memory_cache()
    assert smollm.constraint(schema).build.source == "built"
    assert not marker.exists()
