"""What a good memory agent does at each step, played from what its prompt shows (like the
benchmarks' ceiling, but over synthetic worlds): answer from what is in view, search when the
answer is not, follow a chain, save what the user states, say it does not know, summarise."""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..bench.tasks.ceiling import last_result, more_pages
from .worlds import Fact

UNKNOWN = ["I don't know - I have nothing about that in my memory.",
           "I'm not sure. I couldn't find anything about that.",
           "I don't have that in my memory, sorry.",
           "No idea, I'm afraid: nothing I remember mentions it."]
ACKNOWLEDGE = ["Got it, I'll remember that.", "Noted - thanks for telling me!",
               "Thanks, I've saved that.", "Good to know. I'll keep it in mind.",
               "Lovely, I'll remember."]
LOCKER = re.compile(r"Locker (\S+) holds the key to locker (\S+?)\.")


def call(function: str, **arguments: Any) -> str:
    """A call as the constraint writes it in our JSON format: compact, the arguments in the
    function's own order, no thoughts."""
    return json.dumps({"function": function, "arguments": arguments}, ensure_ascii=False,
                      separators=(",", ":"))


def in_view(messages: list[dict], text: str) -> bool:
    """Whether the prompt shows the text anywhere but in the newest user message."""
    shown = [m["content"] for m in messages[:-1]] + (
        [messages[-1]["content"]] if messages[-1]["content"].startswith("[") else [])
    return any(text.lower() in content.lower() for content in shown)


def fresh(messages: list[dict], choices: list[str], turn: int) -> str:
    """A reply from the choices that the conversation has not used yet."""
    used = {m["content"] for m in messages if m["role"] == "assistant"}
    unused = [c for c in choices if c not in used] or choices
    return unused[turn % len(unused)]


@dataclass
class SayPolicy:
    """A turn that needs nothing from memory: a plain reply."""

    replies: list[str]
    turn: int = 0

    def __call__(self, messages: list[dict], offered: frozenset[str]) -> str:
        return fresh(messages, self.replies, self.turn)


@dataclass
class SavePolicy:
    """The user states a fact: save it to core memory (unless it is there), then thank them."""

    fact: Fact
    turn: int = 0

    def __call__(self, messages: list[dict], offered: frozenset[str]) -> str:
        function, _ = last_result(messages)
        if function is None and not in_view(messages, self.fact.note) and \
                "core_memory_append" in offered:
            return call("core_memory_append", label="human", content=self.fact.note)
        return fresh(messages, ACKNOWLEDGE, self.turn)


@dataclass
class AnswerPolicy:
    """A question: answered from what is in view, else searched for (paging on), else not
    known."""

    fact: Fact | None  # None: nothing holds the answer
    function: str
    query: str
    turn: int = 0
    page: int = 0  # the last page searched (0: none yet)

    def __call__(self, messages: list[dict], offered: frozenset[str]) -> str:
        function, text = last_result(messages)
        if self.fact is not None and in_view(messages, self.fact.answer):
            return self.fact.reply
        if self.function not in offered:
            return fresh(messages, UNKNOWN, self.turn)
        if self.page == 0:
            self.page = 1
            return call(self.function, query=self.query, page=1)
        if more_pages(text, self.page):
            self.page += 1
            return call(self.function, query=self.query, page=self.page)
        return fresh(messages, UNKNOWN, self.turn)


@dataclass
class ChainPolicy:
    """Follow lockers from the first code until one holds no key: its code is the answer."""

    first: str
    searched: set = field(default_factory=set)

    def __call__(self, messages: list[dict], offered: frozenset[str]) -> str:
        links: dict[str, str] = {}
        for message in messages:
            links.update(LOCKER.findall(message["content"]))
        current, seen = self.first, {self.first}
        while current in links and links[current] not in seen:
            current = links[current]
            seen.add(current)
        if current in self.searched:
            return f"The last locker is {current}."
        if "archival_memory_search" not in offered:  # the rules allow no more searches
            return f"I could only follow the keys as far as locker {current}."
        self.searched.add(current)
        return call("archival_memory_search", query=f"Locker {current}", page=1)


@dataclass
class SummaryPolicy:
    """The summary a flush asks for: the facts the user has told, as core memory notes."""

    facts: list[Fact]

    def __call__(self, messages: list[dict], offered: frozenset[str]) -> str:
        told = [f.note for f in self.facts
                if any(f.statement in m["content"] or f.note in m["content"] for m in messages)]
        if not told:
            return "We chatted; the user has not told me anything about themselves yet."
        return "The user told me: " + "; ".join(told) + "."
