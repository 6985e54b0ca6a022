"""Grammar-constrained decoding: a JSON schema for one function call, as an Outlines processor.

The schema is turned into a regex and then into an outlines-core Index over the model's
vocabulary. Building the Index is the expensive part (seconds to tens of seconds for a 262k
vocabulary), so it is built once per (model file, schema) and cached in memory and on disk.
The processor is handed straight to llama.cpp by the runtime, never through Outlines' own
llama.cpp wrapper (which resets the KV cache after every call). It drives an outlines-core
Guide itself rather than importing `outlines` (1.4 s of imports, and numba kernels that are
compiled again in every process): the mask is applied with plain numpy.

A call is never cut: when the runtime sees the output loop, the processor closes the string
being written (the thoughts, an argument) and the model goes on with the call under the same
constraint; near the token budget it finishes the call, closing every string it enters. The
budget it keeps for that (`finish_tokens`) is the structure still to write: the largest call
before the function is named, then what is left of that function's.
"""

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConstraintUnavailableError
from ..files import sweep_temporaries, write_atomic
from ..resources import GRAMMARS_DIR
from .tool_formats import JSON as JSON_FORMAT
from .tool_formats import ToolFormat

ENVELOPE_FILE = GRAMMARS_DIR / "function_call.schema.json"
VOCABULARY_VERSION = "1"  # bump when _vocabulary() changes what it produces
FINISH_MARGIN_TOKENS = 8  # an escape under way (\uXXXX) and the end of generation
INT_WIDTH = 4  # characters of the widest integer a call schema allows (3 digits, a sign where
# the minimum is under 1)
# The text of a JSON string that holds something besides white space (what Python's strip()
# does not empty): blanks and blank escapes, then one other character or escape, then any
# text; in the syntax of Outlines' own string regex (no \u escapes; control characters out).
_BLANKS = " " + "".join(c for c in map(chr, range(0xA0, 0x3001)) if c.isspace())
NON_BLANK_PATTERN = (rf'(?:[{_BLANKS}]|\\[fnrt])*'
                     rf'(?:[^"\\\x00-\x20\x7f-\x9f{_BLANKS[1:]}]|\\["\\/b])'
                     r'(?:[^"\\\x00-\x1f\x7f-\x9f]|\\["\\/bfnrt])*')
NON_BLANK_STRING = {"type": "string", "pattern": NON_BLANK_PATTERN}
# A calendar date, YYYY-MM-DD, that exists (years 0001-9999; 29 February in leap years only).
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"  # [0-9]: \d is any digit
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
DATE_PATTERN = (rf"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
                r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
                rf"|{_LEAP_YEAR}-02-29)")
DATE_STRING = {"type": "string", "pattern": DATE_PATTERN}
_LEAST_TEXT = {NON_BLANK_PATTERN: 1, DATE_PATTERN: len("2024-01-01")}  # what a string needs
COPY_SPAN = 6  # NoCopyProcessor: the output may copy at most this many tokens less one
_INDEX_MEMORY: dict[str, object] = {}


def _require_outlines_core() -> Any:
    """Import outlines-core, failing loudly instead of running unconstrained."""
    try:
        import outlines_core
        from outlines_core.json_schema import build_regex_from_schema  # noqa: F401
    except ImportError as exc:
        raise ConstraintUnavailableError(
            f"Constrained decoding needs outlines-core: {exc}. "
            "Run scripts/setup.sh to install it.") from exc
    return outlines_core


