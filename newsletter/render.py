"""Rendering: a digest into an email (HTML + text) and a reader's RSS/Atom feed.

Renders strings and sends nothing.  Templates load through a Jinja
``ChoiceLoader``: the operator's templates folder first, then the defaults
shipped with the package, always with ``StrictUndefined`` and autoescaping.
MJML is compiled once per template (the Jinja tags survive compilation), and
the compiled HTML is filled per reader: feed text never enters MJML source, so
``<mj-include>`` in a paper title stays inert text.

Speed (issue 9: 1,000+ emails/s on one core): a paper's text is escaped once
per run, not once per reader (``Renderer._paper``), and ``{{ x }}`` passes such
already-escaped ``Markup`` through instead of rebuilding it (``escape_output``).
Escaping stays on for every value; only its repetition is gone.

One escaping rule (issue 14): every text value (paper fields, reasons, the
reader's name, notes) is *plain text* here (:func:`newsletter.sources.to_text`
unescapes feed HTML), and each output escapes it for exactly the layers its
container has: the text part none (its template is filled with the plain values
in an environment without autoescaping: nothing is escaped to be unescaped
again); the email HTML and Atom (``type="text"``)
once; RSS ``<title>`` and ``<description>``, which feed readers take as HTML
inside XML, twice (:func:`html_text`, then XML).  Escaping once there let
``&lt;img onerror&gt;`` arriving entity-encoded become live HTML in a reader.
"""

from __future__ import annotations

import re
import textwrap
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from markupsafe import Markup, escape

from .errors import RenderError
from .types import Digest, Entry, Interests, Keyword, Match, Profile, ReaderLinks, Reason, ReasonKind, RenderedEmail

_XML_ILLEGAL = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SAFE_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f\"'<>\\`]+\Z", re.IGNORECASE)
_INDENT = re.compile(r"\n[ \t]+")
_BLANK_LINES = re.compile(r"\n{2,}")
_ODD_SPACE = re.compile("[\t\n\x0b\x0c\r]")
"""Whitespace other than a space: textwrap treats it specially, so ``_wrap`` leaves it to textwrap."""
ABSTRACT_CHARS = 250
"""About three lines at 600 px: enough to judge, short enough to keep 25 items under 80 KB."""
COMPACT_CHARS = 110
"""``layout = "compact"``: one line at 600 px, two on a phone."""
SEED_TITLE_CHARS = 60
"""A seed paper's title in a reason ("like ..."): enough to recognise it."""
TEXT_WIDTH = 72
_CACHE_LIMIT = 5_000
"""Papers (and reason lines) kept escaped between emails: a day's run touches a few hundred to 2,000."""
MAX_FEED_AUTHORS = 20


def default_templates_dir() -> Path:
    """The shipped templates: inside the wheel, or the checkout's ``templates/``."""
    packaged = Path(str(resources.files("newsletter") / "templates"))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "templates"


def xml_text(value: str) -> str:
    """Drop characters XML 1.0 forbids (control characters, lone surrogates)."""
    return _XML_ILLEGAL.sub("", value)


def html_text(value: str) -> str:
    """Plain text as HTML text content, before it is escaped again for XML (RSS).

    Only ``&``, ``<`` and ``>``: quotes mean nothing outside an attribute, and
    leaving them keeps ordinary text byte-identical to a once-escaped value.
    """
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_url(value: str | None) -> str:
    """Only http(s) links reach a template; anything else becomes ``#``."""
    if value and _SAFE_URL.match(value):
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
    counts: dict[str, int] = {}  # a plain loop: 3x faster than Counter over a generator
    for m in digest.matches:
        for r in m.reasons:
            if r.kind is ReasonKind.KEYWORD and r.term:
                counts[r.term] = counts.get(r.term, 0) + 1
    topics = ", ".join(sorted(counts, key=counts.__getitem__, reverse=True)[:2])  # stable, like most_common
    noun = "paper" if n == 1 else "papers"
    subject = f"{n} new {noun} for you" + (f": {topics}" if topics else "") + f" ({day})"
    return subject if len(subject) <= 120 else subject[:117] + "…"


