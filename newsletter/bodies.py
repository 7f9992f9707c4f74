"""Reading a response body under a byte cap, decompressing in bounded steps.

The cap holds for the raw *and* the decoded bytes, and no step inflates
more than what is left under it, so a gzip bomb never gets past the cap in
memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import httpx

from .errors import FetchError

CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """The body, raw or decoded, went over the cap (the fetcher words the message)."""


class DeadlinePassed(Exception):
    """The source's wall-clock deadline passed while reading (the fetcher words the message)."""


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
            raise BodyTooLarge
        while self._d.eof and self._d.unused_data:  # concatenated gzip members
            rest = self._d.unused_data
            self._d = zlib.decompressobj(self._wbits)
            out += self._d.decompress(rest, max(1, limit - len(out)))
            if self._d.unconsumed_tail:
                raise BodyTooLarge
        return out

    def flush(self) -> bytes:
        return self._d.flush()


def read_body(response: httpx.Response, cap: int, deadline: float, clock: Callable[[], float]) -> tuple[bytes, int]:
    """The decoded body and the raw byte count; both capped at *cap*."""
    encodings = [e.strip().lower() for e in response.headers.get("Content-Encoding", "").split(",") if e.strip()]
    decoders = [_Decoder(e) for e in reversed(encodings) if e != "identity"]
    out = bytearray()
    raw = 0
    try:
        for chunk in response.iter_raw(CHUNK):
            raw += len(chunk)
            if raw > cap:
                raise BodyTooLarge
            data = chunk
            for decoder in decoders:
                data = decoder.feed(data, cap - len(out) + 1)
            out += data
            if len(out) > cap:
                raise BodyTooLarge
            if clock() > deadline:  # also with a client whose sockets we do not clamp
                raise DeadlinePassed
        for decoder in decoders:
            out += decoder.flush()
    except zlib.error as e:
        raise FetchError(f"the body is not valid {'/'.join(encodings)} ({e})") from e
    if len(out) > cap:
        raise BodyTooLarge
    return bytes(out), raw
