"""Helpers shared by the CLI modules: library errors as one-line messages, and the engine."""

import sys
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import click

from ..agent.settings import RANGES
from ..engine import Engine, EngineConfig
from ..errors import MemgptLocalError
from ..files import parse_size

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn library errors into click errors: one clear line, exit code 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except MemgptLocalError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def int_range(setting: str) -> click.IntRange:
    """The range of a whole-number agent setting (agent/settings.py's RANGES), as click
    checks it."""
    low, high = RANGES[setting]
    return click.IntRange(int(low), int(high))


STORE_HELP = ("Keep agents, recall and archival in this PostgreSQL database (with pgvector), "
              "shared by several servers, e.g. postgresql://user:password@host/db; default: "
              "the home's own store. scripts/postgres.sh start DIR starts a local one.")
wait_option = click.option("--wait", is_flag=True,
                           help="Wait if another process (a chat) is using the home.")


class ByteSize(click.ParamType):
    """A size in bytes written as 4GiB, 500MB or 1048576."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None,  # noqa: D102 - click's
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def engine_config(**config: Any) -> EngineConfig:
    """The configuration the environment names, with the settings given to the memgpt-local
    command itself and any other config fields."""
    context = click.get_current_context(silent=True)
    settings = (context.find_object(dict) if context else None) or {}
    return replace(EngineConfig.from_environment(), **(settings | config))


def store_config(store: str | None) -> dict[str, Any]:
    """The engine config a --store option gives (none: the environment's store stays)."""
    return {"store": store} if store else {}


def engine(wait: bool = False, **config: Any) -> Engine:
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
        return sys.stdin.buffer.read().decode("utf-8")
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