def _guid(entry_id: str) -> str:
    """A stable id from the canonical key: the same paper keeps it across runs."""
    return "urn:newsletter:" + quote(entry_id, safe=":/.-_~@!$&'()*+,;=")


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _wrap(text: str, first: int = 4, rest: int = 4) -> str:
    """Wrap to 72 columns for the text part.

    The template already printed *first* columns before the text; continuation
    lines get *rest* spaces so they line up under the item.  Same output as
    ``textwrap.fill(..., break_on_hyphens=False)``, which is used for the odd
    cases (tabs, runs of spaces, words too long for a line); plain words
    separated by single spaces, the usual case, take a loop 5x faster.
    """
    if len(text) + first <= TEXT_WIDTH:
        return text
    words = text.split(" ")
    if any(not w or len(w) > TEXT_WIDTH - max(first, rest) for w in words) or _ODD_SPACE.search(text):
        return textwrap.fill(
            text, width=TEXT_WIDTH, initial_indent=" " * first, subsequent_indent=" " * rest, break_on_hyphens=False
        )[first:]
    lines, line, used = [], [words[0]], first + len(words[0])
    for w in words[1:]:
        if used + 1 + len(w) <= TEXT_WIDTH:
            line.append(w)
            used += 1 + len(w)
        else:
            lines.append(" ".join(line))
            line, used = [w], rest + len(w)
    lines.append(" ".join(line))
    return ("\n" + " " * rest).join(lines)


def escape_output(value: Any) -> Markup:
    """What ``{{ x }}`` does in our templates: Jinja's autoescape, minus one rebuild.

    ``markupsafe.escape`` rebuilds every ``Markup`` it is given, escaped or not
    (~0.5 µs, ~480 times per email).  Paper fields are escaped once per run
    (see ``Renderer._paper``), so a ``Markup`` passes straight through here;
    anything else, including a ``Markup`` subclass, is escaped as usual.
    """
    if type(value) is Markup:
        return value
    return escape(value)


class _EscapingCodeGenerator(CodeGenerator):
    """Compiles ``{{ x }}`` to ``environment.escape_output(x)`` instead of ``escape(x)``.

    Only where Jinja would escape anyway (autoescape on, no ``finalize``); every
    other case is left to Jinja.  Should Jinja rename this hook, templates fall
    back to plain ``escape``: slower, never unescaped.
    """

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo) -> None:
        if frame.eval_ctx.autoescape and not frame.eval_ctx.volatile and finalize.src is None:
            self.write("environment.escape_output(")
        else:
            super()._output_child_pre(node, frame, finalize)


class _Environment(jinja2.Environment):
    code_generator_class = _EscapingCodeGenerator
    escape_output = staticmethod(escape_output)


@dataclass(frozen=True, slots=True)
class _Link:
    label: Markup
    url: Markup
    first: bool
    """Templates put a separator before every link but the first (``loop.first`` costs ~1 µs a card)."""


@dataclass(frozen=True, slots=True)
class _Paper:
    """One paper's reader-independent template values, escaped once per run."""

    entry: Entry
    fields: dict[str, Any]
    """``title``, ``authors``, ``links``...: each already ``Markup``, so templates print it as is."""
    plain: dict[str, Any]
    """The same values for the text part, unescaped: it is rendered without autoescaping."""
    preheader: str
    """The title cut for the inbox preview line (raw: it also goes into a header)."""


