"""The model registry: models.toml aliases, user overrides, and locating GGUF files."""

import importlib.util
import os
import sys
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import AdapterError, ModelFileMissingError, RegistryError, UnknownModelError
from ..files import write_atomic
from ..resources import CHAT_TEMPLATES_DIR, MODELS_TOML


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry: where a GGUF comes from and how to run it."""

    alias: str
    description: str = ""
    package: str | None = None
    file: str | None = None
    path: str | None = None
    hf_repo: str | None = None
    hf_file: str | None = None
    chat_template: str = "gguf"
    n_ctx: int = 4096
    rope_freq_scale: float = 0.0  # 0: as trained; 0.5 stretches the trained window twice
    n_gpu_layers: int | str = 0  # -1: all; "auto": as many as fit the GPU's free memory
    n_threads: int = 0
    assemble: bool = False
    server: str | None = None  # an inference server that runs the model (http://HOST:PORT)
    server_kind: str = "llama-server"  # or "vllm"
    served_model: str | None = None  # the model name the server knows (vLLM)
    api_key_file: str | None = None  # a file holding the server's API key
    adapter: str | None = None  # a LoRA adapter GGUF: a path (relative: to the models.toml
    #                              naming it), ~/..., or package:NAME/FILE
    adapter_scale: float = 1.0
    found_at: str | None = None  # the source `models add` took it from (ollama:NAME, hf:...)
    models_dir: str | None = None  # where hf_repo files are downloaded to (set by the registry)

    def gpu_layers(self) -> int:
        """The GPU layers of a placed entry ("auto" is decided by ModelCatalogue.placed)."""
        if not isinstance(self.n_gpu_layers, int):
            raise ValueError(f"model '{self.alias}': n_gpu_layers \"auto\" was not placed")
        return self.n_gpu_layers

    def api_key(self) -> str | None:
        """The server's API key, read from api_key_file (None without one)."""
        if not self.api_key_file:
            return None
        try:
            return Path(self.api_key_file).expanduser().read_text().strip()
        except OSError as exc:
            raise RegistryError(f"Model '{self.alias}': cannot read api_key_file: {exc}") from exc

    def largest_window(self, trained: int) -> int:
        """The largest window this entry may run with, for a model trained on `trained`
        tokens (stretched by its rope_freq_scale; 0 when the file does not say)."""
        if not trained or self.rope_freq_scale <= 0:
            return trained
        return int(trained / self.rope_freq_scale)

    def threads(self) -> int:
        """Threads to use: the configured number, or every core when it is 0."""
        return self.n_threads if self.n_threads > 0 else (os.cpu_count() or 1)

    def source(self) -> str:
        """A short human-readable description of where the file comes from."""
        if self.package:
            return f"package {self.package}"
        if self.path:
            return f"path {self.path}"
        return f"hf {self.hf_repo}/{self.hf_file}"

    def expected_path(self) -> Path | None:
        """Where the GGUF file should be, or None if its package is not installed."""
        if self.path:
            return Path(self.path).expanduser()
        if self.hf_repo:
            return Path(str(self.models_dir)) / str(self.hf_file) if self.models_dir else None
        if self.assemble:
            return _assembled_path(str(self.package), str(self.file))
        return _find_in_package(str(self.package), str(self.file))

    def locate(self) -> Path:
        """Return the GGUF path, or raise an error that names the file and how to get it."""
        path = self.expected_path()
        if path is not None and self.assemble and not path.is_file():
            _assemble(str(self.package), path)
        if path is not None and path.is_file():
            return path
        raise ModelFileMissingError(f"Model file for '{self.alias}' not found: "
                                    f"{path or self.file or self.hf_file}. {self.how_to_get()}")

    def how_to_get(self) -> str:
        """A sentence telling the user how to obtain the file."""
        if self.found_at:
            return (f"It was added from {self.found_at}; if the file has moved, add it again: "
                    f"memgpt-local models add {self.alias} SOURCE --force "
                    "(`memgpt-local models scan` lists the models found).")
        if self.package:
            return (f"Install it with: pip install {self.package.replace('_', '-')} "
                    "(or run scripts/setup.sh).")
        if self.hf_repo:
            return (f"Download it on a machine with a network: "
                    f"memgpt-local models download {self.alias}")
        return "Check the path in models.toml."

    def adapter_path(self) -> Path | None:
        """The adapter's file (None without one); a missing one is an error naming it."""
        if not self.adapter:
            return None
        path = self._adapter_location()
        if path is None or not path.is_file():
            raise AdapterError(f"Adapter for '{self.alias}' not found: {path or self.adapter}. "
                               "Check `adapter` in models.toml (scripts/train_adapter.py "
                               "makes one).")
        return path

    def _adapter_location(self) -> Path | None:
        name = str(self.adapter)
        if name.startswith("package:"):
            package, _, filename = name.removeprefix("package:").partition("/")
            return _find_in_package(package, filename)
        return Path(name).expanduser()

    def chat_template_path(self) -> Path | None:
        """The template file from prompt_templates/chat/, or None to use the GGUF's own."""
        if self.chat_template == "gguf":
            return None
        path = CHAT_TEMPLATES_DIR / f"{self.chat_template}.jinja"
        if not path.is_file():
            known = sorted(p.stem for p in CHAT_TEMPLATES_DIR.glob("*.jinja"))
            raise RegistryError(f"Model '{self.alias}': chat template '{self.chat_template}' "
                                f"not found. Valid: gguf, {', '.join(known)}")
        return path

    def template_source(self, metadata: dict) -> str:
        """The chat template the model runs with: the file models.toml names, else the one
        in the GGUF's metadata ("" where it has none)."""
        path = self.chat_template_path()
        return path.read_text() if path else metadata.get("tokenizer.chat_template") or ""


