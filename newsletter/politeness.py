"""Per-host politeness: one request at a time to a rated host, and a pause between requests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

ARXIV_INTERVAL = {"arxiv.org": 3.0}
"""arXiv's terms: at most one request every 3 s, one connection at a time, for all its hosts."""

Sleep = Callable[[float], None]
Clock = Callable[[], float]


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
