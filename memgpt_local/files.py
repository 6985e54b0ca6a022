"""Files written atomically (a temporary beside the target, then a rename), and the sweep of
temporaries that a crashed process left behind. Shared by every layer that writes caches."""

import os
import re
import time
from pathlib import Path

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*", re.IGNORECASE)
STALE_AFTER_S = 24 * 3600  # a temporary this old is stale even if its pid is alive (reused)
_TEMPORARY = re.compile(r"\.tmp(\d+)$")


def temporary_for(path: Path) -> Path:
    """The temporary file this process writes before renaming it to `path`."""
    return path.with_name(f"{path.name}.tmp{os.getpid()}")


def write_atomic(path: Path, *parts: bytes | memoryview) -> None:
    """Write a file (the parts one after another) so that readers see the old content or the
    new, never a part."""
    temporary = temporary_for(path)
    try:
        with temporary.open("wb") as file:
            for part in parts:
                file.write(part)
            file.flush()
            os.fsync(file.fileno())  # the content is on disk before the name points at it
        replace_durably(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def replace_durably(temporary: Path, path: Path) -> None:
    """Rename a written (and synced) temporary over path, and sync the folder so the rename
    survives a power cut."""
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


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


def parse_size(text: str) -> int:
    """Bytes in a size such as 4GiB, 500MB, 2g or 1048576 (ValueError if it is none)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"'{text}' is not a size (examples: 4GiB, 500MB, 0).")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    return int(float(number) * base ** " kmgt".index(unit.lower() or " "))
