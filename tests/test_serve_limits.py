"""`newsletter serve` under a connection flood (issue 14, finding 4): a real process on loopback.

1,100 idle sockets used to exhaust a 1,024 file-descriptor limit (``/healthz``
timed out, "Too many open files") and 300 slowloris clients, each dripping a
header byte a second, stayed open for ever.  Now the server caps connections
(closing the longest-waiting idle one to make room), gives every request a
deadline, and raises its soft fd limit to the hard one.
"""

from __future__ import annotations

import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import pytest
from servekit import free_port, write_config, write_feed

from newsletter.httpguard import MAX_BODY_BYTES, MAX_CONNECTIONS, REQUEST_DEADLINE

IDLE, SLOW = 1_100, 300
TYPICAL_SOFT_LIMIT = 1_024
"""The usual default of ``ulimit -n``: the child starts with it, as under most shells and services."""


def _limit_fds() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = TYPICAL_SOFT_LIMIT if hard == resource.RLIM_INFINITY else min(TYPICAL_SOFT_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Served:
    """`newsletter serve` started with the typical soft fd limit; stderr collected."""

    def __init__(self, config: Path, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=_limit_fds,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if "serving on" in line:
                self.ready.set()

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _healthz(port: int) -> float:
    """Seconds /healthz took on a fresh connection (fails after 10 s)."""
    start = time.monotonic()
    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert r.status_code in (200, 503) and "sources" in r.text, r.text
    return time.monotonic() - start


class Drippers:
    """Slowloris clients: a request line, then one header byte per second each, until the server hangs up."""

    def __init__(self, port: int, n: int) -> None:
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            s.setblocking(False)
            self.socks.append(s)
        self.closed: set[int] = set()
        self.done = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.socks):
            sel.register(s, selectors.EVENT_READ, i)
        while not self.stop.is_set() and len(self.closed) < len(self.socks):
            for i, s in enumerate(self.socks):
                if i not in self.closed:
                    try:
                        s.send(b"a")
                    except OSError:
                        self.closed.add(i)
            deadline = time.monotonic() + 1.0
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in sel.select(left):
                    try:
                        data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data:  # the server hung up (or answered: it must not, the request is unfinished)
                        self.closed.add(key.data)
                        sel.unregister(key.fileobj)
        sel.close()
        self.done.set()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in self.socks:
            s.close()


@pytest.mark.slow
def test_serve_keeps_answering_healthz_under_1100_idle_and_300_slow_clients(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = IDLE + SLOW + 200
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"this machine's hard open-files limit ({hard}) is below the {need} the clients need")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    config = write_config(tmp_path)
    write_feed(tmp_path / "lab.xml", [date(2026, 11, 23)])
    port = free_port()
    server = Served(config, port)
    idle: list[socket.socket] = []
    drippers = None
    try:
        assert server.ready.wait(60), "".join(server.lines)
        baseline = _healthz(port)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE)]
        drippers = Drippers(port, SLOW)
        flooded = time.monotonic()
        times = [_healthz(port) for _ in range(5)]
        held = server.open_fds()
        # The slowloris clients are cut by the request deadline, not left open for ever.
        assert drippers.done.wait(REQUEST_DEADLINE + 20), f"{len(drippers.closed)} of {SLOW} slow clients cut"
        cut_after = time.monotonic() - flooded
        after = _healthz(port)
        print(
            f"\n/healthz: {baseline * 1000:.0f} ms alone; {max(times) * 1000:.0f} ms worst of 5 under "
            f"{IDLE} idle + {SLOW} slow clients; {after * 1000:.0f} ms after. Server held {held} fds "
            f"(cap {MAX_CONNECTIONS} connections); all {SLOW} slow clients cut after {cut_after:.1f} s "
            f"(deadline {REQUEST_DEADLINE:.0f} s)"
        )
        assert held <= MAX_CONNECTIONS + 64, held
        assert server.proc.poll() is None, "".join(server.lines)
        assert not any("Too many open files" in line for line in server.lines), "".join(server.lines)
    finally:
        if drippers is not None:
            drippers.close()
        for s in idle:
            s.close()
        server.kill()


def test_serve_refuses_oversized_bodies_and_headers(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    write_feed(tmp_path / "lab.xml", [date(2026, 11, 23)])
    port = free_port()
    server = Served(config, port)
    try:
        assert server.ready.wait(60), "".join(server.lines)
        base = f"http://127.0.0.1:{port}"
        big = httpx.post(f"{base}/unsubscribe/x", content=b"a" * (MAX_BODY_BYTES + 1), timeout=10)
        assert big.status_code == 413
        huge_header = httpx.get(f"{base}/healthz", headers={"X-Big": "a" * 20_000}, timeout=10)
        assert huge_header.status_code in (400, 431)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    finally:
        server.kill()
