"""Constrained decoding: the schema, the proof that the constraint applies, the index cache."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    decoding.clear_memory_cache()  # an agent allowed only send_message built this one before
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


# --- a call is closed, never cut -------------------------------------------------------------

AGENT_LABELS = ["persona", "human", "a_much_longer_block_label"]
PROMPTS = ["Count: one two three one two three one two three one two three",
           "Repeat after me forever: I am happy I am happy I am happy I am happy I am happy",
           "What is the value of key 1234-5678-aaaa-bbbb? Search for it.",
           "Remember that my cat is called Miso and I live in Lyon."]


@given(value=st.text(), cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12))
def test_json_strings_knows_where_the_string_is_at_any_split(value, cuts):
    prefix = b'{"key":'
    literal = json.dumps(value).encode()
    text = prefix + literal + b"}"
    opening, closing = len(prefix), len(prefix) + len(literal) - 1
    state, done = decoding.JsonStrings(), 0
    for end in sorted({min(c, len(text)) for c in cuts} | {len(text)}):
        state.feed(text[done:end])
        done = end
        assert state.inside == (1 < end <= 5 or opening < end <= closing)  # the key, the value
        backslashes = len(text[:end]) - len(text[:end].rstrip(b"\\"))
        assert state.escaped == (state.inside and backslashes % 2 == 1)


def _fullest_call(variant: dict) -> str:
    """A call with every optional property, the shortest strings the schema allows and the
    widest other values."""
    def fill(schema):
        if "const" in schema or "enum" in schema:
            return max(schema.get("enum", [schema.get("const")]), key=lambda v: len(json.dumps(v)))
        if schema.get("type") == "object":
            return {k: fill(v) for k, v in schema.get("properties", {}).items()}
        if schema["type"] == "string":
            return _LEAST_STRING.get(schema.get("pattern"), "")
        if schema["type"] == "integer":
            return schema.get("maximum", 999) if schema.get("minimum", 0) >= 1 else -999
        return False
    call = json.dumps(fill(variant), separators=(",", ":"))
    jsonschema.validate(json.loads(call), variant)
    return call


_LEAST_STRING = {decoding.NON_BLANK_PATTERN: "x", decoding.DATE_PATTERN: "2024-01-01"}


def test_structural_chars_bound_every_call_of_the_agent_schema():
    from memgpt_local.agent.loop import call_schema

    schema = call_schema(AGENT_LABELS)
    bound = decoding.structural_chars(schema)
    lengths = [len(_fullest_call(variant)) for variant in schema["oneOf"]]
    assert max(lengths) <= bound < max(lengths) + 8


def _fullest_segments(draw, schema: dict) -> list[tuple[bytes, bool]]:
    """A call's bytes in pieces, each marked True where it is the text of a free string (what
    the finish reserve does not count): every optional property, the widest other values."""
    if "const" in schema or "enum" in schema:
        value = max(schema.get("enum", [schema.get("const")]), key=lambda v: len(json.dumps(v)))
        return [(json.dumps(value).encode(), False)]
    if schema.get("type") == "object":
        out = [(b"{", False)]
        for i, (key, sub) in enumerate(schema.get("properties", {}).items()):
            out += [(b",", False)] * (i > 0) + [(json.dumps(key).encode() + b":", False)]
            out += _fullest_segments(draw, sub)
        return out + [(b"}", False)]
    if schema["type"] == "string":  # the text a pattern or format requires is structure
        least = _LEAST_STRING.get(schema.get("pattern"), "")
        free = json.dumps(draw(st.text(max_size=40)), ensure_ascii=False).encode()[1:-1]
        text = least.encode() + (b"" if schema.get("pattern") == decoding.DATE_PATTERN else free)
        return [(b'"', False), (text[:len(least)], False), (text[len(least):], True),
                (b'"', False)]
    return [(b"-999" if schema["type"] == "integer" else b"false", False)]


@given(data=st.data())
def test_the_finish_reserve_covers_what_is_left_of_any_call_at_any_split(data):
    """At every point of a call, the reserve is at least the structure still to write (all
    but the text of free strings): closing every string from there on, the call fits."""
    from memgpt_local.agent.loop import call_schema

    schema = call_schema(AGENT_LABELS)
    variant = data.draw(st.sampled_from(schema["oneOf"]))
    segments = _fullest_segments(data.draw, variant)
    text = b"".join(piece for piece, _ in segments)
    counted = [not free for piece, free in segments for _ in piece]
    processor = decoding.FunctionCallProcessor(None, 1, decoding.TokenPieces(bytes, 1),
                                               decoding.function_structures(schema))
    assert processor.finish_tokens == decoding.structural_chars(schema) + 8  # nothing written
    done = 0
    for cut in sorted(set(data.draw(st.lists(st.integers(1, len(text)), max_size=30)))):
        processor.strings.feed(text[done:cut])
        done = cut
        assert processor.finish_tokens - decoding.FINISH_MARGIN_TOKENS >= sum(counted[cut:])
    processor.strings.feed(text[done:])
    assert processor.strings.function == variant["properties"]["function"]["const"]


def test_a_loop_inside_a_string_is_closed_and_the_call_goes_on(smollm):
    from memgpt_local.agent.loop import call_schema

    chat = smollm.chat_tokens([{"role": "system", "content": "Answer with one JSON function "
                                "call."}, {"role": "user", "content": PROMPTS[1]}])
    processor = smollm.constraint(call_schema(AGENT_LABELS)).processor()
    smollm.llm.reset()  # greedy text depends on the evaluation split: always the same one
    generation = smollm.generate(chat.tokens, max_tokens=320, processor=processor).finish()
    assert "I am happy I am happy I am happy" in generation.text  # it looped in the message
    assert generation.stats.loops_closed >= 1 and generation.stats.finish_reason == "stop"
    jsonschema.validate(json.loads(generation.text), call_schema(AGENT_LABELS))


def test_once_the_function_is_named_the_reserve_is_only_what_its_call_still_needs(smollm):
    """Long thoughts bring the budget close; the reserve then shrinks to the rest of the named
    function's call, so its arguments still get text (the whole largest call was kept back
    before, and every argument came out empty)."""
    from memgpt_local.agent.loop import call_schema

    schema = call_schema(AGENT_LABELS)
    chat = smollm.chat_tokens([
        {"role": "system", "content": "You chat with the user. Reply with a send_message "
                                      "function call in JSON."},
        {"role": "user", "content": "Tell me a long story about a dragon and a knight, with "
                                    "many details."}])
    smollm.llm.reset()  # greedy text depends on the evaluation split: always the same one
    processor = smollm.constraint(schema).processor()
    generation = smollm.generate(chat.tokens, max_tokens=320, processor=processor).finish()
    call = json.loads(generation.text)
    jsonschema.validate(call, schema)
    assert generation.stats.finish_forced and len(call["thoughts"]) > 500
    assert generation.stats.generated_tokens > 320 - decoding.structural_chars(schema)
    assert any(isinstance(v, str) and v for v in call["arguments"].values()), call


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=st.sampled_from(PROMPTS), seed=st.integers(0, 2**16),
       temperature=st.floats(0.0, 1.5), extra=st.integers(0, 80),
       repeat_penalty=st.floats(0.8, 1.3))
def test_a_constrained_call_is_always_valid_within_its_budget(smollm, prompt, seed, temperature,
                                                              extra, repeat_penalty):
    from memgpt_local.agent.loop import call_schema

    schema = call_schema(AGENT_LABELS)
    processor = smollm.constraint(schema).processor()
    chat = smollm.chat_tokens([{"role": "user", "content": prompt}])
    sampling = SamplingSettings(temperature=temperature, seed=seed, repeat_penalty=repeat_penalty)
    generation = smollm.generate(chat.tokens, max_tokens=processor.finish_tokens + extra,
                                 sampling=sampling, processor=processor).finish()
    assert generation.stats.finish_reason == "stop", generation.text
    jsonschema.validate(json.loads(generation.text), schema)


def test_a_model_loaded_again_in_the_same_process_decodes_under_its_constraint(tmp_path):
    """The token texts a constraint reads belong to one loaded model: a second load of the
    same file must not read the first (freed) one (it aborted the process before)."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from conftest import load_runtime