def _paper(e: Entry) -> _Paper:
    """Escape one paper's template values; every reader who gets the paper reuses them."""
    when = e.published or e.first_seen
    title = xml_text(" ".join(e.title.split()))
    abstract = xml_text(cut(" ".join(e.summary.split())))
    text = {
        "title": title,
        "title_text": _wrap(title),
        "url": safe_url(e.link),
        "guid": _guid(xml_text(e.id)),
        "authors": xml_text(short_authors(e.authors)),
        "categories": xml_text(", ".join(e.categories[:4])),
        "abstract": abstract,
        "abstract_text": _wrap(abstract),
        "summary": xml_text(cut(" ".join(e.summary.split()), 600)),
        "date_rfc822": _rfc822(when),
        "date_rfc3339": _rfc3339(when),
        "updated_rfc3339": _rfc3339(e.updated or when),
    }
    fields: dict[str, Any] = {name: escape(value) for name, value in text.items()}
    fields["title_rss"] = escape(html_text(title))
    fields["summary_rss"] = escape(html_text(text["summary"]))
    fields["authors_list"] = tuple(escape(xml_text(a)) for a in e.authors[:MAX_FEED_AUTHORS])
    fields["category_list"] = tuple(escape(xml_text(c)) for c in e.categories[:4])
    urls = [("PDF", e.pdf_url), ("Code", e.code_url), ("Project page", e.project_url)]
    shown = [(label, safe_url(url)) for label, url in urls if safe_url(url) != "#"]
    fields["links"] = tuple(_Link(Markup(label), escape(url), first=i == 0) for i, (label, url) in enumerate(shown))
    short = xml_text(cut(" ".join(e.summary.split()), COMPACT_CHARS))
    fields["abstract_short"], fields["abstract_short_text"] = escape(short), escape(_wrap(short))
    buttons = _email_links(e)
    fields["buttons"] = tuple(_Link(Markup(label), escape(url), first=i == 0) for i, (label, url) in enumerate(buttons))
    # Built once per paper, not looped over per email (a Jinja loop per email cost a third of its time): the
    # HTML buttons (class "b" in digest.mjml's style), the text part's aligned link lines, the byline.
    fields["buttons_html"] = Markup("".join(f'<a class="b" href="{escape(url)}">{label}</a>' for label, url in buttons))
    lines = [f"    {label + ':':<13} {url}\n" for label, url in buttons]
    fields["links_text"], fields["links_text_short"] = escape("".join(lines)), escape("".join(lines[:2]))
    meta = text["authors"] + (f" · {text['categories']}" if text["categories"] else "")
    fields["meta"] = escape(meta)
    fields["upvotes"] = e.upvotes or 0
    hf_url = safe_url(hugging_face_url(e) or e.link)
    fields["hf_url"] = escape(hf_url)
    plain = {
        "title_text": text["title_text"],
        "meta": meta,
        "authors": text["authors"],
        "abstract": abstract,
        "abstract_text": text["abstract_text"],
        "abstract_short": short,
        "abstract_short_text": _wrap(short),
        "links_text": "".join(lines),
        "links_text_short": "".join(lines[:2]),
        "upvotes": e.upvotes or 0,
        "hf_url": hf_url,
    }
    return _Paper(entry=e, fields=fields, plain=plain, preheader=xml_text(cut(e.title, 60)))


def hugging_face_url(e: Entry) -> str | None:
    """The paper's Hugging Face page, for entries Hugging Face listed (they carry upvotes)."""
    if e.arxiv_id and e.upvotes is not None:
        return f"https://huggingface.co/papers/{quote(e.arxiv_id, safe='./')}"
    return None


def _email_links(e: Entry) -> list[tuple[str, str]]:
    """The email's link buttons: abstract, PDF, Hugging Face page, code, project page; only safe ones."""
    urls = [
        ("Abstract", e.link),
        ("PDF", e.pdf_url),
        ("Hugging Face", hugging_face_url(e)),
        ("Code", e.code_url),
        ("Project", e.project_url),
    ]
    return [(label, safe_url(url)) for label, url in urls if safe_url(url) != "#"]


_STRENGTH = {"title": 0, "abstract": 1}
_NO_ACTIONS = Markup("")


def _contains(longer: str, shorter: str) -> bool:
    """Whether keyword *shorter* is a run of whole words in *longer*: "quantization" in "post-training quantization"."""
    a, b = longer.casefold().replace("-", " ").split(), shorter.casefold().replace("-", " ").split()
    return a != b and any(a[i : i + len(b)] == b for i in range(len(a) - len(b) + 1))


