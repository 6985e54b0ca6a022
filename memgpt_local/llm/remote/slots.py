"""Agents kept on their own llama-server slots, and their contexts saved on the server's disk.

Each agent's completions go to one slot (`id_slot`) while the server has enough, so its prompt
cache holds that agent's context from one turn to the next; the least recently used agent gives
its slot up first. Where the server was started with `--slot-save-path`, the slot is saved at the
end of each turn under a file name of its own and restored when the agent comes back to a slot
that does not hold it (after another agent took it, or a restart of either side): the server's
counterpart of the in-process context snapshots. A snapshot is only a cache: a file that is
missing or unusable costs a full evaluation, never a turn.
"""

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass


def snapshot_filename(owner: str, agent: str) -> str:
    """The slot file of an agent of one home and model: a digest, so the server's disk names
    neither the agent nor the home."""
    digest = hashlib.sha256(f"{owner}\0{agent}".encode()).hexdigest()[:32]
    return f"memgpt-{digest}.bin"


@dataclass
class Assignment:
    """The slot an agent's completions go to, and whether it must be restored into it first."""

    slot: int
    restore: bool


class AgentSlots:
    """Which slot each agent has: least recently used agents give theirs up first."""

    def __init__(self, n_slots: int):
        self.n_slots = max(1, n_slots)
        self._owners: OrderedDict[str, int] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # turns of different agents assign at once

    def assign(self, agent: str) -> Assignment:
        """The agent's slot (a free one, else the least recently used agent's)."""
        with self._lock:
            if agent in self._owners:
                self._owners.move_to_end(agent)
                return Assignment(self._owners[agent], restore=False)
            taken = set(self._owners.values())
            free = [slot for slot in range(self.n_slots) if slot not in taken]
            slot = free[0] if free else self._owners.popitem(last=False)[1]
            self._owners[agent] = slot
            return Assignment(slot, restore=True)

    def slot_of(self, agent: str) -> int | None:
        """The slot an agent holds now (None: none)."""
        with self._lock:
            return self._owners.get(agent)
