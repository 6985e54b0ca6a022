"""The fault campaigns of scripts/bench_faults.py at test size: fuzz, kills, injection, bad
input. Each also shows that its checks can fail."""

import pytest

from memgpt_local.bench import fuzz
from memgpt_local.bench.bad_input import run_bad_inputs
from memgpt_local.bench.injection import run_injection
from memgpt_local.bench.kills import run_kills


def test_fuzzed_agents_keep_every_invariant_for_a_thousand_steps():
    report = fuzz.run_fuzz(1000)
    assert report.steps >= 1000 and report.turns > 100
    assert (report.prompt_over_window, report.invariant_violations) == (0, 0), report.problems


def test_the_fuzz_finds_a_queue_manager_that_cuts_a_call_from_its_result(monkeypatch):
    def careless(queue, fraction, at_least=1, keep=None):  # half the queue, wherever it falls
        return len(queue) // 2 if len(queue) > 1 else 0

    monkeypatch.setattr("memgpt_local.agent.queue.eviction_point", careless)
    report = fuzz.run_fuzz(300)
    while not report.invariant_violations and report.steps < 1500:  # about 1 run in 12 of
        fuzz.run_fuzz(report.steps + 300, report)  # 300 steps happens to find none
    assert report.invariant_violations > 0


@pytest.mark.real
def test_killed_sends_lose_and_duplicate_nothing(store_kind, tmp_path, request):
    """On PostgreSQL the killed child held the agent's lease: the checker takes it over."""
    from conftest import _database_for

    store = (_database_for(request.getfixturevalue("postgres_server"), tmp_path)
             if store_kind == "postgresql" else None)
    report = run_kills(tmp_path / "home", kills=3, store=store)
    assert report.kills == 3 and report.child_errors == 0, report.problems
    assert report.messages_stored >= 1  # the second kill waits for a stored message
    assert (report.messages_lost, report.messages_duplicated, report.agents_unopenable,
            report.index_mismatches, report.temporary_files_left) == (0, 0, 0, 0, 0), \
        report.problems


@pytest.mark.real
@pytest.mark.parametrize("alias,limit", [("smollm2-135m", None), ("gemma3-270m", 300)])
@pytest.mark.parametrize("server", [None, "http://127.0.0.1:9"], ids=["in-process", "remote"])
def test_control_token_texts_never_become_control_tokens(alias, limit, server):
    """In process and through the remote runtime (whose prompts are sent as they are: see
    test_remote.py), on every untrusted path."""
    report = run_injection(alias, limit=limit, server=server)
    assert report.runtime == ("RemoteRuntime" if server else "ModelRuntime")
    assert report.attempts >= 7 * min(limit or 17, 17) and report.prompts_checked >= 5
    assert len(report.paths_reached) == 7  # every untrusted path reached a prompt
    assert (report.injections, report.constraint_control_tokens) == (0, 0), report.leaked


@pytest.mark.real
def test_the_injection_check_catches_text_tokenized_as_control_tokens(monkeypatch):
    from memgpt_local.llm.runtime import ModelRuntime

    tokenize = ModelRuntime.tokenize
    monkeypatch.setattr(ModelRuntime, "tokenize",
                        lambda self, text, special=False: tokenize(self, text, special=True))
    assert run_injection("smollm2-135m").injections > 0


@pytest.mark.real
def test_bad_input_gets_one_clear_error_and_changes_nothing(tmp_path):
    report = run_bad_inputs(tmp_path)
    assert report.bad_inputs >= 40
    assert (report.tracebacks, report.unclear_errors, report.zero_exits,
            report.home_changed) == (0, 0, 0, 0), report.problems
