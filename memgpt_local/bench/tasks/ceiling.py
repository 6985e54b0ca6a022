"""The ceiling: scripted policies that play a perfect agent (no model). They drive the agent's
real functions over the real memory tiers (search, follow the result, page, answer), so a low
ceiling is a fault of the harness or the retrieval, not of a model."""

import re
from dataclasses import dataclass, field

from ..scripted import call
from .data import Case
from .scoring import UUID, squad_normalise

MAX_PAGES = 2  # a perfect agent pages this far before it gives up
NOT_FOUND = "I could not find that in my memory."
_RESULT = re.compile(r"^\[function result: (\w+)\] (.*)", re.DOTALL)
_PAGES = re.compile(r"page (\d+) of (\d+)", re.IGNORECASE)


def last_result(messages: list[dict]) -> tuple[str | None, str]:
    """The function name and text of the prompt's last message, if it is a function result."""
    match = _RESULT.match(messages[-1]["content"])
    return (match.group(1), match.group(2)) if match else (None, messages[-1]["content"])


def more_pages(result: str, page: int) -> bool:
    """Whether the result says there is a page after `page` (within MAX_PAGES)."""
    match = _PAGES.search(result)
    return match is not None and page < min(int(match.group(2)), MAX_PAGES)


def search(function: str, query: str, page: int, reply: bool = False) -> str:
    """A search call that asks for another step (under the reply architecture every call is
    followed by one)."""
    if reply:
        return call(function, query=query, page=page)
    return call(function, query=query, page=page, request_heartbeat=True)


def answer(text: str, reply: bool = False) -> str:
    """The final reply: a send_message call, or (the reply architecture) the plain text."""
    return text if reply else call("send_message", message=text)


@dataclass
class NestedKvPolicy:
    """Search for the current key, follow its value, until a value is no key: the answer."""

    reply: bool = False  # play the reply architecture: plain replies, no heartbeats
    key: str = ""
    page: int = 1
    seen: set = field(default_factory=set)

    def __call__(self, messages: list[dict]) -> str:
        function, text = last_result(messages)
        if function is None:  # the question: start from its key
            self.key, self.page, self.seen = UUID.findall(text.lower())[0], 1, set()
            return search("archival_memory_search", self.key, 1, self.reply)
        found = re.search(rf"key {self.key} has value ({UUID.pattern})", text)
        if found and found.group(1) not in self.seen:
            self.seen.add(self.key)
            self.key, self.page = found.group(1), 1
            return search("archival_memory_search", self.key, 1, self.reply)
        if more_pages(text, self.page):
            self.page += 1
            return search("archival_memory_search", self.key, self.page, self.reply)
        return answer(self.key, self.reply)


@dataclass
class AnswerInResultsPolicy:
    """Search with the question's words and answer with a gold answer the results contain
    (what a perfect reader would take from them); page on, then give up."""

    function: str
    reply: bool = False  # play the reply architecture: plain replies, no heartbeats
    answers: list[str] = field(default_factory=list)
    query: str = ""
    page: int = 1

    def start(self, case: Case) -> None:
        """Prepare for one case (the gold answers are what a perfect reader recognises)."""
        expected = case.expected
        self.answers = [str(a) for a in (expected if isinstance(expected, list) else [expected])]
        self.query, self.page = case.question, 1

    def __call__(self, messages: list[dict]) -> str:
        function, text = last_result(messages)
        if function is None:
            return search(self.function, self.query, 1, self.reply)
        normalised = squad_normalise(text)
        for gold in self.answers:
            if squad_normalise(gold) and squad_normalise(gold) in normalised:
                return answer(gold, self.reply)
        if more_pages(text, self.page):
            self.page += 1
            return search(self.function, self.query, self.page, self.reply)
        return answer(NOT_FOUND, self.reply)
