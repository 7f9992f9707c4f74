"""A real HTTP server on a loopback address serving feeds, polite ones and hostile ones.

For tests and benchmarks of fetching::

    with FeedServer() as server:
        server.url("/arxiv.rss")          # the bundled arXiv fixture, with ETag, Last-Modified, 304, gzip
        server.url("/hf.json")            # the bundled Hugging Face fixture (also /hf.json?date=YYYY-MM-DD)
        server.add("/mine.xml", b"...")   # any document, same treatment
        server.hits("/arxiv.rss")         # what was asked and answered

Misbehaving endpoints (``drip`` is the seconds between two bytes, 0.05 by default):

``/drip``           200, then one byte of a feed per ``drip`` seconds, forever
``/drip-headers``   the status line, then one header byte per ``drip`` seconds
``/endless``        200, no length, 64 KB chunks forever
``/gzip-bomb``      ``Content-Encoding: gzip``: 64 KB that inflate to 64 MB
``/flaky/N/PATH``   HTTP 500 for the first N requests, then what PATH serves
``/ratelimit/S/PATH`` HTTP 429 with ``Retry-After: S`` once, then what PATH serves
``/redirect?to=URL`` 302 to URL
``/status/CODE``    that status
``/html``           a web page with ``text/html``;  ``/png``: an image
``/malformed.xml``  broken XML;  ``/laughs.xml``: a billion-laughs document
``/long-author.xml`` an arXiv item whose ``dc:creator`` is a 32 KB run of letters

``add`` and ``fail`` also take a path with a query string, which then wins over the plain path.

Run it alone (``python tests/feedserver.py --port 8000``) to point a config at it.
"""

from __future__ import annotations

import argparse
import email.utils
import functools
import gzip
import hashlib
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SAMPLES = Path(str(resources.files("newsletter") / "samples"))
RSS = "application/rss+xml; charset=utf-8"
JSON = "application/json"
LAST_MODIFIED = "Fri, 14 Nov 2025 05:00:00 GMT"


@dataclass(frozen=True)
class Doc:
    body: bytes
    content_type: str
    etag: str
    last_modified: str = LAST_MODIFIED
    gzipped: bytes = b""


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    path: str
    """With the query string."""
    status: int
    body_bytes: int
    """Bytes of body written (compressed, if it was)."""
    headers: dict[str, str]
    at: float
    """``time.monotonic()`` when the request arrived."""


def _doc(body: bytes, content_type: str) -> Doc:
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
    return Doc(body, content_type, etag, gzipped=gzip.compress(body, 6))


def billion_laughs() -> bytes:
    lines = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n' + "\n".join(lines) + "\n]>\n"
        '<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title>'
        "<guid>oai:arXiv.org:2401.00001v1</guid></item></channel></rss>"
    ).encode()


def arxiv_item(
    arxiv_id: str,
    *,
    version: int = 1,
    announce: str = "new",
    creator: str = "Ada Lovelace",
    day: str = "Fri, 14 Nov 2025",
) -> str:
    return (
        f"<item><title>Paper {arxiv_id}</title><link>https://arxiv.org/abs/{arxiv_id}</link>"
        f"<description>arXiv:{arxiv_id}v{version} Announce Type: {announce} \nAbstract: Text.</description>"
        f'<guid isPermaLink="false">oai:arXiv.org:{arxiv_id}v{version}</guid><category>cs.LG</category>'
        f"<pubDate>{day} 05:00:00 +0000</pubDate><arxiv:announce_type>{announce}</arxiv:announce_type>"
        f"<dc:creator>{creator}</dc:creator></item>"
    )


def arxiv_feed(items: list[str]) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>cs updates on arXiv.org</title>'
        "<link>http://rss.arxiv.org/rss/cs</link><description>test</description>" + "".join(items) + "</channel></rss>"
    ).encode()


@functools.cache
def _bomb(megabytes: int = 64) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(packer.compress(block) for _ in range(megabytes)) + packer.flush()


