"""A loopback SendGrid v3 ``/v3/mail/send`` server with fault injection.

The real ``sendgrid`` client talks to it over real sockets.  Every accepted
message is recorded in a SQLite file, so a test (or another process) can
count what "SendGrid" accepted even after the sender was SIGKILLed.

Faults are consumed one per request from a queue (``server.push(...)``);
when the queue is empty the server answers 202.  Fault names:

``ok`` 202 + X-Message-Id · ``429`` with X-RateLimit-Reset and Retry-After ·
``500`` / ``502`` / ``504`` · ``413`` (an HTML page) · ``401`` / ``403`` ·
``400`` (JSON errors) · ``drop-before`` (close without reading the body) ·
``drop-after`` (read and record the body, then close without answering:
from the client's side it may or may not have gone out) · ``sandbox`` 200.

Run it on its own (benchmarks do, so its threads do not share a GIL with the
sender)::

    python tests/sendgrid_server.py --db accepted.sqlite3 --latency 0.1
    # prints "PORT <n>" on its first line
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import socket
import sqlite3
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API_KEY = "SG.test-key"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    owner: SendGridServer


class SendGridServer:
    """Start with :meth:`start` (or ``with``); ``host`` is the base URL for the client."""

    def __init__(
        self, db: Path, *, latency: float = 0.0, api_key: str | None = API_KEY, port: int = 0, keep_bodies: int = 1000
    ) -> None:
        self.db_path = db
        self.latency = latency
        self.api_key = api_key
        self.faults: collections.deque[str] = collections.deque()
        self.requests = 0
        self.keep_bodies = keep_bodies
        self.bodies: list[dict[str, Any]] = []
        """The first *keep_bodies* parsed request bodies (accepted or not), for header checks: a 10,000-send
        benchmark would otherwise hold about 1 GB of them.  What was accepted is in the database."""
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # Survives the death of any client process; no fsync per message, so the
        # recording is not what limits a benchmark.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS accepted (id TEXT PRIMARY KEY, digest TEXT, recipient TEXT, "
            "subject TEXT, answered INTEGER, at REAL)"
        )
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push(self, *faults: str) -> None:
        with self._lock:
            self.faults.extend(faults)

    def next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            return self.faults.popleft() if self.faults else "ok"

    def record(self, body: dict[str, Any], *, answered: bool) -> str:
        msg_id = uuid.uuid4().hex[:22]
        digest = str(body.get("custom_args", {}).get("digest", ""))
        to = str(body["personalizations"][0]["to"][0]["email"])
        with self._lock, contextlib.suppress(sqlite3.ProgrammingError):  # a late request after stop()
            self._db.execute(
                "INSERT INTO accepted VALUES (?, ?, ?, ?, ?, ?)",
                (msg_id, digest, to, body.get("subject", ""), int(answered), time.time()),
            )
        return msg_id

    def start(self) -> SendGridServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._db.close()

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def accepted(db: Path) -> list[tuple[str, str, int]]:
    """``(digest, recipient, answered)`` for every message the server accepted."""
    con = sqlite3.connect(db)
    try:
        return [(d, r, a) for d, r, a in con.execute("SELECT digest, recipient, answered FROM accepted")]
    finally:
        con.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reset(self) -> None:
        """Close abruptly (RST), as a crashed load balancer would."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _answer(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)  # the connection stays open for the next request, as SendGrid's does

    def _errors(self, status: int, message: str, field: str | None = None) -> None:
        body = json.dumps({"errors": [{"message": message, "field": field, "help": None}]}).encode()
        self._answer(status, body, "application/json")

    def do_POST(self) -> None:
        owner = self.server.owner
        if self.path.rstrip("/") != "/v3/mail/send":
            self._errors(404, "not found")
            return
        fault = owner.next_fault()
        if fault == "drop-before":
            self._reset()
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if owner.latency:
            time.sleep(owner.latency)
        if owner.api_key is not None and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._errors(401, "The provided authorization grant is invalid, expired, or revoked")
            return
        try:
            body = json.loads(raw)
            assert body["personalizations"][0]["to"][0]["email"] and body["from"]["email"]
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            self._errors(400, "Bad Request", "personalizations")
            return
        with owner._lock:
            if len(owner.bodies) < owner.keep_bodies:
                owner.bodies.append(body)
        if fault == "drop-after":
            owner.record(body, answered=False)
            self._reset()
            return
        if fault == "429":
            reset = str(int(time.time()) + 1)
            self._answer(
                429,
                b'{"errors":[{"message":"too many requests"}]}',
                "application/json",
                {
                    "X-RateLimit-Limit": "600",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset,
                    "Retry-After": "0.2",
                },
            )
        elif fault in ("500", "502", "504"):
            self._answer(int(fault), b"<html><body>Bad Gateway</body></html>", "text/html")
        elif fault == "413":
            self._answer(413, b"<html><head><title>413 Request Entity Too Large</title></head></html>", "text/html")
        elif fault in ("401", "403"):
            self._errors(int(fault), "access forbidden")
        elif fault == "400":
            self._errors(400, "Does not contain a valid address.", "personalizations.0.to.0.email")
        elif fault == "sandbox":
            self._answer(200, b"", "application/json")
        else:
            msg_id = owner.record(body, answered=True)
            self._answer(202, b"", "application/json", {"X-Message-Id": msg_id})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = SendGridServer(args.db, latency=args.latency, port=args.port)
    print(f"PORT {server.port}", flush=True)
    try:
        server._httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server._httpd.server_close()


if __name__ == "__main__":
    sys.exit(main())
