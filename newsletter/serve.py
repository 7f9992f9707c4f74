"""``newsletter serve``: the scheduler and the HTTP app in one long-running process.

APScheduler only *triggers*; the ledger decides.  Two jobs with fixed ids
(``replace_existing``, so a restart never duplicates them):

* ``fetch``: a daily cron in UTC at ``schedule.fetch_at``;
* ``tick``: every minute, "who is due?": readers whose current period (their
  local send time, DST-aware, see :mod:`newsletter.schedule`) has no settled
  ledger row get their digest.

The in-memory job store is enough because nothing about *what* to send lives
in the scheduler: after downtime the first tick sees the missed period in the
ledger and sends it once (and a fetch slot missed while down is caught up
first).  Cron times inside a skipped DST hour never fire in APScheduler 3.11
(bugs #1021, #1036); our tick does not care.

SIGTERM / SIGINT: the HTTP server stops, the ``stop`` event tells
:meth:`App.deliver` to start no new sends, the sends in flight finish and are
recorded, then the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from . import httpguard, logs
from .config import Settings
from .errors import NewsletterError
from .health import read_status, status_lines
from .pipeline import App, make_app
from .schedule import fetch_overdue
from .types import DeliveryResult, DeliveryStatus, Due, Profile, SourceResult, SourceState

FETCH_JOB = "fetch"
TICK_JOB = "tick"
log = logs.get("serve")


class Service:
    """The two scheduled jobs around one :class:`App`; tests call them directly.

    A lock keeps them from overlapping: the TinyDB store has one writer.
    """

    def __init__(self, app: App, stop: threading.Event | None = None) -> None:
        self.app = app
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()

    def fetch_if_overdue(self) -> list[SourceResult]:
        """Fetch unless this UTC day's fetch slot was already served."""
        with self._lock:
            return self._fetch_if_overdue()

    def _fetch_if_overdue(self) -> list[SourceResult]:
        now = self.app.clock()
        states = self.app.store.source_states()
        if not self.app.settings.sources:
            return []
        # The oldest attempt counts: a source added since the last fetch is overdue.
        attempts = [states.get(s.name, SourceState(s.name)).last_attempt for s in self.app.settings.sources]
        last = None if None in attempts else min(a for a in attempts if a is not None)
        if not fetch_overdue(last, self.app.settings.schedule.fetch_at, now):
            return []
        log.info("fetching %d sources", len(self.app.settings.sources), extra={"event": "fetch"})
        return self.app.fetch()

    def tick(self) -> list[DeliveryResult]:
        """Catch up a missed fetch, then deliver to every reader who is due now."""
        if self.stop.is_set():
            return []
        with self._lock:
            self._fetch_if_overdue()
            loaded = self.app.load_profiles()  # no store write unless a file changed
            due = [d.profile for d in self.app.plan(loaded.profiles) if isinstance(d, Due)]
            for err in loaded.errors if due else ():
                log.warning("profile skipped: %s", err, extra={"event": "profile"})
            if not due:
                return []
            log.info("%d readers due", len(due), extra={"event": "tick", "due": len(due)})
            results = self._deliver(due)
            sent = {r.reader for r in results if r.status is DeliveryStatus.SENT and not r.already}
            if sent:
                self.app.write_feeds([p for p in due if p.id in sent])
            return results

    def _deliver(self, due: list[Profile]) -> list[DeliveryResult]:
        return self.app.deliver(readers=due, stop=self.stop)


def _guarded(job: Any, name: str) -> Any:
    """Run *job*, logging any error so one bad run never stops the service."""

    def run() -> None:
        try:
            job()
        except NewsletterError as e:
            log.error("%s job failed: %s", name, e, extra={"event": name})
        except Exception:
            log.exception("%s job crashed; it runs again at its next time", name, extra={"event": name})

    return run


def build_scheduler(service: Service, settings: Settings) -> Any:
    """A BackgroundScheduler (UTC, one worker thread) with the fetch and tick jobs."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    hour, minute = (int(x) for x in settings.schedule.fetch_at.split(":"))
    scheduler.add_job(
        _guarded(service.fetch_if_overdue, FETCH_JOB),
        CronTrigger(hour=hour, minute=minute, timezone=UTC),
        id=FETCH_JOB,
        name="daily fetch",
        replace_existing=True,
        misfire_grace_time=3600,
    )
    scheduler.add_job(
        _guarded(service.tick, TICK_JOB),
        IntervalTrigger(minutes=1, timezone=UTC),
        id=TICK_JOB,
        name="who is due?",
        replace_existing=True,
        misfire_grace_time=50,
        next_run_time=datetime.now(UTC),  # catch up at once after downtime
    )
    return scheduler


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening now, before uvicorn starts: a client that connects as soon as "serving on" is logged
        # waits in the backlog instead of being refused (uvicorn listens again with its own backlog).
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise NewsletterError(
            f"cannot listen on {host}:{port} ({e.strerror}); stop what uses it or choose another --port"
        ) from e
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set *stop* (uvicorn re-raises them after its own shutdown)."""

    def handler(sig: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run the scheduler and the HTTP app until SIGTERM/SIGINT; returns after a clean stop."""
    app = make_app(settings)  # takes the data folder's lock: a second serve stops here
    try:
        sock = _bind(host, port)
    except BaseException:
        app.close()
        raise
    import uvicorn

    from .web import create_web_app  # the HTTP routes; imported lazily like uvicorn

    stop = threading.Event()
    service = Service(app, stop)
    for row in app.recovered:
        log.warning("send of %s for %s was cut off by a crash: marked uncertain", row.reader, row.period)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stop.set()  # at once: no new sends while the HTTP side drains
            super().handle_exit(sig, frame)

    before, after = httpguard.raise_fd_limit()
    if after > before:
        log.info("open-files limit raised from %d to %d", before, after, extra={"event": "start"})
    config = uvicorn.Config(
        httpguard.BodyLimit(create_web_app(app)),
        log_config=None,
        access_log=False,
        http=httpguard.guarded_protocol(),
        timeout_keep_alive=httpguard.KEEP_ALIVE,
        h11_max_incomplete_event_size=httpguard.MAX_HEADER_BYTES,
        limit_concurrency=httpguard.MAX_CONNECTIONS + 64,  # a backstop: the protocol caps connections itself
    )
    server = Server(config)
    scheduler = build_scheduler(service, settings)
    try:
        with _signals(stop):
            scheduler.start()
            log.info(
                "serving on http://%s:%d; fetch daily at %s UTC; checking who is due every minute",
                host,
                port,
                settings.schedule.fetch_at,
                extra={"event": "start"},
            )
            if not stop.is_set():
                server.run(sockets=[sock])
            log.info("stopping: letting sends in flight finish", extra={"event": "stop"})
            stop.set()
            scheduler.shutdown(wait=True)
    finally:
        sock.close()
        app.close()
    log.info("stopped", extra={"event": "stop"})


__all__ = ["Service", "build_scheduler", "read_status", "serve", "status_lines"]

# Quieten APScheduler's per-run INFO lines; our jobs log what they did.
logging.getLogger("apscheduler").setLevel(logging.WARNING)
