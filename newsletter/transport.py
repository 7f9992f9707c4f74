"""The network seam: an httpx transport that never reaches a private address and keeps the deadline.

:class:`GuardedTransport` is an :class:`httpx.BaseTransport` over an
:class:`httpcore.ConnectionPool` whose ``network_backend`` is
:class:`GuardedBackend` – all public API of both libraries, nothing of
their insides.  Per request it:

* **resolves, checks, then connects to a checked address** (no DNS
  rebinding): every address the host resolves to must pass
  :func:`newsletter.addresses.address_problem`, unless the host is one the
  transport was allowed to reach (an operator source's ``allow_private``);
* **keeps a wall-clock deadline**: httpx timeouts are per read, so a
  server dripping a byte a second never trips them; every socket operation
  here gets ``min(timeout, time left)`` (:class:`DeadlineStream`), so a
  drip ends at the deadline even inside the response headers.  The
  deadline travels with the request as the ``newsletter.deadline``
  extension (a ``time.monotonic``-style instant of the transport's clock);
* **does not keep connections alive**, so every request and every redirect
  connects afresh, is checked and gets its own deadline.

httpcore raises its own exceptions; :func:`map_httpcore_exceptions` turns
them into httpx's, as httpx's own transport does, so callers catch httpx
exceptions only.  A refused address becomes :class:`AddressRefused`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from .addresses import address_problem

Clock = Callable[[], float]
Resolver = Callable[..., list[Any]]
"""``socket.getaddrinfo``'s signature: tests map names to addresses with their own."""

DEADLINE = "newsletter.deadline"
"""The request extension carrying the request's deadline on the transport's clock."""


class BlockedAddressError(httpcore.ConnectError):
    """Raised in the connect path when an address is refused; surfaces as :class:`AddressRefused`."""


class AddressRefused(httpx.ConnectError):
    """httpx's view of :class:`BlockedAddressError`: the address rules refused the connection."""


_EXCEPTIONS: dict[type[Exception], type[httpx.HTTPError]] = {
    httpcore.TimeoutException: httpx.TimeoutException,
    httpcore.ConnectTimeout: httpx.ConnectTimeout,
    httpcore.ReadTimeout: httpx.ReadTimeout,
    httpcore.WriteTimeout: httpx.WriteTimeout,
    httpcore.PoolTimeout: httpx.PoolTimeout,
    httpcore.NetworkError: httpx.NetworkError,
    httpcore.ConnectError: httpx.ConnectError,
    httpcore.ReadError: httpx.ReadError,
    httpcore.WriteError: httpx.WriteError,
    httpcore.ProxyError: httpx.ProxyError,
    httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
    httpcore.ProtocolError: httpx.ProtocolError,
    httpcore.LocalProtocolError: httpx.LocalProtocolError,
    httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    BlockedAddressError: AddressRefused,
}


@contextlib.contextmanager
def map_httpcore_exceptions() -> Iterator[None]:
    """httpcore's exceptions as the most specific httpx exception, *from* the original.

    The same table and rule as httpx's own ``HTTPTransport``, written with
    public names so an httpx release cannot move it from under us.
    """
    try:
        yield
    except Exception as exc:
        mapped: type[httpx.HTTPError] | None = None
        for source, target in _EXCEPTIONS.items():
            if isinstance(exc, source) and (mapped is None or issubclass(target, mapped)):
                mapped = target
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


def _clamp(timeout: float | None, deadline: float | None, clock: Clock, exc: type[Exception]) -> float | None:
    """*timeout*, shortened to the time left before *deadline*; *exc* once it has passed."""
    if deadline is None:
        return timeout
    left = deadline - clock()
    if left <= 0:
        raise exc("deadline reached")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
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
        return DeadlineStream(inner, self._deadline, self._clock)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves, checks every address, then connects to a checked address (no DNS rebinding).

    The connect path has no request in hand, so the transport hands the
    request's deadline over in a thread-local (httpx's sync client calls
    the backend on the calling thread).
    """

    def __init__(self, allowed_hosts: frozenset[str], resolve: Resolver, clock: Clock) -> None:
        self.allowed_hosts = allowed_hosts
        self.resolve = resolve
        self.clock = clock
        self._plain = httpcore.SyncBackend()
        self._request = threading.local()

    @contextlib.contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        """Connections opened inside keep *at* as their deadline."""
        self._request.deadline = at
        try:
            yield
        finally:
            self._request.deadline = None

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
        deadline: float | None = getattr(self._request, "deadline", None)
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
            return DeadlineStream(stream, deadline, self.clock)
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise BlockedAddressError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    """httpcore's body iterator with its exceptions mapped to httpx's."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with map_httpcore_exceptions():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class GuardedTransport(httpx.BaseTransport):
    """httpx → httpcore with the guarded backend, no keep-alive and no proxy from the environment.

    A batch job fetching a handful of URLs loses nothing by connecting
    afresh for each one.
    """

    def __init__(self, allowed_hosts: frozenset[str], resolve: Resolver, clock: Clock) -> None:
        self.backend = GuardedBackend(allowed_hosts, resolve, clock)
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_keepalive_connections=0,
            network_backend=self.backend,
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with map_httpcore_exceptions(), self.backend.deadline(request.extensions.get(DEADLINE)):
            response = self.pool.handle_request(core)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