def why(reasons: Sequence[Reason]) -> str:
    """The reasons as a person would say them: grouped, de-duplicated, strongest first.

    ``Matches "post-training quantization" (title), "low-bit"; by Tri Dao;
    like "FlashAttention-2"; 84 upvotes on Hugging Face``.  Built from the
    reasons' fields (kind, term, where, words, detail), never by parsing their
    text; a reason kind this function does not know is shown by its text.
    A keyword inside another matched keyword is left out ("quantization" when
    "post-training quantization" matched as well); categories are named only
    when nothing else matched (the card shows them anyway).
    """
    full: dict[str, Reason] = {}
    partial: dict[str, Reason] = {}
    authors: dict[str, str] = {}
    seeds: dict[str, str] = {}
    other: list[str] = []
    cats: list[str] = []
    popular: str | None = None
    calibrate: str | None = None
    for r in reasons:
        kind, term = r.kind, r.term
        if kind is ReasonKind.CALIBRATE:
            calibrate = r.text
        elif kind is ReasonKind.KEYWORD and term:
            if r.words:
                partial.setdefault(term, r)
            else:
                best = full.get(term)
                if best is None or _STRENGTH.get(r.where or "", 2) < _STRENGTH.get(best.where or "", 2):
                    full[term] = r
        elif kind is ReasonKind.AUTHOR and term:
            authors.setdefault(term.casefold(), r.detail or term)
        elif kind is ReasonKind.PAPER and term:
            seeds.setdefault(term, r.detail)
        elif kind is ReasonKind.CATEGORY and term:
            cats.append(r.text[3:] if r.text.startswith("in ") else term)
        elif kind is ReasonKind.POPULAR:
            popular = r.detail
        elif kind is ReasonKind.SIMILAR and term in full:
            continue  # the phrase matched word for word: "close in meaning" adds nothing
        elif r.text and r.text not in other:
            other.append(r.text)
    groups: list[str] = []
    kept = [
        r
        for t, r in full.items()
        if not any(_contains(o, t) and (full[o].where == "title" or r.where != "title") for o in full)
    ]
    kept.sort(key=lambda r: _STRENGTH.get(r.where or "", 2))
    if kept:
        said = []
        for r in kept:
            notes = [n for n in ("title" if r.where == "title" else "", r.detail) if n]
            said.append(f'"{r.term}"' + (f" ({'; '.join(notes)})" if notes else ""))
        groups.append("matches " + ", ".join(said))
    found = [r for t, r in partial.items() if t not in full and not any(_contains(o, t) for o in full)]
    if found:
        groups.append(
            "mentions " + ", ".join(", ".join(f'"{w}"' for w in r.words) + f' (from "{r.term}")' for r in found)
        )
    if authors:
        groups.append("by " + ", ".join(authors.values()))
    for pid, title in seeds.items():
        groups.append(f'like "{cut(title, SEED_TITLE_CHARS)}"' if title else f"like your paper {pid}")
    groups.extend(other)
    if cats and not groups:
        groups.append("in " + ", ".join(dict.fromkeys(cats)))
    if popular is not None:
        groups.append(f"{popular} upvotes on Hugging Face" if popular else "popular on Hugging Face")
    if calibrate:  # why it is there at all comes first: it was not picked for the reader's interests
        groups.insert(0, calibrate)
    if not groups:
        return ""
    line = "; ".join(groups)
    return line[0].upper() + line[1:]


class _Item:
    """One match as the templates see it.

    The paper: ``title``, ``url``, ``authors``, ``categories``, ``abstract``,
    ``links`` (each with ``label``, ``url``, ``first``), the text part's wrapped
    ``title_text`` and ``abstract_text``, and for feeds ``guid``, ``summary``,
    ``authors_list``, ``category_list`` and the dates; for the email
    ``buttons`` (abstract, PDF, Hugging Face, code, project: ``label``, ``url``),
    ``abstract_short``, ``hf_url`` and ``upvotes``.  This reader's: ``number``
    (from 1), ``top`` (the first pick), ``reasons`` (the :func:`why` line),
    ``reasons_text``, ``actions`` (per-paper action links, empty for now),
    ``description``.
    Attributes, not dict keys: Jinja's ``m.title`` tries an attribute first, and
    a failed attribute lookup is the slowest part of filling a template.
    """

    reasons: Markup
    summary: Markup
    date_rfc822: Markup
    date_rfc3339: Markup
    rss = False
    """Set on RSS items: their ``<description>`` is HTML."""

    @property
    def description(self) -> Markup:
        """The feed item's text: why it was picked, then the abstract, each its own paragraph.

        RSS readers take ``<description>`` as HTML, so there each is a ``<p>``
        (the tags entity-encoded in the XML, the text escaped as before); Atom's
        ``<summary>`` is plain text, so a blank line.  Built only when a
        template asks (emails don't).
        """
        if not self.reasons:
            return self.summary
        rate = getattr(self, "rate_text", _NO_ACTIONS)
        if self.rss:
            tail = f"&lt;p&gt;{rate}&lt;/p&gt;" if rate else ""
            return Markup(f"&lt;p&gt;Why: {self.reasons}&lt;/p&gt;&lt;p&gt;{self.summary}&lt;/p&gt;{tail}")
        return Markup(f"Why: {self.reasons}\n\n{self.summary}" + (f"\n\n{rate}" if rate else ""))


