"""What the fetch stage exchanges: requests, limits and results (frozen dataclasses).

Kept apart from ``fetch.py`` so that the stages after it (state, processing, the worker
processes) use them without importing ``requests``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from feedbot.poll.http_limits import FetchOutcome

__all__ = ["SUCCESS", "FeedFetcher", "FetchLimits", "FetchOutcome", "FetchRequest", "FetchResult"]

SUCCESS = frozenset({FetchOutcome.OK, FetchOutcome.NOT_MODIFIED, FetchOutcome.UNCHANGED})


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """One feed to fetch, with the validators and body hash kept from the last success."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_body_hash: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Time and size limits of one fetch; ``deadline`` bounds the whole call."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    deadline: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if min(self.connect_timeout, self.read_timeout, self.deadline) <= 0:
            raise ValueError("fetch timeouts must be positive")
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one fetch. ``body`` is set (decompressed) only when outcome is OK."""

    request_url: str
    outcome: FetchOutcome
    status: int | None
    final_url: str
    permanent_url: str | None  # set only when every redirect in the chain was 301/308
    body: bytes | None
    headers: Mapping[str, str]  # lower-case keys, read-only
    etag: str | None
    last_modified: str | None
    body_hash: str | None  # sha256 hex of the decompressed body
    retry_after: datetime | None
    error: str | None
    elapsed: float
    cache_max_age: float | None

    @property
    def succeeded(self) -> bool:
        """True for OK, NOT_MODIFIED and UNCHANGED."""
        return self.outcome in SUCCESS


class FeedFetcher(Protocol):
    """The fetch port. Called by the poll pipeline; never raises for per-feed failures."""

    def fetch(self, req: FetchRequest, now: datetime) -> FetchResult: ...
