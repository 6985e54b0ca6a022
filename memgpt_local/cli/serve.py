"""CLI commands for a workstation: the HTTP server, and a report of what the machine offers."""

import json
import os
from pathlib import Path

import click

from ..server.guard import Access, is_loopback_name
from ..server.host import AgentHost
from .common import (
    STORE_HELP,
    ByteSize,
    adapter_line,
    engine,
    read_text,
    store_config,
    user_errors,
)


def read_api_key(path: Path | None) -> str | None:
    """The API key in a file (its first line), or None for no file."""
    text = read_text(str(path) if path else None, "API key")
    if text is None:
        return None
    key = text.splitlines()[0].strip() if text else ""
    if len(key) < 16:
        raise click.ClickException(f"The API key in {path} is shorter than 16 characters; "
                                   "make one with: openssl rand -hex 32 > FILE")
    return key


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --allowed-host (and "
                   "should have --api-key-file).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A name or address clients use to reach the server, beyond loopback "
                   "(the Host header it answers); repeat for more.")
@click.option("--allowed-origin", "allowed_origins", multiple=True, metavar="URL",
              help="A web page origin (scheme://host:port) that may change agents, beyond "
                   "the server's own page; repeat for more.")
@click.option("--port", default=8283, show_default=True, type=click.IntRange(1, 65535))
@click.option("--model", "-m", "models", multiple=True,
              help="Load this model (alias) at start; repeat for more. Others load on first use.")
@click.option("--api-key-file", type=click.Path(path_type=Path, dir_okay=False),
              help="File whose first line is the key clients send as 'Authorization: Bearer'.")
@click.option("--kv-memory", type=ByteSize(), default="2GiB", show_default=True,
              help="Memory for agents' context snapshots, so a switch of agents evaluates "
                   "only what is new; beyond it they go to disk (--kv-budget).")
@click.option("--model-memory", type=ByteSize(),
              help="Memory for loaded models (weights and KV caches, estimated from their "
                   "files): beyond it the least recently used idle model is unloaded, and a "
                   "request that cannot fit gets 503. Default: 80% of this machine's RAM.")
@click.option("--queue-size", default=16, show_default=True, type=click.IntRange(1, 1024),
              help="Requests that may wait for the model; more get 503 with Retry-After.")
@click.option("--queue-timeout", default=300.0, show_default=True, type=click.FloatRange(1),
              help="Seconds a request may wait for the model before a 503.")
@click.option("--max-upload", type=ByteSize(), default="32MiB", show_default=True,
              help="Largest document upload or agent import.")
@click.option("--parallel", type=click.IntRange(1, 256),
              help="Turns of different agents in flight at once, where their model runs on an "
                   "inference server (in-process models take one turn at a time). Default: "
                   "the parallel slots of the served models' servers, else 1.")
@click.option("--store", metavar="URL", help=STORE_HELP + " (Overrides memgpt-local --store.)")
@click.option("--report", "report_dir", type=click.Path(exists=True, file_okay=False,
                                                        path_type=Path),
              help="A benchmark report (memgpt-local bench report --out DIR) for the web "
                   "page's Results tab.")
