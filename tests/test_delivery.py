"""Backends against real local servers: a SendGrid-compatible HTTP server and aiosmtpd."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from sendgrid_server import API_KEY, SendGridServer, accepted

from newsletter.config import Settings
from newsletter.delivery import Pacer, SendGridSender, SmtpSender, build_message, to_mime
from newsletter.errors import (
    AmbiguousDeliveryError,
    DeliveryAuthError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from newsletter.pipeline import App, make_app
from newsletter.types import DeliveryStatus, Outgoing, RenderedEmail

NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
FAST = Pacer(retries=3, backoff=0.01, max_wait=5)


def message(reader: str = "ada", *, name: str = "Ada", subject: str = "Your digest", text: str = "hello") -> Outgoing:
    email = RenderedEmail(
        to=f"{reader}@example.org", to_name=name, subject=subject, preheader="", html=f"<p>{text}</p>", text=text
    )
    return build_message(
        email,
        reader=reader,
        period="2026-11-23",
        from_address="digest@example.org",
        from_name="Digest",
        unsubscribe_url=f"https://news.example.org/unsubscribe/tok-{reader}",
        list_id="Paper digest",
        now=NOW,
    )


@pytest.fixture
def sg(tmp_path: Path) -> Iterator[SendGridServer]:
    with SendGridServer(tmp_path / "accepted.sqlite3") as server:
        yield server


def sender(server: SendGridServer, *, timeout: float = 5.0, key: str = API_KEY, pacer: Pacer = FAST) -> SendGridSender:
    return SendGridSender(key, host=server.host, timeout=timeout, sandbox=False, pacer=pacer)


# -- SendGrid: one status per test ---------------------------------------------------------


def test_202_returns_the_message_id_and_sends_our_headers(sg: SendGridServer) -> None:
    msg_id = sender(sg).send(message()).message_id
    rows = accepted(sg.db_path)
    assert msg_id and len(rows) == 1 and rows[0][:2] == ("ada/2026-11-23", "ada@example.org")
    body = sg.bodies[0]
    assert body["tracking_settings"]["subscription_tracking"]["enable"] is False
    assert body["mail_settings"]["sandbox_mode"]["enable"] is False
    assert body["custom_args"] == {"digest": "ada/2026-11-23"}
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://news.example.org/unsubscribe/tok-ada" in body["headers"]["List-Unsubscribe"]
    assert {c["type"] for c in body["content"]} == {"text/plain", "text/html"}
    assert not {"To", "From", "Subject", "Content-Type"} & set(body["headers"]), "reserved headers must not be sent"


def test_429_waits_for_the_reset_then_sends_once(sg: SendGridServer) -> None:
    sg.push("429")
    assert sender(sg).send(message()).message_id
    assert sg.requests == 2 and len(accepted(sg.db_path)) == 1


@pytest.mark.parametrize("fault", ["500", "502"])
def test_5xx_backs_off_and_retries(sg: SendGridServer, fault: str) -> None:
    sg.push(fault, fault)
    assert sender(sg).send(message()).message_id
    assert sg.requests == 3 and len(accepted(sg.db_path)) == 1


def test_5xx_every_time_is_transient_after_the_retries(sg: SendGridServer) -> None:
    sg.push(*["500"] * 10)
    with pytest.raises(TransientDeliveryError, match="500"):
        sender(sg, pacer=Pacer(retries=2, backoff=0.01, max_wait=5)).send(message())
    assert sg.requests == 3 and accepted(sg.db_path) == []


def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens
    gone = SendGridSender(API_KEY, host=f"http://127.0.0.1:{port}", timeout=2, sandbox=False, pacer=FAST)
    with pytest.raises(TransientDeliveryError, match="not reachable"):
        gone.send(message())


def test_a_connection_dropped_after_the_request_is_ambiguous_and_not_retried(sg: SendGridServer) -> None:
    sg.push("drop-after")
    with pytest.raises(AmbiguousDeliveryError, match="uncertain"):
        sender(sg).send(message())
    assert sg.requests == 1, "an ambiguous send must never be retried"


def test_a_connection_dropped_before_the_request_never_sends_twice(sg: SendGridServer) -> None:
    sg.push("drop-before")
    try:
        sender(sg).send(message())
    except AmbiguousDeliveryError:
        assert sg.requests == 1  # the client cannot tell: recorded as uncertain, not retried
    assert len(accepted(sg.db_path)) <= 1


def test_a_slow_answer_past_the_timeout_is_ambiguous(tmp_path: Path) -> None:
    with SendGridServer(tmp_path / "a.sqlite3", latency=1.0) as slow:
        with pytest.raises(AmbiguousDeliveryError):
            sender(slow, timeout=0.2).send(message())
        assert slow.requests == 1


def test_413_html_body_is_permanent_and_not_echoed(sg: SendGridServer) -> None:
    sg.push("413")
    with pytest.raises(PermanentDeliveryError, match="413") as info:
        sender(sg).send(message())
    assert "<html" not in str(info.value)
    assert sg.requests == 1


def test_400_is_permanent_with_the_field(sg: SendGridServer) -> None:
    sg.push("400")
    with pytest.raises(PermanentDeliveryError, match=r"valid address.*personalizations\.0\.to\.0\.email"):
        sender(sg).send(message())
    assert sg.requests == 1


@pytest.mark.parametrize("fault", ["401", "403"])
def test_auth_refusals_are_not_retried(sg: SendGridServer, fault: str) -> None:
    sg.push(fault)
    with pytest.raises(DeliveryAuthError, match="SENDGRID_API_KEY"):
        sender(sg).send(message())
    assert sg.requests == 1


def test_a_wrong_key_is_an_auth_error(sg: SendGridServer) -> None:
    with pytest.raises(DeliveryAuthError):
        sender(sg, key="SG.wrong").send(message())


def test_sandbox_mode_is_sent_and_a_200_counts(sg: SendGridServer) -> None:
    sg.push("sandbox")
    s = SendGridSender(API_KEY, host=sg.host, timeout=5, sandbox=True, pacer=FAST)
    assert s.send(message()).message_id is None
    assert sg.bodies[0]["mail_settings"]["sandbox_mode"]["enable"] is True


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"name": "Eve\r\nBcc: victim@example.com"},
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "x\nX-Evil: 1"},
    ],
)
def test_crlf_in_names_and_subjects_cannot_inject_headers(field: dict[str, str]) -> None:
    raw = to_mime(message(**field)).as_bytes()
    parsed = message_from_bytes(raw, policy=default_policy)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert b"\r\nBcc:" not in raw and b"\nBcc:" not in raw and b"\nX-Evil" not in raw


def test_header_injection_does_not_reach_sendgrid(sg: SendGridServer) -> None:
    sender(sg).send(message(name="Eve\r\nBcc: victim@example.com", subject="New\nBcc: x@example.com"))
    body = sg.bodies[0]
    assert "\n" not in body["subject"] and "\r" not in body["subject"]
    assert "\n" not in body["personalizations"][0]["to"][0].get("name", "")
    assert not any(k.lower() == "bcc" for k in body["headers"])


# -- SMTP against aiosmtpd ---------------------------------------------------------------------


class Inbox:
    def __init__(self, refuse: str | None = None) -> None:
        self.messages: list[bytes] = []
        self.refuse = refuse

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str, options: Any) -> str:
        if self.refuse and address.startswith("bounce"):
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(envelope.content)
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) from a throwaway self-signed cert."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(d / "cert.pem", d / "key.pem")
    client = ssl.create_default_context(cafile=str(d / "cert.pem"))
    return server, client


def _auth(server: SMTPProtocol, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == b"digest" and data.password == b"s3cret"
    # handled=False: aiosmtpd itself answers "535"; its default (True) sends nothing and the client waits.
    return AuthResult(success=ok, handled=False)


def smtp(port: int, security: str, client_ctx: ssl.SSLContext | None = None, **kw: Any) -> SmtpSender:
    return SmtpSender(
        "127.0.0.1", port, security=security, timeout=5, pacer=FAST, context=client_ctx,
        username=kw.get("username"), password=kw.get("password"),
    )  # fmt: skip


def test_smtp_plain_delivers_with_no_line_over_998_octets() -> None:
    inbox, port = Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        long_text = "quantization-" * 2000 + " end"  # one 26 KB 'line' of abstract
        s = smtp(port, "none")
        assert s.send(message(text=long_text)).message_id == message().message_id
        s.send(message("grace"))
        s.close()
    finally:
        ctl.stop()
    assert len(inbox.messages) == 2
    assert max(len(line) for line in inbox.messages[0].split(b"\r\n")) <= 998
    parsed = message_from_bytes(inbox.messages[0], policy=default_policy)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = parsed.get_body(("plain",))
    assert body is not None and long_text in body.get_content()  # type: ignore[attr-defined]


LONG_TOKEN = "tok-" + "x" * 150  # as long as a real signed token and its URL: far past 78 columns


def long_link_message() -> Outgoing:
    email = RenderedEmail(
        to="ada@example.org",
        to_name="Ada",
        subject="12 new papers for you: post-training quantization, FP8 training, mixture of experts (Mon 23 Nov)",
        preheader="",
        html="<p>hello</p>",
        text="hello",
    )
    return build_message(
        email,
        reader="ada",
        period="2026-11-23",
        from_address="digest@example.org",
        from_name="Digest",
        unsubscribe_url=f"https://news.example.org/unsubscribe/{LONG_TOKEN}",
        unsubscribe_mailto="unsubscribe@example.org",
        list_id="Paper digest",
        now=NOW,
    )


def assert_literal_headers(raw: bytes) -> None:
    """What a strict reader (a mail provider's RFC 8058 parser) sees: the raw header lines, not a parser's view."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    expected = (
        f"List-Unsubscribe: <https://news.example.org/unsubscribe/{LONG_TOKEN}>, "
        "<mailto:unsubscribe@example.org?subject=unsubscribe%20ada>"
    )
    assert expected in lines, head
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert "MIME-Version: 1.0" in lines
    subject = next(line for line in lines if line.startswith("Subject:"))
    assert (
        subject
        == "Subject: 12 new papers for you: post-training quantization, FP8 training, mixture of experts (Mon 23 Nov)"
    )
    assert "=?" not in head, "no header is RFC 2047-encoded"
    assert all(len(line) <= 998 for line in lines)


