"""A regular expression as a GBNF grammar (llama.cpp's grammar format).

The call constraint is a regex built from the calls' JSON schema (decoding.py). llama-server
takes a GBNF grammar, and its own JSON-schema conversion writes a different language (optional
whitespace, another string syntax); translating the very regex instead makes the server allow
exactly the outputs the in-process constraint allows, so a greedy call is the same on both.
Only what Outlines' schema regexes use is translated; anything else is refused loudly.
"""

import re._constants as sre
import re._parser as sre_parse
from typing import Any

_CATEGORIES = {
    sre.CATEGORY_DIGIT: "0-9",
    sre.CATEGORY_SPACE: r"\x20\x09\x0A\x0D\x0B\x0C",
    sre.CATEGORY_WORD: "a-zA-Z0-9_",
}
_NEGATED = {
    sre.CATEGORY_NOT_DIGIT: sre.CATEGORY_DIGIT,
    sre.CATEGORY_NOT_SPACE: sre.CATEGORY_SPACE,
    sre.CATEGORY_NOT_WORD: sre.CATEGORY_WORD,
}


class UnsupportedRegex(ValueError):
    """The regex uses a construct with no GBNF translation here."""


def regex_to_gbnf(regex: str) -> str:
    """A GBNF grammar whose root matches exactly the strings the regex fully matches."""
    return f"root ::= {_sequence(sre_parse.parse(regex))}\n"


def _char(code: int) -> str:
    """One character as GBNF writes it inside a literal or a class: letters, digits and the
    space as themselves, everything else escaped."""
    char = chr(code)
    if char.isascii() and (char.isalnum() or char == " "):
        return char
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _sequence(items: Any) -> str:
    """A sequence of parsed items; runs of literal characters become one quoted literal."""
    parts: list[str] = []
    literal = ""
    for op, arg in items:
        if op is sre.LITERAL:
            literal += _char(arg)
            continue
        if literal:
            parts.append(f'"{literal}"')
            literal = ""
        if op is not sre.AT:  # ^ and $: the grammar always matches the whole output
            parts.append(_item(op, arg))
    if literal:
        parts.append(f'"{literal}"')
    return " ".join(parts) if parts else '""'


def _item(op: Any, arg: Any) -> str:
    if op is sre.NOT_LITERAL:
        return f"[^{_char(arg)}]"
    if op is sre.ANY:
        return r"[^\x0A]"
    if op is sre.IN:
        return _class(arg)
    if op is sre.CATEGORY:
        return _class([(op, arg)])
    if op is sre.BRANCH:
        return "(" + " | ".join(_sequence(branch) for branch in arg[1]) + ")"
    if op is sre.SUBPATTERN:
        return f"({_sequence(arg[-1])})"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        return _repeat(*arg)
    raise UnsupportedRegex(f"no GBNF for the regex construct {op}")


def _repeat(low: int, high: int, items: Any) -> str:
    body = f"({_sequence(items)})"
    if high is sre.MAXREPEAT:
        return body + {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return body + "?"
    return body + (f"{{{low}}}" if low == high else f"{{{low},{high}}}")


def _class(items: Any) -> str:
    negate = items[:1] == [(sre.NEGATE, None)]
    body = ""
    for op, arg in items[negate:]:
        if op is sre.LITERAL:
            body += _char(arg)
        elif op is sre.RANGE:
            body += f"{_char(arg[0])}-{_char(arg[1])}"
        elif op is sre.CATEGORY and arg in _CATEGORIES:
            body += _CATEGORIES[arg]
        elif op is sre.CATEGORY and arg in _NEGATED and not negate and len(items) == 1:
            return f"[^{_CATEGORIES[_NEGATED[arg]]}]"
        else:
            raise UnsupportedRegex(f"no GBNF for the character class item {op} {arg}")
    return f"[{'^' if negate else ''}{body}]"
