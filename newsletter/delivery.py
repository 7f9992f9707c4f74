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

import binascii
import contextlib
import hashlib
import http.client
import json
import re
import secrets
import smtplib
import ssl
import threading
import time
import urllib.error
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import itsdangerous

from .config import secret
from .errors import (
    AmbiguousDeliveryError,
    ConfigError,
    DeliveryAuthError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from .files import atomic_write
from .retry import rate_limit_wait
from .types import RenderedEmail

if TYPE_CHECKING:
    from .config import DeliverySettings

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


MIN_SECRET_CHARS = 16


def load_secret(data_dir: Path, *, create: bool = True) -> str:
    """``NEWSLETTER_SECRET``, or a random key kept (mode 0600) in the data folder.

    The key file is written atomically, so a kill can never leave an empty key
    (tokens signed with an empty key would be forgeable); a short or empty key
    is refused rather than used.  Without *create* (read-only commands) a
    missing key file is not written: a throwaway key signs nothing durable.
    """
    key = secret("NEWSLETTER_SECRET")
    source = "NEWSLETTER_SECRET"
    if key is None:
        path = data_dir / SECRET_FILE
        source = str(path)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            key = secrets.token_urlsafe(32)
            if not create:
                return key
            data_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(path, (key + "\n").encode(), mode=0o600)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read {path} ({e}); fix its permissions or set NEWSLETTER_SECRET") from e
    if len(key) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"the signing key from {source} is shorter than {MIN_SECRET_CHARS} characters; "
            "set NEWSLETTER_SECRET to a long random string (or delete the key file to make a new one)"
        )
    return key


class Tokens:
    """Signed per-reader tokens for unsubscribe (expiring) and feed (stable) URLs."""

    def __init__(self, secret: str) -> None:
        self._unsubscribe = itsdangerous.URLSafeTimedSerializer(secret, salt="newsletter.unsubscribe")
        self._feed = itsdangerous.URLSafeSerializer(secret, salt="newsletter.feed")
        self._rating = itsdangerous.URLSafeSerializer(secret, salt="newsletter.rating")
        self._digest = itsdangerous.URLSafeSerializer(secret, salt="newsletter.digest")
        self._archive = itsdangerous.URLSafeSerializer(secret, salt="newsletter.archive")
        self._manage = itsdangerous.URLSafeSerializer(secret, salt="newsletter.manage")
        self._subscribe = itsdangerous.URLSafeTimedSerializer(secret, salt="newsletter.subscribe")
        self._form = itsdangerous.URLSafeTimedSerializer(secret, salt="newsletter.form")

    def digest(self, reader: str, period: str) -> str:
        """A "view in browser" link's token: one reader's digest for one period (stable: old emails keep working)."""
        return str(self._digest.dumps([reader, period]))

    def check_digest(self, token: str) -> tuple[str, str] | None:
        try:
            value = self._digest.loads(token)
        except itsdangerous.BadData:
            return None
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
        return None

    def subscription(self, email: str, keywords: list[str]) -> str:
        """The confirmation link of a `/subscribe` request: the address and interests, signed, expiring."""
        return str(self._subscribe.dumps([email, keywords]))

    def check_subscription(self, token: str, *, max_age: int = 2 * 24 * 3600) -> tuple[str, list[str]] | None:
        try:
            value = self._subscribe.loads(token, max_age=max_age)
        except itsdangerous.BadData:
            return None
        if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], list):
            return value[0], [str(k) for k in value[1]]
        return None

    def manage(self, reader: str) -> str:
        """The token of a reader's "manage your digest" page."""
        return str(self._manage.dumps(reader))

    def check_manage(self, token: str) -> str | None:
        try:
            value = self._manage.loads(token)
        except itsdangerous.BadData:
            return None
        return value if isinstance(value, str) else None

    def archive(self, reader: str) -> str:
        """The token of a reader's archive of past digests."""
        return str(self._archive.dumps(reader))

    def check_archive(self, token: str) -> str | None:
        try:
            value = self._archive.loads(token)
        except itsdangerous.BadData:
            return None
        return value if isinstance(value, str) else None

    def rating(self, reader: str, entry_id: str, choice: str) -> str:
        """A "more like this" (``liked``) / "less like this" (``disliked``) link's token: one reader, one paper."""
        return str(self._rating.dumps([reader, entry_id, choice]))

    def check_rating(self, token: str) -> tuple[str, str, str] | None:
        """``(reader, entry id, choice)``, or None for a forged or damaged token."""
        try:
            value = self._rating.loads(token)
        except itsdangerous.BadData:
            return None
        if isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value):
            return value[0], value[1], value[2]
        return None

    def form(self, token: str) -> str:
        """A nonce for the confirmation form of the page *token* opened: POSTs need a page shown recently."""
        return str(self._form.dumps(token))

    def check_form(self, nonce: str, token: str, *, max_age: int = 3600) -> bool:
        try:
            return bool(self._form.loads(nonce, max_age=max_age) == token)
        except itsdangerous.BadData:
            return False

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

