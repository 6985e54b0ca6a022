"""The per-user home directory: $MEMGPT_LOCAL_HOME, default ~/.local/share/memgpt-local."""

import os
from pathlib import Path

ENV_VAR = "MEMGPT_LOCAL_HOME"


def home_dir(create: bool = True) -> Path:
    """Return the home directory, creating it unless told not to."""
    raw = os.environ.get(ENV_VAR)
    if raw:
        path = Path(raw).expanduser()
    else:
        data_home = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
        path = Path(data_home).expanduser() / "memgpt-local"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """Return (and create) a cache subdirectory of the home, e.g. 'kv' or 'grammar'."""
    path = home_dir() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path
