"""How long a server asks us to wait: one ``Retry-After`` reading for fetching and delivery."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from typing import Protocol


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
