"""CLI commands for agents: create, list, show, delete, export, import; chat and send."""

import json
import select
import sys
from pathlib import Path

import click

from .cli_common import user_errors

DEFAULT_AGENT = "sam"
HELP = """Commands:
  /memory          show core memory, the summary and what fills the window
  /search TEXT     search past messages (recall memory)
  /archival TEXT   search archival memory
  /help            this help
  /exit            leave (Ctrl-D works too)"""


def _database(wait: bool = False):
    from .database import Database

    return Database(wait=wait)


@click.group()
def agents() -> None:
    """Create, inspect, move and delete agents."""


@agents.command("create")
@click.argument("name")
@click.option("--model", "-m", help="Model alias (default: the registry's default).")
@click.option("--n-ctx", type=int, help="Context window in tokens (default: the model's).")
@click.option("--persona", type=click.File(), help="Text file for the persona block.")
@click.option("--human", type=click.File(), help="Text file for the human block.")
@click.option("--block-limit", default=2000, show_default=True, help="Characters per block.")
@user_errors
def agents_create(name, model, n_ctx, persona, human, block_limit) -> None:
    """Create an agent."""
    from .session import create_agent

    with _database() as db:
        record, notes = create_agent(db, name, model, n_ctx, persona and persona.read().strip(),
                                     human and human.read().strip(), block_limit)
    for note in notes:
        click.echo(note, err=True)
    click.echo(f"Created agent '{record.name}' on {record.model} "
               f"({record.settings['n_ctx']}-token window).")


@agents.command("list")
@user_errors
def agents_list() -> None:
    """List agents with their model and sizes."""
    with _database() as db:
        rows = db.con.execute("""
            SELECT a.name, a.model, a.settings->>'n_ctx',
                   (SELECT count(*) FROM messages m WHERE m.agent = a.name),
                   (SELECT count(*) FROM passages p WHERE p.agent = a.name), a.updated_at
            FROM agents a ORDER BY a.updated_at DESC""").fetchall()
    if not rows:
        click.echo("No agents yet: memgpt-local agents create NAME (or just memgpt-local chat)")
        return
    click.echo(f"{'name':<16} {'model':<14} {'n_ctx':>6} {'messages':>9} {'passages':>9}  used")
    for name, model, n_ctx, messages, passages, updated in rows:
        click.echo(f"{name:<16} {model:<14} {n_ctx:>6} {messages:>9} {passages:>9}  "
                   f"{updated:%Y-%m-%d %H:%M}")


def agent_overview(db, name: str) -> dict:
    """Model, window, core memory, summary and counts of an agent (no model loaded)."""
    from .agents import AgentStore

    record = AgentStore(db.con).get(name)
    count = db.con.execute("SELECT (SELECT count(*) FROM messages WHERE agent = ?), "
                           "(SELECT count(*) FROM passages WHERE agent = ?)",
                           [name, name]).fetchone()
    return {"name": name, "model": record.model, "n_ctx": record.settings.get("n_ctx"),
            "core_memory": record.core_memory.to_dict(), "summary": record.summary,
            "in_context_messages": len(record.in_context), "recall_messages": count[0],
            "archival_passages": count[1], "flushes": record.settings.get("state", {}).get(
                "flushes", 0)}


def _print_overview(info: dict) -> None:
    click.echo(f"{info['name']}: {info['model']}, {info['n_ctx']}-token window")
    click.echo(f"messages: {info['in_context_messages']} in context, "
               f"{info['recall_messages']} in recall; passages: {info['archival_passages']}; "
               f"flushes: {info['flushes']}")
    for label, block in info["core_memory"].items():
        click.echo(f"[{label} {len(block['value'])}/{block['limit']}]\n{block['value']}")
    click.echo(f"[summary]\n{info['summary'] or '(none yet)'}")


@agents.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def agents_show(name: str, as_json: bool) -> None:
    """Show an agent: model, window, core memory, summary and counts."""
    with _database() as db:
        info = agent_overview(db, name)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_overview(info)


@agents.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@user_errors
def agents_delete(name: str, yes: bool) -> None:
    """Delete an agent with all its messages and passages."""
    from .agents import AgentStore
    from .memory.archival import index_files

    with _database() as db:
        AgentStore(db.con).get(name)
        if not yes:
            click.confirm(f"Delete agent '{name}' and all its memory?", abort=True)
        AgentStore(db.con).delete(name)
        for path in index_files(db.home / "archival", name):
            path.unlink(missing_ok=True)
    click.echo(f"Deleted agent '{name}'.")


@agents.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@user_errors
def agents_export(name: str, file: Path) -> None:
    """Write an agent and all its memory to one portable JSON file."""
    from .session import export_agent

    with _database() as db:
        counts = export_agent(db, name, file)
    click.echo(f"Exported '{name}' ({counts['messages']} messages, {counts['passages']} "
               f"passages) to {file}.")