class JsonStrings:
    """Where a JSON text being written stands with respect to strings (inside one or not, and
    right after a backslash), and how much of a call's structure it has written: the
    characters `structural_chars` counts (all but the text of string values, keys included)
    and the function named once its name is written."""

    NAME_LIMIT = 64  # bytes of a string kept: enough for any key or function name

    def __init__(self, name_key: bytes = b"function"):
        self.name_key = name_key  # the key whose value names the function
        self.inside = False
        self.escaped = False
        self.structure = 0  # structural characters written so far
        self.function: str | None = None
        self._text = bytearray()  # the string being written, or the last one (up to the limit)
        self._key = b""  # the last key written

    def feed(self, piece: bytes) -> None:
        """Follow the bytes of one more token."""
        for byte in piece:
            if self.escaped:
                self.escaped = False
            elif self.inside and byte == 0x5C:  # backslash
                self.escaped = True
            elif byte == 0x22:  # double quote
                self._quote()
            if self.inside and byte != 0x22 and len(self._text) < self.NAME_LIMIT:
                self._text.append(byte)
            elif not self.inside and byte not in b'" \t\r\n':
                self._outside(byte)

    def _quote(self) -> None:
        self.inside = not self.inside
        self.structure += 1
        if self.inside:
            self._text.clear()
        elif self._key == self.name_key and self.function is None:
            self.function = self._text.decode("utf-8", errors="replace")
            self.structure += len(self._text)

    def _outside(self, byte: int) -> None:
        self.structure += 1
        if byte == 0x3A:  # a colon: the string before it was a key
            self._key = bytes(self._text)
            self.structure += len(self._text)
        self._text.clear()

    @property
    def closable(self) -> bool:
        """Whether a double quote now would end the string being written."""
        return self.inside and not self.escaped


class TokenPieces:
    """The bytes of each token of one model, and (built on first use) the mask of tokens
    whose text starts with a double quote: the tokens that can close a string."""

    def __init__(self, piece: Callable[[int], bytes], n_vocab: int):
        self.piece = piece
        self.n_vocab = n_vocab
        self._quote_mask: np.ndarray | None = None
        self.reply_start: np.ndarray | None = None  # reply_constraint.reply_start_mask's

    def quote_mask(self) -> np.ndarray:
        """True for every token whose text starts with a double quote."""
        if self._quote_mask is None:
            self._quote_mask = np.array([self.piece(t).startswith(b'"')
                                         for t in range(self.n_vocab)], dtype=bool)
        return self._quote_mask


