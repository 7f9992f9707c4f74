"""The HTTP side of ``newsletter serve``: one-click unsubscribe, personal feeds, health.

* ``POST /unsubscribe/{token}``: RFC 8058 one-click.  Answers 200 without a
  redirect, needs no cookie, and is idempotent.  The reader is paused in their
  profile file (``paused = true``, comments kept) and in the ledger, so a run
  already under way sends them nothing more.
* ``GET /unsubscribe/{token}``: a confirmation page naming the digest and the
  address, whose button POSTs, with "pause for a week" beside it.  It changes
  nothing, because link scanners follow every GET (HEAD likewise).
* ``GET`` / ``POST /pause/{token}``: pause for a week (``paused_until`` in the
  profile file); mail resumes by itself.
* ``GET`` / ``POST /rate/{token}``: "more like this" / "less like this" on one
  paper (:mod:`newsletter.ratings`); only the page's button records it.
* ``GET /feeds/{token}.xml`` / ``.atom``: the reader's RSS or Atom feed, with
  an ETag so feed readers polling every few minutes get a 304.
* ``GET /healthz``: JSON; 503 when every source is failing.

Starlette is imported inside :func:`create_web_app`, so importing this
module costs nothing for commands that never serve HTTP.
"""

from __future__ import annotations

import hashlib
import html
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import profiles as profile_files
from .errors import NewsletterError, ProfileError

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from .pipeline import App

log = logging.getLogger(__name__)

SUBSCRIBE_FORM = "subscribe"
SUBSCRIBE_LIMIT = 10
"""Sign-ups per client address per hour (and confirmation emails per address per hour)."""

MANAGE_PREVIEW_DAYS = 7
"""The manage page previews the digest of the last week with the settings on the form."""
MANAGE_FORM_AGE = 24 * 3600
"""A manage page may stay open this long before saving needs a reload."""
MAX_FORM_BYTES = 256 * 1024

PAUSE_DAYS = 7
"""How long "pause for a week" pauses."""

FEED_MAX_AGE = 900
"""Seconds a feed reader may cache a feed: digests change at most a few times a day."""

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:34em;margin:3em auto;padding:0 1em}}
button{{font-size:1em;padding:.5em 1.2em}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=body)


