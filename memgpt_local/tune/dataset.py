"""The training set: episodes drawn from the mix, played through a real engine (its own
temporary home, the real embedding model, the model's own tokenizer), every step kept as an
example; and the check that no benchmark text reached it."""

import gzip
import json
import random
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..engine import Engine, EngineConfig
from ..llm.gguf import vocabulary
from ..llm.models import ModelSpec
from ..llm.tokenizer import ModelTokenizer
from .episodes import EPISODES, MIX, play
from .recorder import Example, Recorder
from .worlds import World

MAX_PROMPT_TOKENS = 2048


@dataclass
class Generated:
    """What a generation made: the examples and how many of each skill."""

    examples: list[Example]
    episodes: int

    def skills(self) -> dict[str, int]:
        """Examples per skill."""
        return dict(Counter(e.skill for e in self.examples))


def episode_kinds(count: int, seed: int) -> list[str]:
    """The episodes to play: one of each kind (as far as the count goes), the rest drawn
    from the mix, in a fixed order for the seed."""
    weighted = [kind for kind, weight in MIX.items() for _ in range(weight)]
    rng = random.Random(seed)
    kinds = list(MIX)[:count] + [rng.choice(weighted) for _ in range(count - len(MIX))]
    rng.shuffle(kinds)
    return kinds


def generate(spec: ModelSpec, episodes: int, seed: int, progress: bool = True) -> Generated:
    """Play `episodes` episodes (fresh worlds from the seed) and keep every step."""
    path = spec.locate()
    tokenizer = ModelTokenizer(spec, vocabulary(spec), path, Path(tempfile.mkdtemp()))
    recorder = Recorder(tokenizer)
    with tempfile.TemporaryDirectory(prefix="memgpt-local-tune-") as home:
        engine = Engine(EngineConfig(Path(home)),
                        runtime_factory=lambda *_, n_ctx, **__: recorder.runtime(n_ctx))
        try:
            kinds = episode_kinds(episodes, seed)
            for index, kind in enumerate(tqdm(kinds, desc="episodes", disable=not progress)):
                rng = random.Random(seed * 100_003 + index)
                episode = EPISODES[kind](World(rng.randrange(2**31)), rng)
                play(engine, recorder, episode, f"tune-{index % 4}")
        finally:
            engine.close()
    return Generated(recorder.examples, episodes)


def write(examples: list[Example], path: Path) -> None:
    """The examples as JSON lines: prompt and target token ids, skill, target text."""
    with path.open("w") as handle:
        for example in examples:
            handle.write(json.dumps({"prompt": example.prompt, "target": example.target,
                                     "skill": example.skill, "text": example.text}) + "\n")


def read(path: Path) -> list[dict]:
    """The examples of a file write() made."""
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


BENCHMARK_FILES = ("nested_kv/*.jsonl*", "nq_open/*.jsonl*", "locomo/*.json")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WORD = re.compile(r"\w+")
SHINGLE, SHORTEST = 8, 5  # word runs compared; shorter texts (of 5+ words) are compared whole


def shingles(text: str, lengths: range = range(SHINGLE, SHINGLE + 1)) -> set[str]:
    """A text's runs of words (lowercased, punctuation dropped) of the given lengths, and
    its UUIDs."""
    lowered = text.lower()
    words = WORD.findall(lowered)
    runs = {" ".join(words[i:i + n]) for n in lengths for i in range(len(words) - n + 1)}
    return runs | set(UUID.findall(lowered))


def _benchmark_keys(text: str) -> set[str]:
    """What identifies a benchmark text: its 8-word runs, or itself whole when shorter (a
    short question), and its UUIDs."""
    words = WORD.findall(text.lower())
    whole = {" ".join(words)} if SHORTEST <= len(words) < SHINGLE else set()
    return shingles(text) | whole


def benchmark_strings(data_dir: Path) -> set[str]:
    """Every UUID and every run of words of the benchmark data's questions, answers, passages
    and conversations (what must never appear in a training example)."""
    found: set[str] = set()
    for pattern in BENCHMARK_FILES:
        for path in sorted(data_dir.glob(pattern)):
            for value in _records(path):
                found |= {s for text in _texts(value) for s in _benchmark_keys(text)}
    return found


def _records(path: Path) -> Iterator:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", errors="replace") as handle:
        if ".jsonl" in path.name:
            yield from (json.loads(line) for line in handle if line.strip())
        else:
            yield json.load(handle)


def _texts(value: Any) -> Iterator[str]:
    """The strings anywhere in a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str):
        yield value


def contamination(texts: list[str], data_dir: Path) -> list[str]:
    """The benchmark strings found in any of the texts (empty: none)."""
    ours = {s for text in set(texts) for s in shingles(text, range(SHORTEST, SHINGLE + 1))}
    return sorted(ours & benchmark_strings(data_dir))
