"""An agent's settings and run-time state, stored with it: window, queue-manager thresholds,
caps, sampling, tool rules and the memory brought to each turn; the pressure warning, flushes
and the caches that keep the KV prefix valid. The record's `settings` is the stored JSON (the
memory layer knows no agent types); this module is its one edge: `AgentSettings.of`,
`AgentState.of` and `stored` read and write it, everything else uses the typed objects."""

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self

from ..llm.base import SamplingSettings
from ..memory.agents import AgentRecord
from .architectures import ARCHITECTURES, MEMGPT, REPLY
from .functions import OPTIONAL_FUNCTIONS, AgentFunction, offered
from .rules import ToolRule, parse_rules

# The sampling fields stored per agent (the others keep SamplingSettings' defaults). A default
# repeat_penalty of 1.1 made SmolLM2's steps 3x slower: it penalises the JSON punctuation.
STORED_SAMPLING = ("temperature", "repeat_penalty", "seed")


# The range of each setting, for settings that come from outside (an imported agent file).
RANGES: dict[str, tuple[float, float]] = {
    "n_ctx": (256, 1_048_576), "warning_fraction": (0.05, 0.99), "evict_fraction": (0.05, 0.95),
    "response_tokens": (16, 8192), "summary_tokens": (16, 8192), "max_chain": (1, 100),
    "max_failures": (1, 100), "result_max_chars": (100, 1_000_000), "page_size": (1, 100),
    "timed_heartbeat_minutes": (0, 10_080), "temperature": (0.0, 5.0),
    "repeat_penalty": (0.5, 5.0), "seed": (0, 2**31 - 1), "memory_hits": (0, 20)}
# What every new agent gets (stored with it; an agent stored without these keys runs without
# rules or memory brought in, in the paper's architecture, as before). Chosen by
# scripts/bench_chat.py and the memory-task benchmarks on both packaged models
# (docs/benchmarks.md, "The default architecture"): the reply architecture answers in plain
# sentences 21x sooner and scores at least as well (doc-QA 0.15 against 0.00; Gemma repeats no
# reply against 7 of 12); memory brought to each message recalled 3 of 4 facts that had left a
# 2k window against 0 of 4 without; the rules make every turn end with a reply and cut the
# search and insert loops small models fall into.
NEW_AGENT_SETTINGS: dict[str, Any] = {
    "architecture": REPLY,
    "memory_hits": 3,
    "tool_rules": [
        {"type": "required_before_exit", "tool_name": "send_message"},
        {"type": "max_count_per_step", "tool_name": "archival_memory_search",
         "max_count_limit": 3},
        {"type": "max_count_per_step", "tool_name": "conversation_search", "max_count_limit": 3},
        {"type": "max_count_per_step", "tool_name": "archival_memory_insert",
         "max_count_limit": 3}]}
MAX_INSTRUCTIONS = 100_000
INTEGER_SETTINGS = {"n_ctx", "response_tokens", "summary_tokens", "max_chain", "max_failures",
                    "result_max_chars", "page_size", "timed_heartbeat_minutes", "seed",
                    "memory_hits"}


def _within(key: str, value: Any) -> bool:
    kind = int if key in INTEGER_SETTINGS else int | float
    low, high = RANGES[key]
    return isinstance(value, kind) and not isinstance(value, bool) and low <= value <= high


def _check_extra_functions(names: Any) -> None:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("setting extra_functions must be a list of function names.")
    unknown = sorted(set(names) - set(OPTIONAL_FUNCTIONS))
    if unknown:
        raise ValueError(f"extra_functions: {', '.join(unknown)} is not an optional function; "
                         f"the optional functions are {', '.join(OPTIONAL_FUNCTIONS)}.")


