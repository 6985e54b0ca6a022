"""Text every store can hold: no NUL (PostgreSQL refuses it) and no lone surrogate (not
Unicode, so not UTF-8)."""

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """The first character of the text no store can hold (NUL, a lone surrogate), as U+XXXX;
    None if there is none."""
    found = _UNSTORABLE.search(text)
    return f"U+{ord(found.group()):04X}" if found else None
