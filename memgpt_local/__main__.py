"""`python -m memgpt_local` runs the command line, like the memgpt-local script."""

from .cli import cli

cli()
