"""Helpers shared by the CLI modules: library errors as one-line messages, and the engine."""

from functools import wraps
from pathlib import Path

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


def read_text(path: str | None, what: str) -> str | None:
    """A UTF-8 text file's content, stripped (None for no path); else one clear error."""
    if path is None:
        return None
    try:
        return Path(path).read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise click.ClickException(f"The {what} file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise click.ClickException(f"Cannot read the {what} file {path}: {exc.strerror}.") \
            from None


def read_message(message: str) -> str:
    """The message argument, or standard input when it is '-' (which must be UTF-8)."""
    if message != "-":
        return message
    try:
        return click.get_binary_stream("stdin").read().decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException("The message on standard input is not UTF-8 text.") \
            from None
