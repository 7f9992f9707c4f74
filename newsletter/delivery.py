"""Delivery: rendered digests into MIME messages, handed to one mail backend.

Every backend implements :class:`Sender`: take an
:class:`~newsletter.types.Outgoing` message, serialise it its own way (MIME
for SMTP and the outbox, the v3 JSON for SendGrid), hand it over, return a
:class:`~newsletter.types.Receipt`, or raise one of the :class:`~newsletter.errors.DeliveryError`
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
import json
import re
import secrets
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

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
from .types import Outgoing, Receipt, RenderedEmail

if TYPE_CHECKING:
    from .config import DeliverySettings

SECRET_FILE = "secret.key"
UNSUBSCRIBE_MAX_AGE = 400 * 24 * 3600
"""Unsubscribe links stay valid for over a year: people act on old emails."""


class Sender(Protocol):
    """One mail backend."""

    name: str

    def send(self, message: Outgoing) -> Receipt:
        """Hand *message* over; the receipt carries the provider's message id (and the outbox file)."""
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


def _checked(address: str, name: str, what: str) -> tuple[str, str]:
    """*address* and *name* made header-safe; an address email's parser refuses is a permanent failure."""
    name = one_line(name, 80)
    try:
        Address(display_name=name, addr_spec=address)
    except (ValueError, IndexError) as e:
        raise PermanentDeliveryError(f"invalid address for {what}: {e}") from e
    return address, name


def build_notice(
    *, to: str, subject: str, text: str, html: str, from_address: str, from_name: str, now: datetime, key: str
) -> Outgoing:
    """A one-off message that is not a digest (a subscription confirmation): text and HTML, literal headers.

    *key* makes its Message-ID (and the outbox file name) unique.
    """
    sender, sender_name = _checked(from_address, from_name, "the sender")
    to, _ = _checked(to, "", repr(to))
    return Outgoing(
        reader=key,
        period="notices",
        message_id=message_id(key, "notice", from_address),
        date=now,
        sender=sender,
        sender_name=sender_name,
        to=to,
        to_name="",
        subject=one_line(subject, 200),
        text=text,
        html=html,
        headers=(("Auto-Submitted", "auto-generated"),),
    )


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
) -> Outgoing:
    """A digest with RFC 8058 one-click unsubscribe headers, for any backend.

    The mailto form of List-Unsubscribe is only offered when the operator names
    an address they read (*unsubscribe_mailto*): nothing here reads a mailbox.
    """
    sender, sender_name = _checked(from_address, from_name, "the sender")
    to, to_name = _checked(email.to, email.to_name, reader)
    if reply_to:
        reply_to, _ = _checked(reply_to, "", "delivery.reply_to")
    domain = from_address.rpartition("@")[2]
    mailto = f", <mailto:{unsubscribe_mailto}?subject=unsubscribe%20{reader}>" if unsubscribe_mailto else ""
    return Outgoing(
        reader=reader,
        period=period,
        message_id=message_id(reader, period, from_address),
        date=now,
        sender=sender,
        sender_name=sender_name,
        to=to,
        to_name=to_name,
        subject=one_line(email.subject, 200),
        text=email.text,
        html=email.html,
        reply_to=reply_to or None,
        headers=(
            ("List-Id", f"{one_line(list_id, 60)} <{_list_host(list_id)}.{domain}>"),
            ("List-Unsubscribe", one_line(f"<{unsubscribe_url}>{mailto}", 990)),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ),
    )


def to_mime(message: Outgoing) -> EmailMessage:
    """The message as multipart/alternative MIME with literal headers (the outbox and SMTP backends)."""
    msg = EmailMessage(policy=WIRE)
    msg["From"] = Address(display_name=message.sender_name, addr_spec=message.sender)
    msg["To"] = Address(display_name=message.to_name, addr_spec=message.to)
    if message.reply_to:
        msg["Reply-To"] = message.reply_to
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(message.date)
    msg["Message-ID"] = message.message_id
    for name, value in message.headers:
        msg[name] = value
    msg["X-Newsletter-Digest"] = message.key
    msg["MIME-Version"] = "1.0"
    msg.make_alternative()
    msg.attach(_quoted_printable(message.text, "plain"))
    msg.attach(_quoted_printable(message.html, "html"))
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

    def send(self, message: Outgoing) -> Receipt:
        path = self.folder / message.period / f"{message.reader}.eml"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, to_mime(message).as_bytes(policy=WIRE))
        except OSError as e:
            raise DeliveryError(f"cannot write {path} ({e.strerror}); check the outbox folder") from e
        return Receipt(message.message_id, path)

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


# -- SendGrid ------------------------------------------------------------------------


