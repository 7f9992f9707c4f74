"""A loopback arXiv API (``/api/query?id_list=...``) for the lookup tests: a real HTTP server on 127.0.0.1.

It knows the 334 fixture papers of ``newsletter/samples/arxiv_cs.rss`` (read
here with ElementTree, not with the project's parser) plus any added with
:meth:`ArxivApiServer.add_paper`, and answers as the real API does
(REFERENCE.md): an Atom feed with one ``<entry>`` per known id
(``<id>http://arxiv.org/abs/IDvN</id>``, one ``<author>`` per person,
``arxiv:primary_category``), an entry titled ``Error`` for an id it does not
know, and at most ``max_results`` entries (default 10, as arXiv's).  Every
request is recorded with the ids it asked for, so tests can count batches.

Run it alone (``python tests/arxiv_api_server.py --port 8001``) to point a lookup at it.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

SAMPLES = Path(str(resources.files("newsletter") / "samples"))
ATOM = "application/atom+xml; charset=utf-8"
_DC = "{http://purl.org/dc/elements/1.1/}"
_ABSTRACT = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.IGNORECASE)


@dataclass(frozen=True)
class Paper:
    arxiv_id: str
    title: str
    summary: str
    authors: tuple[str, ...] = ("Ada Lovelace",)
    categories: tuple[str, ...] = ("cs.LG",)
    version: int = 1
    published: str = "2024-02-23T18:59:59Z"
    doi: str | None = None


@dataclass(frozen=True)
class Request:
    """One request as the server saw it."""

    path: str
    ids: tuple[str, ...]
    max_results: int
    at: float
    """``time.monotonic()`` on arrival."""
    user_agent: str


def fixture_papers() -> dict[str, Paper]:
    """The bundled listing's papers, keyed by arXiv id."""
    root = ET.parse(SAMPLES / "arxiv_cs.rss").getroot()
    out: dict[str, Paper] = {}
    for item in root.iter("item"):
        guid = (item.findtext("guid") or "").rsplit(":", 1)[-1]
        arxiv_id, _, version = guid.partition("v")
        out[arxiv_id] = Paper(
            arxiv_id=arxiv_id,
            title=item.findtext("title") or "",
            summary=_ABSTRACT.sub("", item.findtext("description") or ""),
            authors=tuple(a.strip() for a in (item.findtext(f"{_DC}creator") or "").split(",") if a.strip()),
            categories=tuple(c.text or "" for c in item.findall("category")) or ("cs.LG",),
            version=int(version or 1),
            published="2025-11-14T13:00:00Z",
        )
    return out


def entry_xml(p: Paper) -> str:
    abs_url = f"http://arxiv.org/abs/{p.arxiv_id}v{p.version}"
    cats = "".join(f'<category term={quoteattr(c)} scheme="http://arxiv.org/schemas/atom"/>' for c in p.categories)
    authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in p.authors)
    doi = f"<arxiv:doi>{escape(p.doi)}</arxiv:doi>" if p.doi else ""
    return (
        f"<entry><id>{abs_url}</id><updated>{p.published}</updated><published>{p.published}</published>"
        f"<title>{escape(p.title)}</title><summary>{escape(p.summary)}</summary>{authors}{doi}"
        f'<link href="{abs_url}" rel="alternate" type="text/html"/>'
        f'<link title="pdf" href="http://arxiv.org/pdf/{p.arxiv_id}v{p.version}" rel="related" type="application/pdf"/>'
        f'<arxiv:primary_category term={quoteattr(p.categories[0])} scheme="http://arxiv.org/schemas/atom"/>'
        f"{cats}</entry>"
    )


def error_xml(arxiv_id: str) -> str:
    ref = f"http://arxiv.org/api/errors#incorrect_id_format_for_{escape(arxiv_id)}"
    return (
        f"<entry><id>{ref}</id><title>Error</title><summary>incorrect id format for {escape(arxiv_id)}</summary>"
        f'<updated>2026-12-01T00:00:00-05:00</updated><link href="{ref}" rel="alternate" type="text/html"/>'
        "<author><name>arXiv api core</name></author></entry>"
    )


def feed_xml(entries: list[str], query: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">'
        f"<id>https://arxiv.org/api/test</id><title>arXiv Query: {escape(query)}</title>"
        "<updated>2026-12-01T00:00:00-05:00</updated>"
        f"<opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>"
        f"<opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
        "<opensearch:startIndex>0</opensearch:startIndex>" + "".join(entries) + "</feed>"
    ).encode()


@dataclass
class _State:
    papers: dict[str, Paper] = field(default_factory=fixture_papers)
    requests: list[Request] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer the next requests with, in order (then normal service)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        arrived = time.monotonic()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        ids = tuple(i for i in ",".join(query.get("id_list", [])).split(",") if i)
        try:
            max_results = int(query.get("max_results", ["10"])[0])
        except ValueError:
            max_results = 10
        state = self.server.state
        with state.lock:
            state.requests.append(Request(self.path, ids, max_results, arrived, self.headers.get("User-Agent", "")))
            status = state.fail_next.pop(0) if state.fail_next else None
            papers = dict(state.papers)
        if url.path != "/api/query":
            return self._send(404, b"not found", "text/plain")
        if status is not None:
            return self._send(status, b"failed on purpose", "text/plain")
        entries = []
        for i in ids:
            base = re.sub(r"v\d+$", "", i)
            entries.append(entry_xml(papers[base]) if base in papers else error_xml(i))
        self._send(200, feed_xml(entries[: max(0, max_results)], url.query), ATOM)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    state: _State


class ArxivApiServer:
    """The loopback arXiv API; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _Handler)
        self._server.state = self.state = _State()
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        """What ``ArxivLookup(base=...)`` takes."""
        return f"http://{self.host}:{self.port}"

    def add_paper(self, paper: Paper) -> None:
        with self.state.lock:
            self.state.papers[paper.arxiv_id] = paper

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then serve normally."""
        with self.state.lock:
            self.state.fail_next.extend(statuses)

    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)

    def start(self) -> ArxivApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ArxivApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a loopback arXiv API over the fixture papers.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    with ArxivApiServer(args.host, args.port) as server:
        print(f"serving {len(server.state.papers)} papers on {server.base}/api/query?id_list=...; Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
