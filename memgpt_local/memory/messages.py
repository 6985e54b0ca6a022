"""A message as recall storage keeps it: the unit of the FIFO queue and of the recall tier."""

from dataclasses import dataclass
from datetime import datetime

ROLES = ("user", "assistant", "function_call", "function_result", "system")


@dataclass
class Message:
    """One message in recall storage."""

    role: str
    content: str
    function_name: str | None = None
    function_args: dict | None = None
    created_at: datetime | None = None
    tokens: int | None = None
    seq: int | None = None
    id: int | None = None

    def stamp(self) -> str:
        """The time stamp as ISO text (every stored message has one)."""
        if self.created_at is None:
            raise ValueError(f"message {self.seq} has no time stamp")
        return self.created_at.isoformat()
