"""The pool of loaded model runtimes: one per model file and settings, shared by every agent
that uses them, the least recently used idle one unloaded first."""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from .base import Runtime
from .models import ModelSpec


class RuntimePool:
    """Loaded runtimes, one per model file and settings, shared by every agent that uses them.
    At most `limit` stay loaded: the least recently used one that no open agent holds is
    unloaded first (one in use is never unloaded, so the pool may briefly hold more)."""

    def __init__(self, load: Callable[[ModelSpec, int], Runtime], limit: int):
        self._load = load
        self.limit = max(1, limit)
        self._runtimes: OrderedDict[tuple, Runtime] = OrderedDict()
        self._users: dict[tuple, int] = {}
        self.loads = 0

    def acquire(self, spec: ModelSpec, n_ctx: int) -> Runtime:
        """The runtime for a model and window, loaded if needed; release() it when done."""
        key = (replace(spec, alias="", description=""), n_ctx)  # the file and its settings
        if key in self._runtimes:
            self._runtimes.move_to_end(key)
        else:
            self._make_room()
            self._runtimes[key] = self._load(spec, n_ctx)
            self.loads += 1
        self._users[key] = self._users.get(key, 0) + 1
        return self._runtimes[key]

    def release(self, runtime: Runtime) -> None:
        """One user fewer for a runtime from acquire()."""
        for key, held in self._runtimes.items():
            if held is runtime:
                self._users[key] = max(0, self._users.get(key, 0) - 1)

    def _make_room(self) -> None:
        idle = [key for key in self._runtimes if not self._users.get(key)]
        while idle and len(self._runtimes) >= self.limit:
            self._runtimes.pop(idle.pop(0)).close()

    def close(self) -> None:
        """Unload every runtime."""
        while self._runtimes:
            self._runtimes.popitem()[1].close()
        self._users.clear()
