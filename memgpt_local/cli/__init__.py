"""The memgpt-local command line: chat and send, agents, models, one-shot runs, documents."""

from pathlib import Path

import click

from . import agents, bench, chat, models, serve, store
from .common import STORE_HELP, ByteSize, engine, user_errors, wait_option

ENVIRONMENT = """\b
Environment:
  MEMGPT_LOCAL_HOME                  agents, memory and caches (~/.local/share/memgpt-local)
  MEMGPT_LOCAL_EMBEDDING_MODEL       another local sentence-transformers model folder
  MEMGPT_LOCAL_EMBEDDING_PRECISION   int8 (default) or fp32
  MEMGPT_LOCAL_KV_BUDGET             the default of --kv-budget
  MEMGPT_LOCAL_STORE                 the default of --store
  MEMGPT_LOCAL_GPU_BUDGET            GPU memory "auto" GPU layers may fill (default: all free)"""


@click.group(epilog=ENVIRONMENT)
@click.version_option(package_name="memgpt-local")
@click.option("--kv-budget", type=ByteSize(), default="4GiB", show_default=True,
              envvar="MEMGPT_LOCAL_KV_BUDGET",
              help="Disk space for KV snapshots (each model's static prefix, each agent's "
                   "context): the least recently used go first; 0 keeps none.")
@click.option("--n-gpu-layers", type=click.IntRange(-1), default=None, metavar="N",
              help="Layers to offload to the GPU for every model (-1: all, 0: none); "
                   "default: each model's n_gpu_layers in models.toml.")
@click.option("--store", metavar="URL", envvar="MEMGPT_LOCAL_STORE", default=None,
              help=STORE_HELP)
@click.pass_context
def cli(ctx: click.Context, kv_budget: int, n_gpu_layers: int | None, store: str | None
        ) -> None:
    """MemGPT on your own hardware: local GGUF models with memory tiers, fully offline."""
    ctx.obj = {"kv_budget_bytes": kv_budget, "n_gpu_layers": n_gpu_layers, "store": store}


@cli.command()
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=False))
@click.option("--agent", "-a", "agent_name", required=True, help="Agent whose archive to fill.")
@click.option("--max-tokens", default=200, show_default=True, type=click.IntRange(16, 4096),
              help="Passage size in embedding-model tokens.")
@click.option("--overlap", default=30, show_default=True, type=click.IntRange(0, 1024),
              help="Tokens shared by neighbours.")
@wait_option
@user_errors
def load(paths: tuple[Path, ...], agent_name: str, max_tokens: int, overlap: int,
         wait: bool) -> None:
    """Load text, Markdown or JSONL files (a `text` field) into an agent's archival memory."""
    from tqdm import tqdm

    with engine(wait) as eng:
        if not eng.agent_exists(agent_name):
            for note in eng.create_agent(agent_name)[1]:
                click.echo(note, err=True)
            click.echo(f"Created agent '{agent_name}' to hold the documents.", err=True)
        with tqdm(desc="Loading", unit="passage") as bar:
            report = eng.load_documents(agent_name, list(paths), max_tokens, overlap,
                                        bar.update)
    failed = [f"{path}: {reason}" for path, reason in report.failed.items()]
    if failed and not report.files:
        raise click.ClickException("Nothing was loaded. " + "; ".join(failed))
    for line in failed:
        click.echo(f"Warning: not loaded: {line}", err=True)
    click.echo(f"Loaded {report.files} file(s): {report.passages} new passage(s), "
               f"{report.skipped_duplicates} already stored, in {report.seconds:.1f} s.")


for command in (agents.agents, bench.bench, chat.chat, chat.send, models.models, models.run,
                serve.serve, serve.doctor, store.store):
    cli.add_command(command)