def create_web_app(app: App) -> Starlette:
    """The ASGI app that ``newsletter serve`` runs with uvicorn."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    web = _Web(app)
    routes = [
        Route("/unsubscribe/{token}", web.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["POST"]),
        Route("/pause/{token}", web.pause_page, methods=["GET"]),
        Route("/pause/{token}", web.pause_for_a_week, methods=["POST"]),
        Route("/feeds/{name}", web.feed, methods=["GET"]),
        Route("/subscribe", web.subscribe_page, methods=["GET"]),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Route("/subscribe/confirm/{token}", web.confirm_page, methods=["GET"]),
        Route("/subscribe/confirm/{token}", web.confirm, methods=["POST"]),
        Route("/manage/{token}", web.manage_page, methods=["GET"]),
        Route("/manage/{token}", web.manage, methods=["POST"]),
        Route("/digest/{token}", web.digest_page, methods=["GET"]),
        Route("/archive/{token}", web.archive_page, methods=["GET"]),
        Route("/rate/{token}", web.rating_page, methods=["GET"]),
        Route("/rate/{token}", web.rate, methods=["POST"]),
        Route("/healthz", web.healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes)


class _Web:
    """The handlers; plain functions run in Starlette's thread pool (they do file I/O)."""

    def __init__(self, app: App) -> None:
        from .ratings import Ratings

        self.app = app
        self._write = threading.Lock()
        self.ratings = Ratings(app.ledger)
        from .ratings import RateLimit

        self.subscriptions = RateLimit(SUBSCRIBE_LIMIT, 3600.0)
        self.confirmations = RateLimit(1, 3600.0)

    # -- subscribe (double opt-in) -----------------------------------------------------------

    def _subscribe_off(self) -> Response | None:
        from starlette.responses import HTMLResponse

        if self.app.settings.site.subscribe:
            return None
        return HTMLResponse(_page("Not here", "<p>This digest takes no sign-ups; ask its sender.</p>"), 404)

    def subscribe_page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        if (off := self._subscribe_off()) is not None:
            return off
        nonce = html.escape(self.app.tokens.form(SUBSCRIBE_FORM))
        title = html.escape(self.app.settings.site.title)
        body = (
            f"<p>Get <strong>{title}</strong>: new papers on your interests, in one short email a day.</p>"
            '<form method="post" action="/subscribe">'
            f'<input type="hidden" name="nonce" value="{nonce}">'
            '<p><label>Your email address<br><input type="email" name="email" required size="32"></label></p>'
            "<p><label>Your interests, one per line or separated by commas<br>"
            '<textarea name="keywords" rows="4" cols="40" required placeholder="mixture of experts, FP8 training">'
            "</textarea></label></p>"
            '<button type="submit">Subscribe</button></form>'
            "<p>We send a link to confirm; nothing happens until you click it.</p>"
        )
        return HTMLResponse(_page("Subscribe", body), headers=_NO_STORE)

    async def subscribe(self, request: Request) -> Response:
        """Send the confirmation email; the answer never says whether the address already reads the digest."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        from . import subscribe as joining

        if (off := self._subscribe_off()) is not None:
            return off
        if not _same_origin(request, self.app.settings.site.base_url):
            return HTMLResponse(_page("Not allowed", "<p>This form must be sent from its own page.</p>"), 403)
        fields = _fields(await request.body(), 8192)
        if not self.app.tokens.check_form(fields.get("nonce", ""), SUBSCRIBE_FORM):
            return HTMLResponse(_page("Please reload", "<p>Open the sign-up page again.</p>"), 400)
        address = request.client.host if request.client else "?"
        if not self.subscriptions.allow(address):
            return HTMLResponse(_page("Too many sign-ups", "<p>Please try again in an hour.</p>"), 429)
        email = joining.normal_address(fields.get("email", ""))
        keywords = joining.clean_keywords(fields.get("keywords", ""))
        if email is None or not keywords:
            body = "<p>Please give a valid email address and at least one interest.</p>"
            return HTMLResponse(_page("Subscribe", body), status_code=422)
        if self.confirmations.allow(email.lower()):  # one confirmation per address per hour, silently
            await run_in_threadpool(self._send_confirmation, email, keywords)
        body = (
            f"<p>Thank you. If {html.escape(email)} can receive the digest, a message with a link to confirm "
            "is on its way; nothing happens until you click it.</p>"
        )
        return HTMLResponse(_page("Check your inbox", body), headers=_NO_STORE)

    def _send_confirmation(self, email: str, keywords: list[str]) -> None:
        from . import subscribe as joining
        from .delivery import build_notice

        if joining.is_reader(self.app.settings.paths.profiles_dir, email):
            return  # already a reader: nothing to confirm, and the page said the same as for anyone
        site = self.app.settings.site
        link = f"{site.base_url}/subscribe/confirm/{self.app.tokens.subscription(email, keywords)}"
        text = (
            f"Someone (we hope you) asked to receive {site.title} at this address, about: {', '.join(keywords)}.\n\n"
            f"To confirm, open this link within two days:\n{link}\n\n"
            "If it was not you, ignore this message: nothing happens without the click.\n"
        )
        markup = (
            f"<p>Someone (we hope you) asked to receive <strong>{html.escape(site.title)}</strong> at this address, "
            f'about: {html.escape(", ".join(keywords))}.</p><p><a href="{html.escape(link)}">Confirm</a> '
            "(within two days).</p><p>If it was not you, ignore this message: nothing happens without the click.</p>"
        )
        d = self.app.settings.delivery
        key = hashlib.sha256(email.lower().encode()).hexdigest()[:16]
        message = build_notice(
            to=email,
            subject=f"Confirm your subscription to {site.title}",
            text=text,
            html=markup,
            from_address=d.from_address,
            from_name=d.from_name,
            now=self.app.clock(),
            key=key,
        )
        try:
            self.app.sender.send(message)
        except NewsletterError as e:
            log.warning("subscription confirmation could not be sent: %s", e)

    def confirm_page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        if (off := self._subscribe_off()) is not None:
            return off
        token = str(request.path_params["token"])
        found = self.app.tokens.check_subscription(token)
        if found is None:
            return _bad_token()
        email, keywords = found
        nonce = html.escape(self.app.tokens.form(token))
        body = (
            f"<p>Receive <strong>{html.escape(self.app.settings.site.title)}</strong> at "
            f"<strong>{html.escape(email)}</strong>, about: {html.escape(', '.join(keywords))}?</p>"
            f'<form method="post" action="{html.escape(str(request.url.path))}">'
            f'<input type="hidden" name="nonce" value="{nonce}"><button type="submit">Confirm</button></form>'
        )
        return HTMLResponse(_page("Confirm", body), headers=_NO_STORE)

    async def confirm(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        if (off := self._subscribe_off()) is not None:
            return off
        token = str(request.path_params["token"])
        found = self.app.tokens.check_subscription(token)
        if found is None:
            return _bad_token()
        fields = _fields(await request.body(), 4096)
        if not self.app.tokens.check_form(fields.get("nonce", ""), token):
            return HTMLResponse(_page("Please use the button", "<p>Open the link in the email again.</p>"), 400)
        await run_in_threadpool(self._create_reader, *found)
        body = "<p>Confirmed. Your first digest comes at the next send time; each one links to its settings.</p>"
        return HTMLResponse(_page("Welcome", body), headers=_NO_STORE)

    def _create_reader(self, email: str, keywords: list[str]) -> None:
        from . import subscribe as joining
        from .files import atomic_write

        folder = self.app.settings.paths.profiles_dir
        with self._write:
            if joining.is_reader(folder, email):
                return
            path = joining.new_profile_path(folder, email)
            text = joining.profile_text(email, keywords)
            profile_files.parse_profile(text, path)  # what we write passes the same check as any profile
            atomic_write(path, text.encode("utf-8"), mode=0o644)
        log.info("new reader %s subscribed", path.stem)

    # -- manage your digest ------------------------------------------------------------------

    def _manage_html(
        self,
        token: str,
        reader: str,
        text: str,
        form: dict[str, str],
        *,
        errors: list[str] | None = None,
        saved: bool = False,
        fragment: bool = False,
        preview_of: str | None = None,
    ) -> str:
        """The manage page (or only its preview box), with the digest the settings would give this week."""
        from . import manage

        path = _profile_path(self.app, reader)
        preview_errors: list[str] = []
        matches: list[dict[str, str]] = []
        try:
            profile = profile_files.parse_profile(preview_of if preview_of is not None else text, path or Path(reader))
            digest = self.app.preview_profile(profile, MANAGE_PREVIEW_DAYS, fresh_only=False)
            why = self.app.renderer.reason_text  # the email's words, not the match log
            matches = [{"title": m.entry.title, "url": m.entry.link, "reasons": why(m.reasons)} for m in digest.matches]
        except ProfileError as e:
            preview_errors = [m for _, m in e.problems]
        context: dict[str, Any] = {
            "matches": matches,
            "preview_errors": preview_errors,
            "days": MANAGE_PREVIEW_DAYS,
        }
        if fragment:
            return self.app.renderer.page("manage_preview.html", **context)
        return self.app.renderer.page(
            "manage.html",
            **context,
            action=f"/manage/{token}",
            nonce=self.app.tokens.form(token),
            version=manage.version_of(text),
            form=form,
            frequencies=manage.FREQUENCIES,
            email=form.get("email", ""),
            errors=errors or [],
            saved=saved,
        )

    def manage_page(self, request: Request) -> Response:
        """The reader's settings as a form, and the digest they would have got this week. A GET changes nothing."""
        from starlette.responses import HTMLResponse

        from . import manage

        token = str(request.path_params["token"])
        reader = self.app.tokens.check_manage(token)
        path = _profile_path(self.app, self.app.ledger.resolve(reader)) if reader else None
        if reader is None or path is None:
            return _bad_token()
        reader = self.app.ledger.resolve(reader)
        try:
            text, _ = profile_files.read_profile_text(path, self.app.settings.paths.profiles_dir)
            profile = profile_files.parse_profile(text, path)
        except ProfileError as e:
            body = f"<p>Your profile cannot be read right now ({html.escape(str(e))}); the sender can fix it.</p>"
            return HTMLResponse(_page("Please try again later", body), status_code=503)
        form = {**manage.form_of(profile), "email": profile.email}
        return HTMLResponse(self._manage_html(token, reader, text, form), headers=_NO_STORE)

    async def manage(self, request: Request) -> Response:
        """Save (or preview) the submitted settings: validated like `profiles check`, refused if the file changed."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        token = str(request.path_params["token"])
        reader = self.app.tokens.check_manage(token)
        if reader is None:
            return _bad_token()
        reader = self.app.ledger.resolve(reader)
        if not _same_origin(request, self.app.settings.site.base_url):
            return HTMLResponse(_page("Not allowed", "<p>This form must be sent from its own page.</p>"), 403)
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            return HTMLResponse(_page("Too long", "<p>The form is too long; shorten your lists.</p>"), 413)
        fields = _fields(raw, MAX_FORM_BYTES)
        if not self.app.tokens.check_form(fields.get("nonce", ""), token, max_age=MANAGE_FORM_AGE):
            body = "<p>This page is too old: open the link in your digest again.</p>"
            return HTMLResponse(_page("Please reload", body), status_code=400, headers=_NO_STORE)
        return await run_in_threadpool(self._manage_post, token, reader, fields)

    def _manage_post(self, token: str, reader: str, fields: dict[str, str]) -> Response:
        from starlette.responses import HTMLResponse

        from . import manage
        from .files import atomic_write

        path = _profile_path(self.app, reader)
        if path is None:
            return _bad_token()
        with self._write:
            try:
                text, _ = profile_files.read_profile_text(path, self.app.settings.paths.profiles_dir)
            except ProfileError as e:
                return HTMLResponse(_page("Please try again later", f"<p>{html.escape(str(e))}</p>"), 503)
            email = profile_files.parse_profile(text, path).email if fields.get("do") != "fragment" else ""
            form = {k: fields.get(k, "") for k in (*manage.LISTS, "frequency", "send_at", "timezone", "max_items")}
            form["paused"] = fields.get("paused", "")
            try:
                edited = manage.apply_form(text, form)
            except Exception as e:  # tomlkit refuses a value: report it like a validation error
                edited, form_error = text, f"cannot write these settings ({e})"
            else:
                form_error = ""
            if fields.get("do") == "fragment":
                return HTMLResponse(self._manage_html(token, reader, text, form, fragment=True, preview_of=edited))
            shown = {**form, "email": email}
            try:
                profile_files.parse_profile(edited, path)
            except ProfileError as e:
                errors = [(f"line {n}: " if n else "") + m for n, m in e.problems]
                html_page = self._manage_html(token, reader, text, shown, errors=errors, preview_of=edited)
                return HTMLResponse(html_page, status_code=422, headers=_NO_STORE)
            if form_error:
                return HTMLResponse(self._manage_html(token, reader, text, shown, errors=[form_error]), 422)
            if fields.get("do") != "save":
                return HTMLResponse(self._manage_html(token, reader, text, shown, preview_of=edited), headers=_NO_STORE)
            if fields.get("version") != manage.version_of(text):
                errors = ["your profile file was changed since this page was opened; reload the page to see it"]
                return HTMLResponse(self._manage_html(token, reader, text, shown, errors=errors), 409)
            atomic_write(path, edited.encode("utf-8"))
        return HTMLResponse(self._manage_html(token, reader, edited, shown, saved=True), headers=_NO_STORE)

    # -- view in browser, archive ----------------------------------------------------------

    def digest_page(self, request: Request) -> Response:
        """One sent digest as a web page: the email's own HTML, rebuilt from the ledger."""
        from starlette.responses import HTMLResponse

        found = self.app.tokens.check_digest(str(request.path_params["token"]))
        if found is None:
            return _bad_token()
        reader, period = self.app.ledger.resolve(found[0]), found[1]
        digest = self.app.sent_digest(reader, period)
        if digest is None:
            body = "<p>This digest is not available any more (or was never sent).</p>"
            return HTMLResponse(_page("Digest not found", body), status_code=404)
        email = self.app.renderer.email(digest, self.app.links(reader, period, [m.entry.id for m in digest.matches]))
        return HTMLResponse(email.html, headers={"Cache-Control": "private, max-age=3600"})

    def archive_page(self, request: Request) -> Response:
        """The reader's past digests, newest first, each linking to its page."""
        from starlette.responses import HTMLResponse

        reader = self.app.tokens.check_archive(str(request.path_params["token"]))
        if reader is None:
            return _bad_token()
        reader = self.app.ledger.resolve(reader)
        rows = self.app.archive(reader)
        items = "".join(
            f'<li><a href="/digest/{html.escape(self.app.tokens.digest(reader, r.period))}">'
            f"{html.escape(r.period)}</a>: {len(r.entry_ids)} paper{'s' if len(r.entry_ids) != 1 else ''}</li>"
            for r in rows
        )
        body = f"<p>Past digests <strong>{self._who(reader)}</strong>.</p>" + (
            f"<ul>{items}</ul>" if items else "<p>None sent yet.</p>"
        )
        return HTMLResponse(_page("Your digests", body), headers=_NO_STORE)

    # -- ratings ("more like this" / "less like this") -------------------------------------

    def _rating(self, token: str) -> tuple[str, str, str] | None:
        found = self.app.tokens.check_rating(token)
        if found is None:
            return None
        reader, entry_id, choice = found
        return self.app.ledger.resolve(reader), entry_id, choice

    def _paper_title(self, entry_id: str) -> str:
        entry = self.app.store.get_entries([entry_id]).get(entry_id)
        return entry.title if entry is not None else entry_id.removeprefix("arxiv:")

    def _rating_form(self, token: str, label: str, *, undo: bool = False) -> str:
        nonce = html.escape(self.app.tokens.form(token))
        action = html.escape(f"/rate/{token}")
        field = '<input type="hidden" name="undo" value="1">' if undo else ""
        return (
            f'<form method="post" action="{action}"><input type="hidden" name="nonce" value="{nonce}">{field}'
            f'<button type="submit">{html.escape(label)}</button></form>'
        )

    def rating_page(self, request: Request) -> Response:
        """The page a rating link opens: the paper, the choice marked, one button. A GET records nothing."""
        from starlette.responses import HTMLResponse

        from .ratings import CHOICES

        token = str(request.path_params["token"])
        found = self._rating(token)
        if found is None or found[2] not in CHOICES:
            return _bad_token()
        reader, entry_id, choice = found
        other = "disliked" if choice == "liked" else "liked"
        other_url = html.escape(f"/rate/{self.app.tokens.rating(reader, entry_id, other)}")
        body = (
            f"<p>{html.escape(CHOICES[choice])}:</p><p><strong>{html.escape(self._paper_title(entry_id))}</strong></p>"
            f"<p>Your digest learns from this: the next ones rank papers like it "
            f"{'higher' if choice == 'liked' else 'lower'}. It is written into your profile, where you can "
            f"take it back any time.</p>{self._rating_form(token, 'Confirm: ' + CHOICES[choice].lower())}"
            f'<p><a href="{other_url}">No: {html.escape(CHOICES[other].lower())}</a></p>'
        )
        return HTMLResponse(_page(CHOICES[choice] + "?", body), headers=_NO_STORE)

    async def rate(self, request: Request) -> Response:
        """Confirm (or undo) a rating: needs the form nonce of a page shown in the last hour."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import HTMLResponse

        from .ratings import CHOICES, RateLimitError

        token = str(request.path_params["token"])
        found = self._rating(token)
        if found is None or found[2] not in CHOICES:
            return _bad_token()
        if not _same_origin(request, self.app.settings.site.base_url):
            return HTMLResponse(_page("Not allowed", "<p>This form must be sent from its own page.</p>"), 403)
        form = _fields(await request.body(), 4096)
        if not self.app.tokens.check_form(form.get("nonce", ""), token):
            return HTMLResponse(
                _page("Please use the button", "<p>Open the link in your digest again and press the button.</p>"),
                status_code=400,
                headers=_NO_STORE,
            )
        reader, entry_id, choice = found
        undo = form.get("undo") == "1"
        profile = _profile(self.app, reader)
        if profile is None or profile.path is None:
            return _bad_token()
        address = request.client.host if request.client else "?"
        try:
            await run_in_threadpool(
                self.ratings.rate, reader, profile.path, entry_id, None if undo else choice, address
            )
        except RateLimitError as e:
            return HTMLResponse(_page("Too many ratings", f"<p>{html.escape(str(e))}</p>"), status_code=429)
        except (NewsletterError, OSError) as e:
            return HTMLResponse(_page("Please try again", f"<p>{html.escape(str(e))}</p>"), status_code=503)
        title = html.escape(self._paper_title(entry_id))
        if undo:
            body = f"<p>Rating taken back for <strong>{title}</strong>.</p>"
            return HTMLResponse(_page("Taken back", body), headers=_NO_STORE)
        body = (
            f"<p>Saved: {html.escape(CHOICES[choice].lower())} <strong>{title}</strong>.</p>"
            f"<p>Your next digest uses it.</p>{self._rating_form(token, 'Undo', undo=True)}"
        )
        return HTMLResponse(_page("Thank you", body), headers=_NO_STORE)

    # -- unsubscribe -----------------------------------------------------------------

    def _who(self, reader: str) -> str:
        """Which digest and address a page acts on, for the reader to check: "Paper digest to ada@example.org"."""
        profile = _safe_profile(self.app, reader)
        address = f" to {profile.email}" if profile is not None else ""
        return html.escape(f"{self.app.settings.site.title}{address}")

    def _reader_of(self, token: str) -> str | None:
        """The reader an unsubscribe/pause token names (following renames), or None for a bad token."""
        reader = self.app.tokens.check_unsubscribe(token)
        return self.app.ledger.resolve(reader) if reader is not None else None

    def unsubscribe_page(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        token = str(request.path_params["token"])
        reader = self._reader_of(token)
        if reader is None:
            return _bad_token()
        action = html.escape(str(request.url.path))
        pause_action = html.escape(f"/pause/{token}")
        body = (
            f"<p>Stop the digest <strong>{self._who(reader)}</strong>?</p>"
            f'<form method="post" action="{action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
            f'<p>Or take a break: <form method="post" action="{pause_action}" style="display:inline">'
            f'<button type="submit">Pause for a week</button></form> (mail resumes by itself).</p>'
        )
        return HTMLResponse(_page("Unsubscribe", body), headers=_NO_STORE)

    def unsubscribe(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        reader = self._reader_of(str(request.path_params["token"]))
        if reader is None:
            return _bad_token()
        try:
            with self._write:
                pause(self.app, reader)
        except (NewsletterError, OSError) as e:
            return HTMLResponse(_page("Please try again", f"<p>{html.escape(str(e))}</p>"), status_code=503)
        body = (
            f"<p>The digest <strong>{self._who(reader)}</strong> is stopped: you will receive no more. "
            "Thank you for reading.</p><p>To resume, set <code>paused = false</code> in your profile "
            "(or ask the sender).</p>"
        )
        return HTMLResponse(_page("Unsubscribed", body), headers=_NO_STORE)

    def pause_page(self, request: Request) -> Response:
        """GET of the footer's Pause link: a page with the button (a GET changes nothing)."""
        from starlette.responses import HTMLResponse

        token = str(request.path_params["token"])
        reader = self._reader_of(token)
        if reader is None:
            return _bad_token()
        action = html.escape(str(request.url.path))
        body = (
            f"<p>Pause the digest <strong>{self._who(reader)}</strong> for a week? Mail resumes by itself.</p>"
            f'<form method="post" action="{action}"><button type="submit">Pause for a week</button></form>'
        )
        return HTMLResponse(_page("Pause", body), headers=_NO_STORE)

    def pause_for_a_week(self, request: Request) -> Response:
        from datetime import timedelta

        from starlette.responses import HTMLResponse

        from .schedule import local_day

        reader = self._reader_of(str(request.path_params["token"]))
        if reader is None:
            return _bad_token()
        profile = _safe_profile(self.app, reader)
        if profile is None or profile.path is None:
            return HTMLResponse(
                _page("Please try again", "<p>Your profile cannot be read right now; the sender was told.</p>"),
                status_code=503,
            )
        until = local_day(profile, datetime.now(UTC)) + timedelta(days=PAUSE_DAYS)
        try:
            with self._write:
                profile_files.set_paused_until(profile.path, until)
        except (NewsletterError, OSError) as e:
            return HTMLResponse(_page("Please try again", f"<p>{html.escape(str(e))}</p>"), status_code=503)
        body = (
            f"<p>The digest <strong>{self._who(reader)}</strong> is paused until "
            f"{until:%A %d %B %Y}; the first one after that covers the days in between.</p>"
        )
        return HTMLResponse(_page("Paused", body), headers=_NO_STORE)

    # -- feeds -------------------------------------------------------------------------

    def feed(self, request: Request) -> Response:
        from starlette.responses import Response

        name = str(request.path_params["name"])
        token, dot, suffix = name.rpartition(".")
        kinds = {"xml": ("rss", "application/rss+xml"), "atom": ("atom", "application/atom+xml")}
        reader = self.app.tokens.check_feed(token) if dot and suffix in kinds else None
        reader = self.app.ledger.resolve(reader) if reader is not None else None
        if reader is None:
            return Response("no such feed\n", status_code=404, media_type="text/plain")
        kind, media = kinds[suffix]
        try:
            body = self._feed_bytes(reader, kind, suffix)
        except (NewsletterError, OSError) as e:
            return Response(f"feed unavailable: {e}\n", status_code=503, media_type="text/plain")
        if body is None:
            return Response("no such feed\n", status_code=404, media_type="text/plain")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={FEED_MAX_AGE}"}
        if etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=f"{media}; charset=utf-8", headers=headers)

    def _feed_bytes(self, reader: str, kind: str, suffix: str) -> bytes | None:
        """The feed file ``run`` wrote, or one rendered now from the store."""
        path = self.app.settings.paths.feeds_dir / f"{reader}.{suffix}"
        if path.exists():
            return path.read_bytes()
        profile = _profile(self.app, reader)
        if profile is None:
            return None
        links = self.app.links(reader)
        url = links.feed_url if kind == "rss" else links.atom_url
        text = self.app.renderer.feed(
            profile,
            self.app.feed_matches(reader),
            kind=kind,
            self_url=url,
            updated=self.app.clock(),
            notes=self.app.source_notes(),
        )
        return text.encode("utf-8")

    # -- health ----------------------------------------------------------------------------

    def healthz(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        report = health(self.app)
        return JSONResponse(report, status_code=200 if report["healthy"] else 503)


def pause(app: App, reader: str) -> None:
    """Unsubscribe *reader* (idempotent): profile file, then ledger.

    The file is written first and the durable ledger record after it, so the
    record is newer than the file (see :func:`schedule.is_paused`).  A file that
    cannot be written (broken TOML, permissions) is logged, not fatal: the
    ledger record alone keeps the reader paused until they edit the file.
    """
    path = _profile_path(app, reader)
    if path is not None and path.exists():
        try:
            profile_files.set_paused(path, True)
        except NewsletterError as e:
            log.warning("unsubscribe of %s: %s; the reader stays paused through the ledger", reader, e)
    # Wall-clock time, not the app's clock: it is compared with file mtimes.
    app.ledger.record_unsubscribe(reader, datetime.now(UTC))


def _profile_path(app: App, reader: str) -> Path | None:
    doc = app.store.profile_doc(reader)
    if doc and doc.get("path"):
        return Path(doc["path"])
    candidate = app.settings.paths.profiles_dir / f"{reader}.toml"
    return candidate if candidate.exists() else None


def _profile(app: App, reader: str) -> Any:
    path = _profile_path(app, reader)
    if path is None:
        return None
    return profile_files.load_profile(path, app.settings.paths.profiles_dir)


def _safe_profile(app: App, reader: str) -> Any:
    """The reader's profile, or None when the file is missing or broken (pages still answer)."""
    try:
        return _profile(app, reader)
    except NewsletterError:
        return None


def health(app: App) -> dict[str, Any]:
    """Last fetch per source, last send, failing sources; unhealthy when all fail."""
    return app.status().as_json()


_NO_STORE = {"Cache-Control": "no-store"}


def _fields(raw: bytes, limit: int) -> dict[str, str]:
    """A urlencoded form body (at most *limit* bytes) as ``{name: first value}``; the pages' forms only."""
    from urllib.parse import parse_qs

    return {k: v[0] for k, v in parse_qs(raw[:limit].decode("utf-8", "replace"), keep_blank_values=True).items()}


def _same_origin(request: Request, base_url: str) -> bool:
    """A browser POST from another site carries its Origin: refuse it (CSRF); no Origin is a plain client."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin != "null"
    from urllib.parse import urlsplit

    ours = urlsplit(base_url)
    theirs = urlsplit(origin)
    host = request.headers.get("host", "")
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc) or theirs.netloc == host


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}


def _bad_token() -> Response:
    from starlette.responses import HTMLResponse

    body = "<p>This link is invalid or has expired. Use the link in your latest digest, or ask the sender.</p>"
    return HTMLResponse(_page("Link not valid", body), status_code=400)


__all__ = ["create_web_app", "health", "pause"]
