"""Core memory: named text blocks with a character limit each, always in the prompt."""

from dataclasses import dataclass, field
from typing import TypeVar

from ..errors import MemgptLocalError
from .storable import unstorable

T = TypeVar("T")

DEFAULT_LIMIT = 2000
DEFAULT_LABELS = ("persona", "human")
MAX_LIMIT = 100_000
MAX_LABEL = 64


class CoreMemoryError(MemgptLocalError):
    """A core-memory edit that cannot be done; the text is written for the model to read."""


@dataclass
class Block:
    """One core-memory block."""

    label: str
    value: str = ""
    limit: int = DEFAULT_LIMIT
    description: str = ""  # what the block is for, shown to the model with it
    read_only: bool = False  # the model reads it and cannot change it (a user can)


@dataclass
class BlockChange:
    """What a user's edit changes in a block (None: unchanged, or the default when new)."""

    value: str | None = None
    limit: int | None = None
    description: str | None = None
    read_only: bool | None = None


@dataclass
class CoreMemory:
    """The agent's working context: blocks that only functions change."""

    blocks: dict[str, Block] = field(default_factory=dict)

    @classmethod
    def default(cls, persona: str = "", human: str = "", limit: int = DEFAULT_LIMIT
                ) -> "CoreMemory":
        """The persona and human blocks, with the given texts."""
        memory = cls()
        memory.add_block("persona", persona, limit)
        memory.add_block("human", human, limit)
        return memory

    def add_block(self, label: str, value: str = "", limit: int = DEFAULT_LIMIT) -> Block:
        """Add a block; its initial text must already fit its limit."""
        if label in self.blocks:
            raise CoreMemoryError(f"Core memory already has a block named '{label}'.")
        _check_storable(value, f"Block '{label}' text")
        if len(value) > limit:
            raise CoreMemoryError(f"Block '{label}' text has {len(value)} characters; "
                                  f"its limit is {limit}.")
        self.blocks[label] = Block(label, value, limit)
        return self.blocks[label]

    def block(self, label: str) -> Block:
        """A block by name; an unknown name lists the blocks that exist."""
        if label not in self.blocks:
            raise CoreMemoryError(f"No core memory block named '{label}'. "
                                  f"Blocks: {', '.join(self.blocks)}.")
        return self.blocks[label]

    def put(self, label: str, change: "BlockChange") -> Block:
        """A user's edit: change a block's text, limit, description or read-only flag, or
        add the block if there is none of that label; the text must fit the limit."""
        if not 1 <= len(label) <= MAX_LABEL or not label.isidentifier():
            raise CoreMemoryError(f"Invalid block label {label!r}: use 1 to {MAX_LABEL} "
                                  "letters, digits and underscores, not starting with a digit.")
        old = self.blocks.get(label, Block(label))
        block = Block(label, _either(change.value, old.value), _either(change.limit, old.limit),
                      _either(change.description, old.description),
                      _either(change.read_only, old.read_only))
        _check_storable(block.value, f"Block '{label}' text")
        _check_storable(block.description, f"Block '{label}' description")
        if not 1 <= block.limit <= MAX_LIMIT:
            raise CoreMemoryError(f"Block '{label}': limits are 1 to {MAX_LIMIT} characters.")
        if len(block.value) > block.limit:
            raise CoreMemoryError(f"Block '{label}' text has {len(block.value)} characters, "
                                  f"over a limit of {block.limit}: give a shorter text or a "
                                  "larger limit.")
        self.blocks[label] = block
        return block

    def writable(self, label: str) -> Block:
        """A block the model may change; a read-only one is refused, saying so."""
        block = self.block(label)
        if block.read_only:
            raise CoreMemoryError(f"Block '{label}' is read-only: you can read it but not "
                                  "change it. Keep what you learn in another block or in "
                                  "archival memory.")
        return block

    def append(self, label: str, content: str) -> str:
        """Append a line to a block; return a short confirmation for the model."""
        block = self.writable(label)
        new_value = f"{block.value}\n{content}" if block.value else content
        self._check_fits(block, new_value)
        block.value = new_value
        return f"Appended to '{label}' ({len(new_value)}/{block.limit} characters)."

    def replace(self, label: str, old_content: str, new_content: str) -> str:
        """Replace text in a block (every occurrence); the old text must be there."""
        block = self.writable(label)
        if not old_content:
            raise CoreMemoryError("old_content is empty: say which text to replace.")
        if old_content not in block.value:
            raise CoreMemoryError(f"Text not found in '{label}': {old_content!r}. Copy the "
                                  f"exact text from the block (it has {len(block.value)} "
                                  "characters).")
        new_value = block.value.replace(old_content, new_content)
        self._check_fits(block, new_value)
        block.value = new_value
        return f"Replaced in '{label}' ({len(new_value)}/{block.limit} characters)."

    def rethink(self, label: str, new_value: str) -> str:
        """The model's rewrite of a whole block (Letta's memory_rethink)."""
        block = self.writable(label)
        self._check_fits(block, new_value)
        block.value = new_value
        return f"Rewrote '{label}' ({len(new_value)}/{block.limit} characters)."

    def set(self, label: str, value: str) -> None:
        """Replace a block's whole text (a user's edit), within its limit."""
        block = self.block(label)
        self._check_fits(block, value)
        block.value = value

    @staticmethod
    def _check_fits(block: Block, new_value: str) -> None:
        _check_storable(new_value, f"The new text of '{block.label}'")
        if len(new_value) > block.limit:
            raise CoreMemoryError(
                f"Block '{block.label}' would have {len(new_value)} characters; its limit is "
                f"{block.limit} (now {len(block.value)}). Shorten it with core_memory_replace "
                "or move details to archival memory.")

    def to_dict(self) -> dict:
        """A JSON-ready form, for storing the agent."""
        return {b.label: _block_dict(b) for b in self.blocks.values()}

    @classmethod
    def from_dict(cls, data: dict) -> "CoreMemory":
        """The inverse of to_dict."""
        memory = cls()
        for label, block in data.items():
            memory.blocks[label] = Block(label, block["value"], block["limit"],
                                         block.get("description", ""),
                                         block.get("read_only", False))
        return memory


def _block_dict(block: Block) -> dict:
    """A block's stored form: description and read-only only where set (older stores and
    files hold value and limit alone)."""
    data: dict = {"value": block.value, "limit": block.limit}
    if block.description:
        data["description"] = block.description
    if block.read_only:
        data["read_only"] = True
    return data


def _check_storable(text: str, what: str) -> None:
    """Refuse text no store can hold, naming the character."""
    found = unstorable(text)
    if found:
        raise CoreMemoryError(f"{what} holds {found}, a character no store can hold: leave "
                              "it out.")


def _either(new: T | None, old: T) -> T:
    """A change's value where it gives one, else the old value."""
    return old if new is None else new
