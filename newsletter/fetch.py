"""Getting sources' bytes: politely, within a deadline, and never from a private address.

:class:`Fetcher` fetches every source at once on a thread pool
(``fetch.concurrency``) and turns each into a :class:`SourceFetch`: the parsed
items, the source's new state, or the error as a value.  Per request it does:

* **politeness** – :class:`~newsletter.politeness.HostLimiter` lets one
  request at a time reach a host with an interval (arXiv hosts: one every
  3 s, their terms of use), and waits the interval between them;
* **conditional GET** – ``If-None-Match`` / ``If-Modified-Since`` from the
  stored state, so an unchanged feed costs one round-trip and no body;
* **retries** on 408/425/429/5xx and dropped connections, with exponential
  backoff or the server's ``Retry-After`` (:mod:`newsletter.retry`; capped,
  longer means "next run");
* **redirects** followed here, one hop at a time, each target checked
  (http(s) only, a valid URL, then the transport's address rules) and named
  in the error when refused;
* **a wall-clock deadline per source**, kept by the transport on every
  socket operation (:mod:`newsletter.transport`);
* **a byte cap** on the raw *and* the decompressed body
  (:mod:`newsletter.bodies`);
* **an SSRF guard** in the connect path (:class:`~newsletter.transport.GuardedTransport`
  with the rules of :mod:`newsletter.addresses`), for the first request and
  every redirect.  An operator source with ``allow_private`` may reach its
  own host only; redirects elsewhere are checked like any other.

The sequencing across days – Hugging Face catch-up by ``?date=``, arXiv gap
records – is planned by pure functions in :mod:`newsletter.sources`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import httpx

from . import __version__, logs, sources
from .bodies import BodyTooLarge, DeadlinePassed, read_body
from .config import FetchSettings, SourceSettings
from .errors import FetchError, InternalError, NewsletterError
from .politeness import ARXIV_INTERVAL, Clock, HostLimiter, Sleep
from .retry import GiveUp, RetryPolicy, retry_after_seconds
from .transport import DEADLINE, AddressRefused, GuardedTransport, Resolver
from .types import EntryData, SourceState

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_MISSED = 60
ACCEPT = {
    "hf": "application/json",
    "arxiv": "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1",
    "feed": "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.1",
}

__all__ = ["ACCEPT", "Fetched", "Fetcher", "HostLimiter", "Progress", "SourceFetch", "user_agent"]


def user_agent(contact: str) -> str:
    return f"newsletter/{__version__} (+https://github.com/newsletter-digest/newsletter; {contact})"


# -- one request -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes | None
    """None when the server said 304 Not Modified."""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    received: int = 0
    """Body bytes read off the wire (compressed), for "a 304 transfers nothing"."""
    url: str | None = None
    """Where the body came from, after redirects."""

    @property
    def not_modified(self) -> bool:
        return self.data is None


class _Retry(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Redirect(Exception):
    """A redirect, stopped before httpx builds the next request (it would blame the origin URL)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _stop_at_redirect(response: httpx.Response) -> None:
    """Response hook: hand every redirect to :meth:`Fetcher._attempt`, which checks its target."""
    if response.has_redirect_location:
        raise _Redirect(response.headers["Location"])


@dataclass
class _Budget:
    """A source's wall-clock allowance, started by its first request."""

    seconds: float
    clock: Clock
    ends: float | None = None

    def start(self) -> float:
        if self.ends is None:
            self.ends = self.clock() + self.seconds
        return self.ends

    def left(self) -> float:
        return self.start() - self.clock()


# -- sources -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceFetch:
    """What fetching one source gave: items to merge, its next state, or the error."""

    source: str
    state: SourceState
    """Conditional-GET validators, ``last_date`` and missed days as they should be stored.

    Health (last success, failures) is the caller's to add.
    """
    items: tuple[EntryData, ...] = ()
    not_modified: bool = False
    error: NewsletterError | None = None
    """Set when the source failed (the exception itself); *items* may still hold what came before the failure."""
    received: int = 0
    newly_missed: tuple[str, ...] = ()
    """Days found missing in this fetch (arXiv gaps, catch-up beyond ``fetch.catchup_days``)."""


Progress = Callable[[SourceFetch, int, int], None]


