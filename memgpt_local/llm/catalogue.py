"""The models on this machine beside the registry: found in the stores other tools keep,
added under an alias with settings read from the file, and their GPU layers placed when they
load (the engine holds one ModelCatalogue)."""

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import SettingsError
from .discovery import Places
from .fit import (
    HEADROOM,
    auto_gpu_layers,
    describe_bytes,
    describe_parameters,
    estimate,
    fits,
    free_ram,
)
from .gguf import model_shape
from .models import ModelSpec, Registry, write_entry
from .scan import Machine, Scan, ScannedModel, derived_alias, is_source, resolve, scan
from .system import gpu_free_bytes


class ModelCatalogue:
    """Scan, add and place models, over the user's models.toml and this machine's memory."""

    def __init__(self, user_toml: Path, registry: Callable[[], Registry],
                 reload: Callable[[], None], gpu_budget: int | None = None,
                 places: Places | None = None):
        self.user_toml, self._registry, self._reload = user_toml, registry, reload
        self.gpu_budget, self.places = gpu_budget, places or Places.default()

    def machine(self) -> Machine:
        """Free memory now: RAM, and the GPU's (or the budget set for it)."""
        gpu = self.gpu_budget if self.gpu_budget is not None else gpu_free_bytes()
        return Machine(free_ram(), gpu)

    def scan(self, folders: Sequence[Path] = ()) -> Scan:
        """Every model in the stores and the folders given."""
        return scan(self.places.with_dirs(list(folders)), self.machine())

    def add(self, alias: str | None, source: str, force: bool = False,
            n_ctx: int | None = None, n_gpu_layers: int | str | None = None,
            chat_template: str | None = None) -> tuple[ModelSpec, ScannedModel]:
        """Register the model a source names, its settings read from the file (any given
        overrides them); a window that will not fit is refused saying what would."""
        machine = self.machine()
        return self._register(alias, resolve(source, self.places, machine), machine, force,
                              n_ctx, n_gpu_layers, chat_template)

    def _register(self, alias: str | None, model: ScannedModel, machine: Machine, force: bool,
                  n_ctx: int | None, n_gpu_layers: int | str | None,
                  chat_template: str | None = None) -> tuple[ModelSpec, ScannedModel]:
        alias = alias or self._free_alias(derived_alias(model))
        window = n_ctx or model.window
        self._check_fit(model, window, machine, n_ctx is not None)
        if isinstance(n_gpu_layers, int) and machine.gpu_free > 0:  # (a CPU build ignores them)
            _check_gpu(model, window, n_gpu_layers, machine)
        table = {"path": str(model.path), "found_at": model.sources[0].source,
                 "description": _description(model), "n_ctx": window,
                 "n_gpu_layers": "auto" if n_gpu_layers is None else n_gpu_layers,
                 "chat_template": chat_template or ("gguf" if model.has_template
                                                    else _fallback_template(model))}
        write_entry(self.user_toml, self._registry(), alias, table, force)
        self._reload()
        return self._registry().get(alias), model

    def alias_for(self, name: str | None) -> str | None:
        """A registry alias for a --model value: an alias itself, or a model on disk (added
        once under an alias made from its name, then found by its source)."""
        registry = self._registry()
        if name is None or name in registry.specs or not is_source(name):
            return name
        known = {spec.found_at: alias for alias, spec in registry.specs.items()}
        if name in known:
            return known[name]
        machine = self.machine()
        model = resolve(name, self.places, machine)
        for alias, spec in registry.specs.items():
            if spec.path and Path(spec.path).expanduser().resolve() == model.path.resolve():
                return alias
        return self._register(None, model, machine, False, None, None)[0].alias

    def placed(self, spec: ModelSpec, n_ctx: int) -> ModelSpec:
        """The entry with its GPU layers decided: "auto" is as many as fit the GPU now."""
        if spec.n_gpu_layers != "auto":
            return spec
        layers = auto_gpu_layers(model_shape(spec), n_ctx, self.machine().gpu_free)
        return replace(spec, n_gpu_layers=layers)

    def _free_alias(self, alias: str) -> str:
        taken, number, candidate = self._registry().specs, 2, alias
        while candidate in taken:
            candidate, number = f"{alias}-{number}", number + 1
        return candidate

    @staticmethod
    def _check_fit(model: ScannedModel, window: int, machine: Machine, chosen: bool) -> None:
        if not model.window:
            needed = estimate(model.shape, 512).in_ram
            raise SettingsError(f"{model.name} needs {describe_bytes(needed)} even with a "
                                f"512-token window; this machine has "
                                f"{describe_bytes(machine.ram_free)} free.")
        trained = model.shape.trained_context
        if chosen and trained and window > trained:
            raise SettingsError(f"{model.name} was trained for {trained} tokens: choose "
                                f"--n-ctx {trained} or less.")
        if chosen and not fits(model.shape, window, machine.ram_free, machine.gpu_free):
            needed = estimate(model.shape, window).in_ram
            raise SettingsError(f"A {window}-token window of {model.name} needs about "
                                f"{describe_bytes(needed)}; this machine has "
                                f"{describe_bytes(machine.ram_free)} free: --n-ctx "
                                f"{model.window} fits.")


def _check_gpu(model: ScannedModel, window: int, layers: int, machine: Machine) -> None:
    """Refuse GPU layers that the GPU's free memory cannot hold, naming what fits."""
    on_gpu = estimate(model.shape, window, layers).on_gpu
    if on_gpu > machine.gpu_free * HEADROOM:
        fitting = auto_gpu_layers(model.shape, window, machine.gpu_free)
        raise SettingsError(f"{layers} GPU layers of {model.name} at a {window}-token window "
                            f"need about {describe_bytes(on_gpu)} on the GPU; it has "
                            f"{describe_bytes(machine.gpu_free)} free: --n-gpu-layers "
                            f"{fitting} (or auto) fits.")


def _fallback_template(model: ScannedModel) -> str:
    """A template from prompt_templates/chat/ for a file that has none of its own."""
    return "gemma" if model.shape.architecture.startswith("gemma") else "chatml"


def _description(model: ScannedModel) -> str:
    """One line for models list: architecture, size, quantisation and where it was found."""
    shape = model.shape
    return (f"{shape.architecture} {describe_parameters(shape.parameters)} {shape.quantisation}, "
            f"found at {model.sources[0].source}")
