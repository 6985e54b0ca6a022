"""python -m memgpt_local: the same as the memgpt-local command."""

from .cli import cli

cli()
