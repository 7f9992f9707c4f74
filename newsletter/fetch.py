"""Getting a source's bytes: a local file, or HTTP with a deadline and a byte cap.

Conditional GET (ETag / Last-Modified) makes an unchanged feed cost one
round-trip and no body.  httpx timeouts are per-phase inactivity limits, so a
server dripping one byte a second never trips them: the wall-clock deadline
and the byte cap (counted on *decoded* bytes, against gzip bombs) are checked
while streaming.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from . import __version__
from .config import FetchSettings, SourceSettings
from .errors import FetchError
from .store import SourceState


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes | None
    """None when the server said 304 Not Modified."""
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.data is None


def user_agent(contact: str) -> str:
    return f"newsletter/{__version__} (+https://github.com/newsletter-digest/newsletter; {contact})"


class Fetcher:
    """Reads sources; one per app, sharing one HTTP client."""

    def __init__(self, settings: FetchSettings, *, contact: str, http: httpx.Client | None = None) -> None:
        self.settings = settings
        self._own_client = http is None
        self.http = http or httpx.Client(
            timeout=httpx.Timeout(settings.timeout),
            follow_redirects=True,
            headers={"User-Agent": user_agent(contact)},
        )

    def close(self) -> None:
        if self._own_client:
            self.http.close()

    def get(self, source: SourceSettings, state: SourceState) -> Fetched:
        if source.path is not None:
            try:
                data = source.path.read_bytes()
            except OSError as e:
                raise FetchError(f"cannot read {source.path} ({e.strerror})") from e
            if len(data) > self.settings.max_bytes:
                raise FetchError(f"{source.path} is over the {self.settings.max_bytes} byte cap")
            return Fetched(data)
        assert source.url is not None
        headers = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        deadline = time.monotonic() + self.settings.deadline
        try:
            with self.http.stream("GET", source.url, headers=headers) as response:
                if response.status_code == 304:
                    return Fetched(None, state.etag, state.last_modified)
                if response.status_code >= 400:
                    raise FetchError(f"HTTP {response.status_code} from {source.url}")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.settings.max_bytes:
                        raise FetchError(f"{source.url} sent more than {self.settings.max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise FetchError(f"{source.url} took longer than {self.settings.deadline:g} s")
                    chunks.append(chunk)
                return Fetched(
                    b"".join(chunks),
                    response.headers.get("ETag"),
                    response.headers.get("Last-Modified"),
                )
        except httpx.HTTPError as e:
            raise FetchError(f"{source.url}: {type(e).__name__}: {e}") from e