WIRE = SMTP.clone(max_line_length=998)
"""How messages are written on the wire: CRLF, and headers folded only past RFC 5322's hard limit of 998.

Python's default (78) turns a long header without spaces, such as
``List-Unsubscribe: <https://.../LONGTOKEN>``, into RFC 2047 encoded-words,
which mail providers do not decode: one-click unsubscribe would be lost.
Our headers are short enough for one line each, and stay literal.
"""


def one_line(value: str, limit: int = 200) -> str:
    """Header-safe text: CR, LF and NUL can never start a header of their own."""
    return _CRLF.sub(" ", value).strip()[:limit]


def message_id(reader: str, period: str, from_address: str) -> str:
    """Deterministic per reader and period, so a duplicate is recognisable."""
    domain = from_address.rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"{reader}\0{period}".encode()).hexdigest()[:24]
    return f"<digest.{period}.{digest}@{domain}>"


def build_notice(
    *, to: str, subject: str, text: str, html: str, from_address: str, from_name: str, now: datetime, key: str
) -> EmailMessage:
    """A one-off message that is not a digest (a subscription confirmation): text and HTML, literal headers.

    *key* makes its Message-ID (and the outbox file name) unique.
    """
    msg = EmailMessage(policy=WIRE)
    try:
        msg["From"] = Address(display_name=one_line(from_name, 80), addr_spec=from_address)
        msg["To"] = Address(addr_spec=to)
    except (ValueError, IndexError) as e:
        raise PermanentDeliveryError(f"invalid address {to!r}: {e}") from e
    msg["Subject"] = one_line(subject, 200)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(key, "notice", from_address)
    msg["X-Newsletter-Digest"] = f"{key}/notices"
    msg["Auto-Submitted"] = "auto-generated"
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(_quoted_printable(text, "plain"))
    msg.attach(_quoted_printable(html, "html"))
    return msg


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
    unsubscribe_mailto: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message with RFC 8058 one-click unsubscribe headers.

    The mailto form of List-Unsubscribe is only offered when the operator names
    an address they read (*unsubscribe_mailto*): nothing here reads a mailbox.
    """
    msg = EmailMessage(policy=WIRE)
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
    mailto = f", <mailto:{unsubscribe_mailto}?subject=unsubscribe%20{reader}>" if unsubscribe_mailto else ""
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>{mailto}"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Newsletter-Digest"] = f"{reader}/{period}"
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(_quoted_printable(email.text, "plain"))
    msg.attach(_quoted_printable(email.html, "html"))
    return msg


def _quoted_printable(body: str, subtype: str) -> EmailMessage:
    """A UTF-8 text part in quoted-printable, which keeps every line under RFC 5321's 998 octets.

    Encoded with ``binascii`` (C) rather than ``set_content(cte=...)``, whose
    pure-Python encoder took ~2 ms per digest: a third of a 10,000-reader run's CPU.
    """
    part = EmailMessage(policy=WIRE)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


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
            atomic_write(path, message.as_bytes(policy=WIRE))
        except OSError as e:
            raise DeliveryError(f"cannot write {path} ({e.strerror}); check the outbox folder") from e
        return str(message["Message-ID"])

    def close(self) -> None:
        pass


# -- retries shared by the network backends ------------------------------------------


class Pacer:
    """Retries transient failures with doubling waits; a 429 pauses every thread.

    Only :class:`TransientDeliveryError` is retried.  A rate limit sets a
    shared 'not before' time, so the other sends in flight wait too instead of
    hammering the API.  Waits longer than *max_wait* give up for this run (the
    ledger row goes back to ``planned`` and the next run tries again).
    """

    def __init__(
        self,
        retries: int,
        backoff: float,
        max_wait: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._not_before = 0.0

    def call(self, attempt: Callable[[], str | None]) -> str | None:
        for n in range(self.retries + 1):
            with self._lock:
                wait = self._not_before - self._clock()
            if wait > 0:
                self._sleep(wait)
            try:
                return attempt()
            except TransientDeliveryError as e:
                if n == self.retries:
                    raise
                delay = self.backoff * (2**n)
                if e.retry_after is not None:
                    if e.retry_after > self.max_wait:
                        raise TransientDeliveryError(
                            f"{e}; the rate limit resets in {e.retry_after:.0f} s, longer than "
                            f"delivery.max_wait ({self.max_wait:.0f} s): the next run sends it",
                            e.retry_after,
                        ) from e
                    delay = e.retry_after
                    with self._lock:
                        self._not_before = max(self._not_before, self._clock() + delay)
                    continue
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def _parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and HTML bodies of a message built by :func:`build_message`."""
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    text = plain.get_content() if isinstance(plain, EmailMessage) else ""
    markup = html.get_content() if isinstance(html, EmailMessage) else ""
    return str(text), str(markup)


