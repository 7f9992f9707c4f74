"""Retries for fetching and delivery: one ``Retry-After`` reading and one decision of how long to wait.

:meth:`RetryPolicy.next_wait` is pure (attempt, what the server asked, time
left -> seconds or :class:`GiveUp`); the two loops that use it differ only in
what they do meanwhile (a fetch defers its host; sends share one pause).
tenacity and stamina were weighed: both wrap a call in a decorator whose
stop/wait rules would need this same logic as callbacks, and neither knows
a deadline shared with the socket or a pause shared between threads.
"""

from __future__ import annotations

import email.utils
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol


class Headers(Protocol):
    """What both HTTP clients' headers offer: httpx.Headers, http.client's message, a dict."""

    def get(self, key: str, /) -> str | None: ...


_SECONDS = re.compile(r"\d+(?:\.\d*)?")


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from *now*: a number of seconds or an HTTP date; None if neither.

    RFC 9110 allows whole seconds; fractions (``0.2``, as some rate limiters
    send) are read too.  A date in the past is 0.
    """
    if not value:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def rate_limit_wait(headers: Headers | None, now: datetime) -> float | None:
    """Seconds to wait from ``Retry-After``, else ``X-RateLimit-Reset`` (a Unix time, as SendGrid sends)."""
    if headers is None:
        return None
    after = retry_after_seconds(headers.get("Retry-After"), now)
    if after is not None:
        return after
    reset = headers.get("X-RateLimit-Reset")
    if reset is not None:
        try:
            return max(0.0, float(reset) - now.timestamp())
        except ValueError:
            pass
    return None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a step is tried again: fetching and delivery share this decision.

    *max_wait* caps what a server may ask for (``Retry-After``): a longer
    wait gives up for this run instead of holding it.
    """

    retries: int
    backoff: float
    max_wait: float

    def next_wait(self, attempt: int, retry_after: float | None, *, left: float = math.inf) -> float | GiveUp:
        """Seconds to wait before trying again after failed *attempt* (from 0), or why not to.

        The server's *retry_after* wins over the doubling backoff; *left* is
        the time the step still has (a deadline), if any.
        """
        if attempt >= self.retries:
            return GiveUp("attempts")
        if retry_after is not None and retry_after > self.max_wait:
            return GiveUp("asks too long")
        delay = retry_after if retry_after is not None else self.backoff * 2**attempt
        if delay >= left:
            return GiveUp("deadline")
        return delay


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Why a step is not tried again in this run (each caller words it for its own setting names)."""

    why: Literal["attempts", "asks too long", "deadline"]