@user_errors
def serve(host: str, port: int, allowed_hosts: tuple[str, ...],
          allowed_origins: tuple[str, ...], models: tuple[str, ...], api_key_file: Path | None,
          kv_memory: int, model_memory: int | None, queue_size: int, queue_timeout: float,
          max_upload: int, parallel: int | None, store: str | None,
          report_dir: Path | None) -> None:
    """Serve agents over HTTP: a web page at /, an API with OpenAPI docs at /docs, and an
    OpenAI-compatible /v1/chat/completions where `model` names an agent."""
    import uvicorn

    from ..server.app import create_app
    from ..server.host import ServerSettings

    access = Access(read_api_key(api_key_file), allowed_hosts, allowed_origins)
    _check_exposure(host, port, access)
    eng = engine(kv_memory_bytes=kv_memory, max_loaded_models=max(2, len(models)),
                 model_memory_bytes=model_memory or machine_memory() * 4 // 5,
                 holder=f"the server at {host}:{port} (pid {os.getpid()})",
                 **store_config(store))
    parallel = parallel or max(eng.parallel_slots(alias) for alias in models or (None,))
    settings = ServerSettings(access=access, max_upload_bytes=max_upload, max_waiting=queue_size,
                              queue_timeout_s=queue_timeout, max_turns=parallel,
                              report_dir=report_dir)
    app = create_app(eng, settings)
    _warm_up(app.state.host, models)
    keyed = "with an API key" if access.api_key else "no API key"
    click.echo(f"memgpt-local serving {eng.db.describe()} on http://{host}:{port} ({keyed}, "
               f"up to {parallel} turn{'s' if parallel > 1 else ''} at once); the web page at /, "
               "API docs at /docs. Ctrl-C stops it.", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def machine_memory() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_exposure(host: str, port: int, access: Access) -> None:
    """Refuse a non-loopback bind that names no host clients use; warn when it has no key."""
    if is_loopback_name(host):
        return
    if not access.allowed_hosts:
        raise click.ClickException(
            f"Refusing to serve on {host} with no --allowed-host: add --allowed-host NAME for "
            "each name or address clients use to reach this machine (e.g. its LAN address).")
    if access.api_key is None:
        click.echo(f"Warning: no API key: anyone who can reach {host}:{port} can read and "
                   "change every agent; pass --api-key-file FILE.", err=True)


def _warm_up(host: AgentHost, models: tuple[str, ...]) -> None:
    """Open the home (its lock) and load the named models before the first request."""
    def warm() -> None:
        host.engine.db  # noqa: B018 - takes the home's lock now, not on the first request
        for alias in models:
            host.engine.runtimes.release(host.engine.runtime(alias))
            click.echo(f"Loaded {alias}.", err=True)

    try:
        host.run(warm)
    except BaseException:
        host.close()
        raise


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def doctor(as_json: bool) -> None:
    """What llama.cpp sees here: GPU support, devices, cores, memory, and which models are
    present."""
    report = engine().doctor()
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    gpu = "yes" if report["gpu_offload"] else "no (a CPU build; see the README to build with CUDA)"
    click.echo(f"llama-cpp-python {report['llama_cpp_python']}, GPU offload: {gpu}")
    for device in report["devices"]:
        total = device["memory_total_bytes"] / 1024**3
        click.echo(f"  device {device['name']}: {device['description']} ({total:.1f} GiB)")
    click.echo(f"CPU cores: {report['cpu_cores']}; memory: {report['memory_bytes'] / 1024**3:.1f}"
               f" GiB; CPU features: {report['system_info']}")
    click.echo(f"Home: {report['home']}" + (f"; agents in PostgreSQL at {report['store']}"
                                            if report["store"] else ""))
    for model in report["models"]:
        where = model["path"] or f"missing. {model['how_to_get']}"
        tools = f"tool calls: {model['tool_format']:<7} " if model["tool_format"] else ""
        click.echo(f"  {model['alias']:<16} n_gpu_layers={model['n_gpu_layers']:<3} "
                   f"threads={model['threads']:<3} {tools}{where}")
        if model["adapter"]:
            click.echo(f"  {'':<16} {adapter_line(model['adapter'])}")
        if model["server"]:
            click.echo(f"  {'':<16} {_server_line(model['server'])}")
    _found_lines(report)


def _found_lines(report: dict) -> None:
    """The models other tools keep here, and the one doctor would chat with."""
    click.echo(f"Models found on this machine (memgpt-local models scan): {len(report['found'])}")
    for model in report["found"]:
        fits = f"fits a {model['fits_window']}-token window" if model["fits_window"] else \
            "does not fit"
        click.echo(f"  {model['sources'][0]}: {model['architecture']}, {model['quantisation']},"
                   f" tool calls: {model['tool_format']}; {fits}")
    chosen = report["suggested"]
    if chosen:
        click.echo(f"Suggested for chat here: memgpt-local chat --model {chosen['sources'][0]}")


def _server_line(server: dict) -> str:
    """One line on a model's inference server, from doctor's probe."""
    where = f"on {server['kind']} at {server['url']}: "
    if not server["answers"]:
        return where + f"not answering ({server['error']})"
    parts = [f"serves {server['serves']}", f"window {server['n_ctx']}",
             "applies grammars" if server["constraint_works"] else
             "IGNORES GRAMMARS: calls would not be constrained"]
    if server.get("slots") is not None:
        parts.append(f"{server['slots']} slot(s)")
    if "slot_snapshots" in server:  # what the probe of a server of that kind found
        parts.append("agents' slots saved on its disk" if server["slot_snapshots"] else
                     "no slot files (start it with --slot-save-path to keep agents across "
                     "its restarts)")
    if "cached_tokens_reported" in server:
        parts.append("reports cached tokens" if server["cached_tokens_reported"] else
                     "no cached-token counts (start it with --enable-prompt-tokens-details)")
    return where + ", ".join(parts)
