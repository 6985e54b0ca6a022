"""Keyword search over one agent's passages: an in-memory inverted index of whole words.

DuckDB stays the source of truth: the index is built from it on first use and kept up to date
by the archival store's inserts and deletes. A word is a run of letters and digits, lowercased,
so a UUID or a date is several words that must all be present ("a456" finds one part of a UUID,
the whole UUID finds the passages holding all its parts, and the exact text ranks first).
"""

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable

WORD = re.compile(r"[^\W_]+")


def words_of(text: str) -> list[str]:
    """The lowercased words of a text, in order."""
    return WORD.findall(text.lower())


class KeywordIndex:
    """Passage ids by word (ascending lists), and each passage's words joined by spaces."""

    def __init__(self) -> None:
        self.postings: dict[str, list[int]] = defaultdict(list)
        self.normalized: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.normalized)

    def add(self, rows: Iterable[tuple[int, str]]) -> None:
        """Index (id, text) rows; ids arrive in ascending order, as DuckDB's sequence makes."""
        for passage_id, text in rows:
            words = words_of(text)
            self.normalized[passage_id] = f" {' '.join(words)} "
            for word in set(words):
                ids = self.postings[word]
                if ids and ids[-1] > passage_id:
                    ids.insert(bisect_left(ids, passage_id), passage_id)
                else:
                    ids.append(passage_id)

    def remove(self, passage_ids: Iterable[int]) -> None:
        """Forget passages (deleted from DuckDB)."""
        for passage_id in passage_ids:
            text = self.normalized.pop(passage_id, None)
            for word in set((text or "").split()):
                ids = self.postings[word]
                position = bisect_left(ids, passage_id)
                if position < len(ids) and ids[position] == passage_id:
                    del ids[position]

    def search(self, query: str, k: int) -> list[int]:
        """Up to k ids of passages holding every word of the query: the exact phrase first,
        then the rest, older passages first."""
        words = words_of(query)
        lists = sorted((self.postings.get(word, []) for word in set(words)), key=len)
        if not lists or not lists[0]:
            return []
        candidates = lists[0]
        for ids in lists[1:]:
            candidates = [i for i in candidates if _holds(ids, i)]
        phrase = f" {' '.join(words)} "
        exact = [i for i in candidates if phrase in self.normalized[i]]
        if len(exact) >= k:
            return exact[:k]
        exact_set = set(exact)
        return exact + [i for i in candidates if i not in exact_set][:k - len(exact)]


def _holds(ids: list[int], passage_id: int) -> bool:
    position = bisect_left(ids, passage_id)
    return position < len(ids) and ids[position] == passage_id