# -- SendGrid ------------------------------------------------------------------------

_SENDGRID_RESERVED = {
    "to", "from", "subject", "reply-to", "content-type", "content-transfer-encoding",
    "mime-version", "dkim-signature", "date", "cc", "bcc", "x-sg-id", "x-sg-eid",
    "received", "return-path", "sender", "x-newsletter-digest",
}  # fmt: skip


def sendgrid_payload(message: EmailMessage, *, sandbox: bool) -> dict[str, Any]:
    """The v3 ``/mail/send`` JSON for *message*.

    SendGrid's subscription tracking is off: it would add its own
    List-Unsubscribe, and we manage unsubscribes ourselves.  ``custom_args``
    carries the digest id so webhook events can be matched to the ledger.
    """
    sender = message["From"].addresses[0]
    to = message["To"].addresses[0]
    text, html = _parts(message)
    headers = {k: str(v) for k, v in message.items() if k.lower() not in _SENDGRID_RESERVED}
    payload: dict[str, Any] = {
        "personalizations": [{"to": [_sg_address(to)]}],
        "from": _sg_address(sender),
        "subject": str(message["Subject"]),
        "content": [{"type": "text/plain", "value": text}, {"type": "text/html", "value": html}],
        "headers": headers,
        "custom_args": {"digest": str(message["X-Newsletter-Digest"])},
        "tracking_settings": {"subscription_tracking": {"enable": False}},
        "mail_settings": {"sandbox_mode": {"enable": sandbox}},
    }
    if message["Reply-To"]:
        payload["reply_to"] = _sg_address(message["Reply-To"].addresses[0])
    return payload


def _sg_address(a: Address) -> dict[str, str]:
    return {"email": a.addr_spec, "name": a.display_name} if a.display_name else {"email": a.addr_spec}


