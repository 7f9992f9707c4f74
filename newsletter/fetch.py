"""Getting sources' bytes: politely, within a deadline, and never from a private address.

:class:`Fetcher` fetches every source at once on a thread pool
(``fetch.concurrency``) and turns each into a :class:`SourceFetch`: the parsed
items, the source's new state, or the error as a value.  Per request it does:

* **politeness** – :class:`HostLimiter` lets one request at a time reach a
  host with an interval (arXiv hosts: one every 3 s, their terms of use),
  and waits the interval between them;
* **conditional GET** – ``If-None-Match`` / ``If-Modified-Since`` from the
  stored state, so an unchanged feed costs one round-trip and no body;
* **retries** on 408/425/429/5xx and dropped connections, with exponential
  backoff or the server's ``Retry-After`` (capped; longer means "next run");
* **a wall-clock deadline per source** – httpx timeouts are per read, so a
  server dripping a byte a second never trips them; every socket operation
  here gets ``min(timeout, time left)`` as its timeout (:class:`_DeadlineStream`),
  so a drip ends at the deadline even inside the response headers;
* **a byte cap** on the raw *and* the decompressed body, decompressing in
  bounded steps, so a gzip bomb never gets past the cap in memory;
* **an SSRF guard** in the connect path (:class:`_GuardedBackend`): the host
  is resolved, every address checked (:func:`address_problem`), and the
  socket connected to the checked address, for the first request and every
  redirect.  An operator source with ``allow_private`` may reach its own
  host only; redirects elsewhere are checked like any other.

The sequencing across days – Hugging Face catch-up by ``?date=``, arXiv gap
records – is planned by pure functions in :mod:`newsletter.sources`.
"""

from __future__ import annotations

import contextlib
import email.utils
import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpcore
import httpx

from . import __version__, sources
from .config import FetchSettings, SourceSettings
from .errors import FetchError, NewsletterError
from .types import EntryData, SourceState

ARXIV_INTERVAL = {"arxiv.org": 3.0}
"""arXiv's terms: at most one request every 3 s, one connection at a time, for all its hosts."""
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024
_MAX_MISSED = 60
ACCEPT = {
    "hf": "application/json",
    "arxiv": "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1",
    "feed": "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.1",
}

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Resolver = Callable[..., list[Any]]
"""``socket.getaddrinfo``'s signature: tests map names to addresses with their own."""


def user_agent(contact: str) -> str:
    return f"newsletter/{__version__} (+https://github.com/newsletter-digest/newsletter; {contact})"