@agents.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", help="Import under another name.")
@user_errors
def agents_import(file: Path, name: str | None) -> None:
    """Recreate an agent from an exported file."""
    from .session import import_agent

    with _database() as db:
        record = import_agent(db, file, name)
    click.echo(f"Imported agent '{record.name}'.")


def _resolve_agent(db, name: str | None, model: str | None) -> str:
    """The named agent, else the last one used, else a new one on the default model."""
    from .agents import AgentStore
    from .session import create_agent, last_agent_name

    name = name or last_agent_name(db)
    if name is None or not AgentStore(db.con).exists(name):
        record, notes = create_agent(db, name or DEFAULT_AGENT, model)
        for note in notes:
            click.echo(note, err=True)
        click.echo(f"Created agent '{record.name}' on {record.model}.", err=True)
        name = record.name
    return name


def _listener(quiet: bool, name: str):
    state = {"open": False}

    def listen(kind: str, value) -> None:
        if kind == "reply":
            if not state["open"]:
                click.echo(click.style(f"{name}> ", bold=True), nl=False)
                state["open"] = True
            click.echo(value, nl=False)
            sys.stdout.flush()
            return
        if state["open"]:
            click.echo()
            state["open"] = False
        if not quiet:
            if value.thoughts:
                click.echo(click.style(f"  ({value.thoughts})", dim=True))
            if value.function != "send_message" or value.failed:
                args = json.dumps(value.arguments, ensure_ascii=False)
                click.echo(click.style(f"  {value.function}({args}) -> {value.result[:300]}",
                                       dim=True))

    return listen


@click.command()
@click.option("--agent", "-a", "name", help="Agent name (default: the last one used).")
@click.option("--model", "-m", help="Model alias for a new agent, or to run this one with.")
@click.option("--quiet", "-q", is_flag=True, help="Hide inner thoughts and function calls.")
@user_errors
def chat(name: str | None, model: str | None, quiet: bool) -> None:
    """Chat with an agent, offline. Type /help for commands."""
    from .session import open_agent

    with _database() as db:
        agent = open_agent(db, _resolve_agent(db, name, model), model)
        click.echo(f"Chatting with '{agent.record.name}' ({agent.runtime.spec.alias}, "
                   f"{agent.runtime.n_ctx}-token window). /help for commands, /exit to leave.")
        listen = _listener(quiet, agent.record.name)
        try:
            if agent.recall.count() == 0:
                _report(agent.first_login(listen))
            _chat_loop(agent, listen)
        finally:
            agent.close()


def _read_line(timeout_minutes: int) -> str | None:
    """A line from the user; None on a timed-heartbeat timeout; raises EOFError at the end."""
    click.echo(click.style("you> ", bold=True), nl=False)
    sys.stdout.flush()
    if timeout_minutes > 0 and sys.stdin.isatty():
        ready, _, _ = select.select([sys.stdin], [], [], timeout_minutes * 60)
        if not ready:
            click.echo()
            return None
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def _chat_loop(agent, listen) -> None:
    while True:
        try:
            line = _read_line(agent.settings.timed_heartbeat_minutes)
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if line is None:
            _report(agent.timed_heartbeat(listen))
        elif line.startswith("/"):
            if not _slash_command(agent, line):
                return
        elif line.strip():
            _report(agent.send(line, listen))


def _report(turn) -> None:
    if turn is not None and turn.stopped:
        click.echo(click.style(turn.stopped, fg="yellow"), err=True)


def _slash_command(agent, line: str) -> bool:
    """Run a slash command; False means leave the chat."""
    command, _, text = line.partition(" ")
    if command == "/exit":
        return False
    if command == "/memory":
        _print_overview(agent_overview(agent.db, agent.record.name))
    elif command == "/search" and text:
        page = agent.recall_search(text, 1)
        click.echo(page.header())
        for message in page.items:
            click.echo(f"  [{message.created_at:%Y-%m-%d %H:%M}] {message.role}: "
                       f"{message.content[:200]}")
    elif command == "/archival" and text:
        page = agent.archival_search(text, 1)
        click.echo(page.header())
        for passage in page.items:
            click.echo(f"  - {passage['content'][:200]}")
    else:
        click.echo(HELP)
    return True


@click.command()
@click.option("--agent", "-a", "name", required=True, help="Agent name.")
@click.option("--json", "as_json", is_flag=True, help="Print every step as a JSON line.")
@click.option("--wait", is_flag=True, help="Wait if another process is using the home.")
@click.argument("message")
@user_errors
def send(name: str, as_json: bool, wait: bool, message: str) -> None:
    """Send one message to an agent and print its reply."""
    from .session import open_agent

    with _database(wait) as db:
        agent = open_agent(db, name)
        try:
            turn = agent.send(message)
        finally:
            agent.close()
    if as_json:
        for step in turn.steps:
            click.echo(json.dumps(step.as_dict(), ensure_ascii=False))
        click.echo(json.dumps({"replies": turn.replies, "stopped": turn.stopped}))
        return
    for reply in turn.replies:
        click.echo(reply)
    _report(turn)
