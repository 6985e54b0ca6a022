"""An agent's settings, stored with it: window, queue-manager thresholds, caps and sampling."""

from dataclasses import dataclass, field, fields

from ..llm.base import SamplingSettings

# The sampling fields stored per agent (the others keep SamplingSettings' defaults). A default
# repeat_penalty of 1.1 made SmolLM2's steps 3x slower: it penalises the JSON punctuation.
STORED_SAMPLING = ("temperature", "repeat_penalty", "seed")


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
    sampling: SamplingSettings = field(default_factory=SamplingSettings)

    @classmethod
    def from_dict(cls, data: dict) -> "AgentSettings":
        """Settings from a stored dict (unknown keys, such as run-time state, ignored)."""
        known = {f.name for f in fields(cls)} - {"sampling"}
        sampling = SamplingSettings(**{k: data[k] for k in STORED_SAMPLING if k in data})
        return cls(**{k: v for k, v in data.items() if k in known}, sampling=sampling)

    def to_dict(self) -> dict:
        """The flat dict stored with the agent."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sampling"}
        return data | {k: getattr(self.sampling, k) for k in STORED_SAMPLING}