def _interests_line(p: Profile) -> str:
    i = p.interests
    parts = [k.text for k in i.keywords] + [f"papers by {a}" for a in i.authors] + list(i.categories)
    if i.papers:
        parts.append(f"{len(i.papers)} seed paper{'s' if len(i.papers) > 1 else ''}")
    return xml_text(", ".join(parts))


def check_autoescape(env: jinja2.Environment, name: str, source: str) -> None:
    """Refuse a template that switches autoescaping off or marks text safe.

    Autoescape is on for the whole environment; this closes the two ways a
    template could still print raw text: ``{% autoescape false %}`` and ``|safe``.
    """
    try:
        tree = env.parse(source, name)
    except jinja2.TemplateSyntaxError as e:
        raise RenderError(f"template {e.filename or name} line {e.lineno}: {e.message}") from e
    for node in tree.find_all((nodes.ScopedEvalContextModifier, nodes.EvalContextModifier)):
        for kw in node.options:
            if kw.key == "autoescape" and not (isinstance(kw.value, nodes.Const) and kw.value.value is True):
                raise RenderError(
                    f"template {name} line {node.lineno} turns autoescaping off: remove the autoescape block"
                )
    for f in tree.find_all(nodes.Filter):
        if f.name == "safe":
            raise RenderError(f"template {name} line {f.lineno} uses |safe: remove it; text is escaped for you")


