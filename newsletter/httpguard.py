"""Limits for the HTTP side of ``newsletter serve``: connections, deadlines, sizes.

uvicorn alone accepts every connection and keeps it as long as the client
likes: ``timeout_keep_alive`` only runs between requests and is cancelled by
any byte, so a client dripping a header byte every few seconds is never cut,
and 1,100 idle sockets exhaust a 1,024 file-descriptor limit (issue 14).
Here, at the protocol level (uvicorn's h11 protocol, subclassed):

* a **request deadline**: from the moment a connection waits for a request
  (when it opens, and after each response) the whole request, headers and
  body, must arrive within :data:`REQUEST_DEADLINE` seconds, however slowly
  the bytes drip;
* a **connection cap** (:data:`MAX_CONNECTIONS`): past it, the connection
  that has waited longest without sending a whole request is closed to make
  room (idle and slow clients go first, a request being answered never);
  when every connection is busy, the new one is closed;
* **sizes**: request headers at most :data:`MAX_HEADER_BYTES` (h11's
  incomplete-event limit while they arrive, 400; :class:`BodyLimit` once
  complete, 431), bodies at most :data:`MAX_BODY_BYTES` (413; a body without a
  length is refused with 411), by :class:`BodyLimit`.

:func:`raise_fd_limit` lifts the soft file-descriptor limit to the hard one at
start, so the cap, not the limit, is what a flood meets.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import logs

MAX_CONNECTIONS = 512
"""Open connections kept at once; beyond, the longest-waiting idle one is closed."""
REQUEST_DEADLINE = 10.0
"""Seconds a connection may take to send one whole request (headers and body)."""
KEEP_ALIVE = 5
"""Seconds an idle keep-alive connection stays open between requests."""
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
"""Unsubscribe and rating forms are a few hundred bytes."""
FD_LIMIT_CAP = 65_536

log = logs.get("serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one (at most :data:`FD_LIMIT_CAP`); returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FD_LIMIT_CAP if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_CAP)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as e:
            log.warning("cannot raise the open-files limit from %d to %d (%s)", soft, target, e)
            return soft, soft
        return soft, target
    return soft, soft


def guarded_protocol(
    max_connections: int = MAX_CONNECTIONS, deadline: float = REQUEST_DEADLINE
) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a per-request deadline and a connection cap (see the module doc)."""
    import h11  # uvicorn's HTTP parser; loaded, like uvicorn, only by `serve`
    from uvicorn.protocols.http.h11_impl import H11Protocol

    waiting: dict[Any, None] = {}
    """Connections waiting for a whole request, the longest-waiting first (dicts keep order)."""
    read = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    class GuardedH11Protocol(H11Protocol):
        _timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._wait()
            open_now = [c for c in self.connections if not c.transport.is_closing()]
            excess = len(open_now) - max_connections
            for conn in list(waiting):
                if excess <= 0:
                    break
                if conn is not self:
                    conn._cut()
                    excess -= 1
            if excess > 0:  # every other connection is mid-request: refuse this one
                self._cut()

        def _wait(self) -> None:
            """Start the deadline for the next whole request."""
            self._stop_waiting()
            waiting[self] = None
            self._timer = self.loop.call_later(deadline, self._cut)

        def _stop_waiting(self) -> None:
            waiting.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _cut(self) -> None:
            """Close a connection that was too slow or is evicted to make room."""
            self._stop_waiting()
            if not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self in waiting and self.conn.their_state in read:
                self._stop_waiting()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._wait()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

    return GuardedH11Protocol


class BodyLimit:
    """ASGI middleware: refuse big headers (431), bodies over *limit* bytes (413) or without a length (411)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] == "http":
            # h11 limits headers still arriving; a complete block that came in one piece is checked here
            if sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADER_BYTES:
                return await _refuse(send, 431, f"request headers over {MAX_HEADER_BYTES} bytes")
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                return await _refuse(send, 413, f"request body over {self.limit} bytes")
            if length is None and b"transfer-encoding" in headers:
                return await _refuse(send, 411, "send a Content-Length")
        await self.app(scope, receive, send)


async def _refuse(send: Callable[[Message], Awaitable[None]], status: int, why: str) -> None:
    body = why.encode() + b"\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["BodyLimit", "guarded_protocol", "raise_fd_limit"]
