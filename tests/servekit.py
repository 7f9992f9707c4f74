"""Test helpers for scheduling and `serve`: a growing local feed, readers, a held SMTP server."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from datetime import UTC, date, datetime
from email import policy
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from newsletter.config import Settings, SourceSettings

KEYWORD = "quantization"


class Clock:
    """A controllable clock for the app and its parts: tests move it (``clock.now = ...``); nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class FakeTime:
    """Monotonic time that advances only by sleeping (a request itself takes no time): pass ``clock`` and
    ``sleep`` to what paces requests, then read ``slept``."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def write_feed(path: Path, days: list[date], per_day: int = 2) -> None:
    """An RSS 2.0 file with *per_day* new quantization papers for each of *days*.

    Rewriting it with one more day is how a test makes "new papers arrive".
    """
    items = []
    for day in days:
        for i in range(per_day):
            when = format_datetime(datetime(day.year, day.month, day.day, 0, i, tzinfo=UTC), usegmt=True)
            items.append(
                f"<item><title>Low-bit {KEYWORD} paper {day.isoformat()} number {i}</title>"
                f"<link>https://example.org/papers/{day.isoformat()}-{i}</link>"
                f"<guid>https://example.org/papers/{day.isoformat()}-{i}</guid>"
                f"<description>We study {KEYWORD} of transformers, day {day.isoformat()}.</description>"
                f"<pubDate>{when}</pubDate></item>"
            )
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Lab</title>'
        "<link>https://example.org/</link><description>lab papers</description>" + "".join(items) + "</channel></rss>",
        encoding="utf-8",
    )


def write_reader(folder: Path, reader: str, timezone: str, send_at: str, frequency: str = "daily") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{reader}.toml").write_text(
        f'email = "{reader}@example.org"\nname = "{reader.title()}"\ntimezone = "{timezone}"\n'
        f'send_at = "{send_at}"\nfrequency = "{frequency}"\nskip_empty = true\n\n'
        f'[interests]\nkeywords = ["{KEYWORD}"]\n',
        encoding="utf-8",
    )


def make_settings(root: Path, smtp_port: int | None = None, **delivery: Any) -> Settings:
    """Settings rooted in *root* with one local feed source (``root/lab.xml``).

    With *smtp_port*, mail goes to a plain SMTP server on 127.0.0.1 there.
    """
    if smtp_port is not None:
        smtp = {"backend": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none"}
        delivery = smtp | delivery
    data: dict[str, Any] = {"sources": [SourceSettings(name="lab", kind="feed", path=root / "lab.xml")]}
    if delivery:
        data["delivery"] = delivery
    return Settings(**data).resolved(root)


def outbox(settings: Settings) -> list[str]:
    """``period/reader`` for every .eml in the outbox, sorted."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in settings.paths.outbox_dir.glob("*/*.eml"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SMTPServer:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that records every message.

    With ``hold=True`` it holds each DATA until the test sets ``release``
    (``arrived`` tells the test a message is in flight): a send the test can
    catch mid-way.  Without, it is a plain sink that counts what arrives.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.messages: list[bytes] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        self.messages.append(envelope.content)
        return "250 OK queued"

    def digests(self) -> list[str]:
        """``reader/period`` of every message received, in arrival order."""
        out = []
        for raw in self.messages:
            msg = email.message_from_bytes(raw, policy=policy.default)
            out.append(str(msg["X-Newsletter-Digest"]))
        return out

    def text(self, digest: str) -> str:
        """The plain-text part of the message for ``reader/period``."""
        for raw in self.messages:
            msg = email.message_from_bytes(raw, policy=policy.default)
            if msg["X-Newsletter-Digest"] == digest:
                body = msg.get_body(("plain",))
                assert body is not None
                return str(body.get_content())  # type: ignore[attr-defined]
        raise KeyError(digest)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.controller.stop()


def write_config(root: Path, smtp_port: int | None = None, concurrency: int = 8) -> Path:
    """A newsletter.toml in *root* matching :func:`make_settings`, for subprocess tests."""
    delivery = f'backend = "outbox"\nconcurrency = {concurrency}\n'
    if smtp_port is not None:
        delivery = (
            f'backend = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}\n'
            f'smtp_security = "none"\nconcurrency = {concurrency}\n'
        )
    path = root / "newsletter.toml"
    path.write_text(
        '[paths]\ndata_dir = "newsletter-data"\nprofiles_dir = "profiles"\n'
        'outbox_dir = "outbox"\nfeeds_dir = "feeds"\n\n'
        '[[sources]]\nname = "lab"\nkind = "feed"\npath = "lab.xml"\n\n'
        f"[delivery]\n{delivery}",
        encoding="utf-8",
    )
    return path
