"""Logging setup: readable lines for people, JSON lines for log collectors.

Human-readable by default.  ``--log-json`` or ``NEWSLETTER_LOG_FORMAT=json``
switches to one JSON object per line; every record then carries a *run id*
(one per process), so the lines of one cron run or one ``serve`` session can
be told apart in a shared log.  Logs go to stderr: stdout stays for the
commands' own output.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from .types import DeliveryResult, DeliveryStatus, RunReport, SourceResult

LOGGER = "newsletter"
ENV_FORMAT = "NEWSLETTER_LOG_FORMAT"

# Attributes every LogRecord has; anything else was passed with ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "run_id"}


class _RunId(logging.Filter):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def wants_json(flag: bool | None = None) -> bool:
    """The ``--log-json`` flag if given, else ``NEWSLETTER_LOG_FORMAT=json``."""
    return flag if flag else os.environ.get(ENV_FORMAT, "").strip().lower() == "json"


def setup(
    json_lines: bool | None = None,
    *,
    level: int = logging.INFO,
    stream: IO[str] | None = None,
    also: Iterable[str] = (),
) -> str:
    """Configure the ``newsletter`` logger once per process; returns the run id.

    *also* names foreign loggers (``uvicorn.error``, ``apscheduler``) whose
    warnings should come out in the same format.  Calling it again replaces
    the previous handler (tests, repeated CLI invocations in one process)
    instead of doubling every line.
    """
    run_id = uuid.uuid4().hex[:12]
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_RunId(run_id))
    if wants_json(json_lines):
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler._newsletter = True  # type: ignore[attr-defined]
    for name in (LOGGER, *also):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if getattr(h, "_newsletter", False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level if name == LOGGER else max(level, logging.WARNING))
        logger.propagate = False
    return run_id


def get(name: str) -> logging.Logger:
    """A child of the ``newsletter`` logger, e.g. ``get("serve")``."""
    return logging.getLogger(f"{LOGGER}.{name}")


def log_sources(results: Iterable[SourceResult], logger: logging.Logger | None = None) -> None:
    log = logger or get("fetch")
    for s in results:
        if s.error:
            log.warning("source %s failed: %s", s.source, s.error, extra={"source": s.source, "event": "fetch"})
        elif s.not_modified:
            log.info("source %s unchanged (304)", s.source, extra={"source": s.source, "event": "fetch"})
        else:
            log.info(
                "source %s: %d new, %d updated, %d unchanged",
                s.source,
                s.new,
                s.updated,
                s.unchanged,
                extra={"source": s.source, "event": "fetch", "new": s.new},
            )


def log_deliveries(results: Iterable[DeliveryResult], logger: logging.Logger | None = None) -> None:
    """One line per reader; skipped, failed and uncertain ones stand out."""
    log = logger or get("deliver")
    for d in results:
        extra = {"reader": d.reader, "period": d.period, "status": d.status.value, "event": "deliver"}
        if d.already:
            log.debug("reader %s: already %s for %s", d.reader, d.status.value, d.period, extra=extra)
        elif d.status is DeliveryStatus.SENT:
            log.info("reader %s: sent %d papers for %s", d.reader, d.items, d.period, extra=extra)
        elif d.status is DeliveryStatus.SKIPPED:
            log.info("reader %s: skipped for %s (%s)", d.reader, d.period, d.detail, extra=extra)
        else:
            log.warning("reader %s: %s for %s (%s)", d.reader, d.status.value, d.period, d.detail, extra=extra)


def log_report(report: RunReport, logger: logging.Logger | None = None) -> None:
    """The end of a ``newsletter run``: broken profiles and the totals.

    Sources and deliveries were logged as they happened (by the app), so a
    killed run still leaves its trace.
    """
    log = logger or get("run")
    for err in report.profile_errors:
        log.warning("profile skipped: %s", err, extra={"event": "profile"})
    sent = sum(1 for d in report.deliveries if d.status is DeliveryStatus.SENT and not d.already)
    log.info(
        "run done: %d sources, %d readers, %d sent, %d feed files",
        len(report.sources),
        len(report.deliveries),
        sent,
        len(report.feeds),
        extra={"event": "run", "sent": sent},
    )
