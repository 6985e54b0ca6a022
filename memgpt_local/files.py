"""Files written atomically (a temporary beside the target, then a rename), and the sweep of
temporaries that a crashed process left behind. Shared by every layer that writes caches."""

import os
import re
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600  # a temporary this old is stale even if its pid is alive (reused)
_TEMPORARY = re.compile(r"\.tmp(\d+)$")


def temporary_for(path: Path) -> Path:
    """The temporary file this process writes before renaming it to `path`."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    temporary = temporary_for(path)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_temporaries(directory: Path) -> int:
    """Remove temporaries whose writer is gone (or that are a day old); return how many."""
    removed = 0
    for path in directory.glob("*.tmp*"):
        match = _TEMPORARY.search(path.name)
        if match is None or not path.is_file():
            continue
        pid = int(match.group(1))
        stale = time.time() - path.stat().st_mtime > STALE_AFTER_S
        if pid != os.getpid() and (stale or not _alive(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