class SendGridSender:
    """SendGrid's v3 API through the official ``sendgrid`` client.

    SendGrid has no idempotency key, so every way a request can end is sorted
    into one of three kinds: permanent (400/401/403/413: recorded, not
    retried), transient (429, 5xx, refused connection: waited for and retried
    here, then left for the next run), and ambiguous (the request went out but
    no status came back: recorded as uncertain, never resent).
    """

    name = "sendgrid"

    def __init__(self, api_key: str, *, host: str, timeout: float, sandbox: bool, pacer: Pacer) -> None:
        self._api_key = api_key
        self._host = host
        self._timeout = timeout
        self._sandbox = sandbox
        self._pacer = pacer
        self._local = threading.local()

    @classmethod
    def from_settings(cls, d: DeliverySettings) -> SendGridSender:
        from .config import secret

        key = secret("SENDGRID_API_KEY")
        if key is None:
            raise ConfigError(
                'delivery.backend is "sendgrid" but SENDGRID_API_KEY is not set; export it (or use backend = "outbox")'
            )
        return cls(
            key,
            host=d.sendgrid_host,
            timeout=d.timeout,
            sandbox=d.sendgrid_sandbox,
            pacer=Pacer(d.retries, d.backoff, d.max_wait),
        )

    def _client(self) -> Any:
        """One client per thread: the official client keeps request state on itself."""
        client = getattr(self._local, "client", None)
        if client is None:
            import sendgrid

            client = sendgrid.SendGridAPIClient(api_key=self._api_key, host=self._host)
            client.client.timeout = self._timeout  # its default is None: a hung API would block forever
            self._local.client = client
        return client

    def send(self, message: EmailMessage) -> str | None:
        payload = sendgrid_payload(message, sandbox=self._sandbox)
        return self._pacer.call(lambda: self._send_once(payload))

    def _send_once(self, payload: dict[str, Any]) -> str | None:
        from python_http_client import exceptions as sg_errors

        try:
            response = self._client().send(payload)
        except sg_errors.HTTPError as e:
            raise _sendgrid_error(e.status_code, e.headers, e.body) from e
        except urllib.error.URLError as e:
            # urllib wraps errors raised while connecting or writing the
            # request: the body never reached the server whole.
            raise TransientDeliveryError(f"SendGrid not reachable at {self._host} ({e.reason}); will retry") from e
        except (http.client.HTTPException, OSError) as e:
            # Raised while waiting for the answer (dropped connection, read
            # timeout): the request was sent and may have been accepted.
            raise AmbiguousDeliveryError(
                f"SendGrid dropped the connection after the request was sent ({type(e).__name__}: {e}); "
                "it may have been delivered, so it is recorded as uncertain and not resent"
            ) from e
        status = int(response.status_code)
        if status == 202 or status == 200:
            headers = response.headers
            found = headers.get("X-Message-Id") if headers is not None else None
            return str(found) if found else None
        raise _sendgrid_error(status, response.headers, response.body)

    def close(self) -> None:
        pass  # the official client opens a connection per request: nothing to close


def _sendgrid_error(status: int, headers: Any, body: Any) -> DeliveryError:
    """Our error kind for one SendGrid status (see REFERENCE.md, SendGrid v3)."""
    detail = _sendgrid_detail(body)
    if status == 429:
        return TransientDeliveryError(f"SendGrid rate limit (429){detail}", rate_limit_wait(headers, datetime.now(UTC)))
    if status in (401, 403):
        return DeliveryAuthError(
            f"SendGrid refused the API key ({status}){detail}; check SENDGRID_API_KEY and its Mail Send permission"
        )
    if status == 413:
        return PermanentDeliveryError(f"SendGrid says the message is too large (413){detail}; lower max_items")
    if status == 504:
        return AmbiguousDeliveryError(f"SendGrid gateway timeout (504){detail}: it may have been delivered")
    if status >= 500:
        return TransientDeliveryError(f"SendGrid server error ({status}){detail}; will retry")
    return PermanentDeliveryError(f"SendGrid rejected the message ({status}){detail}")