class Fetcher:
    """Fetches sources; one per app.

    *http* replaces the HTTP clients (for tests with ``httpx.MockTransport``):
    it is used as given, without the SSRF guard and the per-socket deadline.
    *sleep*, *clock* and *resolve* are there so tests wait for nothing and
    can make a name resolve to a private address.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        contact: str,
        http: httpx.Client | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        resolve: Resolver = socket.getaddrinfo,
    ) -> None:
        self.settings = settings
        self.sleep = sleep
        self.clock = clock
        self.resolve = resolve
        self.headers = {"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"}
        self.limiter = HostLimiter({**ARXIV_INTERVAL, **settings.host_intervals}, clock=clock, sleep=self._sleep)
        self.progress: Progress | None = None
        """Called in the caller's thread as each source finishes (the CLI's progress bar)."""
        self._http = http
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def _sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def client(self, private_host: str | None = None) -> httpx.Client:
        """The guarded client; with *private_host*, one that may reach that host only."""
        if self._http is not None:
            return self._http
        key = private_host or ""
        with self._lock:
            if key not in self._clients:
                allowed = frozenset({private_host.lower().rstrip(".")}) if private_host else frozenset()
                s = self.settings
                self._clients[key] = httpx.Client(
                    transport=GuardedTransport(allowed, self.resolve, self.clock),
                    timeout=httpx.Timeout(s.timeout, connect=min(s.connect_timeout, s.timeout)),
                    follow_redirects=False,
                    event_hooks={"response": [_stop_at_redirect]},
                    headers=self.headers,
                    trust_env=False,
                )
            return self._clients[key]

    # -- one URL -----------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        allow_private: bool = False,
        accept: str = "*/*",
        min_interval: float = 0.0,
        budget: _Budget | None = None,
    ) -> Fetched:
        """GET *url* with retries; raises :class:`FetchError` with the reason."""
        budget = budget or _Budget(self.settings.deadline, self.clock)
        headers = {"Accept": accept}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            host = httpx.URL(url).host
        except httpx.InvalidURL as e:
            raise FetchError(f"refused: {url} is not a valid URL ({e}); check the source's url") from None
        client = self.client(host if allow_private else None)
        s = self.settings
        policy = RetryPolicy(s.retries, s.backoff, s.max_retry_after)
        for attempt in range(s.retries + 1):
            try:
                with self.limiter.slot(host, min_interval):
                    return self._attempt(client, url, headers, budget)
            except _Retry as r:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                wait = policy.next_wait(attempt, r.retry_after, left=budget.left())
                if isinstance(wait, GiveUp):
                    if wait.why == "attempts":
                        raise FetchError(f"{r} (gave up after {tries})") from None
                    if wait.why == "asks too long":
                        raise FetchError(
                            f"{r}; the server asks us to wait {r.retry_after:g} s, longer than "
                            f"fetch.max_retry_after ({s.max_retry_after:g} s): trying again next run"
                        ) from None
                    if r.retry_after is not None:  # other sources on this host wait too
                        self.limiter.defer(host, r.retry_after)
                    raise FetchError(
                        f"{r}; no time left for a retry within the {s.deadline:g} s deadline (after {tries})"
                    ) from None
                if r.retry_after is not None:
                    self.limiter.defer(host, wait)
                self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, client: httpx.Client, url: str, headers: dict[str, str], budget: _Budget) -> Fetched:
        s = self.settings
        deadline = budget.start()
        current = url
        hops: list[str] = []
        try:
            for _ in range(s.max_redirects + 1):
                target = httpx.URL(current)
                if target.scheme not in ("http", "https"):
                    raise FetchError(f"refused: {_via(hops)}{current} is not an http(s) URL")
                if self.clock() >= deadline:
                    raise DeadlinePassed
                request = client.build_request("GET", target, headers=headers, extensions={DEADLINE: deadline})
                try:
                    response = client.send(request, stream=True)
                except _Redirect as r:
                    location = r.location
                else:
                    try:  # an injected client (``http=``) has no redirect hook
                        found = response.headers.get("Location") if response.is_redirect else None
                        if not found:
                            return self._response(response, current, hops, deadline)
                        location = found
                    finally:
                        response.close()
                hops.append(current)
                try:
                    current = str(target.join(location))
                except httpx.InvalidURL as e:
                    raise FetchError(f"refused: {_via(hops)}{location} is not a valid URL ({e})") from None
            raise FetchError(f"more than {s.max_redirects} redirects from {url}")
        except DeadlinePassed:
            raise FetchError(f"{_via(hops)}{current} took longer than the {s.deadline:g} s deadline") from None
        except httpx.TimeoutException as e:
            if self.clock() >= deadline - 0.05:
                raise FetchError(f"{_via(hops)}{current} took longer than the {s.deadline:g} s deadline") from None
            raise _Retry(f"{_via(hops)}{current}: timed out ({type(e).__name__})") from e
        except AddressRefused as e:
            allowed = " (allow_private lets an operator source reach its own host only)" if hops else ""
            raise FetchError(f"refused: {_via(hops)}{current}: {e}{allowed}") from None
        except httpx.ConnectError as e:
            raise _Retry(f"{_via(hops)}{current}: cannot connect ({e})") from e
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            if self.clock() >= deadline - 0.05:
                raise FetchError(f"{_via(hops)}{current} took longer than the {s.deadline:g} s deadline") from None
            raise _Retry(f"{_via(hops)}{current}: connection broke ({e})") from e
        except httpx.InvalidURL as e:
            raise FetchError(f"refused: {_via(hops)}{current} is not a valid URL ({e})") from None
        except httpx.HTTPError as e:
            raise FetchError(f"{_via(hops)}{current}: {type(e).__name__}: {e}") from e

    def _response(self, response: httpx.Response, url: str, hops: list[str], deadline: float) -> Fetched:
        s = self.settings
        status = response.status_code
        if status == 304:
            return Fetched(None, response.headers.get("ETag"), response.headers.get("Last-Modified"), url=url)
        if status in RETRY_STATUS:
            wait = retry_after_seconds(response.headers.get("Retry-After"), datetime.now(UTC))
            raise _Retry(f"HTTP {status} {response.reason_phrase} from {_via(hops)}{url}", wait)
        if status >= 300:
            raise FetchError(f"HTTP {status} {response.reason_phrase} from {_via(hops)}{url}")
        content_type = response.headers.get("Content-Type")
        mime = (content_type or "").split(";")[0].strip().lower()
        if sources.is_binary_type(mime):
            raise FetchError(f"wrong content type: {url} sent {mime}, not a feed")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > s.max_bytes:
            raise FetchError(f"too large: {url} announces {int(length):,} bytes, over the {s.max_bytes:,} byte cap")
        try:
            data, raw = read_body(response, s.max_bytes, deadline, self.clock)
        except BodyTooLarge:
            raise FetchError(
                f"too large: {url} sent more than the {s.max_bytes:,} byte cap (counted after decompression)"
            ) from None
        return Fetched(
            data, response.headers.get("ETag"), response.headers.get("Last-Modified"), content_type, raw, url
        )

    # -- one source ----------------------------------------------------------------

    def read_path(self, source: SourceSettings) -> bytes:
        assert source.path is not None
        try:
            with source.path.open("rb") as f:
                data = f.read(self.settings.max_bytes + 1)
        except OSError as e:
            raise FetchError(f"cannot read {source.path} ({e.strerror})") from e
        if len(data) > self.settings.max_bytes:
            raise FetchError(f"{source.path} is over the {self.settings.max_bytes:,} byte cap")
        return data

    def fetch_source(self, source: SourceSettings, state: SourceState, now: datetime) -> SourceFetch:
        """Fetch and parse one source; a failure comes back as ``error``, never raised."""
        budget = _Budget(self.settings.deadline, self.clock)
        try:
            if source.path is not None:
                local = sources.parse_document(source.kind, source.name, self.read_path(source))
                return self._finish(source, state, local, Fetched(b""))
            assert source.url is not None
            fetched = self.get(
                source.url,
                etag=state.etag,
                last_modified=state.last_modified,
                allow_private=source.allow_private,
                accept=ACCEPT[source.kind],
                min_interval=source.min_interval or 0.0,
                budget=budget,
            )
            parsed: sources.Parsed | None = None
            if fetched.data is not None:
                parsed = sources.parse_document(source.kind, source.name, fetched.data, fetched.content_type)
        except NewsletterError as e:
            return SourceFetch(source.name, state, error=e)
        result = self._finish(source, state, parsed, fetched)
        if source.kind == "hf" and "date=" not in source.url:
            return self._catch_up(source, result, now.astimezone(UTC).date(), budget)
        return result

    def _finish(
        self, source: SourceSettings, state: SourceState, parsed: sources.Parsed | None, fetched: Fetched
    ) -> SourceFetch:
        if parsed is None:  # 304: the validators we sent still hold
            kept = replace(
                state, etag=fetched.etag or state.etag, last_modified=fetched.last_modified or state.last_modified
            )
            return SourceFetch(source.name, kept, not_modified=True, received=fetched.received)
        new_state = replace(state, etag=fetched.etag, last_modified=fetched.last_modified)
        missed: list[date] = []
        if source.kind == "arxiv" and parsed.day is not None:
            missed = sources.missed_listing_days(state.last_date, parsed.day)
            if state.last_date is None or parsed.day.isoformat() > state.last_date:
                new_state = replace(new_state, last_date=parsed.day.isoformat())
        return _with_missed(SourceFetch(source.name, new_state, parsed.items, received=fetched.received), missed)

    def _catch_up(self, source: SourceSettings, result: SourceFetch, today: date, budget: _Budget) -> SourceFetch:
        """Hugging Face: fetch each day missed since the last success with ``?date=``."""
        assert source.url is not None
        days, missed = sources.catchup_plan(result.state.last_date, today, self.settings.catchup_days)
        items = list(result.items)
        received = result.received
        reached = today  # every day before this one is fetched
        error: NewsletterError | None = None
        for day in days:
            url = str(httpx.URL(source.url).copy_merge_params({"date": day.isoformat()}))
            try:
                fetched = self.get(
                    url,
                    allow_private=source.allow_private,
                    accept=ACCEPT["hf"],
                    min_interval=source.min_interval or 0.0,
                    budget=budget,
                )
                if fetched.data is None:
                    raise FetchError("answered 304 Not Modified to a request without validators")
                items += sources.parse_document("hf", source.name, fetched.data, fetched.content_type).items
                received += fetched.received
            except NewsletterError as e:
                error = FetchError(f"catch-up of {day.isoformat()} failed: {e}")
                error.__cause__ = e
                reached = day - timedelta(days=1)
                break
        before = result.state.last_date
        last_date = reached.isoformat() if before is None else max(before, reached.isoformat())
        out = replace(
            result,
            state=replace(result.state, last_date=last_date),
            items=tuple(items),
            received=received,
            not_modified=result.not_modified and len(items) == len(result.items),
            error=error,
        )
        return _with_missed(out, missed)

    def fetch_all(
        self, batch: Sequence[SourceSettings], states: Mapping[str, SourceState], now: datetime
    ) -> list[SourceFetch]:
        """Every source at once (``fetch.concurrency`` threads); results in *batch* order."""
        if not batch:
            return []
        results: list[SourceFetch | None] = [None] * len(batch)
        with ThreadPoolExecutor(min(self.settings.concurrency, len(batch)), thread_name_prefix="fetch") as pool:
            futures = {
                pool.submit(self._fetch_safely, s, states.get(s.name) or SourceState(s.name), now): i
                for i, s in enumerate(batch)
            }
            for done, future in enumerate(as_completed(futures), 1):
                result = results[futures[future]] = future.result()
                if self.progress is not None:
                    self.progress(result, done, len(batch))
        return [r for r in results if r is not None]

    def _fetch_safely(self, source: SourceSettings, state: SourceState, now: datetime) -> SourceFetch:
        try:
            return self.fetch_source(source, state, now)
        except Exception as e:  # a bug on one source's path must not lose the others
            logs.get("fetch").exception("fetching %s crashed", source.name)
            return SourceFetch(source.name, state, error=InternalError(f"fetching {source.name}", e))


def _via(hops: list[str]) -> str:
    return f"redirect from {hops[-1]} to " if hops else ""


def _with_missed(result: SourceFetch, days: list[date]) -> SourceFetch:
    if not days:
        return result
    new = tuple(d.isoformat() for d in days)
    known = tuple(sorted({*result.state.missed_dates, *new}))[-_MAX_MISSED:]
    return replace(result, state=replace(result.state, missed_dates=known), newly_missed=new)
