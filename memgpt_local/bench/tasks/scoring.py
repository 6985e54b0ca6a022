"""The benchmarks' scorers, as the tasks' own evaluations define them.

- nested-kv: the exact UUID, found anywhere in the reply.
- doc-qa: a gold answer, normalised as in SQuAD (lower case, no punctuation, no articles,
  single spaces), appears in the normalised reply (Liu et al.'s `best_subspan_em`).
- locomo: token F1 with Porter stems after LoCoMo's normalisation (commas and "and" dropped
  too); category 1 (multi-hop) averages over the comma-separated gold answers, each against its
  best comma-separated part of the reply; category 3 scores against the gold answer's part
  before ';'; category 5 (adversarial) is 1 when the reply says the information is not there.
"""

import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NOT_AVAILABLE = ("no information available", "not mentioned")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def uuid_score(reply: str, expected: str) -> float:
    """1.0 when the expected UUID is one of the UUIDs in the reply."""
    return float(expected.lower() in UUID.findall(reply.lower()))


def squad_normalise(text: str, drop: str = "a|an|the") -> str:
    """Lower case, punctuation removed, the given words removed, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(re.sub(rf"\b({drop})\b", " ", text).split())


def contains_answer(reply: str, answers: list[str]) -> float:
    """1.0 when a normalised gold answer is a substring of the normalised reply."""
    normalised = squad_normalise(reply)
    return float(any(squad_normalise(answer) in normalised for answer in answers
                     if squad_normalise(answer)))


@lru_cache(maxsize=1)
def _porter() -> Any:
    from nltk.stem import PorterStemmer  # LoCoMo's stemmer; needs no downloaded data

    return PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _porter().stem(word)


def _stems(text: str) -> list[str]:
    return [_stem(w) for w in squad_normalise(text.replace(",", ""), "a|an|the|and").split()]


def token_f1(reply: str, expected: str) -> float:
    """LoCoMo's token F1 of Porter stems."""
    got, gold = _stems(reply), _stems(expected)
    same = sum((Counter(got) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(got), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def locomo_score(reply: str, answer: Any, category: int) -> float:
    """A LoCoMo QA score for one category (answer: the gold answer, any JSON scalar)."""
    if category == 5:
        return float(any(phrase in reply.lower() for phrase in NOT_AVAILABLE))
    expected = str(answer)
    if category == 3:
        expected = expected.split(";")[0].strip()
    if category != 1:
        return token_f1(reply, expected)
    parts = [p.strip() for p in reply.split(",")]
    golds = [g.strip() for g in expected.split(",")]
    return sum(max(token_f1(p, g) for p in parts) for g in golds) / len(golds)


ECHO_WORDS = 8  # a run of this many words copied from a passage: an echo, not an answer


def _word_runs(text: str, words: int) -> set[tuple[str, ...]]:
    found = re.findall(r"\w+", text.lower())
    return {tuple(found[i:i + words]) for i in range(len(found) - words + 1)}


def echoes(reply: str, passages: list[str], words: int = ECHO_WORDS) -> bool:
    """Whether the reply copies `words` words in a row of one of the passages (its answer
    then may come with the copy rather than from reading the question)."""
    copied = _word_runs(reply, words)
    return any(copied & _word_runs(passage, words) for passage in passages)