def _sendgrid_detail(body: Any) -> str:
    """The first error message of a JSON error body; HTML bodies (413) are not echoed."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        errors = json.loads(raw)["errors"]
        message = str(errors[0].get("message", ""))
        field = errors[0].get("field")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""
    return f": {one_line(message, 200)}" + (f" (field {field})" if field else "")


# -- SMTP ----------------------------------------------------------------------------


class SmtpSender:
    """Any SMTP server via :mod:`smtplib`: STARTTLS, implicit TLS or plain.

    Each thread keeps one connection and checks it with NOOP before a send.
    A 4xx answer is transient, a 5xx permanent; a connection lost after the
    DATA was handed over is ambiguous (the server may have queued it).
    """

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: str,
        username: str | None,
        password: str | None,
        timeout: float,
        pacer: Pacer,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self._pacer = pacer
        self._context = context or ssl.create_default_context()
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._all_lock = threading.Lock()

    @classmethod
    def from_settings(cls, d: DeliverySettings) -> SmtpSender:
        from .config import secret

        password = secret("SMTP_PASSWORD")
        if d.smtp_username and password is None:
            raise ConfigError("delivery.smtp_username is set but SMTP_PASSWORD is not; export it")
        return cls(
            d.smtp_host,
            d.smtp_port,
            security=d.smtp_security,
            username=d.smtp_username,
            password=password,
            timeout=d.timeout,
            pacer=Pacer(d.retries, d.backoff, d.max_wait),
        )

    def _connect(self) -> smtplib.SMTP:
        where = f"{self.host}:{self.port}"
        try:
            conn: smtplib.SMTP
            if self.security == "tls":
                conn = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context)
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.security == "starttls":
                    conn.starttls(context=self._context)
            if self.username:
                conn.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as e:
            raise DeliveryAuthError(
                f"SMTP server {where} refused the login ({e.smtp_code}); check smtp_username and SMTP_PASSWORD"
            ) from e
        except smtplib.SMTPNotSupportedError as e:
            raise PermanentDeliveryError(
                f"SMTP server {where} does not support {self.security} ({e}); set delivery.smtp_security"
            ) from e
        except (smtplib.SMTPException, OSError) as e:
            raise TransientDeliveryError(f"cannot connect to SMTP server {where} ({e}); will retry") from e
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                if conn.noop()[0] == 250:
                    return conn
            except (smtplib.SMTPException, OSError):
                pass
            self._drop(conn)
        conn = self._connect()
        self._local.conn = conn
        return conn

    def _drop(self, conn: smtplib.SMTP) -> None:
        self._local.conn = None
        with self._all_lock:
            if conn in self._all:
                self._all.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def send(self, message: EmailMessage) -> str | None:
        return self._pacer.call(lambda: self._send_once(message))

    def _send_once(self, message: EmailMessage) -> str | None:
        conn = self._connection()
        try:
            refused = conn.send_message(message)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            raise _smtp_error(code, text, "refused the recipient") from e
        except smtplib.SMTPSenderRefused as e:
            raise _smtp_error(e.smtp_code, e.smtp_error, "refused the sender address") from e
        except smtplib.SMTPDataError as e:
            raise _smtp_error(e.smtp_code, e.smtp_error, "refused the message") from e
        except (smtplib.SMTPException, OSError) as e:
            self._drop(conn)
            raise AmbiguousDeliveryError(
                f"the SMTP connection failed during the send ({e}); it may have been queued, so it is "
                "recorded as uncertain and not resent"
            ) from e
        if refused:
            raise PermanentDeliveryError(f"SMTP server refused {', '.join(refused)}")
        return str(message["Message-ID"])

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


def _smtp_error(code: int, text: bytes | str, what: str) -> DeliveryError:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    message = f"SMTP server {what} ({code} {one_line(said, 200)})"
    if 400 <= code < 500:
        return TransientDeliveryError(message + "; will retry")
    return PermanentDeliveryError(message)


__all__ = [
    "OutboxSender",
    "Pacer",
    "SendGridSender",
    "Sender",
    "SmtpSender",
    "Tokens",
    "build_message",
    "load_secret",
    "message_id",
    "one_line",
]
