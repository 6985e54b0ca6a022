"""CLI commands to talk to an agent: the interactive chat and a one-shot send."""

import json
import select
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import click

from ..agent import turn as events
from ..agent.loop import Agent
from ..agent.turn import Listener, StepReport, Turn
from ..engine import Engine
from .agents import print_overview
from .common import engine, read_message, user_errors, wait_option
from .remote import RemoteAgent

DEFAULT_AGENT = "sam"
HELP = """Commands:
  /memory          show core memory, the summary and what fills the window
  /search TEXT     search past messages (recall memory)
  /archival TEXT   search archival memory
  /help            this help
  /exit            leave (Ctrl-D works too)"""


def _resolve_agent(eng: Engine, name: str | None, model: str | None) -> str:
    """The named agent, else the last one used, else a new one on the default model."""
    name = name or eng.last_agent_name()
    if name is None or not eng.agent_exists(name):
        record, notes = eng.create_agent(name or DEFAULT_AGENT, model)
        for note in notes:
            click.echo(note, err=True)
        click.echo(f"Created agent '{record.name}' on {record.model}.", err=True)
        name = record.name
    return name


def _listener(quiet: bool, name: str) -> Listener:
    state = {"open": False}

    def listen(event: events.AgentEvent) -> None:
        if isinstance(event, events.ReplyText):
            if not state["open"]:
                click.echo(click.style(f"{name}> ", bold=True), nl=False)
                state["open"] = True
            click.echo(event.text, nl=False)
            sys.stdout.flush()
            return
        if state["open"]:
            click.echo()
            state["open"] = False
        match event:
            case events.ReplyWithdrawn():
                click.echo(click.style("  [withdrawn: that reply failed and was not sent]",
                                       fg="yellow"))
            case events.MemoryBrought(text=text) if not quiet:
                click.echo(click.style(f"  [memory] {text[:300]}", dim=True))
            case events.StepTaken(report=report) if not quiet:
                _show_step(report)

    return listen


def _show_step(report: StepReport) -> None:
    """A step's thoughts, and its call unless it was a reply that went out."""
    if report.thoughts:
        click.echo(click.style(f"  ({report.thoughts})", dim=True))
    if report.function != "send_message" or report.failed:
        args = json.dumps(report.arguments, ensure_ascii=False)
        click.echo(click.style(f"  {report.function}({args}) -> {report.result[:300]}",
                               dim=True))


server_option = click.option("--server", metavar="URL",
                             help="Talk to an agent on a memgpt-local server instead.")
key_option = click.option("--api-key-file", type=click.Path(path_type=Path, dir_okay=False),
                          help="With --server: a file holding the server's API key.")


@click.command()
@click.option("--agent", "-a", "name", help="Agent name (default: the last one used).")
@click.option("--model", "-m", help="Model alias for a new agent, or to run this one with.")
@click.option("--quiet", "-q", is_flag=True, help="Hide inner thoughts and function calls.")
@server_option
@key_option
@user_errors
def chat(name: str | None, model: str | None, quiet: bool, server: str | None,
         api_key_file: Path | None) -> None:
    """Chat with an agent, offline (or on a server). Type /help for commands."""
    if server:
        _remote_chat(server, api_key_file, name, model, quiet)
        return
    with engine() as eng:
        agent = eng.open_agent(_resolve_agent(eng, name, model), model)
        click.echo(f"Chatting with '{agent.record.name}' ({model or agent.record.model}, "
                   f"{agent.runtime.n_ctx}-token window). /help for commands, /exit to leave.")
        listen = _listener(quiet, agent.record.name)
        if agent.recall.count() == 0:
            _report(agent.first_login(listen))
        _chat_loop(agent, lambda: eng.show_agent(agent.record.name), listen,
                   agent.settings.timed_heartbeat_minutes)


def _remote_chat(server: str, api_key_file: Path | None, name: str | None,
                 model: str | None, quiet: bool) -> None:
    agent = RemoteAgent(server, name or DEFAULT_AGENT, api_key_file)
    if name is None:
        agents = agent.request("GET", "/agents")  # last used first
        agent.name = agents[0]["name"] if agents else DEFAULT_AGENT
    for note in agent.ensure(model):
        click.echo(note, err=True)
    info = agent.show()
    click.echo(f"Chatting with '{agent.name}' on {server} ({info['model']}, {info['n_ctx']}-"
               "token window). /help for commands, /exit to leave.")
    _chat_loop(agent, agent.show, _listener(quiet, agent.name), 0)


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


def _chat_loop(agent: "Agent | RemoteAgent", show: Callable[[], dict], listen: Listener,
               heartbeat_minutes: int) -> None:
    while True:
        try:
            line = _read_line(heartbeat_minutes)
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if line is None:
            _report(agent.timed_heartbeat(listen))
        elif line.startswith("/"):
            if not _slash_command(agent, show, line):
                return
        elif line.strip():
            _report(agent.send(line, listen))


def _report(turn: Turn | None) -> None:
    if turn is not None and turn.stopped:
        click.echo(click.style(turn.stopped, fg="yellow"), err=True)


def _slash_command(agent: "Agent | RemoteAgent", show: Callable[[], dict], line: str) -> bool:
    """Run a slash command; False means leave the chat."""
    command, _, text = line.partition(" ")
    if command == "/exit":
        return False
    if command == "/memory":
        print_overview(show())
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
@wait_option
@server_option
@key_option
@click.argument("message")
@user_errors
def send(name: str, as_json: bool, wait: bool, server: str | None, api_key_file: Path | None,
         message: str) -> None:
    """Send one message to an agent and print its reply (MESSAGE - reads it from stdin)."""
    message = read_message(message)
    if server:
        _remote_send(RemoteAgent(server, name, api_key_file), message, as_json)
        return
    with engine(wait) as eng:
        turn = eng.open_agent(name).send(message)
    _print_turn(turn, as_json)


def _remote_send(agent: RemoteAgent, message: str, as_json: bool) -> None:
    turn = agent.request("POST", agent.path("/messages"), json={"text": message})
    _print_turn(Turn.from_dict(turn), as_json)


def _print_turn(turn: Turn, as_json: bool) -> None:
    """A finished turn: its replies (and why it stopped, if the loop ended it), or with
    as_json one line per step and a last line with the replies."""
    if as_json:
        data = turn.as_dict()
        for step in data.pop("steps"):
            click.echo(json.dumps(step, ensure_ascii=False))
        saved = turn.saved_context and asdict(turn.saved_context)
        click.echo(json.dumps({**data, "saved_context": saved}))
        return
    for reply in turn.replies:
        click.echo(reply)
    _report(turn)
