"""Helpers shared by the CLI modules: library errors as one-line messages, and the engine."""

from functools import wraps

import click

from ..engine import Engine
from ..errors import MemgptLocalError


def user_errors(func):
    """Turn library errors into click errors: one clear line, exit code 1."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MemgptLocalError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


wait_option = click.option("--wait", is_flag=True,
                           help="Wait if another process (a chat) is using the home.")


def engine(wait: bool = False) -> Engine:
    """The engine over the home the environment names (use it in a with block)."""
    return Engine(wait=wait)