class Renderer:
    """Owns the template environment and the compiled MJML; one per app."""

    def __init__(
        self, user_dir: Path | None = None, *, site_title: str = "newsletter", site_url: str = "", contact: str = ""
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if user_dir is not None:
            loaders.append(jinja2.FileSystemLoader(user_dir))
        loaders.append(jinja2.FileSystemLoader(default_templates_dir()))
        self.env = _Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=True,  # select_autoescape() says False for .mjml and .txt
            keep_trailing_newline=True,
        )
        # The text part has no markup to protect: its template is filled with the plain values
        # (``_Paper.plain``, ``_text_item``) in an environment that escapes nothing.
        self.text_env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self._text_templates: dict[str, jinja2.Template] = {}
        self.site_title = site_title
        self.site_url = site_url
        self.contact = contact
        self._compiled: dict[str, jinja2.Template] = {}
        self._compile_lock = threading.Lock()
        self._templates: dict[str, jinja2.Template] = {}
        self.compile_count = 0
        """How many times MJML ran; tests check it stays at one per template."""
        self._papers: dict[str, _Paper] = {}
        self._reasons: dict[tuple[Reason, ...], tuple[Markup, Markup, Markup, str]] = {}

    def source(self, name: str) -> str:
        try:
            source, _, _ = self.env.loader.get_source(self.env, name)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound as e:
            raise RenderError(f"template {name} not found in your templates folder or the defaults") from e
        return source

    def compiled(self, name: str) -> jinja2.Template:
        """The MJML template *name* compiled to HTML once, as a Jinja template.

        Only the template file goes through MJML, never reader or feed text, so
        ``<mj-include>`` in a paper title can never be interpreted.
        """
        with self._compile_lock:  # send threads render at once: compile once, not once per thread
            if name not in self._compiled:
                self._compiled[name] = self._compile(name)
        return self._compiled[name]

    def _compile(self, name: str) -> jinja2.Template:
        source = self.source(name)
        check_autoescape(self.env, name, source)
        try:
            import mjml  # here: once per template per run, and `fetch` or `status` never need it (bs4 and all)

            result = mjml.mjml_to_html(source)
        except Exception as e:  # the port raises bare errors on bad markup
            raise RenderError(f"template {name}: MJML could not compile it ({e}); check the markup") from e
        if result.errors:
            raise RenderError(f"template {name}: MJML errors: {result.errors}")
        self.compile_count += 1
        # MJML pretty-prints; leading indentation alone is ~20% of the bytes.
        compact = _BLANK_LINES.sub("\n", _INDENT.sub("\n", result.html))
        try:
            return self.env.from_string(compact)
        except jinja2.TemplateSyntaxError as e:
            raise RenderError(f"template {name}: Jinja tags broken by MJML compilation: {e.message}") from e

    def page(self, name: str, **context: Any) -> str:
        """A reader page of ``serve`` (``manage.html``...): the same environment, the same escaping rule."""
        try:
            return self._template(name).render(site_title=xml_text(self.site_title), **context)
        except jinja2.UndefinedError as e:
            raise RenderError(f"template {name} uses an unknown value: {e.message}") from e

    def _template(self, name: str) -> jinja2.Template:
        if name not in self._templates:
            check_autoescape(self.env, name, self.source(name))
            try:
                self._templates[name] = self.env.get_template(name)
            except jinja2.TemplateSyntaxError as e:
                raise RenderError(f"template {e.filename or name} line {e.lineno}: {e.message}") from e
        return self._templates[name]

    def _text_template(self, name: str) -> jinja2.Template:
        if name not in self._text_templates:
            try:
                self._text_templates[name] = self.text_env.get_template(name)
            except jinja2.TemplateNotFound as e:
                raise RenderError(f"template {name} not found in your templates folder or the defaults") from e
            except jinja2.TemplateSyntaxError as e:
                raise RenderError(f"template {e.filename or name} line {e.lineno}: {e.message}") from e
        return self._text_templates[name]

    def _text_context(self, digest: Digest, links: ReaderLinks, context: dict[str, Any]) -> dict[str, Any]:
        """The email's values for the text part: the reader's (plain already) and the papers' plain fields."""
        compact = context["compact"]
        n = len(digest.matches)
        return {
            **context,
            "matches": [
                self._text_item(m, i, compact=compact, rate=links.rate.get(m.entry.id))
                for i, m in enumerate(digest.matches, 1)
            ],
            "trending": [self._text_item(m, i, compact=True) for i, m in enumerate(digest.trending, n + 1)],
        }

    def _paper(self, e: Entry) -> _Paper:
        """The paper's template values, built and escaped once per run, not once per reader.

        Keyed by id, checked against the entry itself: an updated paper (same
        id, new fields) is rebuilt.
        """
        paper = self._papers.get(e.id)
        if paper is None or (paper.entry is not e and paper.entry != e):
            if len(self._papers) >= _CACHE_LIMIT:
                self._papers.clear()
            paper = self._papers[e.id] = _paper(e)
        return paper

    def _item(
        self, m: Match, number: int, *, rss: bool = False, compact: bool = False, rate: tuple[str, str] | None = None
    ) -> _Item:
        """Match *number* (from 1) for the templates: the cached paper plus this reader's reasons.

        ``reasons`` is the :func:`why` line, cached by the reasons themselves
        (readers share keywords, so a run builds each line a few times, not per
        email).  With *rss*, the fields an RSS reader takes as HTML are escaped twice.
        """
        paper = self._paper(m.entry)
        reasons = self._reason_lines(m.reasons)
        values = paper.fields.copy()
        values["reasons"], values["reasons_text"], reasons_rss, _ = reasons
        values["number"] = number
        if rss:  # RSS <title> and <description> are HTML inside XML
            values["title"], values["summary"], values["reasons"] = (
                values["title_rss"],
                values["summary_rss"],
                reasons_rss,
            )
        values["top"] = number == 1
        values["calibrate"] = any(r.kind is ReasonKind.CALIBRATE for r in m.reasons)
        # This reader's action buttons for the paper (feedback: "more like this" / "less like this"), as HTML
        # after the paper's buttons: signed per reader, so built here, not cached with the paper.
        if rate is not None:
            more, less = (escape(safe_url(u)) for u in rate)
            values["actions"] = Markup(
                f'<a class="b" href="{more}">More like this</a><a class="b" href="{less}">Less like this</a>'
            )
            values["actions_text"] = Markup(f"    More like this: {more}\n    Less like this: {less}\n")
            values["rate_text"] = Markup(f"More like this: {more}  Less like this: {less}")
        else:
            values["actions"] = _NO_ACTIONS
            values["actions_text"] = values["rate_text"] = _NO_ACTIONS
        if compact:
            values["abstract"], values["abstract_text"] = values["abstract_short"], values["abstract_short_text"]
            values["links_text"] = values["links_text_short"]  # abstract and PDF: five lines a paper is not compact
        item = _Item()
        item.__dict__ = values
        return item

    def reason_text(self, reasons: tuple[Reason, ...]) -> str:
        """The why line the email shows, as plain text (the manage page's preview shows the same words)."""
        return xml_text(why(reasons))

    def _reason_lines(self, reasons: tuple[Reason, ...]) -> tuple[Markup, Markup, Markup, str]:
        """The :func:`why` line escaped for HTML, wrapped and escaped, for RSS, and wrapped plain (text part).

        Cached by the reasons themselves: readers share keywords, so a run
        builds each line a few times, not once per email.
        """
        lines = self._reasons.get(reasons)
        if lines is None:
            if len(self._reasons) >= _CACHE_LIMIT:
                self._reasons.clear()
            clean = xml_text(why(reasons))
            wrapped = _wrap(clean, 9, 9)
            lines = self._reasons[reasons] = (escape(clean), escape(wrapped), escape(html_text(clean)), wrapped)
        return lines

    def _text_item(self, m: Match, number: int, *, compact: bool, rate: tuple[str, str] | None = None) -> _Item:
        """Match *number* for the text part: the same fields as :meth:`_item`, as plain strings."""
        paper = self._paper(m.entry)
        reasons = self._reason_lines(m.reasons)
        values = paper.plain.copy()
        values["reasons"] = values["reasons_text"] = reasons[3]
        values["number"] = number
        values["top"] = number == 1
        values["calibrate"] = any(r.kind is ReasonKind.CALIBRATE for r in m.reasons)
        more, less = (safe_url(u) for u in rate) if rate is not None else ("", "")
        values["actions_text"] = f"    More like this: {more}\n    Less like this: {less}\n" if rate else ""
        if compact:
            values["abstract"], values["abstract_text"] = values["abstract_short"], values["abstract_short_text"]
            values["links_text"] = values["links_text_short"]
        item = _Item()
        item.__dict__ = values
        return item

    def email_context(self, digest: Digest, links: ReaderLinks) -> dict[str, Any]:
        """The values both email templates see.

        Paper and reason text arrive escaped (``Markup``, built once per run);
        the reader's own values are plain strings that Jinja escapes.
        """
        p = digest.profile
        n = len(digest.matches)
        interests = _interests_line(p)
        compact = p.layout == "compact"
        return {
            "subject": xml_text(subject_for(digest)),
            "preheader": " · ".join(self._paper(m.entry).preheader for m in digest.matches[:3])
            or "Nothing new matched today",
            "title": xml_text(self.site_title),
            "name": xml_text(p.name),
            "date_label": f"{digest.day:%A} {digest.day.day} {digest.day:%B %Y}",
            "count_label": f"{n} new paper{'s' if n != 1 else ''}",
            "matches": [
                self._item(m, i, compact=compact, rate=links.rate.get(m.entry.id))
                for i, m in enumerate(digest.matches, 1)
            ],
            "trending": [self._item(m, i, compact=True) for i, m in enumerate(digest.trending, n + 1)],
            "compact": compact,
            "notes": [xml_text(note) for note in digest.notes],
            "interests": interests,
            "interests_text": _wrap(interests, 0, 0) if interests else "(nothing yet)",
            "profile_file": xml_text(p.path.name if p.path else f"{p.id}.toml"),
            "feed_url": safe_url(links.feed_url),
            "unsubscribe_url": safe_url(links.unsubscribe_url),
            "pause_url": safe_url(links.pause_url),
            "profile_url": safe_url(links.profile_url),
            "view_url": safe_url(links.view_url),
            "archive_url": safe_url(links.archive_url),
            "site_title": xml_text(self.site_title),
            "contact": xml_text(self.contact),
        }

    def email(self, digest: Digest, links: ReaderLinks) -> RenderedEmail:
        """The HTML and text parts for one reader: a Jinja fill of the compiled MJML."""
        context = self.email_context(digest, links)
        try:
            body = self.compiled("digest.mjml").render(context)
            text = self._text_template("digest.txt").render(self._text_context(digest, links, context))
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

    def feed_context(
        self,
        profile: Profile,
        matches: Sequence[Match],
        *,
        self_url: str,
        updated: datetime,
        notes: Sequence[str] = (),
        kind: str = "atom",
        picked_at: Sequence[datetime | None] = (),
    ) -> dict[str, Any]:
        """The values a feed template sees; for ``kind="rss"`` the HTML-bearing ones are escaped twice.

        *picked_at* (one per match, from the ledger) dates each item by when it
        was picked, not by the paper's date: feed readers sort by date, and the
        feed must read as the digests did, newest digest first and each in its
        own order.  Items picked at the same moment (one digest) are dated a
        second apart, in order, so a reader sorting by date keeps the rank order.
        """
        description = f"New papers matching {profile.name}'s interests: {_interests_line(profile)}"
        if notes:  # e.g. a failing source: feed-only readers must see it too
            description += " Note: " + " ".join(notes)
        title = xml_text(f"{self.site_title}: papers for {profile.name}")
        description = xml_text(description)
        rss = kind == "rss"
        return {
            "title": escape(html_text(title)) if rss else title,
            "description": escape(html_text(description)) if rss else description,
            "site_url": safe_url(self.site_url or "http://localhost/"),
            "site_title": xml_text(self.site_title),
            "self_url": safe_url(self_url),
            "feed_id": _guid(f"feed:{profile.id}"),
            "updated_rfc822": _rfc822(updated),
            "updated_rfc3339": _rfc3339(updated),
            "matches": self._feed_items(matches, picked_at, rss),
        }

    def _feed_items(self, matches: Sequence[Match], picked_at: Sequence[datetime | None], rss: bool) -> list[_Item]:
        items = [self._item(m, i, rss=rss) for i, m in enumerate(matches, 1)]
        for item in items:
            item.rss = rss
        previous, offset = None, 0
        for item, at in zip(items, picked_at, strict=False):
            if at is not None:
                offset = offset + 1 if at == previous else 0
                previous = at
                when = at - timedelta(seconds=offset)
                item.date_rfc822, item.date_rfc3339 = escape(_rfc822(when)), escape(_rfc3339(when))
        return items

    def feed(
        self,
        profile: Profile,
        matches: Sequence[Match],
        *,
        kind: str,
        self_url: str,
        updated: datetime,
        notes: Sequence[str] = (),
        picked_at: Sequence[datetime | None] = (),
    ) -> str:
        """The reader's RSS 2.0 (``kind="rss"``) or Atom (``"atom"``) feed; *notes* go in its description.

        *matches* in the order they were picked (newest digest first, each in
        rank order), *picked_at* their send times (see :meth:`feed_context`).
        """
        names = {"rss": "feed.rss.xml", "atom": "feed.atom.xml"}
        if kind not in names:
            raise RenderError(f"unknown feed kind {kind!r}: use 'rss' or 'atom'")
        name = names[kind]
        context = self.feed_context(
            profile, matches, self_url=self_url, updated=updated, notes=notes, kind=kind, picked_at=picked_at
        )
        try:
            return self._template(name).render(context)
        except jinja2.UndefinedError as e:
            raise RenderError(f"template {name} uses an unknown value: {e.message}") from e