def _find_in_package(package: str, filename: str) -> Path | None:
    """Find a file shipped inside a package without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        for candidate in Path(root).rglob(filename):
            return candidate
    return Path(roots[0]) / filename if roots else None


def _assembled_path(package: str, filename: str) -> Path | None:
    """Where a package that ships its model in parts puts the assembled file."""
    if importlib.util.find_spec(package) is None:
        return None
    return Path.home() / ".cache" / package / filename


def _assemble(package: str, target: Path) -> None:
    """Join a package's model parts into one file (local, once; about a second)."""
    print(f"memgpt-local: assembling {target.name} from {package} (once)", file=sys.stderr)
    module = importlib.import_module(package)
    try:
        module.assemble(target)
    except (OSError, ValueError) as exc:
        raise ModelFileMissingError(f"Could not assemble {target} from {package}: {exc}") from exc


_SPEC_FIELDS = {f.name for f in fields(ModelSpec)} - {"alias", "models_dir"}


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RegistryError(f"Cannot read {path}: {exc}") from exc


def _models_in(path: Path) -> tuple[dict[str, dict], str | None]:
    """A models.toml's tables and default; adapter paths relative to its folder made whole."""
    data = _read_toml(path)
    tables = {alias: dict(table) for alias, table in data.get("models", {}).items()}
    for table in tables.values():
        adapter = table.get("adapter")
        if isinstance(adapter, str) and not adapter.startswith(("package:", "~", "/")):
            table["adapter"] = str(path.parent / adapter)
    return tables, data.get("default")


def _entry(alias: str, table: dict, origin: Path, models_dir: Path | None) -> ModelSpec:
    unknown = set(table) - _SPEC_FIELDS
    if unknown:
        raise RegistryError(f"{origin}: model '{alias}' has unknown field(s) "
                            f"{', '.join(sorted(unknown))}. "
                            f"Valid: {', '.join(sorted(_SPEC_FIELDS))}")
    spec = ModelSpec(alias=alias, **table, models_dir=str(models_dir) if models_dir else None)
    if not (spec.package and spec.file) and not spec.path and not (spec.hf_repo and spec.hf_file):
        raise RegistryError(f"{origin}: model '{alias}' needs package+file, path, "
                            "or hf_repo+hf_file")
    _check_server(spec, origin)
    if spec.n_gpu_layers != "auto" and not (isinstance(spec.n_gpu_layers, int)
                                            and spec.n_gpu_layers >= -1):
        raise RegistryError(f"{origin}: model '{alias}' has n_gpu_layers "
                            f"{spec.n_gpu_layers!r}: give a number (-1: all, 0: none) or \"auto\"")
    return spec


SERVER_KINDS = ("llama-server", "vllm")


def _check_server(spec: ModelSpec, origin: Path) -> None:
    """A remote entry names its server by URL and its kind by one of SERVER_KINDS."""
    if spec.server_kind not in SERVER_KINDS:
        raise RegistryError(f"{origin}: model '{spec.alias}' has server_kind "
                            f"'{spec.server_kind}'. Valid: {', '.join(SERVER_KINDS)}")
    if spec.adapter and spec.server_kind == "vllm":
        raise RegistryError(f"{origin}: model '{spec.alias}' names an adapter; vLLM does not "
                            "load GGUF adapters (run it on llama-server, or in process)")
    if spec.server is not None and not spec.server.startswith(("http://", "https://")):
        raise RegistryError(f"{origin}: model '{spec.alias}' has server '{spec.server}': "
                            "give a URL such as http://127.0.0.1:8080")


class Registry:
    """Every known model, built-in entries merged with the user's models.toml."""

    def __init__(self, specs: dict[str, ModelSpec], default: str):
        self.specs = specs
        self.default = default

    @classmethod
    def load(cls, user_toml: Path | None = None, models_dir: Path | None = None) -> "Registry":
        """Load the built-in registry and overlay the user's file if it exists; downloaded
        (hf_repo) files live in models_dir."""
        tables, default = _models_in(MODELS_TOML)
        default = default or "smollm2-135m"
        origins = dict.fromkeys(tables, MODELS_TOML)
        if user_toml is not None and user_toml.is_file():
            extra, user_default = _models_in(user_toml)
            for alias, table in extra.items():
                tables.setdefault(alias, {}).update(table)
                origins[alias] = user_toml
            default = user_default or default
        specs = {alias: _entry(alias, t, origins[alias], models_dir)
                 for alias, t in tables.items()}
        return cls(specs, default)

    def get(self, alias: str | None = None) -> ModelSpec:
        """Return the entry for an alias (default when None); a miss lists the valid ones."""
        name = alias or self.default
        if name not in self.specs:
            raise UnknownModelError(f"Unknown model '{name}'. Valid models: "
                                    f"{', '.join(sorted(self.specs))}")
        return self.specs[name]


def write_entry(user_toml: Path, registry: Registry, alias: str, table: dict,
                force: bool = False) -> None:
    """Add an entry to the user's models.toml (replacing one of that alias only with force),
    the rest of the file kept as it was, comments included."""
    import tomlkit

    if alias in registry.specs and not force:
        where = registry.get(alias).source()
        raise RegistryError(f"A model named '{alias}' exists already ({where}): choose "
                            "another alias, or replace it with --force.")
    _entry(alias, table, user_toml, None).chat_template_path()  # refused before writing
    document = tomlkit.parse(user_toml.read_text()) if user_toml.is_file() else \
        tomlkit.document()
    document.setdefault("models", tomlkit.table(is_super_table=True))[alias] = table
    user_toml.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(user_toml, tomlkit.dumps(document).encode())
