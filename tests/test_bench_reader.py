"""The reading probe (scripts/bench_reader.py): the prompt it builds and how it scores each
format, on a scripted runtime (the real models run in the script, not in tests)."""

from fakes import FakeRuntime, call

from memgpt_local.bench.reader import FORMATS, echoes, prompt_messages, read_cases
from memgpt_local.bench.tasks.data import Case, kv_passage, nested_kv_question

KEY, VALUE = "1a1efc78-7bdd-4108-a11c-461288f5a4b9", "229751a4-f302-4e9b-b203-bc1381e438f8"


def _nested_case() -> Case:
    pairs = [kv_passage(f"other-{i}", f"value-{i}") for i in range(5)]
    return Case("level1-0", nested_kv_question(KEY), VALUE, 1,
                passages=pairs[:3] + [kv_passage(KEY, VALUE)] + pairs[3:])


def _doc_case() -> Case:
    return Case("k10-0", "where is the hall of fame", ["Nashville"], 10,
                passages=["Hall: the hall is in Nashville.", "Coal: a fuel.", "OPEC: 14 nations.",
                          "Tintin: a comic."])


def test_the_prompt_is_the_question_then_the_memory_entry_with_the_answer_first():
    for task, case, gold in (("nested-kv", _nested_case(), kv_passage(KEY, VALUE)),
                             ("doc-qa", _doc_case(), "Hall: the hall is in Nashville.")):
        messages = prompt_messages(task, case)
        assert [m["role"] for m in messages] == ["system", "user", "user"]
        assert case.question in messages[1]["content"]
        entry = messages[2]["content"].splitlines()
        assert entry[0].startswith("[memory] ") and entry[2] == f"- {gold}"
        assert len([line for line in entry if line.startswith("- ")]) == 3


def test_each_format_is_scored_on_the_answer_its_completion_gives():
    answer = call("send_message", message=f"It is {VALUE}.")
    runtime = FakeRuntime(lambda messages: answer)  # plain prompts get a scripted summary
    figures = read_cases(runtime, "nested-kv", [_nested_case()] * 2)
    assert list(figures) == list(FORMATS)
    assert figures["plain"]["score"] == 0 and figures["plain"]["send_message_calls"] == 0
    for name in ("send_message call", "any call"):
        assert figures[name] == {**figures[name], "cases": 2, "correct": 2.0, "score": 1.0,
                                 "send_message_calls": 2}


def test_a_call_of_another_function_answers_nothing():
    runtime = FakeRuntime(lambda messages: call("archival_memory_search", query="Nashville",
                                                page=1, request_heartbeat=True))
    figures = read_cases(runtime, "doc-qa", [_doc_case()])
    assert figures["any call"]["score"] == 0 and figures["any call"]["send_message_calls"] == 0


def test_a_correct_answer_that_copies_its_passage_is_counted_as_an_echo():
    passage = "Hall: the hall of fame was built in the city of Nashville in 1961."
    assert echoes("Hall: the hall of fame was built in the city of Nashville.", [passage])
    assert not echoes("It was built in Nashville, in the city.", [passage])
    assert not echoes("the hall of fame was built", [passage])  # shorter than a run
    copy = call("send_message", message="Hall: the hall is in Nashville. Coal: a fuel. And so")
    figures = read_cases(FakeRuntime(lambda messages: copy), "doc-qa", [_doc_case()])
    sent = figures["send_message call"]
    assert sent["correct"] == 1 and sent["echoed"] == 0
    long_case = _doc_case()
    long_case.passages[0] = passage
    quoted = call("send_message", message=passage)
    figures = read_cases(FakeRuntime(lambda messages: quoted), "doc-qa", [long_case])
    assert figures["send_message call"]["echoed"] == 1
