"""The request and response bodies of the HTTP API (pydantic models, shown in its OpenAPI)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..agent.architectures import DESCRIPTION as ARCHITECTURE
from ..agent.architectures import ArchitectureName
from ..agent.settings import RANGES
from ..agent.stop_reason import StopReason
from ..llm.scan import is_source

MAX_TEXT = 100_000  # characters in one field: a message, a passage, a block
EXTRA_FUNCTIONS = ("Optional functions offered besides the standard ones (core_memory_rethink); "
                   "replaces the list")
Architecture = ArchitectureName  # "memgpt" or "reply"


class ErrorBody(BaseModel):
    """What went wrong, in one sentence."""

    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every error the server answers with (the OpenAI shape)."""

    error: ErrorBody


class BlockEdit(BaseModel):
    """A core-memory block's changes (fields left out stay as they are)."""

    model_config = ConfigDict(extra="forbid")
    value: str | None = Field(None, max_length=MAX_TEXT)
    limit: int | None = Field(None, ge=1, le=100_000)
    description: str | None = Field(None, max_length=MAX_TEXT)
    read_only: bool | None = None


class AgentCreate(BaseModel):
    """A new agent."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    name: str = Field(min_length=1, max_length=64)
    model: str | None = Field(None, max_length=200, description=(
        "A models.toml alias; default: the default model. A model on the server's disk is "
        "registered there first (`memgpt-local models add`)"))
    n_ctx: int | None = Field(None, ge=RANGES["n_ctx"][0], le=RANGES["n_ctx"][1],
                              description="Context window")
    persona: str | None = Field(None, max_length=MAX_TEXT)
    human: str | None = Field(None, max_length=MAX_TEXT)
    tool_rules: list[dict[str, Any]] | None = Field(
        None, max_length=100, description="Tool rules in Letta's form (type, tool_name, ...)")
    memory_hits: int | None = Field(
        None, ge=RANGES["memory_hits"][0], le=RANGES["memory_hits"][1],
        description="Archival and recall hits brought to each message")
    blocks: dict[str, BlockEdit] = Field(
        {}, max_length=50, description="Core-memory blocks besides persona and human, by label")
    extra_functions: list[str] | None = Field(
        None, max_length=10, description=EXTRA_FUNCTIONS)
    architecture: Architecture | None = Field(None, description=ARCHITECTURE)

    @field_validator("model")
    @classmethod
    def _an_alias(cls, model: str | None) -> str | None:
        """A client names registered models only: it never makes the server read a path."""
        if model is not None and is_source(model):
            raise ValueError(f"'{model}' is not a models.toml alias: register a model on the "
                             "server's disk there with `memgpt-local models add ALIAS SOURCE`")
        return model

    def settings(self) -> dict:
        """The settings the request changes from the defaults."""
        return {k: v for k, v in {"tool_rules": self.tool_rules,
                                  "memory_hits": self.memory_hits,
                                  "extra_functions": self.extra_functions,
                                  "architecture": self.architecture}.items()
                if v is not None}


class AgentCopy(BaseModel):
    """The name of an agent's copy."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)


class AgentSettingsIn(BaseModel):
    """Settings to change: the tool rules (they replace the old ones), the memory hits and the
    optional functions offered."""

    model_config = ConfigDict(extra="forbid")
    tool_rules: list[dict[str, Any]] | None = Field(None, max_length=100)
    memory_hits: int | None = Field(None, ge=RANGES["memory_hits"][0],
                                    le=RANGES["memory_hits"][1])
    extra_functions: list[str] | None = Field(None, max_length=10,
                                              description=EXTRA_FUNCTIONS)
    architecture: Architecture | None = Field(None, description=ARCHITECTURE)

    def changes(self) -> dict:
        """The settings given."""
        return self.model_dump(exclude_none=True)


class AgentSummary(BaseModel):
    """One agent in the list."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    model: str
    n_ctx: int | None
    messages: int
    passages: int
    updated_at: datetime | None


class AgentDetail(BaseModel):
    """An agent's model, window, core memory, summary and counts."""

    model_config = ConfigDict(protected_namespaces=())
    name: str
    model: str
    n_ctx: int | None
    core_memory: dict[str, dict[str, Any]]
    summary: str
    in_context_messages: int
    recall_messages: int
    archival_passages: int
    flushes: int
    tool_rules: list[dict[str, Any]] = []
    memory_hits: int = 0
    extra_functions: list[str] = []
    architecture: Architecture = "memgpt"
    cannot_run: str | None = None  # why the agent cannot run on its model; None: it can
    notes: list[str] = []


class LettaImported(BaseModel):
    """One agent imported from a Letta agent file, with what came over and what did not."""

    name: str
    summary: str
    tools_mapped: dict[str, str]
    tools_skipped: dict[str, str]
    rules_dropped: list[str]
    notes: list[str]


class PassageIn(BaseModel):
    """A passage for archival memory."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class Inserted(BaseModel):
    """How many passages were new (a passage stored already is not stored twice)."""

    inserted: int


class LoadResult(BaseModel):
    """What a document upload stored."""

    files: int
    passages: int
    skipped_duplicates: int
    failed: dict[str, str]
    seconds: float


class SearchPage(BaseModel):
    """One page of search results."""

    page: int
    pages: int
    page_size: int
    total: int
    items: list[dict[str, Any]]


class MessageIn(BaseModel):
    """A user message for an agent."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    stream: bool = Field(False, description="Server-sent events: reply, withdraw, step, done")


class TurnOut(BaseModel):
    """Every step an event caused (thoughts, calls, results), and the replies."""

    steps: list[dict[str, Any]]
    replies: list[str]
    stopped: str | None
    stop_reason: StopReason | None = Field(
        None, description="Why the loop ended the turn: step_cap, failed_calls, "
        "no_function_allowed (None: the agent ended it)")
    memory: str | None = None  # the memory brought to the model before its first step


class ContentPart(BaseModel):
    """A part of an OpenAI message's content: text parts are read, others ignored."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request (only the last user message is used)."""

    role: str
    content: str | list[ContentPart] | None = None


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request; `model` names an agent. Sampling fields are
    accepted and ignored: each agent keeps its own settings."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    model: str = Field(min_length=1, max_length=64)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False


class ModelCard(BaseModel):
    """An agent, as an OpenAI model."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "memgpt-local"


class ModelList(BaseModel):
    """Every agent, as OpenAI models."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class ContextParts(BaseModel):
    """Tokens of the prompt per part; they add up to the prompt."""

    instructions: int
    core_memory: int
    summary: int
    queue: int = Field(description="The messages in context, with the generation prompt")


class KvCacheState(BaseModel):
    """What holds the prompt's KV state now."""

    held_tokens: int | None = Field(description="Leading prompt tokens the KV cache holds "
                                                "(None: an inference server's to know)")
    prefix_tokens: int
    prefix: str = Field(description="The static prefix: context (held now), snapshot (on "
                                    "disk), server, or none")
    context_snapshot: str = Field(description="The agent's whole-context snapshot: memory, "
                                              "disk, server, or none")
    slot: int | None = None


class ContextOut(BaseModel):
    """How an agent's next prompt is made up, in the model's tokens."""

    window: int
    prompt_tokens: int
    parts: ContextParts
    reply_reserve: int
    free: int
    warning_tokens: int = Field(description="Past this, the agent gets a memory-pressure alert")
    flush_tokens: int = Field(description="Past this, the oldest messages are summarised away")
    queue_messages: int
    kv_cache: KvCacheState