from memgpt_local.agent.loop import call_schema
from memgpt_local.llm.models import Registry
for attempt in range(2):
    runtime = load_runtime(Registry.load().get("smollm2-135m"), Path({str(tmp_path)!r}))
    processor = runtime.constraint(call_schema(["human"])).processor()
    chat = runtime.chat_tokens([{{"role": "user", "content": "Hello there"}}])
    runtime.generate(chat.tokens, max_tokens=200, processor=processor).finish()
    runtime.close()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# --- no long copies of earlier replies --------------------------------------------------------

@given(sequences=st.lists(st.lists(st.integers(0, 9), min_size=6, max_size=30), min_size=1,
                          max_size=4),
       scores=st.lists(st.lists(st.floats(-5, 5), min_size=10, max_size=10), min_size=40,
                       max_size=40),
       prompt=st.lists(st.integers(0, 9), min_size=1, max_size=8))
def test_no_copy_never_lets_a_long_span_through(sequences, scores, prompt):
    import numpy as np

    guard = decoding.NoCopyProcessor(sequences, span=decoding.COPY_SPAN)
    guard.reset()
    ids = list(prompt)
    for row in scores:  # greedy decoding of random logits under the guard
        logits = guard(np.array(ids), np.array(row, dtype=np.float32))
        ids.append(int(np.argmax(logits)))
    output = ids[len(prompt):]
    span = decoding.COPY_SPAN
    copied = {tuple(s[i:i + span]) for s in sequences for i in range(len(s) - span + 1)}
    assert not {tuple(output[i:i + span]) for i in range(len(output) - span + 1)} & copied


