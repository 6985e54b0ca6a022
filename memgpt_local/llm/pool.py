"""The pool of loaded model runtimes: one per model file and settings, shared by every agent
that uses them, within a count and a memory budget, the least recently used idle one unloaded
first."""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from ..errors import ModelMemoryError
from .base import Runtime
from .models import ModelSpec

GIB = 1024**3


class RuntimePool:
    """Loaded runtimes, one per model file and settings, shared by every agent that uses them.
    At most `limit` stay loaded, holding at most `memory_bytes` together (by `estimate`;
    None: no budget): the least recently used one that no user holds is unloaded first; when
    only runtimes in use remain, `reclaim` may free one (a server closes an idle agent), and
    if nothing can, a load over the budget is refused (a load over the count is let through:
    one in use is never unloaded)."""

    def __init__(self, load: Callable[[ModelSpec, int], Runtime], limit: int,
                 memory_bytes: int | None = None,
                 estimate: Callable[[ModelSpec, int], int] = lambda spec, n_ctx: 0):
        self._load = load
        self.limit = max(1, limit)
        self.memory_bytes = memory_bytes
        self._estimate = estimate
        self.reclaim: Callable[[], bool] = lambda: False  # frees a user of a runtime, if it can
        self._runtimes: OrderedDict[tuple, Runtime] = OrderedDict()
        self._sizes: dict[tuple, int] = {}
        self._users: dict[tuple, int] = {}
        self.loads = 0

    def acquire(self, spec: ModelSpec, n_ctx: int) -> Runtime:
        """The runtime for a model and window, loaded if needed; release() it when done."""
        key = (replace(spec, alias="", description=""), n_ctx)  # the file and its settings
        if key in self._runtimes:
            self._runtimes.move_to_end(key)
        else:
            size = self._estimate(spec, n_ctx) if self.memory_bytes is not None else 0
            self._make_room(spec, n_ctx, size)
            self._runtimes[key] = self._load(spec, n_ctx)
            self._sizes[key] = size
            self.loads += 1
        self._users[key] = self._users.get(key, 0) + 1
        return self._runtimes[key]

    def release(self, runtime: Runtime) -> None:
        """One user fewer for a runtime from acquire()."""
        for key, held in self._runtimes.items():
            if held is runtime:
                self._users[key] = max(0, self._users.get(key, 0) - 1)

    def held_bytes(self) -> int:
        """The estimated memory of every loaded runtime."""
        return sum(self._sizes.values())

    def _make_room(self, spec: ModelSpec, n_ctx: int, size: int) -> None:
        """Unload idle runtimes (least recently used first) until the new one fits the count
        and the budget; ask reclaim() for more where only runtimes in use remain."""
        while self._over(size):
            idle = [key for key in self._runtimes if not self._users.get(key)]
            if idle:
                self._unload(idle[0])
            elif not self.reclaim():
                break
        if self.memory_bytes is not None and self.held_bytes() + size > self.memory_bytes:
            raise ModelMemoryError(
                f"Loading '{spec.alias}' with a {n_ctx}-token window needs about "
                f"{size / GIB:.2f} GiB; the model memory ({self.memory_bytes / GIB:.2f} GiB) "
                f"holds {self.held_bytes() / GIB:.2f} GiB of models in use. Try again when "
                "a turn ends, use a smaller window, or allow more (serve --model-memory).")

    def _over(self, size: int) -> bool:
        over_count = len(self._runtimes) >= self.limit
        over_budget = (self.memory_bytes is not None
                       and self.held_bytes() + size > self.memory_bytes)
        return bool(self._runtimes) and (over_count or over_budget)

    def _unload(self, key: tuple) -> None:
        self._runtimes.pop(key).close()
        self._sizes.pop(key, None)
        self._users.pop(key, None)

    def close(self) -> None:
        """Unload every runtime."""
        while self._runtimes:
            self._unload(next(iter(self._runtimes)))