class FunctionCallProcessor:
    """A llama.cpp logits processor that masks every token the schema's regex does not allow;
    asked to, it closes the string being written (close_string) or every string from now on
    (finish), so that a call ends valid instead of being cut."""

    def __init__(self, index: Any, n_vocab: int, pieces: TokenPieces | None = None,
                 structures: dict[str, int] | None = None, regex: str = "",
                 name_key: str = "function"):
        self.index = index
        self.name_key = name_key.encode()
        self.regex = regex  # the language the index accepts (a server's grammar is made of it)
        self.pieces = pieces
        self.structures = structures or {}  # structural_chars of each function's calls
        self.guide: Any = None  # outlines_core.Guide, made at the first token
        self.mask = np.zeros(((n_vocab + 31) // 32,), dtype=np.int32)
        self.strings = JsonStrings(self.name_key)
        self.closing = self.finishing = False

    def reset(self) -> None:
        """Start again at the beginning of the schema (call before each generation)."""
        self.guide = None
        self.strings = JsonStrings(self.name_key)
        self.closing = self.finishing = False

    def close_string(self) -> bool:
        """Close the string being written at the next token; False where none can be closed
        (not inside a string, or no tokens to tell)."""
        if self.pieces is None or not self.strings.inside:
            return False
        self.closing = True
        return True

    @property
    def finish_tokens(self) -> int:
        """The most tokens the rest of this call can need once every string closes as soon as
        it opens: the structure of the function named so far (of the largest before), less
        what is written of it (0: no structure known)."""
        if not self.structures:
            return 0
        most = max(self.structures.values())
        if self.pieces is None:  # no text followed: the whole largest call
            return most + FINISH_MARGIN_TOKENS
        need = self.structures.get(self.strings.function or "", most) - self.strings.structure
        return max(need, 0) + FINISH_MARGIN_TOKENS

    def finish(self, on: bool = True) -> None:
        """While on, close every string as soon as the schema allows: the call ends within
        finish_tokens tokens. (Off again once the function named needs less than is left.)"""
        self.finishing = on and self.pieces is not None

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Advance on the last sampled token, then set disallowed logits to -inf."""
        if self.guide is None:
            self._start()
        elif not self.guide.is_finished() or self.guide.accepts_tokens([int(input_ids[-1])]):
            self._advance(int(input_ids[-1]))
        logits[~self.allowed(len(logits))] = -np.inf
        return logits

    def accept(self, token: int) -> bool:
        """Follow one token sampled elsewhere (a server's); False if the schema, with the
        string closing asked for, does not allow it here (nothing is advanced then)."""
        if self.guide is None:
            self._start()
        if token >= len(self.mask) * 32 or not self.allowed(token + 1)[token]:
            return False
        self._advance(token)
        return True

    def allowed(self, n_vocab: int) -> np.ndarray:
        """The tokens allowed next (a mask over the first n_vocab ids)."""
        guide = self.guide or self._start()
        guide.write_mask_into(self.mask.ctypes.data, self.mask.size, self.mask.itemsize)
        allowed = np.unpackbits(self.mask.view(np.uint8), bitorder="little")[:n_vocab] == 1
        return self._narrowed(allowed)

    def _start(self) -> Any:
        from outlines_core import Guide

        self.guide = Guide(self.index)
        return self.guide

    def _advance(self, token: int) -> None:
        (self.guide or self._start()).advance(token_id=token, return_tokens=False)
        self._follow(token)

    def _follow(self, token: int) -> None:
        if self.pieces is not None:
            self.strings.feed(self.pieces.piece(token))
            if not self.strings.inside:
                self.closing = False

    def _narrowed(self, allowed: np.ndarray) -> np.ndarray:
        """The allowed tokens, only those that close the string where one is to be closed
        and the schema lets it end here (a name or a label cannot end early)."""
        if not ((self.closing or self.finishing) and self.strings.closable) \
                or self.pieces is None:
            return allowed
        quote = self.pieces.quote_mask()[: len(allowed)]
        closing = allowed & quote
        return closing if closing.any() else allowed

    @property
    def finished(self) -> bool:
        """Whether the output so far is a complete match of the schema."""
        return self.guide is not None and self.guide.is_finished()

    @property
    def complete(self) -> bool:
        """Whether the output must end here: the call is whole."""
        return self.finished

    @property
    def free_text(self) -> bool:
        """Whether the output is free text now: never, it is a call."""
        return False


class NoCopyProcessor:
    """A logits processor that bans the token which would make the output copy `span`
    tokens in a row of some given sequences (an earlier reply, an instruction), wherever
    another token remains allowed: a small model decoding greedily otherwise falls into
    repeating its last reply, or the instruction it was given, word for word."""

    def __init__(self, sequences: list[list[int]], span: int = COPY_SPAN):
        self.span = span
        self.next_tokens: dict[tuple[int, ...], set[int]] = {}
        for sequence in sequences:
            for end in range(span - 1, len(sequence)):
                key = tuple(sequence[end - span + 1:end])
                self.next_tokens.setdefault(key, set()).add(sequence[end])
        self.start: int | None = None
        self.banned = 0  # tokens banned in this generation

    def reset(self) -> None:
        """Start a new generation (the next call's input is the prompt)."""
        self.start, self.banned = None, 0

    def __call__(self, input_ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """Ban the tokens that would complete a copied span, unless nothing else is left."""
        if self.start is None:
            self.start = len(input_ids)
        generated = input_ids[self.start:]
        if len(generated) < self.span - 1:
            return logits
        banned = self.next_tokens.get(tuple(int(t) for t in generated[len(generated) -
                                                                     self.span + 1:]))
        if banned:
            ids = [t for t in banned if t < len(logits)]
            kept = np.isfinite(logits)
            kept[ids] = False
            if kept.any():
                logits[ids] = -np.inf
                self.banned += 1
        return logits


def function_call_schema(functions: list[dict], envelope_file: Path = ENVELOPE_FILE) -> dict:
    """One JSON schema for a call of any of these functions ({name, parameters} each)."""
    if not functions:
        raise ValueError("function_call_schema needs at least one function")
    envelope = json.loads(envelope_file.read_text())
    envelope.pop("$comment", None)
    variants = []
    for function in functions:
        variant = copy.deepcopy(envelope)
        variant["properties"]["function"] = {"const": function["name"]}
        variant["properties"]["arguments"] = function["parameters"]
        variants.append(variant)
    return variants[0] if len(variants) == 1 else {"oneOf": variants}


def schema_regex(schema: dict, whitespace: str = "") -> str:
    """Outlines' regex of a JSON schema, except that an integer whose minimum is 1 or more is
    written without a sign or a zero, up to its maximum (Outlines ignores both bounds; a
    minimum above 1 is held as 1)."""
    from outlines_core.json_schema import build_regex_from_schema

    regex = build_regex_from_schema(json.dumps(_mark_positive(schema)), whitespace)
    return re.sub(rf'"{_POSITIVE_MARK}_(\d+)"', lambda m: _one_to(int(m.group(1))), regex)


_POSITIVE_MARK = "MEMGPT_POSITIVE_INTEGER"


def _mark_positive(node: Any) -> Any:
    """The schema with every integer of minimum >= 1 replaced by a constant naming its
    largest value (0: none)."""
    if isinstance(node, list):
        return [_mark_positive(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "integer" and node.get("minimum", 0) >= 1:
        digits = node.get("maxDigits")
        high = node.get("maximum", 10 ** digits - 1 if digits else 0)
        return {"const": f"{_POSITIVE_MARK}_{high}"}
    return {key: _mark_positive(value) for key, value in node.items()}


def _one_to(high: int) -> str:
    """A regex of the integers 1 to high, no leading zero (high 0: no bound)."""
    if high == 0:
        return "([1-9][0-9]*)"
    digits = str(high)
    shorter = len(digits) - 2  # the numbers of fewer digits: [1-9] and up to this many more
    parts = [] if shorter < 0 else ["[1-9]" + (f"[0-9]{{0,{shorter}}}" if shorter else "")]
    for i, digit in enumerate(digits):  # as long as high, smaller in digit i, any after it
        lowest = 1 if i == 0 else 0
        rest = len(digits) - i - 1
        if int(digit) > lowest:
            parts.append(f"{digits[:i]}[{lowest}-{int(digit) - 1}]"
                         + (f"[0-9]{{{rest}}}" if rest else ""))
    return f"({'|'.join(parts + [digits])})"


def structural_chars(schema: dict) -> int:
    """The most characters a call of the schema needs besides the free text inside its
    strings (every optional property written, strings as short as allowed, the longest name
    or label): what is left to write, at most, once every string is closed as soon as it
    may be."""
    if "oneOf" in schema:
        return max(structural_chars(variant) for variant in schema["oneOf"])
    if "const" in schema or "enum" in schema:
        return max(len(json.dumps(value)) for value in schema.get("enum", [schema.get("const")]))
    kind = schema.get("type")
    if kind == "object":
        members = [len(json.dumps(key)) + 1 + structural_chars(value)
                   for key, value in schema.get("properties", {}).items()]
        return 2 + sum(members) + max(len(members) - 1, 0)
    if kind == "string":
        return 2 + _LEAST_TEXT.get(str(schema.get("pattern")), 0)
    return {"integer": INT_WIDTH, "boolean": len("false")}.get(str(kind), 16)


def function_structures(schema: dict, name_key: str = "function", around: int = 0
                        ) -> dict[str, int]:
    """structural_chars of the calls of each function of a call schema, by function name
    (around: the characters a tool format writes around the call's JSON)."""
    variants = schema.get("oneOf", [schema])
    return {variant["properties"][name_key]["const"]: structural_chars(variant) + around
            for variant in variants}


def _vocabulary(llm: Any, specials: tuple[str, ...] = ()) -> Any:
    """An outlines-core Vocabulary of the model's tokens, control tokens left out (except
    those whose text is one of `specials`: a tool format's opening token)."""
    import llama_cpp
    from outlines_core import Vocabulary

    vocab = llm._model.vocab
    eos = llm.token_eos()
    pieces: dict[bytes, list[int]] = {}
    for token in range(llm.n_vocab()):
        if token == eos:
            continue
        if llama_cpp.llama_vocab_is_control(vocab, token):
            text = llm.detokenize([token], special=True)
            if text.decode("utf-8", errors="replace") in specials:
                pieces.setdefault(text, []).append(token)
            continue
        piece = llm._model.token_to_piece(token).rstrip(b"\0")
        if piece:
            pieces.setdefault(piece, []).append(token)
    return Vocabulary(eos, pieces)


@dataclass
class IndexBuild:
    """Where an Index came from and what it cost."""

    source: str
    seconds: float


class FunctionCallConstraint:
    """The compiled constraint for one schema on one model; hands out fresh processors."""

    def __init__(self, llm: Any, file_key: str, schema: dict, cache_dir: Path,
                 pieces: TokenPieces | None = None, whitespace: str = "",
                 tool_format: "ToolFormat | None" = None):
        self.outlines_core = _require_outlines_core()
        self.schema = schema
        self.n_vocab = llm.n_vocab()
        self.tool_format = tool_format or JSON_FORMAT
        self.regex = self.tool_format.wrap_regex(
            schema_regex(schema, whitespace or self.tool_format.whitespace))
        self.specials = tuple(t for t in (self.tool_format.prefix,) if t)
        from importlib.metadata import version

        self.key = hashlib.sha256("\n".join(
            [file_key, self.regex, version("outlines-core"), VOCABULARY_VERSION,
             *self.specials]).encode()).hexdigest()
        start = time.perf_counter()
        self.index, source = self._load_or_build(llm, cache_dir)
        self.build = IndexBuild(source, time.perf_counter() - start)
        self.pieces = pieces or token_pieces(llm)
        fmt = self.tool_format
        around = len(fmt.prefix) + len(fmt.suffix) + 2 * fmt.in_list
        self.structures = function_structures(schema, fmt.name_key, around)
        self.finish_tokens = structural_chars(schema) + around + FINISH_MARGIN_TOKENS

    def _load_or_build(self, llm: Any, cache_dir: Path) -> Any:
        if self.key in _INDEX_MEMORY:
            return _INDEX_MEMORY[self.key], "memory"
        cache_dir.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(cache_dir)
        path = cache_dir / f"{self.key[:32]}.idx"
        index = _read_index(path)
        source = "disk"
        if index is None:
            index = self.outlines_core.Index(self.regex, _vocabulary(llm, self.specials))
            _write_index(path, index)
            source = "built"
        _INDEX_MEMORY[self.key] = index
        return index, source

    def processor(self) -> FunctionCallProcessor:
        """A fresh logits processor over the cached Index (cheap; reset before each call)."""
        return FunctionCallProcessor(self.index, self.n_vocab, self.pieces, self.structures,
                                     self.regex, self.tool_format.name_key)


def token_pieces(llm: Any) -> TokenPieces:
    """The token texts of a loaded model. Keep one per loaded model (the runtime does): it
    reads the model, so it must not outlive it."""
    return TokenPieces(lambda token: llm._model.token_to_piece(token).rstrip(b"\0"),
                       llm.n_vocab())


INDEX_MAGIC = b"MGLIDX1\n"  # then outlines-core's own binary form of the Index (no pickle)


def _read_index(path: Path) -> Any:
    """The cached Index, or None. The file is plain data that outlines-core decodes: a file
    planted in the cache cannot run code (the old pickle files are never read)."""
    from outlines_core import Index

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        if not raw.startswith(INDEX_MAGIC):
            raise ValueError("not an index cache file")
        return Index.from_binary(raw[len(INDEX_MAGIC):])
    except Exception:  # a corrupt or incompatible cache file is rebuilt
        path.unlink(missing_ok=True)
        return None


def _write_index(path: Path, index: Any) -> None:
    """Store the Index in outlines-core's binary form (the bytes its pickling would carry)."""
    constructor, (data,) = index.__reduce__()
    if getattr(constructor, "__name__", "") != "from_binary" or not isinstance(data, bytes):
        return  # an outlines-core without a binary form: build the Index each time instead
    write_atomic(path, INDEX_MAGIC + data)


def clear_memory_cache() -> None:
    """Forget the Indexes held in memory (tests and benchmarks use it to time the disk path)."""
    _INDEX_MEMORY.clear()