# -- the SSRF guard ------------------------------------------------------------

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPAT = ipaddress.ip_network("::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form tunnels to: mapped, NAT64, 6to4, Teredo, compatible."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or (ip in _V4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress) -> str | None:
    """Why a source must not connect to *ip*, or None for a public unicast address.

    ``is_global`` alone is not enough (REFERENCE.md): it is True for
    multicast and for IPv6 forms that carry a private IPv4 address
    (``64:ff9b::7f00:1`` is 127.0.0.1 through NAT64), so those are unwrapped
    and checked too.  Decimal and octal spellings (``2130706433``,
    ``0177.0.0.1``) never get here: the resolver turns them into addresses.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:  # the IPv6 form only carries this IPv4 address: judge that one
            problem = address_problem(inner)
            return f"{problem} (tunnelled in {ip})" if problem else None
    if ip.is_loopback:
        return "a loopback address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:  # fec0::/10, deprecated but routable inside
        return "a site-local address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


class BlockedAddressError(httpcore.ConnectError):
    """Raised in the connect path; httpx re-raises it as ``ConnectError`` *from* this."""


def _clamp(timeout: float | None, deadline: float | None, clock: Clock, exc: type[Exception]) -> float | None:
    """*timeout*, shortened to the time left before *deadline*; *exc* once it has passed."""
    if deadline is None:
        return timeout
    left = deadline - clock()
    if left <= 0:
        raise exc("deadline reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every operation times out by the request's deadline at the latest."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float | None, clock: Clock) -> None:
        self._inner, self._deadline, self._clock = inner, deadline, clock

    def _timeout(self, timeout: float | None, exc: type[Exception]) -> float | None:
        return _clamp(timeout, self._deadline, self._clock, exc)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._timeout(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline, self._clock)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


_request_deadline = threading.local()
"""The monotonic deadline of the request this thread is making (httpx is synchronous)."""


@contextlib.contextmanager
def _deadline_scope(at: float) -> Iterator[None]:
    _request_deadline.at = at
    try:
        yield
    finally:
        _request_deadline.at = None


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, then connects to a checked address (no DNS rebinding)."""

    def __init__(self, allowed_hosts: frozenset[str], resolve: Resolver, clock: Clock) -> None:
        self.allowed_hosts = allowed_hosts
        self.resolve = resolve
        self.clock = clock
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host} ({e})") from e
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
        if host.lower().rstrip(".") not in self.allowed_hosts:
            for address in addresses:
                problem = address_problem(ipaddress.ip_address(address))
                if problem:
                    shown = host if host == address else f"{host} ({address})"
                    raise BlockedAddressError(f"{shown} is {problem}")
        deadline: float | None = getattr(_request_deadline, "at", None)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = self._plain.connect_tcp(
                    address,
                    port,
                    _clamp(timeout, deadline, self.clock, httpcore.ConnectTimeout),
                    local_address,
                    socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                error = e
                continue
            return _DeadlineStream(stream, deadline, self.clock)
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise BlockedAddressError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport with the guarded network backend and no connection reuse.

    No keep-alive: every request (and every redirect) connects afresh, so
    every one passes the address check and gets its own deadline.  A batch
    job fetching a handful of URLs loses nothing by it.
    """

    def __init__(self, allowed_hosts: frozenset[str], resolve: Resolver, clock: Clock) -> None:
        super().__init__(trust_env=False)
        if not hasattr(self, "_pool"):  # pragma: no cover - httpx changed its insides
            raise RuntimeError("httpx.HTTPTransport has no _pool: pin httpx or update newsletter.fetch")
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(allowed_hosts, resolve, clock),
        )


# -- politeness ----------------------------------------------------------------


@dataclass
class _Gate:
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_at: float = 0.0


class HostLimiter:
    """At most one request at a time per rated host, and a pause between requests.

    A rule for ``arxiv.org`` covers ``rss.arxiv.org`` and ``export.arxiv.org``
    as one host, as arXiv counts them.  Hosts without a rule are not limited.
    """

    def __init__(self, intervals: Mapping[str, float], *, clock: Clock, sleep: Sleep) -> None:
        self.intervals = {k.lower().strip("."): v for k, v in intervals.items()}
        self.clock, self.sleep = clock, sleep
        self._gates: dict[str, _Gate] = {}
        self._lock = threading.Lock()

    def rule(self, host: str) -> tuple[str, float]:
        """The limited host *host* belongs to, and its interval (0: no rule)."""
        host = host.lower().rstrip(".")
        best, seconds = host, 0.0
        for key, value in self.intervals.items():
            if (host == key or host.endswith("." + key)) and (best == host or len(key) > len(best)):
                best, seconds = key, value
        return best, seconds

    def _gate(self, key: str) -> _Gate:
        with self._lock:
            return self._gates.setdefault(key, _Gate())

    @contextlib.contextmanager
    def slot(self, host: str, at_least: float = 0.0) -> Iterator[None]:
        key, seconds = self.rule(host)
        seconds = max(seconds, at_least)
        if seconds <= 0:
            yield
            return
        gate = self._gate(key)
        with gate.lock:
            wait = gate.next_at - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                yield
            finally:
                gate.next_at = max(gate.next_at, self.clock() + seconds)

    def defer(self, host: str, seconds: float) -> None:
        """The host asked us to wait (Retry-After): nobody asks it before then."""
        key, interval = self.rule(host)
        if interval > 0:
            gate = self._gate(key)
            gate.next_at = max(gate.next_at, self.clock() + seconds)


# -- the body --------------------------------------------------------------------


class _Decoder:
    """One Content-Encoding layer, decompressing at most *limit* bytes per step."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        if encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS
        else:
            raise FetchError(f"unsupported Content-Encoding {encoding!r} (we ask for gzip or deflate)")
        self._d = zlib.decompressobj(self._wbits)
        self._first = True

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._d.decompress(data, limit)
        except zlib.error:
            if not (self._first and self.encoding == "deflate"):
                raise
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
            out = self._d.decompress(data, limit)
        self._first = False
        if self._d.unconsumed_tail:
            raise _TooBig
        while self._d.eof and self._d.unused_data:  # concatenated gzip members
            rest = self._d.unused_data
            self._d = zlib.decompressobj(self._wbits)
            out += self._d.decompress(rest, max(1, limit - len(out)))
            if self._d.unconsumed_tail:
                raise _TooBig
        return out

    def flush(self) -> bytes:
        return self._d.flush()


class _TooBig(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


def _read_body(response: httpx.Response, cap: int, deadline: float, clock: Clock) -> tuple[bytes, int]:
    """The decoded body and the raw byte count; both capped at *cap*."""
    encodings = [
        e.strip().lower() for e in response.headers.get("Content-Encoding", "").split(",") if e.strip()
    ]
    decoders = [_Decoder(e) for e in reversed(encodings) if e != "identity"]
    out = bytearray()
    raw = 0
    try:
        for chunk in response.iter_raw(_CHUNK):
            raw += len(chunk)
            if raw > cap:
                raise _TooBig
            data = chunk
            for decoder in decoders:
                data = decoder.feed(data, cap - len(out) + 1)
            out += data
            if len(out) > cap:
                raise _TooBig
            if clock() > deadline:  # also with a client whose sockets we do not clamp
                raise _DeadlinePassed
        for decoder in decoders:
            out += decoder.flush()
    except zlib.error as e:
        raise FetchError(f"the body is not valid {'/'.join(encodings)} ({e})") from e
    if len(out) > cap:
        raise _TooBig
    return bytes(out), raw


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


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from *now*: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


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
    error: str | None = None
    """Set when the source failed; *items* may still hold what came before the failure."""
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
                    transport=_GuardedTransport(allowed, self.resolve, self.clock),
                    timeout=httpx.Timeout(s.timeout, connect=min(s.connect_timeout, s.timeout)),
                    follow_redirects=False,
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
        host = httpx.URL(url).host
        client = self.client(host if allow_private else None)
        s = self.settings
        for attempt in range(s.retries + 1):
            try:
                with self.limiter.slot(host, min_interval):
                    return self._attempt(client, url, headers, budget)
            except _Retry as r:
                tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
                if attempt == s.retries:
                    raise FetchError(f"{r} (gave up after {tries})") from None
                if r.retry_after is not None and r.retry_after > s.max_retry_after:
                    raise FetchError(
                        f"{r}; the server asks us to wait {r.retry_after:g} s, longer than "
                        f"fetch.max_retry_after ({s.max_retry_after:g} s): trying again next run"
                    ) from None
                delay = r.retry_after if r.retry_after is not None else s.backoff * 2**attempt
                if r.retry_after is not None:
                    self.limiter.defer(host, delay)
                if delay >= budget.left():
                    raise FetchError(
                        f"{r}; no time left for a retry within the {s.deadline:g} s deadline (after {tries})"
                    ) from None
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, client: httpx.Client, url: str, headers: dict[str, str], budget: _Budget) -> Fetched:
        s = self.settings
        deadline = budget.start()
        current = url
        hops: list[str] = []
        try:
            with _deadline_scope(deadline):
                for _ in range(s.max_redirects + 1):
                    target = httpx.URL(current)
                    if target.scheme not in ("http", "https"):
                        raise FetchError(f"refused: {_via(hops)}{current} is not an http(s) URL")
                    if self.clock() >= deadline:
                        raise _DeadlinePassed
                    request = client.build_request("GET", target, headers=headers)
                    response = client.send(request, stream=True)
                    try:
                        location = response.headers.get("Location")
                        if response.is_redirect and location:
                            hops.append(current)
                            current = str(response.url.join(location))
                            continue
                        return self._response(response, current, hops, deadline)
                    finally:
                        response.close()
                raise FetchError(f"more than {s.max_redirects} redirects from {url}")
        except _DeadlinePassed:
            raise FetchError(f"{_via(hops)}{current} took longer than the {s.deadline:g} s deadline") from None
        except httpx.TimeoutException as e:
            if self.clock() >= deadline - 0.05:
                raise FetchError(f"{_via(hops)}{current} took longer than the {s.deadline:g} s deadline") from None
            raise _Retry(f"{_via(hops)}{current}: timed out ({type(e).__name__})") from e
        except httpx.ConnectError as e:
            if isinstance(e.__cause__, BlockedAddressError):
                allowed = " (allow_private lets an operator source reach its own host only)" if hops else ""
                raise FetchError(f"refused: {_via(hops)}{current}: {e}{allowed}") from None
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
            data, raw = _read_body(response, s.max_bytes, deadline, self.clock)
        except _TooBig:
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
            return SourceFetch(source.name, state, error=str(e))
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
        return _with_missed(
            SourceFetch(source.name, new_state, parsed.items, received=fetched.received), missed
        )

    def _catch_up(self, source: SourceSettings, result: SourceFetch, today: date, budget: _Budget) -> SourceFetch:
        """Hugging Face: fetch each day missed since the last success with ``?date=``."""
        assert source.url is not None
        days, missed = sources.catchup_plan(result.state.last_date, today, self.settings.catchup_days)
        items = list(result.items)
        received = result.received
        reached = today  # every day before this one is fetched
        error = None
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
                error = f"catch-up of {day.isoformat()} failed: {e}"
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
            return SourceFetch(source.name, state, error=f"internal error: {type(e).__name__}: {e}")


def _via(hops: list[str]) -> str:
    return f"redirect from {hops[-1]} to " if hops else ""


def _with_missed(result: SourceFetch, days: list[date]) -> SourceFetch:
    if not days:
        return result
    new = tuple(d.isoformat() for d in days)
    known = tuple(sorted({*result.state.missed_dates, *new}))[-_MAX_MISSED:]
    return replace(result, state=replace(result.state, missed_dates=known), newly_missed=new)