def _example_digest() -> Digest:
    """A one-paper digest that exercises every template variable, for :meth:`Renderer.self_check`."""
    now = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
    entry = Entry(
        id="arxiv:2601.00001",
        title="An example paper",
        summary="An example abstract.",
        link="https://arxiv.org/abs/2601.00001",
        first_seen=now,
        authors=("Ada Example", "Bo Sample"),
        categories=("cs.LG",),
        arxiv_id="2601.00001",
        code_url="https://example.org/code",
        project_url="https://example.org/project",
        upvotes=3,
    )
    profile = Profile(
        id="example",
        email="reader@example.org",
        name="Reader",
        timezone="UTC",
        send_at=time(7, 0),
        frequency="daily",
        interests=Interests(keywords=(Keyword("example"),)),
    )
    match = Match(entry, 1.0, (Reason(ReasonKind.KEYWORD, '"example" in title', "example"),))
    return Digest(profile, "2026-01-05", date(2026, 1, 5), (match,), now, ("An example note.",))


def self_check(renderer: Renderer) -> None:
    """Render every template once with an example digest, at start-up.

    A broken operator template (a typo'd variable, bad MJML) then stops the
    run with a RenderError naming the template, before any reader is claimed,
    instead of failing every reader one by one and leaving no ledger trace.
    """
    digest = _example_digest()
    links = ReaderLinks("https://example.org/f.xml", "https://example.org/f.atom", "https://example.org/u")
    renderer.email(digest, links)
    for kind in ("rss", "atom"):
        renderer.feed(digest.profile, digest.matches, kind=kind, self_url=links.feed_url, updated=digest.generated_at)
