"""CLI commands for stores: copy every agent from one store to another."""

import json

import click

from ..store_copy import copy_store, store_config
from .common import engine_config, user_errors


@click.group()
def store() -> None:
    """Where agents are kept: a home (the default) or a PostgreSQL database."""


@store.command("copy")
@click.option("--from", "source", required=True, metavar="HOME|URL",
              help="The store to copy from: a home folder or a PostgreSQL URL.")
@click.option("--to", "target", required=True, metavar="HOME|URL",
              help="The store to copy into (agents it has already are checked, not copied).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
def store_copy(source: str, target: str, as_json: bool) -> None:
    """Copy every agent, message, passage and embedding from one store to another, each agent
    in one transaction (run it again to resume), verified by counts and digests.

    \b
    memgpt-local store copy --from ~/.local/share/memgpt-local \\
        --to postgresql://memgpt:secret@db.local/memgpt
    """
    base = engine_config()
    report = copy_store(store_config(source, base), store_config(target, base),
                        lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(report))
    else:
        copied = sum(1 for agent in report if agent["state"] == "copied")
        click.echo(f"{len(report)} agent(s): {copied} copied, {len(report) - copied} already "
                   "there; counts and digests equal in both stores.")
