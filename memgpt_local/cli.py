"""The memgpt-local command line: models, one-shot runs, documents; agents and chat live in
cli_agents.py."""

import json
import sys
from pathlib import Path

import click

from .cli_agents import agents, chat, send
from .cli_common import user_errors
from .models import ModelSpec, Registry

ENVIRONMENT = """\b
Environment:
  MEMGPT_LOCAL_HOME                  agents, memory and caches (~/.local/share/memgpt-local)
  MEMGPT_LOCAL_EMBEDDING_MODEL       another local sentence-transformers model folder
  MEMGPT_LOCAL_EMBEDDING_PRECISION   int8 (default) or fp32"""


@click.group(epilog=ENVIRONMENT)
@click.version_option(package_name="memgpt-local")
def cli() -> None:
    """MemGPT on your own hardware: local GGUF models with memory tiers, fully offline."""


cli.add_command(agents)
cli.add_command(chat)
cli.add_command(send)


@cli.group()
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
    registry = Registry.load()
    rows = []
    for alias, spec in sorted(registry.specs.items()):
        size, present = _size(spec)
        rows.append({"alias": alias, "default": alias == registry.default,
                     "file": spec.file or spec.hf_file or spec.path, "size": size,
                     "n_ctx": spec.n_ctx, "template": spec.chat_template, "present": present,
                     "source": spec.source()})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'alias':<16} {'file':<36} {'size':>8} {'n_ctx':>6} {'template':<9} present"
    click.echo(header)
    for row in rows:
        name = row["alias"] + ("*" if row["default"] else "")
        click.echo(f"{name:<16} {str(row['file']):<36} {row['size']:>8} {row['n_ctx']:>6} "
                   f"{row['template']:<9} {'yes' if row['present'] else 'no'}")
    click.echo("* default model")


@models.command("info")
@click.argument("alias")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def models_info(alias: str, as_json: bool) -> None:
    """Show a model's GGUF metadata: architecture, vocabulary, trained context, template."""
    from .gguf import read_model_info

    info = read_model_info(Registry.load().get(alias))
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "chat_template":
            click.echo(f"{key}:\n{value}")
        else:
            click.echo(f"{key}: {value}")


@models.command("download")
@click.argument("alias")
@user_errors
def models_download(alias: str) -> None:
    """Download a Hugging Face model file (needs a network; never done implicitly)."""
    from .gguf import download

    path = download(Registry.load().get(alias))
    click.echo(f"Saved {path}")


@cli.command()
@click.argument("prompt")
@click.option("--model", "-m", "alias", help="Model alias from models.toml (default: the default).")
@click.option("--system", default=None, help="An optional system message.")
@click.option("--max-tokens", default=256, show_default=True, help="Most tokens to generate.")
@click.option("--temperature", default=0.0, show_default=True, help="0 is greedy decoding.")
@click.option("--seed", default=1337, show_default=True, help="Sampling seed.")
@click.option("--stats", is_flag=True, help="Print token counts and timings to stderr as JSON.")
@user_errors
def run(prompt: str, alias: str | None, system: str | None, max_tokens: int,
        temperature: float, seed: int, stats: bool) -> None:
    """Stream a completion of PROMPT, sent as a user message through the chat template."""
    from .runtime import ModelRuntime, SamplingSettings

    runtime = ModelRuntime(Registry.load().get(alias), seed=seed)
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


@cli.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False))
@click.option("--agent", "-a", "agent_name", required=True, help="Agent whose archive to fill.")
@click.option("--max-tokens", default=200, show_default=True,
              help="Passage size in embedding-model tokens.")
@click.option("--overlap", default=30, show_default=True, help="Tokens shared by neighbours.")
@click.option("--wait", is_flag=True, help="Wait if another process is using the home.")
@user_errors
def load(paths: tuple[Path, ...], agent_name: str, max_tokens: int, overlap: int,
         wait: bool) -> None:
    """Load text, Markdown or JSONL files (a `text` field) into an agent's archival memory."""
    from tqdm import tqdm

    from .agents import AgentRecord, AgentStore
    from .database import Database
    from .documents import load_documents
    from .embeddings import get_embedder
    from .memory.archival import ArchivalStorage

    with Database(wait=wait) as db:
        store = AgentStore(db.con)
        if not store.exists(agent_name):
            store.save(AgentRecord(agent_name, Registry.load().default))
            click.echo(f"Created agent '{agent_name}' to hold the documents.", err=True)
        archival = ArchivalStorage(db.con, agent_name, db.home / "archival", get_embedder())
        with tqdm(desc="Loading", unit="passage") as bar:
            try:
                report = load_documents(list(paths), archival, max_tokens, overlap, bar.update)
            finally:
                archival.close()
    for path, reason in report.failed.items():
        click.echo(f"Could not load {path}: {reason}", err=True)
    click.echo(f"Loaded {report.files} file(s): {report.passages} new passage(s), "
               f"{report.skipped_duplicates} already stored, in {report.seconds:.1f} s.")
    if report.failed and not report.files:
        raise SystemExit(1)
