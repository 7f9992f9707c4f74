"""Delivery: rendered digests into MIME messages, handed to one mail backend.

Every backend implements :class:`Sender`: take a finished
:class:`~email.message.EmailMessage`, hand it over, return the provider's
message id, or raise one of the :class:`~newsletter.errors.DeliveryError`
kinds (permanent, transient, ambiguous) so the caller can record the right
ledger state.  The default backend, :class:`OutboxSender`, writes ``.eml``
files and needs no keys or network.

Unsubscribe and feed links carry signed per-reader tokens (itsdangerous);
the secret comes from ``NEWSLETTER_SECRET`` or, failing that, a random key
created once in the data folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

import itsdangerous

from .errors import DeliveryError, PermanentDeliveryError
from .store import atomic_write
from .types import RenderedEmail

SECRET_FILE = "secret.key"
UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600
"""Unsubscribe links stay valid for over a year: people act on old emails."""


class Sender(Protocol):
    """One mail backend."""

    name: str

    def send(self, message: EmailMessage) -> str | None:
        """Hand *message* over; return the provider's message id if it gives one."""
        ...

    def close(self) -> None: ...


# -- tokens --------------------------------------------------------------------------


def load_secret(data_dir: Path) -> str:
    """``NEWSLETTER_SECRET``, or a random key kept (mode 0600) in the data folder."""
    env = os.environ.get("NEWSLETTER_SECRET")
    if env:
        return env
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
        return key


class Tokens:
    """Signed per-reader tokens for unsubscribe (expiring) and feed (stable) URLs."""

    def __init__(self, secret: str) -> None:
        self._unsubscribe = itsdangerous.URLSafeTimedSerializer(secret, salt="newsletter.unsubscribe")
        self._feed = itsdangerous.URLSafeSerializer(secret, salt="newsletter.feed")

    def unsubscribe(self, reader: str) -> str:
        return str(self._unsubscribe.dumps(reader))

    def check_unsubscribe(self, token: str, *, max_age: int = UNSUBSCRIBE_MAX_AGE) -> str | None:
        """The reader id, or None for a forged, damaged or expired token."""
        try:
            value = self._unsubscribe.loads(token, max_age=max_age)
        except itsdangerous.BadData:
            return None
        return value if isinstance(value, str) else None

    def feed(self, reader: str) -> str:
        return str(self._feed.dumps(reader))

    def check_feed(self, token: str) -> str | None:
        try:
            value = self._feed.loads(token)
        except itsdangerous.BadData:
            return None
        return value if isinstance(value, str) else None


# -- messages ------------------------------------------------------------------------

_CRLF = re.compile(r"[\r\n\x00]+")


def one_line(value: str, limit: int = 200) -> str:
    """Header-safe text: CR, LF and NUL can never start a header of their own."""
    return _CRLF.sub(" ", value).strip()[:limit]


def message_id(reader: str, period: str, from_address: str) -> str:
    """Deterministic per reader and period, so a duplicate is recognisable."""
    domain = from_address.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"{reader}\0{period}".encode()).hexdigest()[:24]
    return f"<digest.{period}.{digest}@{domain}>"


def build_message(
    email: RenderedEmail,
    *,
    reader: str,
    period: str,
    from_address: str,
    from_name: str,
    unsubscribe_url: str,
    list_id: str,
    now: datetime,
    reply_to: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message with RFC 8058 one-click unsubscribe headers."""
    msg = EmailMessage()
    try:
        msg["From"] = Address(display_name=one_line(from_name, 80), addr_spec=from_address)
        msg["To"] = Address(display_name=one_line(email.to_name, 80), addr_spec=email.to)
        if reply_to:
            msg["Reply-To"] = reply_to
    except (ValueError, IndexError) as e:
        raise PermanentDeliveryError(f"invalid address for {reader}: {e}") from e
    msg["Subject"] = one_line(email.subject, 200)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(reader, period, from_address)
    domain = from_address.rpartition("@")[2]
    msg["List-Id"] = f"{one_line(list_id, 60)} <{_list_host(list_id)}.{domain}>"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>, <mailto:{from_address}?subject=unsubscribe%20{reader}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Newsletter-Digest"] = f"{reader}/{period}"
    # quoted-printable keeps every line under RFC 5321's 998 octets.
    msg.set_content(email.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(email.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _list_host(list_id: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", list_id.lower()).strip("-") or "digest"


# -- backends ------------------------------------------------------------------------


class OutboxSender:
    """Writes each message as ``<outbox>/<period>/<reader>.eml``; the default backend.

    The file name is deterministic, so even a repeated send cannot produce a
    second file for the same reader and period.
    """

    name = "outbox"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, message: EmailMessage) -> Path:
        reader, _, period = str(message["X-Newsletter-Digest"]).partition("/")
        return self.folder / period / f"{reader}.eml"

    def send(self, message: EmailMessage) -> str | None:
        path = self.path_for(message)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, message.as_bytes(policy=SMTP))
        except OSError as e:
            raise DeliveryError(f"cannot write {path} ({e.strerror}); check the outbox folder") from e
        return str(message["Message-ID"])

    def close(self) -> None:
        pass


__all__ = [
    "OutboxSender",
    "Sender",
    "Tokens",
    "build_message",
    "load_secret",
    "message_id",
    "one_line",
]
