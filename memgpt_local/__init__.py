"""memgpt-local: MemGPT on your own hardware. What a Python user needs, importable from here:

    from memgpt_local import Engine, EngineConfig

    with Engine() as engine:                      # the home of $MEMGPT_LOCAL_HOME
        engine.create_agent("sam")
        agent = engine.open_agent("sam")
        turn = agent.send("Hi! My name is Ann.", print)  # the events as they happen
        print(turn.replies)                          # what it said
        engine.close_agent(agent)

Errors a user may see all derive from MemgptLocalError. The engine and the agent are loaded
on first use, so importing the package stays cheap (the command line imports it first).
"""

from importlib import import_module
from typing import Any

from .errors import (
    AdapterError,
    AgentLeasedError,
    ConstraintUnavailableError,
    ContextOverflowError,
    LeaseLostError,
    MemgptLocalError,
    ModelFileError,
    ModelFileMissingError,
    ModelMemoryError,
    RegistryError,
    RemoteServerError,
    SettingsError,
    SourceError,
    StoreUnavailableError,
    UnknownModelError,
)

_LAZY = {"Engine": "memgpt_local.engine", "EngineConfig": "memgpt_local.engine",
         "Agent": "memgpt_local.agent.loop", "ModelSpec": "memgpt_local.llm.models",
         "Registry": "memgpt_local.llm.models", "Turn": "memgpt_local.agent.turn",
         "StepReport": "memgpt_local.agent.turn", "MemoryBrought": "memgpt_local.agent.turn",
         "ReplyText": "memgpt_local.agent.turn", "ReplyWithdrawn": "memgpt_local.agent.turn",
         "StepTaken": "memgpt_local.agent.turn", "StopReason": "memgpt_local.agent.stop_reason"}

__all__ = [*_LAZY, "AdapterError", "AgentLeasedError", "ConstraintUnavailableError",
           "ContextOverflowError",
           "LeaseLostError", "MemgptLocalError", "ModelFileError", "ModelFileMissingError",
           "ModelMemoryError", "RegistryError", "RemoteServerError", "SettingsError",
           "SourceError", "StoreUnavailableError", "UnknownModelError"]


def __getattr__(name: str) -> Any:
    """The engine, its config, the agent, its turns and events, and the registry, imported
    when first asked for."""
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'memgpt_local' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