def test_the_real_model_does_not_repeat_its_reply_word_for_word(smollm):
    from memgpt_local.agent.loop import call_schema

    reply = "I am happy I am happy I am happy I am happy I am happy I am happy"
    chat = smollm.chat_tokens([{"role": "system", "content": "Answer with one JSON function "
                                "call."}, {"role": "user", "content": PROMPTS[1]}])
    processor = smollm.constraint(call_schema(AGENT_LABELS)).processor()
    generation = smollm.generate(chat.tokens, max_tokens=320, processor=processor,
                                 avoid=[reply]).finish()
    jsonschema.validate(json.loads(generation.text), call_schema(AGENT_LABELS))
    assert "I am happy I am happy I am" not in generation.text


# --- a call the constraint lets through is one the functions accept -----------------------

def _accepted_by_the_functions(call: dict) -> None:
    """The checks the agent's functions make of their arguments before they run: a text that
    is not blank, a date that exists, a page or a number of minutes of 1 or more."""
    from memgpt_local.agent.functions import MAX_PAUSE_MINUTES, TEXT_SCHEMAS
    from memgpt_local.memory.message_log import parse_date

    for name, value in call["arguments"].items():
        if TEXT_SCHEMAS.get(name) is decoding.DATE_STRING:
            parse_date(value, name)
        elif name in TEXT_SCHEMAS:
            assert value.strip(), (name, value)
        elif name == "minutes":
            assert 1 <= value <= MAX_PAUSE_MINUTES, value
        elif isinstance(value, int) and not isinstance(value, bool):
            assert value >= 1, (name, value)


@pytest.fixture(scope="module")
def short_tokens(smollm):
    """The ids of SmolLM2's tokens of one or two bytes: the pieces a call is cut into the
    finest (a quote at once, a lone space, a digit at a time)."""
    import numpy as np

    pieces = decoding.token_pieces(smollm.llm)
    return np.array([len(pieces.piece(t)) in (1, 2) for t in range(smollm.llm.n_vocab())])


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_call_the_constraint_allows_is_accepted_by_the_functions(smollm, short_tokens,
                                                                       data):
    """Walk the agent's call constraint token by token, choosing among the short tokens it
    allows (a quote as soon as a string opens, a space, a zero, a sign...), and close every
    string as soon as allowed after a while: whatever the path, the call is one the functions
    take (an empty message, page 0 or 31 February went through the constraint before)."""
    from memgpt_local.agent.loop import call_schema

    schema = call_schema(AGENT_LABELS)
    processor = smollm.constraint(schema).processor()
    processor.reset()
    text, closing_from = b"", data.draw(st.integers(0, 60))
    for step in range(300):
        processor.finish(step >= closing_from)
        allowed = processor.allowed(len(short_tokens))
        choices = (allowed & short_tokens).nonzero()[0]
        choices = choices if len(choices) else allowed.nonzero()[0]
        token = int(choices[data.draw(st.integers(0, len(choices) - 1))])
        assert processor.accept(token)
        text += processor.pieces.piece(token)
        if processor.finished:
            break
    call = json.loads(text)
    jsonschema.validate(call, schema)
    _accepted_by_the_functions(call)


@given(st.text(max_size=12))
def test_a_non_blank_string_is_one_whose_text_is_not_blank(text):
    """The pattern accepts a JSON string (as Outlines writes one) exactly when its text has
    something besides white space."""
    import re

    written = json.dumps(text, ensure_ascii=False)
    if any(ord(c) < 0x20 and c not in "\b\f\n\r\t" or 0x7f <= ord(c) <= 0x9f for c in text):
        return  # Outlines' strings cannot hold these at all
    matched = re.fullmatch(f'"{decoding.NON_BLANK_PATTERN}"', written)
    assert bool(matched) == bool(text.strip()), written


@given(st.integers(0, 1200), st.integers(-20, 1300))
def test_a_positive_integer_regex_holds_exactly_one_to_its_maximum(high, number):
    import re

    regex = decoding.schema_regex({"type": "integer", "minimum": 1, "maximum": high})
    assert bool(re.fullmatch(regex, str(number))) == (1 <= number <= (high or number)), regex