@dataclass
class AgentSettings:
    """Per-agent settings; stored as one flat dict with the agent."""

    n_ctx: int = 4096
    warning_fraction: float = 0.7
    evict_fraction: float = 0.5
    response_tokens: int = 320
    summary_tokens: int = 160
    max_chain: int = 6
    max_failures: int = 3
    result_max_chars: int = 2000
    page_size: int = 5
    timed_heartbeat_minutes: int = 0
    tool_rules: list[dict] = field(default_factory=list)  # Letta's JSON form (rules.py)
    memory_hits: int = 0  # archival and recall hits brought to each user message; 0: off
    instructions: str = ""  # the agent's own instructions in place of ours ("": ours)
    extra_functions: list[str] = field(default_factory=list)  # optional functions it is offered
    architecture: str = MEMGPT  # memgpt (the paper's) or reply (plain replies, tool calls)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)

    @classmethod
    def checked(cls, data: dict) -> "AgentSettings":
        """Settings from a dict that comes from outside (an imported file): unknown keys,
        wrong types and values out of range raise ValueError saying which."""
        unknown = set(data) - {f.name for f in fields(cls)} - set(STORED_SAMPLING) - {"state"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}.")
        for key, value in data.items():
            if key in RANGES and not _within(key, value):
                low, high = RANGES[key]
                kind = "a whole number" if key in INTEGER_SETTINGS else "a number"
                raise ValueError(f"setting {key} is {value!r}; it must be {kind} from {low} "
                                 f"to {high}.")
        if not isinstance(data.get("state", {}), dict):
            raise ValueError("setting state must be an object.")
        instructions = data.get("instructions", "")
        if not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS:
            raise ValueError(f"setting instructions must be a text of at most "
                             f"{MAX_INSTRUCTIONS} characters.")
        _check_extra_functions(data.get("extra_functions", []))
        if data.get("architecture", MEMGPT) not in ARCHITECTURES:
            raise ValueError(f"setting architecture is {data['architecture']!r}; it must be "
                             f"one of {', '.join(ARCHITECTURES)}.")
        settings = cls.from_dict(data)
        settings.rules()
        return settings

    def updated(self, changes: dict) -> "AgentSettings":
        """These settings with some changed, checked as an import is (unknown keys, types,
        ranges, tool rules: ValueError naming what is wrong)."""
        if "state" in changes:
            raise ValueError("setting state cannot be changed.")
        return self.checked(self.to_dict() | changes)

    def rules(self) -> list[ToolRule]:
        """The tool rules, checked against the functions and the step cap (ToolRuleError, a
        ValueError, names the rule that is wrong)."""
        return parse_rules(self.tool_rules, self.functions(), self.max_chain,
                           replies_end_turn=self.replies_end_turn)

    @property
    def replies_end_turn(self) -> bool:
        """Whether a plain reply ends the turn (the reply architecture)."""
        return self.architecture == REPLY

    def functions(self) -> dict[str, AgentFunction]:
        """The functions this agent is offered, in prompt order."""
        return offered(self.extra_functions)

    @classmethod
    def of(cls, record: AgentRecord) -> Self:
        """The settings stored in an agent's record."""
        return cls.from_dict(record.settings)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """Settings from a stored dict (unknown keys, such as run-time state, ignored)."""
        known = {f.name for f in fields(cls)} - {"sampling"}
        sampling = SamplingSettings(**{k: data[k] for k in STORED_SAMPLING if k in data})
        return cls(**{k: v for k, v in data.items() if k in known}, sampling=sampling)

    def to_dict(self) -> dict:
        """The flat dict stored with the agent."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sampling"}
        return data | {k: getattr(self.sampling, k) for k in STORED_SAMPLING}


@dataclass
class AgentState:
    """Run-time state stored with an agent: what the queue manager and the heartbeats need
    next time, and the caches that let the next process reuse the KV prefix."""

    warned: bool = False  # the memory-pressure alert went out in this pressure period
    flushes: int = 0  # evictions into the recursive summary so far
    heartbeats_paused_until: str | None = None  # ISO time set by pause_heartbeats
    core_counts: dict | None = None  # the counts the core block was last rendered with
    core_digest: str | None = None  # that rendering's digest
    last_prompt: dict[str, str] = field(default_factory=dict)  # part -> digest, last step

    @classmethod
    def of(cls, record: AgentRecord) -> Self:
        """The state stored in an agent's record (none yet: a new agent's)."""
        return cls.from_dict(record.settings.get("state") or {})

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """The state as stored (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict:
        """The stored form: the fields that differ from a new agent's."""
        new = AgentState()
        return {k: v for k, v in asdict(self).items() if v != getattr(new, k)}

    def restore(self, saved: "AgentState") -> None:
        """Take a saved copy's values in place (the parts holding this object see them)."""
        for each in fields(self):
            setattr(self, each.name, getattr(saved, each.name))

    @classmethod
    def imported(cls, state: Any) -> Self:
        """An imported agent's run-time state, rebuilt rather than trusted: its counters kept
        where they are what they claim, its caches (core counts, digests) left to be made
        again."""
        state = state if isinstance(state, dict) else {}
        flushes = state.get("flushes")
        warned = state.get("warned")
        return cls(warned=warned if type(warned) is bool else False,
                   flushes=flushes if type(flushes) is int and flushes >= 0 else 0)


def stored(settings: AgentSettings, state: AgentState | None = None) -> dict:
    """What an agent's record stores: its settings and its state (a new agent's: none)."""
    return {**settings.to_dict(), "state": (state or AgentState()).to_dict()}
