"""CLI commands for agents: create, set, list, show, delete, copy, export, import."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..agent.agentfile import is_agent_file
from ..agent.architectures import ARCHITECTURES, DESCRIPTION
from ..agent.functions import OPTIONAL_FUNCTIONS
from ..agent.settings import AgentSettings
from ..memory.core import BlockChange
from .common import engine, int_range, read_text, user_errors, wait_option

F = TypeVar("F", bound=Callable[..., Any])
RULE_HELP = ("A tool rule TYPE:FUNCTION[:ARG], repeatable: run_first, exit_loop, continue_loop, "
             "required_before_exit; constrain_child_tools:F:CHILD,CHILD; "
             "max_count_per_step:F:N (conditional rules: --rules-file).")


def parse_rule_option(spec: str) -> dict:
    """A --rule TYPE:FUNCTION[:ARG] as a rule in Letta's JSON form."""
    kind, _, rest = spec.partition(":")
    tool, _, arg = rest.partition(":")
    rule: dict = {"type": kind, "tool_name": tool}
    if kind == "constrain_child_tools":
        rule["children"] = [c for c in arg.split(",") if c]
    elif kind == "max_count_per_step":
        if not arg.isdigit():
            raise click.BadParameter(f"{spec!r}: write max_count_per_step:FUNCTION:N.",
                                     param_hint="--rule")
        rule["max_count_limit"] = int(arg)
    elif arg:
        raise click.BadParameter(f"{spec!r}: {kind} takes no argument.", param_hint="--rule")
    return rule


def read_rules_file(path: str) -> Any:
    """The tool rules of a JSON file: a list of rules in Letta's form (or {"tool_rules": [...]}
    as an agent file's agent has them)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: not a readable JSON file ({exc}).",
                                 param_hint="--rules-file") from None
    return data.get("tool_rules") if isinstance(data, dict) else data


def settings_changes(rules: tuple[str, ...], rules_file: str | None, no_rules: bool,
                     memory_hits: int | None, offer: tuple[str, ...] = (),
                     architecture: str | None = None) -> dict:
    """The settings the options change."""
    changes: dict = {"extra_functions": [o for o in offer if o != "none"]} if offer else {}
    if architecture is not None:
        changes["architecture"] = architecture
    if rules or rules_file or no_rules:
        listed = read_rules_file(rules_file) if rules_file else []
        if not isinstance(listed, list):
            raise click.BadParameter(f"{rules_file}: expected a list of tool rules.",
                                     param_hint="--rules-file")
        changes["tool_rules"] = listed + [parse_rule_option(r) for r in rules]
    if memory_hits is not None:
        changes["memory_hits"] = memory_hits
    return changes


def settings_options(func: F) -> F:
    """The options that set an agent's tool rules and memory hits."""
    for option in reversed([
            click.option("--rule", "rules", multiple=True, metavar="TYPE:FUNCTION[:ARG]",
                         help=RULE_HELP),
            click.option("--rules-file", type=click.Path(dir_okay=False, exists=True),
                         help="A JSON list of tool rules in Letta's form."),
            click.option("--memory-hits", type=int_range("memory_hits"),
                         help="Archival and recall hits brought to each user message "
                              "(0: off)."),
            click.option("--architecture", type=click.Choice(ARCHITECTURES),
                         help=DESCRIPTION + "."),
            click.option("--offer", multiple=True,
                         type=click.Choice([*OPTIONAL_FUNCTIONS, "none"]),
                         help="An optional function the agent is offered besides the "
                              "standard ones (replaces the list; none: only the standard).")]):
        func = option(func)
    return func


@click.group()
def agents() -> None:
    """Create, inspect, move and delete agents."""


@agents.command("create")
@click.argument("name")
@click.option("--model", "-m", help="Model alias (default: the registry's default).")
@click.option("--n-ctx", type=int_range("n_ctx"),
              help="Context window in tokens (default: the model's).")
@click.option("--persona", type=click.Path(dir_okay=False),
              help="UTF-8 text file for the persona block.")
@click.option("--human", type=click.Path(dir_okay=False),
              help="UTF-8 text file for the human block.")
@click.option("--block-limit", default=2000, show_default=True, type=click.IntRange(50, 100_000),
              help="Characters per block.")
@click.option("--block", "blocks", multiple=True, metavar="LABEL=FILE",
              help="Another core-memory block, its text from a UTF-8 file (repeat).")
@click.option("--describe", multiple=True, metavar="LABEL=TEXT",
              help="What a block is for, shown to the model with it (repeat).")
@click.option("--read-only", "read_only", multiple=True, metavar="LABEL",
              help="A block the model reads and cannot change (repeat).")