def sendgrid_payload(message: Outgoing, *, sandbox: bool) -> dict[str, Any]:
    """The v3 ``/mail/send`` JSON for *message*, built with the ``sendgrid`` package's helpers.

    SendGrid's subscription tracking is off: it would add its own
    List-Unsubscribe, and we manage unsubscribes ourselves.  ``custom_args``
    carries the digest id so webhook events can be matched to the ledger.
    """
    from sendgrid.helpers import mail as sg

    mail = sg.Mail(
        from_email=sg.From(message.sender, message.sender_name or None),
        to_emails=sg.To(message.to, message.to_name or None),
        subject=message.subject,
    )
    mail.add_content(sg.Content("text/plain", message.text))
    mail.add_content(sg.Content("text/html", message.html))
    for name, value in (("Message-ID", message.message_id), *message.headers):  # SendGrid sets Date itself
        mail.add_header(sg.Header(name, value))
    if message.reply_to:
        mail.reply_to = sg.ReplyTo(message.reply_to)
    mail.add_custom_arg(sg.CustomArg("digest", message.key))
    mail.tracking_settings = sg.TrackingSettings(subscription_tracking=sg.SubscriptionTracking(False))
    mail.mail_settings = sg.MailSettings(sandbox_mode=sg.SandBoxMode(sandbox))
    return cast(dict[str, Any], mail.get())


class SendGridSender:
    """SendGrid's v3 API: payloads from the ``sendgrid`` helpers, posted over one pooled keep-alive client.

    The official client opens a new connection (a TLS handshake against the
    real API) per request and keeps request state on itself.  One
    :class:`urllib3.PoolManager`, shared by the send threads, keeps up to
    *connections* connections open instead, and drops one the server closed
    before reusing it.  urllib3 rather than httpx here: measured on loopback
    with 60 KB bodies, httpx's pool cost ~1.4 ms of CPU per request against
    urllib3's ~0.7 ms, and the send stage is CPU-bound.

    SendGrid has no idempotency key, so every way a request can end is sorted
    into one of three kinds: permanent (400/401/403/413: recorded, not
    retried), transient (429, 5xx, a connection that could not be opened:
    waited for and retried here, then left for the next run), and ambiguous
    (the connection broke after the request started, or no status came back:
    recorded as uncertain, never resent).
    """

    name = "sendgrid"

    def __init__(
        self, api_key: str, *, host: str, timeout: float, sandbox: bool, pacer: Pacer, connections: int = 64
    ) -> None:
        import urllib3

        self._host = host
        self._sandbox = sandbox
        self._pacer = pacer
        self._url = host.rstrip("/") + "/v3/mail/send"
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": "newsletter",
        }
        self._http = urllib3.PoolManager(
            num_pools=2,
            maxsize=connections,
            block=False,
            retries=False,  # retries are ours (Pacer): only what cannot have been accepted is tried again
            timeout=urllib3.Timeout(connect=timeout, read=timeout),  # a hung API must not block a send forever
        )

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
            connections=d.concurrency,
        )

    def send(self, message: Outgoing) -> Receipt:
        body = json.dumps(sendgrid_payload(message, sandbox=self._sandbox)).encode("utf-8")
        return Receipt(self._pacer.call(lambda: self._send_once(body)))

    def _send_once(self, body: bytes) -> str | None:
        from urllib3 import exceptions as http_errors

        try:
            response = self._http.request("POST", self._url, body=body, headers=self._headers, redirect=False)
        except (http_errors.NewConnectionError, http_errors.ConnectTimeoutError, http_errors.NameResolutionError) as e:
            # The connection was never opened: the request cannot have reached SendGrid.
            raise TransientDeliveryError(f"SendGrid not reachable at {self._host} ({e}); will retry") from e
        except http_errors.HTTPError as e:
            # The connection broke while the request was written or its answer
            # awaited (reset, read timeout): it may have been accepted.
            raise AmbiguousDeliveryError(
                f"SendGrid dropped the connection after the request was sent ({type(e).__name__}: {e}); "
                "it may have been delivered, so it is recorded as uncertain and not resent"
            ) from e
        status = response.status
        if status == 202 or status == 200:
            found = response.headers.get("X-Message-Id")
            return str(found) if found else None
        raise _sendgrid_error(status, response.headers, response.data)

    def close(self) -> None:
        self._http.clear()


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

    def send(self, message: Outgoing) -> Receipt:
        mime = to_mime(message)
        return Receipt(self._pacer.call(lambda: self._send_once(mime)))

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
    "build_notice",
    "load_secret",
    "message_id",
    "one_line",
    "sendgrid_payload",
    "to_mime",
]
