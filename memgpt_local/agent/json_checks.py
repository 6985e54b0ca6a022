"""Checks on a JSON document from outside (an agent file) before any field of it is read:
nesting bounded, and no text a store cannot hold (a lone surrogate, a NUL character)."""

import json
from typing import Any

from ..memory.storable import unstorable

MAX_DEPTH = 64  # an agent file nests about 8 deep; tool schemas a few more


def check_document(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ValueError naming the first place nested deeper than max_depth or holding text
    no store can hold (checked without recursion, so any depth is safe)."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, where, depth = pending.pop()
        if isinstance(value, str | dict | list) and depth > max_depth:
            raise ValueError(f"it is nested more than {max_depth} levels deep (at "
                             f"{where[:80] or 'the top'}).")
        if isinstance(value, str):
            _check_text(value, where)
        elif isinstance(value, dict):
            for key, item in value.items():
                place = f"{where}.{str(key)[:40]}".lstrip(".")
                _check_text(str(key), place)
                pending.append((item, place, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{where}[{index}]", depth + 1)
                           for index, item in enumerate(value))


def _check_text(text: str, where: str) -> None:
    found = unstorable(text)
    if found:
        raise ValueError(f"{where or 'the document'} holds {found}, a "
                         "character no store can hold (text that is not valid Unicode).")


def loads(text: str | bytes) -> Any:
    """json.loads, JSON nested past Python's recursion limit a ValueError (unchecked: call
    check_document on what it gives, once)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"it is nested more than {MAX_DEPTH} levels deep.") from None


def loads_checked(text: str | bytes) -> Any:
    """loads, with the document checked (ValueError for bad JSON or a bad document, however
    deep)."""
    data = loads(text)
    check_document(data)
    return data