@settings_options
@wait_option
@user_errors
def agents_create(name: str, model: str | None, n_ctx: int | None, persona: str | None,
                  human: str | None, block_limit: int, blocks: tuple[str, ...],
                  describe: tuple[str, ...], read_only: tuple[str, ...], rules: tuple[str, ...],
                  rules_file: str | None, memory_hits: int | None, architecture: str | None,
                  offer: tuple[str, ...], wait: bool) -> None:
    """Create an agent.

    \b
    memgpt-local agents create sam --block project=notes.txt \
        --describe "project=What we are building" --read-only persona
    """
    changes = settings_changes(rules, rules_file, False, memory_hits, offer, architecture)
    block_changes = _block_changes(blocks, describe, read_only)
    with engine(wait) as eng:
        record, notes = eng.create_agent(name, model, n_ctx, read_text(persona, "persona"),
                                         read_text(human, "human"), block_limit, changes,
                                         block_changes)
    for note in notes:
        click.echo(note, err=True)
    click.echo(f"Created agent '{record.name}' on {record.model} "
               f"({AgentSettings.of(record).n_ctx}-token window).")


def _block_changes(blocks: tuple[str, ...], describe: tuple[str, ...],
                   read_only: tuple[str, ...]) -> dict[str, BlockChange]:
    """The blocks create's options ask for, by label."""
    changes: dict[str, BlockChange] = {}
    for label, path in (_pair(item, "--block", "LABEL=FILE") for item in blocks):
        changes[label] = BlockChange(value=read_text(path, f"block {label}"))
    for label, text in (_pair(item, "--describe", "LABEL=TEXT") for item in describe):
        changes.setdefault(label, BlockChange()).description = text
    for label in read_only:
        changes.setdefault(label, BlockChange()).read_only = True
    return changes


def _pair(item: str, option: str, form: str) -> tuple[str, str]:
    label, sep, rest = item.partition("=")
    if not sep or not label:
        raise click.UsageError(f"{option} takes {form}, got {item!r}.")
    return label, rest


@agents.command("block")
@click.argument("name")
@click.argument("label")
@click.option("--file", "path", type=click.Path(dir_okay=False),
              help="The block's new text, from a UTF-8 file.")
@click.option("--limit", type=click.IntRange(1, 100_000), help="Its limit in characters.")
@click.option("--description", help="What it is for, shown to the model with it.")
@click.option("--read-only/--writable", default=None,
              help="Whether the model may change it (you always may).")
@wait_option
@user_errors
def agents_block(name: str, label: str, path: str | None, limit: int | None,
                 description: str | None, read_only: bool | None, wait: bool) -> None:
    """Change a core-memory block, or add one: its text, limit, description or read-only
    flag (what is not given stays). Every block full must leave room for messages."""
    change = BlockChange(read_text(path, f"block {label}"), limit, description, read_only)
    with engine(wait) as eng:
        info = eng.edit_block(name, label, change)
    block = info["core_memory"][label]
    click.echo(f"Block '{label}' of '{name}': {len(block['value'])}/{block['limit']} "
               f"characters{', read-only' if block.get('read_only') else ''}.")


@agents.command("set")
@click.argument("name")
@settings_options
@click.option("--no-rules", is_flag=True, help="Remove every tool rule.")
@wait_option
@user_errors
def agents_set(name: str, rules: tuple[str, ...], rules_file: str | None,
               memory_hits: int | None, architecture: str | None, offer: tuple[str, ...],
               no_rules: bool, wait: bool) -> None:
    """Change an agent's tool rules (they replace the old ones), memory hits, architecture or
    the optional functions it is offered (its history is kept: each architecture shows it
    in its own form).

    \b
    memgpt-local agents set sam --rule run_first:archival_memory_search
    memgpt-local agents set sam --rule max_count_per_step:archival_memory_search:2 \\
        --rule constrain_child_tools:archival_memory_search:send_message,conversation_search
    memgpt-local agents set sam --memory-hits 3
    memgpt-local agents set sam --offer core_memory_rethink
    memgpt-local agents set sam --architecture reply
    """
    changes = settings_changes(rules, rules_file, no_rules, memory_hits, offer, architecture)
    if not changes:
        raise click.UsageError("Nothing to change: give --rule, --rules-file, --no-rules, "
                               "--memory-hits, --architecture or --offer.")
    with engine(wait) as eng:
        info = eng.configure_agent(name, changes)
    print_settings(info)


def print_settings(info: dict) -> None:
    """An agent's architecture, tool rules, memory hits and optional functions as text."""
    click.echo(f"architecture: {info['architecture']}")
    hits = info["memory_hits"]
    click.echo(f"memory brought to each message: {hits} hits a tier" if hits
               else "memory brought to each message: off")
    click.echo("optional functions offered: " + (", ".join(info["extra_functions"]) or "none"))
    click.echo("tool rules:" + ("" if info["tool_rules"] else " none"))
    for rule in info["tool_rules"]:
        extra = {k: v for k, v in rule.items() if k not in ("type", "tool_name")}
        click.echo(f"  {rule['type']} {rule['tool_name']}"
                   + (f" {json.dumps(extra)}" if extra else ""))


