"""Rendering: a digest into an email (HTML + text) and a reader's RSS/Atom feed.

Renders strings and sends nothing.  Templates load through a Jinja
``ChoiceLoader``: the operator's templates folder first, then the defaults
shipped with the package, always with ``StrictUndefined`` and autoescaping.
MJML is compiled once per template (the Jinja tags survive compilation), and
the compiled HTML is filled per reader: feed text never enters MJML source, so
``<mj-include>`` in a paper title stays inert text.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import mjml

from .errors import RenderError
from .types import Digest, Match, Profile, ReasonKind, RenderedEmail

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
ABSTRACT_CHARS = 320


def default_templates_dir() -> Path:
    """The shipped templates: inside the wheel, or the checkout's ``templates/``."""
    packaged = Path(str(resources.files("newsletter") / "templates"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True, slots=True)
class ReaderLinks:
    """Per-reader URLs, signed by the caller; rendering only prints them."""

    feed_url: str
    atom_url: str
    unsubscribe_url: str


def xml_text(value: str) -> str:
    """Drop characters XML 1.0 forbids (control characters, lone surrogates)."""
    return _XML_ILLEGAL.sub("", value)


def safe_url(value: str | None) -> str:
    """Only http(s) links reach a template; anything else becomes ``#``."""
    if value and re.match(r"^https?://[^\s\"'<>]+$", value):
        return value
    return "#"


def short_authors(authors: Sequence[str]) -> str:
    """``["Ana Li", "Bo Kim", "Cy Wu"]`` -> ``"A. Li, B. Kim et al."``."""

    def short(name: str) -> str:
        if "," in name:  # "Dao, Tri"
            last, _, first = name.partition(",")
            parts = [*first.split(), last.strip()]
        else:
            parts = name.split()
        if len(parts) < 2:
            return name.strip()
        return " ".join(f"{p[0]}." for p in parts[:-1]) + " " + parts[-1]

    if not authors:
        return ""
    shown = [short(a) for a in authors[: 3 if len(authors) == 3 else 2]]
    return ", ".join(shown) + (" et al." if len(authors) > 3 else "")


def cut(text: str, limit: int = ABSTRACT_CHARS) -> str:
    """Cut *text* on a word boundary, adding an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    head = text[:limit].rsplit(" ", 1)[0].rstrip(",;:.")
    return head + "…"


def subject_for(digest: Digest) -> str:
    """``7 new papers for you: quantization, FP8 training (Mon 23 Nov)``."""
    n = len(digest.matches)
    day = f"{digest.day:%a} {digest.day.day} {digest.day:%b}"
    if n == 0:
        return f"No new papers for you today ({day})"
    terms = Counter(r.term for m in digest.matches for r in m.reasons if r.term and r.kind is ReasonKind.KEYWORD)
    topics = ", ".join(t for t, _ in terms.most_common(2))
    noun = "paper" if n == 1 else "papers"
    subject = f"{n} new {noun} for you" + (f": {topics}" if topics else "") + f" ({day})"
    return subject if len(subject) <= 120 else subject[:117] + "…"


def _links(m: Match) -> list[dict[str, str]]:
    e = m.entry
    out = [{"label": "Abstract", "url": safe_url(e.link)}]
    if e.pdf_url:
        out.append({"label": "PDF", "url": e.pdf_url})
    if e.code_url:
        out.append({"label": "Code", "url": safe_url(e.code_url)})
    if e.project_url:
        out.append({"label": "Project page", "url": safe_url(e.project_url)})
    return out


def _match_context(m: Match) -> dict[str, Any]:
    e = m.entry
    when = e.published or e.first_seen
    return {
        "title": xml_text(e.title),
        "url": safe_url(e.link),
        "guid": f"urn:newsletter:{e.id}",
        "authors": xml_text(short_authors(e.authors)),
        "authors_list": [xml_text(a) for a in e.authors[:20]],
        "categories": ", ".join(e.categories[:4]),
        "abstract": xml_text(cut(e.summary)),
        "reasons": xml_text(m.reason_line),
        "links": _links(m),
        "description": xml_text(f"Why: {m.reason_line}. {cut(e.summary, 600)}"),
        "date_rfc822": format_datetime(when.astimezone(UTC), usegmt=True),
        "date_rfc3339": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def _interests_line(p: Profile) -> str:
    i = p.interests
    parts = [k.text for k in i.keywords] + [f"papers by {a}" for a in i.authors] + list(i.categories)
    if i.papers:
        parts.append(f"{len(i.papers)} seed paper{'s' if len(i.papers) > 1 else ''}")
    return xml_text(", ".join(parts))


class Renderer:
    """Owns the template environment and the compiled MJML; one per app."""

    def __init__(
        self, user_dir: Path | None = None, *, site_title: str = "newsletter", site_url: str = "", contact: str = ""
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if user_dir is not None:
            loaders.append(jinja2.FileSystemLoader(user_dir))
        loaders.append(jinja2.FileSystemLoader(default_templates_dir()))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=True,  # select_autoescape() says False for .mjml and .txt
            keep_trailing_newline=True,
        )
        self.site_title = site_title
        self.site_url = site_url
        self.contact = contact
        self._compiled: dict[str, jinja2.Template] = {}

    def compiled(self, name: str) -> jinja2.Template:
        """The MJML template *name* compiled to HTML once, as a Jinja template."""
        if name not in self._compiled:
            try:
                source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
            except jinja2.TemplateNotFound as e:
                raise RenderError(f"template {name} not found in your templates folder or the defaults") from e
            result = mjml.mjml_to_html(source)
            if result.errors:
                raise RenderError(f"template {name}: MJML errors: {result.errors}")
            self._compiled[name] = self.env.from_string(result.html)
        return self._compiled[name]

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(name)
        except jinja2.TemplateNotFound as e:
            raise RenderError(f"template {name} not found in your templates folder or the defaults") from e
        except jinja2.TemplateSyntaxError as e:
            raise RenderError(f"template {e.filename or name} line {e.lineno}: {e.message}") from e

    def email_context(self, digest: Digest, links: ReaderLinks) -> dict[str, Any]:
        p = digest.profile
        n = len(digest.matches)
        return {
            "subject": subject_for(digest),
            "preheader": xml_text(
                "; ".join(cut(m.entry.title, 60) for m in digest.matches[:3]) or "Nothing new matched today"
            ),
            "title": self.site_title,
            "name": p.name,
            "date_label": f"{digest.day:%A} {digest.day.day} {digest.day:%B %Y}",
            "count_label": f"{n} new paper{'s' if n != 1 else ''}",
            "matches": [_match_context(m) for m in digest.matches],
            "notes": list(digest.notes),
            "interests": _interests_line(p),
            "profile_file": p.path.name if p.path else f"{p.id}.toml",
            "feed_url": safe_url(links.feed_url),
            "unsubscribe_url": safe_url(links.unsubscribe_url),
            "site_title": self.site_title,
            "contact": self.contact,
        }

    def email(self, digest: Digest, links: ReaderLinks) -> RenderedEmail:
        context = self.email_context(digest, links)
        try:
            body = self.compiled("digest.mjml").render(context)
            # Autoescaping is on for every template, the text one too; undo it
            # here because text/plain has no markup to protect.
            text = html.unescape(self._template("digest.txt").render(context))
        except jinja2.UndefinedError as e:
            raise RenderError(f"a template uses an unknown value: {e.message}") from e
        return RenderedEmail(
            to=digest.profile.email,
            to_name=digest.profile.name,
            subject=context["subject"],
            preheader=context["preheader"],
            html=body,
            text=text,
        )

    def feed(
        self,
        profile: Profile,
        matches: Sequence[Match],
        *,
        kind: str,
        self_url: str,
        updated: datetime,
    ) -> str:
        """The reader's RSS 2.0 (``kind="rss"``) or Atom (``"atom"``) feed."""
        name = {"rss": "feed.rss.xml", "atom": "feed.atom.xml"}[kind]
        context = {
            "title": xml_text(f"{self.site_title}: papers for {profile.name}"),
            "description": xml_text(f"New papers matching {profile.name}'s interests: {_interests_line(profile)}"),
            "site_url": safe_url(self.site_url or "http://localhost/"),
            "site_title": xml_text(self.site_title),
            "self_url": safe_url(self_url),
            "feed_id": f"urn:newsletter:feed:{profile.id}",
            "updated_rfc822": format_datetime(updated.astimezone(UTC), usegmt=True),
            "updated_rfc3339": updated.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "matches": [_match_context(m) for m in matches],
        }
        try:
            return self._template(name).render(context)
        except jinja2.UndefinedError as e:
            raise RenderError(f"template {name} uses an unknown value: {e.message}") from e
