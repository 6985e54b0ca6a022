"""Helpers shared by the CLI modules: library errors as one-line messages, and the engine."""

from dataclasses import replace
from functools import wraps
from pathlib import Path

import click

from ..engine import Engine, EngineConfig
from ..errors import MemgptLocalError
from ..files import parse_size


def user_errors(func):
    """Turn library errors into click errors: one clear line, exit code 1."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except MemgptLocalError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


STORE_HELP = ("Keep agents, recall and archival in this PostgreSQL database (with pgvector), "
              "shared by several servers, e.g. postgresql://user:password@host/db; default: "
              "the home's own store. scripts/postgres.sh start DIR starts a local one.")
wait_option = click.option("--wait", is_flag=True,
                           help="Wait if another process (a chat) is using the home.")


class ByteSize(click.ParamType):
    """A size in bytes written as 4GiB, 500MB or 1048576."""

    name = "size"

    def convert(self, value, param, ctx) -> int:  # noqa: D102 - click's contract
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def engine_config(**config) -> EngineConfig:
    """The configuration the environment names, with the settings given to the memgpt-local
    command itself and any other config fields."""
    context = click.get_current_context(silent=True)
    settings = (context.find_object(dict) if context else None) or {}
    return replace(EngineConfig.from_environment(), **(settings | config))


def engine(wait: bool = False, **config) -> Engine:
    """The engine over that configuration (use it in a with block)."""
    return Engine(engine_config(**config), wait=wait)


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


def adapter_line(adapter: dict) -> str:
    """One line on a model's LoRA adapter, from its report (llm/adapters.py)."""
    where = f"adapter {adapter['adapter']} x{adapter['scale']}"
    if adapter["problem"]:
        return f"{where}: {adapter['problem']}"
    digest = f" (sha256 {adapter['digest']}...)" if adapter["digest"] else ""
    return f"{where}{digest}" + ("" if adapter["fits"] else ": its model file is missing")