@agents.command("list")
@wait_option
@user_errors
def agents_list(wait: bool) -> None:
    """List agents with their model and sizes."""
    with engine(wait) as eng:
        rows = eng.list_agents()
    if not rows:
        click.echo("No agents yet: memgpt-local agents create NAME (or just memgpt-local chat)")
        return
    click.echo(f"{'name':<16} {'model':<14} {'n_ctx':>6} {'messages':>9} {'passages':>9}  used")
    for row in rows:
        click.echo(f"{row['name']:<16} {row['model']:<14} {row['n_ctx']:>6} "
                   f"{row['messages']:>9} {row['passages']:>9}  {row['updated_at']:%Y-%m-%d %H:%M}")


def print_overview(info: dict) -> None:
    """An agent's overview (Engine.show_agent) as text."""
    click.echo(f"{info['name']}: {info['model']}, {info['n_ctx']}-token window")
    if info.get("cannot_run"):
        click.echo(f"Cannot run: {info['cannot_run']}")
    click.echo(f"messages: {info['in_context_messages']} in context, "
               f"{info['recall_messages']} in recall; passages: {info['archival_passages']}; "
               f"flushes: {info['flushes']}")
    for label, block in info["core_memory"].items():
        read_only = ", read-only" if block.get("read_only") else ""
        about = f"\n({block['description']})" if block.get("description") else ""
        click.echo(f"[{label} {len(block['value'])}/{block['limit']}{read_only}]{about}\n"
                   f"{block['value']}")
    click.echo(f"[summary]\n{info['summary'] or '(none yet)'}")
    print_settings(info)


@agents.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wait_option
@user_errors
def agents_show(name: str, as_json: bool, wait: bool) -> None:
    """Show an agent: model, window, core memory, summary and counts."""
    with engine(wait) as eng:
        info = eng.show_agent(name)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        print_overview(info)


@agents.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@wait_option
@user_errors
def agents_delete(name: str, yes: bool, wait: bool) -> None:
    """Delete an agent with all its messages and passages."""
    with engine(wait) as eng:
        eng.show_agent(name)  # an unknown name is an error before anything is asked
        if not yes:
            click.confirm(f"Delete agent '{name}' and all its memory?", abort=True)
        eng.delete_agent(name)
    click.echo(f"Deleted agent '{name}'.")


@agents.command("copy")
@click.argument("source")
@click.argument("new_name")
@wait_option
@user_errors
def agents_copy(source: str, new_name: str, wait: bool) -> None:
    """Start a new agent as a copy of another, with all its memory (to try something on the
    copy and keep the original)."""
    with engine(wait) as eng:
        eng.transfer.copy_agent(source, new_name)
        info = eng.show_agent(new_name)
    click.echo(f"Copied '{source}' to '{new_name}' ({info['recall_messages']} messages, "
               f"{info['archival_passages']} passages).")


@agents.command("export")
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--format", "file_format", type=click.Choice(["memgpt-local", "af"]),
              help="memgpt-local: everything, passages included (default); af: a Letta "
                   "agent file (blocks, messages, rules; the default for a .af FILE).")
@wait_option
@user_errors
def agents_export(name: str, file: Path, file_format: str | None, wait: bool) -> None:
    """Write an agent and all its memory to one portable JSON file."""
    letta = file_format == "af" or (file_format is None and is_agent_file(file))
    with engine(wait) as eng:
        counts = eng.transfer.export_agent(name, file, letta=letta)
    what = "Letta agent file, " if letta else ""
    click.echo(f"Exported '{name}' ({what}{counts['messages']} messages, "
               f"{counts['passages']} passages) to {file}.")


@agents.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--name", help="Import under another name (one agent).")
@click.option("--agent", "only", metavar="NAME",
              help="A Letta agent file (.af): import only this agent of it.")
@click.option("--model", help="A Letta agent file (.af): the local model its agents run on "
                              "(default: the default model).")
@click.option("--our-instructions", is_flag=True,
              help="A Letta agent file (.af): use our instructions, not the agent's own "
                   "system prompt.")
@wait_option
@user_errors
def agents_import(file: Path, name: str | None, only: str | None, model: str | None,
                  our_instructions: bool, wait: bool) -> None:
    """Recreate agents from a file: one exported here, or a Letta agent file (.af: every
    agent in it, its memory blocks, messages and tool rules; tools that carry code are listed,
    never run)."""
    with engine(wait) as eng:
        if not is_agent_file(file):
            record = eng.transfer.import_agent(file, name)
            click.echo(f"Imported agent '{record.name}'.")
            return
        for imported in eng.transfer.import_agent_file(file, only, model, name, our_instructions):
            click.echo(f"Imported {imported.summary()}.")
