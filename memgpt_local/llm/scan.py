"""The models found on this machine, each described from its header: architecture, size,
quantisation, trained context, tool-call format and whether it fits (`models scan`); and the
one model a source names (`models add`, `--model SOURCE`)."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from ..errors import MemgptLocalError, SourceError
from .discovery import PREFIXED, Found, Listing, Places, fingerprint, list_files
from .fit import MemoryEstimate, ModelShape, auto_gpu_layers, estimate, fitting_window, shape_of
from .gguf_header import SPLIT, read_header, split_parts
from .tool_formats import detect

NOT_MODELS = {"adapter": "a LoRA adapter", "mmproj": "a vision projector",
              "clip": "a vision projector"}


@dataclass
class Machine:
    """The memory a model may use here: free RAM and free GPU memory (0: no GPU)."""

    ram_free: int
    gpu_free: int = 0


@dataclass
class ScannedModel:
    """One model on disk (a split one counted once), every store that holds it, and what its
    header says."""

    path: Path  # the file (a split model's first part)
    parts: list[Path]
    size: int
    sources: list[Found]
    shape: ModelShape
    tool_format: str  # hermes, llama3, mistral; "none" where the template defines no calls
    has_template: bool
    window: int  # the largest window that fits this machine (0: none does)
    gpu_layers: int  # at that window
    fit: MemoryEstimate | None

    @property
    def name(self) -> str:
        """The name its first store gives it."""
        return self.sources[0].name

    def as_dict(self) -> dict:
        """For JSON."""
        shape = self.shape
        return {"name": self.name, "path": str(self.path), "parts": len(self.parts),
                "size_bytes": self.size, "sources": [f.source for f in self.sources],
                "notes": [note for f in self.sources for note in f.notes],
                "architecture": shape.architecture, "parameters": shape.parameters,
                "quantisation": shape.quantisation, "trained_context": shape.trained_context,
                "tool_format": self.tool_format, "has_chat_template": self.has_template,
                "fits_window": self.window, "gpu_layers": self.gpu_layers,
                "estimate": self.fit.as_dict() if self.fit else None}


@dataclass
class Scan:
    """The models found and one line for each thing left out."""

    models: list[ScannedModel] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def scan(places: Places, machine: Machine) -> Scan:
    """Every model the places hold, each once, described from its header."""
    listing = list_files(places)
    result = Scan(skipped=listing.skipped)
    by_content: dict[str, ScannedModel] = {}
    for item in listing.found:
        if _later_part(item.path):
            continue
        try:
            key = fingerprint(item.path)
            if key in by_content:
                known = by_content[key].sources
                if item.source not in {found.source for found in known}:
                    known.append(item)  # one source twice (two HF revisions of a file): once
                continue
            by_content[key] = describe(item, machine)
        except (MemgptLocalError, OSError) as exc:
            result.skipped.append(_skipped(item.path, exc))
    result.models = list(by_content.values())
    return result


def _skipped(path: Path, exc: Exception) -> str:
    """One line on a file left out, naming it once."""
    text = str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)
    return f"skipped: {text}" if str(path) in text else f"skipped {path}: {text}"


def describe(item: Found, machine: Machine) -> ScannedModel:
    """A file described from its header (and its other parts', if split); a file that is not
    a whole GGUF model raises one line."""
    parts = split_parts(item.path)
    missing = [part for part in parts if not part.is_file()]
    if missing:
        raise SourceError(f"part {missing[0].name} of this split model is missing")
    headers = [read_header(part) for part in parts]
    kind = str(headers[0].metadata.get("general.type", "")) or headers[0].architecture
    if kind in NOT_MODELS or headers[0].architecture in NOT_MODELS:
        raise SourceError(f"it is {NOT_MODELS.get(kind) or NOT_MODELS[headers[0].architecture]}"
                          ", not a model")
    shape = shape_of(headers)
    template = str(headers[0].metadata.get("tokenizer.chat_template") or "")
    window = fitting_window(shape, machine.ram_free, machine.gpu_free)
    layers = auto_gpu_layers(shape, window, machine.gpu_free) if window else 0
    tool_format = detect(template)
    return ScannedModel(item.path, parts, sum(p.stat().st_size for p in parts), [item], shape,
                        tool_format.name if tool_format.native else "none", bool(template),
                        window, layers, estimate(shape, window, layers) if window else None)


def _later_part(path: Path) -> bool:
    """Whether a file is the second or a later part of a split model."""
    match = SPLIT.fullmatch(path.name)
    return match is not None and int(match.group(2)) > 1


def is_source(name: str) -> bool:
    """Whether a --model value names a model on disk rather than a registry alias."""
    return name.startswith(tuple(f"{store}:" for store in PREFIXED)) or \
        name.lower().endswith(".gguf")


def resolve(source: str, places: Places, machine: Machine) -> ScannedModel:
    """The one model a source names: a path, ollama:NAME[:TAG], hf:ORG/REPO[/FILE] or
    lmstudio:PUBLISHER/REPO[/FILE]; anything else is one line saying what was found."""
    store, _, name = source.partition(":")
    if store not in PREFIXED:
        return _from_path(Path(source).expanduser(), machine)
    if store == "ollama" and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    listing = list_files(Places([s for s in places.stores if s[0] == store]))
    matches = [f for f in listing.found if _matches(f, store, name)]
    files = {f.path for f in matches}
    if len(files) == 1:
        return describe(matches[0], machine)
    return _no_single_match(f"{store}:{name}", store, listing, sorted(f.name for f in matches))


def _from_path(path: Path, machine: Machine) -> ScannedModel:
    if not path.is_file():
        raise SourceError(f"No model file at {path} (`memgpt-local models scan` lists the "
                          "models found on this machine).")
    return describe(Found("path", path.name, path.absolute()), machine)


def _matches(found: Found, store: str, name: str) -> bool:
    """Whether a store's file is the one a source names (a repository names its one model;
    a split model's later parts never match)."""
    if _later_part(found.path):
        return False
    if store == "ollama":
        return found.name == name.removeprefix("library/")
    return found.name == name or found.name.startswith(name.rstrip("/") + "/")


def _no_single_match(source: str, store: str, listing: Listing, names: list[str]) -> NoReturn:
    if names:
        raise SourceError(f"{source} names {len(names)} models: {', '.join(names[:6])}"
                          f"{' ...' if len(names) > 6 else ''}; name one of them whole.")
    name = source.partition(":")[2]
    broken = [line for line in listing.skipped if f" {name}:" in line or f" {name} " in line]
    if broken:
        raise SourceError(broken[0].removeprefix("skipped ") + ".")
    known = sorted({f.name for f in listing.found if not _later_part(f.path)})
    hint = (f" It has: {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}." if known
            else f" No {store} models were found here (`memgpt-local models scan` lists the "
                 "places looked in).")
    raise SourceError(f"{source} is not on this machine.{hint}")


def suggestion(models: list[ScannedModel], least_window: int = 4096) -> ScannedModel | None:
    """The model to chat with here: of those that fit with a window of at least 4096 tokens
    and have a chat template, one whose template defines tool calls first, then the largest."""
    usable = [m for m in models if m.window >= least_window and m.has_template]
    return max(usable, key=lambda m: (m.tool_format != "none", m.shape.parameters),
               default=None)


def derived_alias(model: ScannedModel) -> str:
    """A registry alias for a model found on disk: its store name, lower-cased, with the
    characters an alias keeps (llama3.2:3b -> llama3.2-3b)."""
    name = model.name.removesuffix(".gguf")
    if model.sources[0].store in ("hf", "lmstudio"):
        name = name.rsplit("/", 1)[-1]
    alias = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")
    return alias or "model"
