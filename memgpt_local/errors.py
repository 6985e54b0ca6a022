"""Exceptions that reach users; the CLI turns each into a one-line error message."""


class MemgptLocalError(Exception):
    """Base class for every error a user of memgpt-local may see."""


class UnknownModelError(MemgptLocalError):
    """An alias that is not in the model registry."""


class ModelFileMissingError(MemgptLocalError):
    """A registered model whose GGUF file is not on disk."""


class ModelMemoryError(MemgptLocalError):
    """A model that would not fit the memory allowed for loaded models beside those in use."""


class ModelFileError(MemgptLocalError):
    """A model file that exists but cannot be loaded (truncated, corrupt, not GGUF)."""


class RegistryError(MemgptLocalError):
    """A models.toml that cannot be read or has an invalid entry."""


class ConstraintUnavailableError(MemgptLocalError):
    """Grammar-constrained decoding cannot be set up (a package is missing or broken)."""


class ContextOverflowError(MemgptLocalError):
    """A prompt that does not fit in the model's context window."""


class SettingsError(MemgptLocalError):
    """Agent settings (tool rules included) that cannot be used; nothing was changed."""


class RemoteServerError(MemgptLocalError):
    """An inference server that is down, refuses, times out or answers out of contract."""


class StoreUnavailableError(MemgptLocalError):
    """The store (a PostgreSQL database) cannot be reached or used; nothing was stored."""


class AgentLeasedError(MemgptLocalError):
    """An agent another server is running a turn of (a shared store's lease)."""


class LeaseLostError(AgentLeasedError):
    """A lease this process held and lost: another process took the agent meanwhile."""


class AdapterError(MemgptLocalError):
    """A LoRA adapter that is missing or does not fit the model it is named for."""


class SourceError(MemgptLocalError):
    """A model source (ollama:NAME, hf:ORG/REPO, lmstudio:..., a path) that names no usable
    model file."""
