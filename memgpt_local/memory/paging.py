"""Paged results: 'page p of n, total t'."""

import math
from dataclasses import dataclass, field


@dataclass
class Page:
    """One page of search results (pages count from 1)."""

    items: list = field(default_factory=list)
    page: int = 1
    page_size: int = 5
    total: int = 0

    @property
    def pages(self) -> int:
        """Number of pages (at least 1)."""
        return max(1, math.ceil(self.total / self.page_size))

    def header(self) -> str:
        """The 'page p of n, total t' line shown with the results."""
        return f"page {self.page} of {self.pages}, total {self.total}"


def page_bounds(page: int, page_size: int) -> tuple[int, int]:
    """Offset and limit for a 1-based page number; bad numbers raise ValueError."""
    if page < 1:
        raise ValueError(f"page must be 1 or more, got {page}")
    if page_size < 1:
        raise ValueError(f"page size must be 1 or more, got {page_size}")
    return (page - 1) * page_size, page_size
