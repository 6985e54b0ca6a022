"""The GGUF models people already have: Ollama's store, LM Studio's folders, the Hugging Face
cache, llama.cpp's cache, GPT4All's folder and any folder named, each read in its own layout
(Ollama's manifests name the model blob; the others keep files under readable names). Only
headers are read, never weights."""

import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

OLLAMA_MODEL = "application/vnd.ollama.image.model"
OLLAMA_SHOWN = {"application/vnd.ollama.image.template": "template",
                "application/vnd.ollama.image.params": "params",
                "application/vnd.ollama.image.system": "system",
                "application/vnd.ollama.image.projector": "projector",
                "application/vnd.ollama.image.adapter": "adapter"}
OLLAMA_HOST, OLLAMA_NAMESPACE = "registry.ollama.ai", "library"
SHOWN_LAYER_BYTES = 4096  # a template/params/system layer longer than this is cut
PREFIXED = ("ollama", "hf", "lmstudio")  # stores a SOURCE may name as STORE:NAME


@dataclass(frozen=True)
class Found:
    """One GGUF file a store holds, under the name that store gives it."""

    store: str  # ollama, lmstudio, hf, llama.cpp, gpt4all or dir
    name: str  # as the store names it: llama3.2:3b, ORG/REPO/FILE.gguf
    path: Path
    notes: tuple[str, ...] = ()  # what else the store says (Ollama's template, params...)

    @property
    def source(self) -> str:
        """How `models add` and `--model` name it."""
        return f"{self.store}:{self.name}" if self.store in PREFIXED else str(self.path)


@dataclass
class Places:
    """Where each store keeps its models on this machine (the tools' own variables first)."""

    stores: list[tuple[str, Path]] = field(default_factory=list)

    @classmethod
    def default(cls, env: Mapping[str, str] | None = None, home: Path | None = None,
                platform: str = sys.platform) -> "Places":
        """The places Ollama, LM Studio, Hugging Face, llama.cpp and GPT4All use."""
        env = os.environ if env is None else env
        home = home or Path.home()
        cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache")
        mac = platform == "darwin"
        ollama = [Path(env["OLLAMA_MODELS"])] if env.get("OLLAMA_MODELS") else [
            home / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]
        hf = Path(env["HF_HUB_CACHE"]) if env.get("HF_HUB_CACHE") else (
            Path(env["HF_HOME"]) / "hub" if env.get("HF_HOME") else cache / "huggingface" / "hub")
        llama = Path(env["LLAMA_CACHE"]) if env.get("LLAMA_CACHE") else (
            home / "Library" / "Caches" / "llama.cpp" if mac else cache / "llama.cpp")
        gpt4all = (home / "Library" / "Application Support" / "nomic.ai" / "GPT4All" if mac
                   else home / ".local" / "share" / "nomic.ai" / "GPT4All")
        return cls([("ollama", p) for p in ollama] + [
            ("lmstudio", home / ".lmstudio" / "models"),
            ("lmstudio", home / ".cache" / "lm-studio" / "models"), ("hf", hf),
            ("llama.cpp", llama), ("gpt4all", gpt4all)])

    def with_dirs(self, folders: list[Path]) -> "Places":
        """These places and the folders given with --dir."""
        return Places(self.stores + [("dir", folder) for folder in folders])


@dataclass
class Listing:
    """What a walk over the places found: the files, and one line per thing skipped."""

    found: list[Found] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def list_files(places: Places) -> Listing:
    """Every GGUF file the places hold, under each store's name for it."""
    listing = Listing()
    for store, root in places.stores:
        if not root.is_dir():
            continue
        reader = _ollama if store == "ollama" else _hf if store == "hf" else _plain
        for item in reader(root, store, listing.skipped):
            listing.found.append(item)
    return listing


def _plain(root: Path, store: str, skipped: list[str]) -> Iterator[Found]:
    """A folder tree of .gguf files, named by their path inside it."""
    for path in _gguf_files(root, skipped):
        yield Found(store, path.relative_to(root).as_posix(), path)


def _hf(root: Path, store: str, skipped: list[str]) -> Iterator[Found]:
    """The Hugging Face cache: models--ORG--REPO/snapshots/REVISION/FILE."""
    for repo in sorted(root.glob("models--*")):
        name = repo.name.removeprefix("models--").replace("--", "/")
        for path in _gguf_files(repo / "snapshots", skipped):
            inside = path.relative_to(repo / "snapshots").parts[1:]
            yield Found(store, f"{name}/{'/'.join(inside)}", path)


def _gguf_files(root: Path, skipped: list[str]) -> Iterator[Path]:
    """The .gguf files under a folder, links followed to files only; unreadable folders are
    skipped with a line saying so."""
    def note(error: OSError) -> None:
        skipped.append(f"skipped {error.filename}: {error.strerror or error}")

    for folder, _, files in sorted(os.walk(root, onerror=note)):
        for name in sorted(files):
            if name.lower().endswith(".gguf"):
                yield Path(folder) / name


def _ollama(root: Path, store: str, skipped: list[str]) -> Iterator[Found]:
    """Ollama's store: manifests/HOST/NAMESPACE/MODEL/TAG, each naming its model blob."""
    manifests = root / "manifests"
    for manifest in sorted(manifests.glob("*/*/*/*")):
        if not manifest.is_file():
            continue
        name = ollama_name(*manifest.relative_to(manifests).parts)
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8"))["layers"]
            model = next(layer for layer in layers if layer["mediaType"] == OLLAMA_MODEL)
            blob = _blob(root, model["digest"])
        except (OSError, ValueError, KeyError, TypeError, StopIteration):
            skipped.append(f"skipped Ollama model {name}: its manifest {manifest} is not one "
                           "Ollama can read")
            continue
        if not blob.is_file():
            skipped.append(f"skipped Ollama model {name}: its model blob {blob} is missing "
                           f"(`ollama pull {name}` fetches it again)")
            continue
        yield Found(store, name, blob, tuple(_shown_layers(root, layers)))


def ollama_name(host: str, namespace: str, model: str, tag: str) -> str:
    """A model's name as Ollama shows it: llama3.2:3b, user/model:tag, host/ns/model:tag."""
    if host == OLLAMA_HOST:
        return f"{model}:{tag}" if namespace == OLLAMA_NAMESPACE else f"{namespace}/{model}:{tag}"
    return f"{host}/{namespace}/{model}:{tag}"


def _blob(root: Path, digest: str) -> Path:
    """Where a layer's blob lies: blobs/sha256-HEX."""
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise ValueError(digest)
    return root / "blobs" / digest.replace(":", "-")


def _shown_layers(root: Path, layers: list) -> Iterator[str]:
    """The manifest's other layers, shown (a template, params, a system prompt), not used:
    the GGUF's own chat template runs the model."""
    for layer in layers:
        kind = OLLAMA_SHOWN.get(layer.get("mediaType", "")) if isinstance(layer, dict) else None
        if kind is None:
            continue
        try:
            with _blob(root, layer["digest"]).open("rb") as handle:
                text = handle.read(SHOWN_LAYER_BYTES).decode("utf-8", errors="replace")
        except (OSError, ValueError, KeyError):
            text = "(its blob is missing)"
        if kind in ("projector", "adapter"):
            text = "present, not used"
        yield f"Ollama {kind}: {' '.join(text.split())[:120]}"


def fingerprint(path: Path) -> str:
    """A cheap identity of a file's content (its size, first and last 64 KiB): the same model
    in two stores, linked or copied, has one."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(65536))
        handle.seek(max(0, size - 65536))
        digest.update(handle.read(65536))
    return digest.hexdigest()