def test_outbox_file_headers_are_literal_on_the_wire(tmp_path: Path) -> None:
    from newsletter.delivery import OutboxSender

    outbox = OutboxSender(tmp_path)
    outbox.send(long_link_message())
    assert_literal_headers((tmp_path / "2026-11-23" / "ada.eml").read_bytes())


def test_smtp_headers_are_literal_on_the_wire() -> None:
    inbox, port = Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        s = smtp(port, "none")
        s.send(long_link_message())
        s.close()
    finally:
        ctl.stop()
    (raw,) = inbox.messages
    assert_literal_headers(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


@contextlib.contextmanager
def starttls_login_server(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[tuple[Inbox, int]]:
    """aiosmtpd requiring STARTTLS, then a login as digest / s3cret."""
    inbox, port = Inbox(), _free_port()
    ctl = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=tls[0], require_starttls=True,
        authenticator=_auth, auth_require_tls=True,
    )  # fmt: skip
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


def test_smtp_starttls_with_login(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    with starttls_login_server(tls) as (inbox, port):
        smtp(port, "starttls", tls[1], username="digest", password="s3cret").send(message())
    assert len(inbox.messages) == 1


def test_smtp_wrong_password_is_an_auth_error_not_a_retry(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    refused = pytest.raises(DeliveryAuthError, match=r"refused the login \(535\); check smtp_username")
    with starttls_login_server(tls) as (inbox, port), refused:
        smtp(port, "starttls", tls[1], username="digest", password="wrong").send(message())
    assert inbox.messages == []


def test_smtp_implicit_tls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    inbox, port = Inbox(), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=tls[0])
    ctl.start()
    try:
        smtp(port, "tls", tls[1]).send(message())
    finally:
        ctl.stop()
    assert len(inbox.messages) == 1


@pytest.mark.parametrize(
    ("answer", "kind"),
    [("550 5.1.1 no such user", PermanentDeliveryError), ("451 4.3.0 try later", TransientDeliveryError)],
)
def test_smtp_refused_recipient(answer: str, kind: type[Exception]) -> None:
    inbox, port = Inbox(refuse=answer), _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        with pytest.raises(kind, match=answer[:3]):
            smtp(port, "none").send(message("bounce"))
    finally:
        ctl.stop()
    assert inbox.messages == []


def test_smtp_nobody_listening_is_transient() -> None:
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        smtp(_free_port(), "none").send(message())


# -- the pipeline with the SendGrid backend -------------------------------------------------


def sendgrid_app(settings: Settings, server: SendGridServer, monkeypatch: pytest.MonkeyPatch, **delivery: Any) -> App:
    monkeypatch.setenv("SENDGRID_API_KEY", API_KEY)
    d = settings.delivery.model_copy(
        update={"backend": "sendgrid", "sendgrid_host": server.host, "backoff": 0.01, "timeout": 5, **delivery}
    )
    app = make_app(settings.model_copy(update={"delivery": d}))
    app.fetch()
    return app


def test_run_with_sendgrid_delivers_every_due_digest_once(
    settings: Settings, sg: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sendgrid_app(settings, sg, monkeypatch, concurrency=4) as app:
        first = app.deliver(force=True)
        again = app.deliver(force=True)
        rows = app.ledger.rows(status=DeliveryStatus.SENT)
    sent = [r.reader for r in first if r.status is DeliveryStatus.SENT]
    expected = sorted(f"{r.reader}/{r.period}" for r in first if r.status is DeliveryStatus.SENT)
    assert sent and sorted(d for d, _, _ in accepted(sg.db_path)) == expected
    assert all(r.already for r in again if r.reader in sent)
    assert all(r.message_id for r in rows), "the X-Message-Id is recorded"


def test_an_ambiguous_send_is_recorded_uncertain_and_never_resent(
    settings: Settings, sg: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sg.push("drop-after")
    with sendgrid_app(settings, sg, monkeypatch, concurrency=1) as app:
        first = app.deliver(force=True)
        app.deliver(force=True)
        uncertain = app.ledger.rows(status=DeliveryStatus.UNCERTAIN)
    assert [r.status for r in first].count(DeliveryStatus.UNCERTAIN) == 1
    assert len(uncertain) == 1
    digests = [d for d, _, _ in accepted(sg.db_path)]
    assert len(digests) == len(set(digests)), "nobody got two digests"


@pytest.mark.slow
def test_auth_failures_in_a_row_stop_the_run(
    settings: Settings, sg: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sg.push("401", "401", "401", "401")
    with sendgrid_app(settings, sg, monkeypatch, concurrency=1, auth_failure_limit=2) as app:
        results = app.deliver(force=True)
        planned = app.ledger.rows(status=DeliveryStatus.PLANNED)
    statuses = [r.status for r in results if not r.detail or "matched" not in r.detail]
    assert statuses.count(DeliveryStatus.FAILED) == 2, results
    assert sg.requests == 2, "no request after the limit"
    assert any(r.status is DeliveryStatus.PLANNED and "credential" in (r.detail or "") for r in results)
    # A refused key says nothing about the readers: their periods are free for the run after the fix.
    assert len(planned) == 2 and all("401" in (p.error or "") or "key" in (p.error or "") for p in planned)
    sg.faults.clear()  # the operator fixed the key
    with sendgrid_app(settings, sg, monkeypatch, concurrency=1, auth_failure_limit=2) as app:
        again = app.deliver(force=True)
    assert [r.status for r in again].count(DeliveryStatus.SENT) == 3
    digests = [d for d, _, _ in accepted(sg.db_path)]
    assert len(digests) == len(set(digests)) == 3


def test_stop_event_starts_no_new_send(settings: Settings, sg: SendGridServer, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    stop.set()
    with sendgrid_app(settings, sg, monkeypatch) as app:
        results = app.deliver(force=True, stop=stop)
        assert app.ledger.rows(status=DeliveryStatus.SENDING) == []
    assert sg.requests == 0
    assert all(r.status in (DeliveryStatus.PLANNED, DeliveryStatus.SKIPPED) for r in results)


@pytest.mark.slow
def test_a_reader_paused_during_the_run_gets_nothing(
    settings: Settings, sg: SendGridServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sendgrid_app(settings, sg, monkeypatch) as app:
        readers = app.load_profiles().profiles  # loaded unpaused at the start of the run
        from newsletter.web import pause

        pause(app, "ada")  # ... then ada unsubscribes (what POST /unsubscribe does)
        results = {r.reader: r for r in app.deliver(force=True, readers=readers)}
    assert results["ada"].status is DeliveryStatus.SKIPPED
    assert all(not d.startswith("ada/") for d, _, _ in accepted(sg.db_path))


def test_list_unsubscribe_offers_a_mailto_only_when_someone_reads_it() -> None:
    assert dict(message().headers)["List-Unsubscribe"] == "<https://news.example.org/unsubscribe/tok-ada>"
    email = RenderedEmail(to="ada@example.org", to_name="Ada", subject="s", preheader="", html="<p>x</p>", text="x")
    with_mailto = build_message(
        email,
        reader="ada",
        period="2026-11-23",
        from_address="digest@example.org",
        from_name="Digest",
        unsubscribe_url="https://news.example.org/unsubscribe/tok-ada",
        list_id="Paper digest",
        now=NOW,
        unsubscribe_mailto="unsubscribe@example.org",
    )
    assert dict(with_mailto.headers)["List-Unsubscribe"] == (
        "<https://news.example.org/unsubscribe/tok-ada>, <mailto:unsubscribe@example.org?subject=unsubscribe%20ada>"
    )


def test_the_signing_key_is_created_private_and_a_torn_one_is_refused(tmp_path: Path, no_secret_env: None) -> None:
    from newsletter.delivery import SECRET_FILE, load_secret
    from newsletter.errors import ConfigError

    key = load_secret(tmp_path)
    assert len(key) >= 32 and (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    assert load_secret(tmp_path) == key
    (tmp_path / SECRET_FILE).write_text("")  # a kill mid-write in an older version, or a stray edit
    with pytest.raises(ConfigError, match="shorter than 16 characters"):
        load_secret(tmp_path)
