"""Helpers shared by the CLI modules."""

from functools import wraps

import click

from .errors import MemgptLocalError


def user_errors(func):
    """Turn library errors into click errors: one clear line, exit code 1."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MemgptLocalError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
