"""CLI commands for models: list and inspect the registry, download on request, one-shot runs."""

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..llm.adapters import adapter_report, check_adapter
from ..llm.base import DEFAULT_SEED, SamplingSettings
from ..llm.discovery import Places
from ..llm.fit import describe_bytes, describe_parameters
from ..llm.models import ModelSpec
from ..llm.scan import ScannedModel
from .common import adapter_line, engine, int_range, user_errors


@click.group()
def models() -> None:
    """List and inspect the models in models.toml."""


def _size(spec: ModelSpec) -> tuple[str, bool]:
    path = spec.expected_path()
    if path is None or not path.is_file():
        return "-", False
    return f"{path.stat().st_size / 1e6:.0f} MB", True


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def models_list(as_json: bool) -> None:
    """List the registered models and whether their files are present."""
    registry = engine().registry
    rows: list[dict[str, Any]] = []
    for alias, spec in sorted(registry.specs.items()):
        size, present = _size(spec)
        rows.append({"alias": alias, "default": alias == registry.default,
                     "file": spec.file or spec.hf_file or spec.path, "size": size,
                     "n_ctx": spec.n_ctx, "template": spec.chat_template, "present": present,
                     "source": spec.source(), "server": spec.server,
                     "server_kind": spec.server_kind if spec.server else None,
                     "adapter": adapter_report(spec)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'alias':<20} {'file':<36} {'size':>8} {'n_ctx':>6} {'template':<9} present"
    click.echo(header)
    for row in rows:
        name = row["alias"] + ("*" if row["default"] else "")
        click.echo(f"{name:<20} {str(row['file']):<36} {row['size']:>8} {row['n_ctx']:>6} "
                   f"{row['template']:<9} {'yes' if row['present'] else 'no'}")
        if row["adapter"]:
            click.echo(f"{'':<20} {adapter_line(row['adapter'])}")
        if row["server"]:
            click.echo(f"{'':<20} runs on {row['server_kind']} at {row['server']} "
                       "(`memgpt-local doctor` probes it)")
    click.echo("* default model")


@models.command("info")
@click.argument("alias")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def models_info(alias: str, as_json: bool) -> None:
    """Show a model's GGUF metadata: architecture, vocabulary, trained context, template."""
    from ..llm.gguf import read_model_info

    spec = engine().registry.get(alias)
    info = {**read_model_info(spec), "adapter": adapter_report(spec)}
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "chat_template":
            click.echo(f"{key}:\n{value}")
        elif key == "adapter" and value:
            click.echo(adapter_line(value))
        elif key == "memory_estimate":
            continue
        else:
            click.echo(f"{key}: {value}")


@models.command("path")
@click.argument("alias")
@click.option("--llama-server", "server_args", is_flag=True,
              help="Print llama-server's arguments for it instead, one per line: the model "
                   "and its adapter (scripts/llama-server.sh uses them).")
@user_errors
def models_path(alias: str, server_args: bool) -> None:
    """Print where a model's GGUF file is (scripts/llama-server.sh serves it from there)."""
    spec = engine().registry.get(alias)
    model = spec.locate()
    if not server_args:
        click.echo(str(model))
        return
    adapter = check_adapter(spec, model)
    click.echo("\n".join(["--model", str(model)] + (
        ["--lora-scaled", f"{adapter}:{spec.adapter_scale}"] if adapter else [])))


@models.command("scan")
@click.option("--dir", "folders", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Another folder to look in (any number of times).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def models_scan(folders: tuple[Path, ...], as_json: bool) -> None:
    """List the GGUF models Ollama, LM Studio, the Hugging Face cache, llama.cpp and GPT4All
    keep here, with what each needs and whether it fits this machine."""
    catalogue = engine().models
    found = catalogue.scan(list(folders))
    if as_json:
        click.echo(json.dumps({"models": [m.as_dict() for m in found.models],
                               "skipped": found.skipped}, indent=2))
        return
    click.echo(f"Looked in: {', '.join(_places(catalogue.places.with_dirs(list(folders))))}")
    for model in found.models:
        click.echo(scanned_lines(model))
    for line in found.skipped:
        click.echo(f"  ({line})")
    click.echo(f"{len(found.models)} model(s). Use one: memgpt-local models add ALIAS SOURCE, "
               "or --model SOURCE on any command.")


def _places(places: Places) -> list[str]:
    """The places looked in that exist (a tilde for the home)."""
    home = str(Path.home())
    return [f"{store} {str(path).replace(home, '~', 1)}" for store, path in places.stores
            if path.is_dir()] or ["(none of the usual places exists)"]


@models.command("add")
@click.argument("alias")
@click.argument("source")
@click.option("--n-ctx", type=int_range("n_ctx"), default=None,
              help="The window (default: the largest that fits this machine, up to the "
                   "trained context or 32768).")
@click.option("--n-gpu-layers", default=None, metavar="N|auto",
              help="Layers on the GPU (default auto: as many as fit its free memory).")
@click.option("--chat-template", default=None, metavar="NAME",
              help="gguf (the file's own), or one of prompt_templates/chat/ (default: the "
                   "file's, else one for its architecture).")
@click.option("--force", is_flag=True, help="Replace an entry of that alias.")
@user_errors
def models_add(alias: str, source: str, n_ctx: int | None, n_gpu_layers: str | None,
               chat_template: str | None, force: bool) -> None:
    """Register a model on disk under ALIAS, its settings read from the file. SOURCE is a path,
    ollama:NAME[:TAG], hf:ORG/REPO[/FILE] or lmstudio:PUBLISHER/REPO[/FILE]."""
    layers = _gpu_layers(n_gpu_layers)
    with engine() as eng:
        spec, model = eng.models.add(alias, source, force, n_ctx, layers, chat_template)
    click.echo(scanned_lines(model))
    click.echo(f"Added '{spec.alias}' to {eng.home / 'models.toml'}: window {spec.n_ctx}, "
               f"n_gpu_layers {spec.n_gpu_layers}, chat template {spec.chat_template}. Try: "
               f"memgpt-local chat --model {spec.alias}")


def _gpu_layers(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    try:
        layers = int(value)
    except ValueError:
        layers = -2
    if layers < -1:
        raise click.BadParameter(f"'{value}' is not a number of layers (-1: all) or auto.",
                                 param_hint="--n-gpu-layers")
    return layers


def scanned_lines(model: ScannedModel) -> str:
    """A found model in a few lines: name, facts, where it is, whether it fits, notes."""
    shape, fit = model.shape, model.fit
    tools = f"tool calls: {model.tool_format}" if model.has_template else "no chat template"
    fits = (f"fits: window {model.window}, {model.gpu_layers} GPU layers, about "
            f"{describe_bytes(fit.total)}" if fit else "does not fit this machine")
    lines = [f"{model.name}", f"    {shape.architecture}, {describe_parameters(shape.parameters)} "
             f"parameters, {shape.quantisation}, {describe_bytes(model.size)}"
             f"{f' in {len(model.parts)} parts' if len(model.parts) > 1 else ''}, trained "
             f"context {shape.trained_context}, {tools}; {fits}",
             *(f"    source: {found.source}" for found in model.sources),
             *(f"    {note}" for found in model.sources for note in found.notes)]
    return "\n".join(lines)


@models.command("download")
@click.argument("alias")
@user_errors
def models_download(alias: str) -> None:
    """Download a Hugging Face model file (needs a network; never done implicitly)."""
    from ..llm.gguf import download

    path = download(engine().registry.get(alias))
    click.echo(f"Saved {path}")


@click.command()
@click.argument("prompt")
@click.option("--model", "-m", "alias", help="Model alias from models.toml (default: the default).")
@click.option("--system", default=None, help="An optional system message.")
@click.option("--max-tokens", default=256, show_default=True, help="Most tokens to generate.")
@click.option("--temperature", default=0.0, show_default=True, help="0 is greedy decoding.")
@click.option("--seed", default=DEFAULT_SEED, show_default=True, help="Sampling seed.")
@click.option("--stats", is_flag=True, help="Print token counts and timings to stderr as JSON.")
@user_errors
def run(prompt: str, alias: str | None, system: str | None, max_tokens: int,
        temperature: float, seed: int, stats: bool) -> None:
    """Stream a completion of PROMPT, sent as a user message through the chat template."""
    with engine() as eng:
        runtime = eng.runtime(alias)
        messages = ([{"role": "system", "content": system}] if system else [])
        messages.append({"role": "user", "content": prompt})
        generation = runtime.generate(runtime.chat_tokens(messages).tokens, max_tokens,
                                      SamplingSettings(temperature=temperature, seed=seed))
        for piece in generation:
            click.echo(piece, nl=False)
            sys.stdout.flush()
        click.echo()
    if stats:
        click.echo(json.dumps(generation.stats.as_dict()), err=True)