@dataclass
class _State:
    docs: dict[str, Doc] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    drip: float = 0.05
    bomb: bytes = b""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> _State:
        return self.server.state

    def _log(self, status: int, sent: int) -> None:
        with self.state.lock:
            self.state.hits.append(Hit(self.path, status, sent, dict(self.headers.items()), self._arrived))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(body)
        self._log(status, len(body) if status != 304 else 0)

    def do_GET(self) -> None:
        self._arrived = time.monotonic()
        url = urlsplit(self.path)
        with self.state.lock:
            self.state.counts[url.path] += 1
            count = self.state.counts[url.path]
            status = self.state.statuses.get(self.path)
            doc = self.state.docs.get(self.path)
        try:
            if status is not None:
                self._send(status, b"failed on purpose", {"Content-Type": "text/plain"})
            elif doc is not None:
                self._serve(doc)
            else:
                self._route(url.path, parse_qs(url.query), count)
        except (BrokenPipeError, ConnectionResetError):
            self._log(0, 0)

    def _route(self, path: str, query: dict[str, list[str]], count: int) -> None:
        parts = path.strip("/").split("/")
        if parts[0] == "flaky" and len(parts) >= 3:
            if count <= int(parts[1]):
                return self._send(500, b"oops", {"Content-Type": "text/plain"})
            return self._route("/" + "/".join(parts[2:]), query, count)
        if parts[0] == "ratelimit" and len(parts) >= 3:
            if count == 1:
                return self._send(429, b"slow down", {"Retry-After": parts[1], "Content-Type": "text/plain"})
            return self._route("/" + "/".join(parts[2:]), query, count)
        if parts[0] == "status":
            return self._send(int(parts[1]), b"status", {"Content-Type": "text/plain"})
        if path == "/redirect":
            return self._send(302, b"", {"Location": query["to"][0]})
        if path == "/drip":
            return self._drip(headers_too=False)
        if path == "/drip-headers":
            return self._drip(headers_too=True)
        if path == "/endless":
            return self._endless()
        if path == "/gzip-bomb":
            return self._send(200, self.state.bomb, {"Content-Type": RSS, "Content-Encoding": "gzip"})
        if path == "/html":
            page = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in</p></body></html>"
            return self._send(200, page, {"Content-Type": "text/html; charset=utf-8"})
        if path == "/png":
            return self._send(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, {"Content-Type": "image/png"})
        doc = self.state.docs.get(path)
        if doc is None:
            return self._send(404, b"not found", {"Content-Type": "text/plain"})
        return self._serve(doc)

    def _serve(self, doc: Doc) -> None:
        headers = {"Content-Type": doc.content_type, "ETag": doc.etag, "Last-Modified": doc.last_modified}
        if self.headers.get("If-None-Match") == doc.etag:
            return self._send(304, b"", headers)
        since = self.headers.get("If-Modified-Since")
        if since and not self.headers.get("If-None-Match"):
            when = email.utils.parsedate_to_datetime(since)
            if when >= email.utils.parsedate_to_datetime(doc.last_modified):
                return self._send(304, b"", headers)
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            return self._send(200, doc.gzipped, {**headers, "Content-Encoding": "gzip"})
        return self._send(200, doc.body, headers)

    def _drip(self, *, headers_too: bool) -> None:
        sent = 0
        if headers_too:
            self.wfile.write(b"HTTP/1.0 200 OK\r\n")
            payload = b"X-Slow: " + b"a" * 1_000_000
        else:
            self.send_response(200)
            self.send_header("Content-Type", RSS)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            payload = arxiv_feed([arxiv_item("2401.00001")]) * 1000
        try:
            for byte in payload:
                if self.state.stopping.wait(self.state.drip):
                    break
                self.wfile.write(bytes([byte]))
                sent += 1
        finally:
            self._log(200, sent)

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", RSS)
        self.end_headers()
        chunk = b"<!-- " + b"x" * 65_000 + b" -->\n"
        self.wfile.write(b'<?xml version="1.0"?>\n<rss version="2.0"><channel>\n')
        sent = 0
        try:
            while not self.state.stopping.is_set():
                self.wfile.write(chunk)
                sent += len(chunk)
        finally:
            self._log(200, sent)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: with 16 sources connecting at
    # once the kernel drops SYNs and a client retries after 1 s, which looked
    # like a connect timeout under load.
    request_queue_size = 128
    state: _State


class FeedServer:
    """The loopback server; a context manager.  *host* may be any 127.x.y.z address."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, drip: float = 0.05) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state = _State(drip=drip, bomb=_bomb())
        self.host, self.port = self._server.server_address[:2]
        self.add("/arxiv.rss", (SAMPLES / "arxiv_cs.rss").read_bytes(), RSS)
        self.add("/hf.json", (SAMPLES / "hf_daily_papers.json").read_bytes(), JSON)
        self.add("/malformed.xml", b'<?xml version="1.0"?>\n<rss version="2.0"><channel><item><title>x</titl', RSS)
        self.add("/laughs.xml", billion_laughs(), RSS)
        self.add("/long-author.xml", arxiv_feed([arxiv_item("2401.00002", creator="a" * 32_768)]), RSS)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, path: str, body: bytes, content_type: str = RSS) -> str:
        """Serve *body* at *path* (replacing what was there, with a new ETag); returns its URL."""
        with self.state.lock:
            self.state.docs[path] = _doc(body, content_type)
        return self.url(path)

    def fail(self, path: str, status: int = 500) -> None:
        """Answer *status* at *path* (matched with its query string, e.g. ``/hf.json?date=2025-11-20``)."""
        with self.state.lock:
            self.state.statuses[path] = status

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def hits(self, path: str | None = None) -> list[Hit]:
        """Requests so far, to *path* (with or without its query string) or all."""
        with self.state.lock:
            return [h for h in self.state.hits if path is None or h.path == path or h.path.split("?")[0] == path]

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the fixture feeds and the hostile endpoints on loopback.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with FeedServer(args.host, args.port) as server:
        print(f"serving on {server.url('/')} (arxiv.rss, hf.json, drip, endless, gzip-bomb, ...); Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
