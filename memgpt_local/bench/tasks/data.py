"""The public benchmark data (../shared/data beside the project, or any folder or file in the
same formats): loaders that turn it into cases. See ../shared/data/README.md for the sources.
"""

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from ...errors import MemgptLocalError

DEFAULT_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
NESTED_KV_RECORDS = "nested_kv/kv-retrieval-140_keys.jsonl.gz"
NESTED_KV_ORDERINGS = "nested_kv/random_orderings_100_samples_140_indices_{level}_levels.jsonl"
NQ_OPEN = "nq_open/nq-open-oracle-dev200.jsonl.gz"
LOCOMO = "locomo/locomo-conv26.json"


class BenchDataError(MemgptLocalError):
    """Benchmark data that is missing or not in the expected format."""


@dataclass
class Turn:
    """One dated turn of a LoCoMo conversation."""

    dia_id: str
    speaker: str
    text: str
    when: datetime


@dataclass
class Case:
    """One question of a task: what goes into memory, the question and the expected answer.
    `group` is the nesting level, the number of distractors or the LoCoMo category."""

    case_id: str
    question: str
    expected: object
    group: int
    passages: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def data_file(data: Path | None, relative: str) -> Path:
    """A data file: `data` itself when it is a file, else relative to it (default: shared)."""
    root = data or DEFAULT_DATA
    path = root if root.is_file() else root / relative
    if not path.is_file():
        raise BenchDataError(f"Benchmark data not found: {path}. Pass --data with the file or "
                             "the folder that holds it (see ../shared/data/README.md).")
    return path


def _json_lines(path: Path) -> list:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as file:
            return [json.loads(line) for line in file if line.strip()]
    except (OSError, ValueError, EOFError) as exc:
        raise BenchDataError(f"{path} is not JSON lines: {exc}") from None


# --- nested key-value retrieval ---------------------------------------------------------------
def kv_passage(key: str, value: str) -> str:
    """The archival passage of one pair."""
    return f"key {key} has value {value}"


def nested_kv_question(key: str) -> str:
    """The question of a nested-KV case."""
    return (f"Archival memory holds key-value pairs of UUIDs. Find the value of the key {key}. "
            "If that value is itself a key, find its value, and so on, until you reach a value "
            "that is not a key. Reply with that last value only.")


def nested_kv_pairs(records: Path) -> list[tuple[str, str]]:
    """Record 0's 140 (key, value) pairs."""
    record = _json_lines(records)[0]
    try:
        return [(str(k), str(v)) for k, v in record["ordered_kv_records"]]
    except (KeyError, TypeError, ValueError):
        raise BenchDataError(f"{records}: record 0 has no ordered_kv_records pairs.") from None


def nested_kv_cases(pairs: list[tuple[str, str]], orderings: list[list[int]], level: int
                    ) -> list[Case]:
    """Cases of one level: key[i_j]'s value becomes key[i_{j+1}]; the answer is key
    i_{N-1}'s original value, N lookups from key[i_0]."""
    cases = []
    for number, ordering in enumerate(orderings):
        values = dict(pairs)
        for here, there in pairwise(ordering):
            values[pairs[here][0]] = pairs[there][0]
        start, last = pairs[ordering[0]][0], pairs[ordering[-1]]
        cases.append(Case(f"level{level}-{number}", nested_kv_question(start), last[1], level,
                          [kv_passage(k, values[k]) for k, _ in pairs]))
    return cases


def load_nested_kv(data: Path | None, levels: list[int]) -> list[Case]:
    """The nested-KV cases of the given levels, in file order."""
    pairs = nested_kv_pairs(data_file(data, NESTED_KV_RECORDS))
    cases = []
    for level in levels:
        orderings = _json_lines(data_file(data if data and data.is_dir() else None,
                                          NESTED_KV_ORDERINGS.format(level=level)))
        if any(len(o) != level or max(o) >= len(pairs) for o in orderings):
            raise BenchDataError(f"Orderings of level {level} do not match the pairs.")
        cases += nested_kv_cases(pairs, orderings, level)
    return cases


# --- document QA (NaturalQuestions-Open) -------------------------------------------------------
def nq_passage(ctx: dict) -> str:
    """The archival passage of one Wikipedia context."""
    return f"{ctx['title']}: {ctx['text']}"


def load_doc_qa(data: Path | None, distractors: int) -> list[Case]:
    """Each question with its gold passage and the gold passages of the next `distractors`
    questions (cyclically) as distractors."""
    rows = _json_lines(data_file(data, NQ_OPEN))
    try:
        golds = [nq_passage(next(c for c in row["ctxs"] if c.get("isgold", True)))
                 for row in rows]
        questions = [(row["question"], list(row["answers"])) for row in rows]
    except (KeyError, StopIteration, TypeError):
        raise BenchDataError("NQ-Open rows need question, answers and a gold ctx.") from None
    cases = []
    for i, (question, answers) in enumerate(questions):
        others = [golds[(i + j) % len(golds)] for j in range(1, distractors + 1)]
        cases.append(Case(f"k{distractors}-{i}", question, answers, distractors,
                          [golds[i], *others]))
    return cases


# --- LoCoMo conversation QA -----------------------------------------------------------------
def locomo_when(text: str) -> datetime:
    """A session's date, as LoCoMo writes it ('1:56 pm on 8 May, 2023')."""
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        raise BenchDataError(f"Unreadable LoCoMo session date: {text!r}.") from None


def locomo_turns(conversation: dict) -> list[Turn]:
    """Every turn of every session in order, stamped with its session's date."""
    turns = []
    number = 1
    while f"session_{number}" in conversation:
        when = locomo_when(conversation[f"session_{number}_date_time"])
        turns += [Turn(t["dia_id"], t["speaker"], t["text"], when)
                  for t in conversation[f"session_{number}"]]
        number += 1
    return turns


def load_locomo(data: Path | None) -> tuple[list[Turn], list[Case]]:
    """The conversation's turns and its questions (the first record of the file)."""
    path = data_file(data, LOCOMO)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record = record[0] if isinstance(record, list) else record
        turns = locomo_turns(record["conversation"])
        cases = [Case(f"{record.get('sample_id', 'conv')}-{i}", qa["question"],
                      qa.get("answer", qa.get("adversarial_answer", "")), int(qa["category"]),
                      evidence=list(qa.get("evidence", [])))
                 for i, qa in enumerate(record["qa"])]
    except KeyError as exc:
        raise BenchDataError(f"{path} is not a LoCoMo record: it lacks {exc}.") from None
    except (OSError, ValueError, TypeError) as exc:
        raise BenchDataError(f"{path} is not a LoCoMo record: {exc}") from None
    return turns, cases
