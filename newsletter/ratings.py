"""Ratings from the digest: "more like this" / "less like this", recorded, written back, rate-limited.

A rating link in an email or feed carries a signed token naming one reader,
one paper and one choice.  Opening it (GET, HEAD: what link scanners do)
shows a page and changes nothing; the page's button POSTs with a short-lived
form nonce, and only that records the rating: durably in the ledger first
(the history ``newsletter feedback`` shows), then in the reader's profile file
under ``[feedback]``, keeping their comments.  The file stays the source of
truth: deleting an id there takes the rating back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import profiles as profile_files
from .errors import NewsletterError
from .types import Feedback

if TYPE_CHECKING:
    from .ledger import Ledger

CHOICES = {"liked": "More like this", "disliked": "Less like this"}
READER_LIMIT = (30, 3600.0)
"""At most this many ratings per reader per hour (a person taps a few a day)."""
ADDRESS_LIMIT = (120, 3600.0)
"""At most this many confirmations per client address per hour."""


class RateLimitError(NewsletterError):
    """Too many ratings in a short time; try again later."""


class RateLimit:
    """A sliding-window counter per key; thread-safe, in memory (one ``serve`` process)."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count one event for *key*; False (and not counted) when over the limit."""
        now = self.clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # never grow without bound: forget idle keys
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            return True


@dataclass(frozen=True, slots=True)
class Rated:
    """What a confirmed rating did."""

    reader: str
    entry_id: str
    choice: str | None
    feedback: Feedback


class Ratings:
    """Records ratings for one app: ledger first, then the profile file."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.per_reader = RateLimit(*READER_LIMIT, clock=clock)
        self.per_address = RateLimit(*ADDRESS_LIMIT, clock=clock)
        self._write = threading.Lock()

    def rate(self, reader: str, path: Path, entry_id: str, choice: str | None, address: str) -> Rated:
        """Record *choice* (``liked``, ``disliked`` or None to undo) for one paper; raises RateLimitError."""
        if choice is not None and choice not in CHOICES:
            raise NewsletterError(f"unknown choice {choice!r}")
        if not self.per_address.allow(address) or not self.per_reader.allow(reader):
            raise RateLimitError("too many ratings in a short time; please try again in an hour")
        with self._write:
            self.ledger.record_rating(reader, entry_id, choice, datetime.now(UTC))
            feedback = profile_files.set_rating(path, entry_id, choice)
        return Rated(reader, entry_id, choice, feedback)
