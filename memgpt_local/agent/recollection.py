"""Memory brought to the model: before the first step of a user turn, archival and recall are
searched with the user's message (the same searches the functions run) and the best few hits
go into the turn as one labelled entry, stored in recall like a function result. The entry
belongs to its turn: the agent takes it out of the context when the turn ends.

A small model rarely searches, or searches with the wrong words; this hands it what a search
with the user's own words would find. It never duplicates what the context already holds
(messages in the queue, passages whose text is already there), each hit is cut to a few
hundred characters and the entry to the agent's result limit and to a share of the window
(fewer hits where the window is small); the model decides what to use.

Under the reply architecture, whose notes stand just before the user's message, conversation
hits may also be lines the context still shows further up (never the message itself): SmolLM2
135M answers from a line set beside the question, not from the same line 600 tokens above
(scripts/bench_chat.py: 3 of 4 facts recalled against 0 of 4).
"""

from collections.abc import Callable, Iterator
from typing import Protocol

from ..memory.messages import Message
from ..memory.paging import Page
from .functions import message_line, truncate

ENTRY_FUNCTION = "memory"  # the function_name of the stored entry (no function of that name)
HIT_CHARS = 400
CANDIDATES_PER_HIT = 4  # results read for each hit kept: some are already in context
CONVERSATION_ROLES = ("user", "assistant")
ROOM_SHARE = 0.25  # the entry's most tokens, as a share of the room the queue has
HEADER = ("Memory related to the user's message, found automatically (it may not all be "
          "relevant; search for more if it is not enough):")


class Recall(Protocol):
    """Recall storage as a recollection reads it."""

    def search_text(self, query: str, page: int = 1, page_size: int = 5) -> Page: ...
    def next_messages(self, messages: list[Message]) -> dict[int, Message]: ...


class Archival(Protocol):
    """Archival storage as a recollection reads it."""

    def search(self, query: str, mode: str = "hybrid", page: int = 1,
               page_size: int = 5) -> Page: ...


def recollect(recall: Recall, archival: Archival | None, text: str, hits: int,
              context: list[Message], max_chars: int,
              fits: Callable[[str], bool] = lambda entry: True,
              talk_in_view: bool = False) -> str | None:
    """The entry for a user message: up to `hits` passages (archival None: none stored) and
    `hits` past messages not in context (talk_in_view: any but the message itself), as many
    of each (best first) as `fits` accepts; None where nothing new was found or nothing fits."""
    in_context = "\n".join(m.content for m in context)
    passages = _passages(archival, text, hits, in_context) if archival else []
    hidden = {m.id for m in context if not talk_in_view or m.content == text}
    talk = _conversation(recall, text, hits, hidden)
    for chosen, lines in _choices(passages, talk):
        entry = entry_text(chosen, lines, max_chars)
        if fits(entry):
            return entry
    return None


def _choices(passages: list[str], talk: list[list[str]]) -> Iterator[tuple[list, list]]:
    """Entries to try, largest first: the best k of each tier for k down to 1, then the best
    passage alone and the best conversation hit alone."""
    for keep in range(max(len(passages), len(talk)), 0, -1):
        yield passages[:keep], [line for hit in talk[:keep] for line in hit]
    if passages and talk:
        yield passages[:1], []
        yield [], talk[0]


def entry_text(passages: list[str], talk: list[str], max_chars: int) -> str:
    """The labelled entry of archival passages and conversation lines, each passage cut to
    HIT_CHARS and the whole to `max_chars`."""
    lines = [HEADER]
    if passages:
        lines += ["archival memory:"] + [f"- {_cut(p)}" for p in passages]
    if talk:
        lines += ["conversation memory:"] + talk
    return truncate("\n".join(lines), max_chars)


def _cut(text: str) -> str:
    return text if len(text) <= HIT_CHARS else text[:HIT_CHARS] + " [...]"


def _passages(archival: Archival, text: str, hits: int, in_context: str) -> list[str]:
    found = archival.search(text, page=1, page_size=hits * CANDIDATES_PER_HIT).items
    fresh = [p["content"] for p in found if p["content"] not in in_context]
    return list(dict.fromkeys(fresh))[:hits]


def _conversation(recall: Recall, text: str, hits: int, hidden: set) -> list[list[str]]:
    """The best past messages not hidden, each with the conversation turn after it."""
    size = hits * CANDIDATES_PER_HIT + len(hidden)
    found = [m for m in recall.search_text(text, 1, size).items
             if m.id not in hidden and m.role in CONVERSATION_ROLES][:hits]
    following = recall.next_messages(found)
    groups = []
    for message in found:
        lines = [_cut(message_line(message))]
        reply = following.get(message.id) if message.id is not None else None
        if reply is not None and _shown_after(reply, hidden, found):
            lines.append(_cut(message_line(reply, "  then")))
        groups.append(lines)
    return groups


def _shown_after(reply: Message, hidden: set, found: list[Message]) -> bool:
    """Whether a hit's next message is worth showing under it (a conversation turn that is
    neither hidden nor a hit itself)."""
    return (reply.role in CONVERSATION_ROLES and reply.id not in hidden
            and all(reply.id != m.id for m in found))

