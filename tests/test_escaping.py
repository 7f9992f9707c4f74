"""One escaping rule for every output (issue 14, finding 2).

Hostile text goes in through the real parsers of every source kind (arXiv RSS,
Hugging Face JSON, any RSS, Atom) in every field: plain, as markup, and as
markup entity-encoded once or twice (the encoded forms pass the sanitiser as
text and are unescaped by it).  What comes out must carry no element or
attribute a reader would render: RSS and Atom read by feedparser with its
sanitiser off (then each HTML field parsed as HTML), the email's HTML read by
lxml as a browser would, and the text part with no escaping at all.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from datetime import UTC, date, datetime, time
from html.parser import HTMLParser
from typing import Any

import feedparser
import lxml.html
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from renderdata import LINKS

from newsletter import sources
from newsletter.render import Renderer, short_authors, xml_text
from newsletter.types import Digest, Entry, Interests, Keyword, Match, Profile, Reason, ReasonKind

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
MARKUP = (
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)">x</a>',
    "<svg/onload=alert(1)>",
    "<iframe src=//example.org/x></iframe>",
    '"><b onmouseover=alert(1)>b</b>',
    "<!-- c --><style>*{}</style>",
    "&lt;b&gt;x&lt;/b&gt; &amp; <i>",
)
ENCODINGS = (lambda s: s, html.escape, lambda s: html.escape(html.escape(s)))
"""Markup as it arrives in the decoded field: raw, entity-encoded, double-encoded."""

_legal = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))
plain = st.text(_legal, max_size=24)
payload = plain | st.builds(
    lambda a, m, enc, b: a + enc(m) + b, plain, st.sampled_from(MARKUP), st.sampled_from(ENCODINGS), plain
)


def _xml(value: str, cdata: bool = False) -> str:
    """*value* as XML text: escaped, or inside CDATA when asked (and possible)."""
    if cdata and "]]>" not in value:
        return f"<![CDATA[{value}]]>"
    return html.escape(value, quote=True)


def _arxiv(f: dict[str, str], cdata: bool) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>cs updates</title>'
        "<link>http://rss.arxiv.org/rss/cs</link><description>test</description>"
        f"<item><title>{_xml(f['title'], cdata)}</title><link>https://arxiv.org/abs/2401.00001</link>"
        f"<description>{_xml('arXiv:2401.00001v1 Announce Type: new Abstract: ' + f['abstract'], cdata)}"
        '</description><guid isPermaLink="false">oai:arXiv.org:2401.00001v1</guid>'
        f"<category>{_xml(f['category'])}</category><pubDate>Mon, 23 Nov 2026 05:00:00 +0000</pubDate>"
        f"<arxiv:announce_type>new</arxiv:announce_type><dc:creator>{_xml(f['author'], cdata)}, Ada Example"
        "</dc:creator></item></channel></rss>"
    ).encode()


def _hf(f: dict[str, str], cdata: bool) -> bytes:
    paper = {
        "id": "2401.00001",
        "title": f["title"],
        "summary": f["abstract"],
        "authors": [{"name": f["author"]}, {"name": "Ada Example"}],
        "upvotes": 3,
        "githubRepo": "https://example.org/" + f["link"],
        "projectPage": "https://example.org/p?" + f["link"],
    }
    return json.dumps([{"paper": paper, "publishedAt": "2026-11-23T05:00:00Z"}]).encode()


def _rss(f: dict[str, str], cdata: bool) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>Lab</title><link>https://example.org/</link><description>lab</description>"
        f"<item><title>{_xml(f['title'], cdata)}</title><link>{_xml('https://example.org/' + f['link'])}</link>"
        f"<description>{_xml(f['abstract'], cdata)}</description><category>{_xml(f['category'])}</category>"
        f"<dc:creator>{_xml(f['author'])}</dc:creator><pubDate>Mon, 23 Nov 2026 05:00:00 +0000</pubDate>"
        "</item></channel></rss>"
    ).encode()


def _atom(f: dict[str, str], cdata: bool) -> bytes:
    kind = "html" if cdata else "text"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>Lab</title>'
        "<id>urn:lab</id><updated>2026-11-23T05:00:00Z</updated>"
        f'<entry><title type="{kind}">{_xml(f["title"])}</title><id>urn:lab:1</id>'
        f'<link rel="alternate" href="{_xml("https://example.org/" + f["link"])}"/>'
        f'<updated>2026-11-23T05:00:00Z</updated><summary type="html">{_xml(f["abstract"], cdata)}</summary>'
        f'<author><name>{_xml(f["author"])}</name></author><category term="{_xml(f["category"])}"/>'
        "</entry></feed>"
    ).encode()


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(site_title="Paper digest", site_url="https://news.example.org", contact="ops@example.org")


DOCUMENTS = {"arxiv": ("arxiv", _arxiv), "hf": ("hf", _hf), "rss": ("feed", _rss), "atom": ("feed", _atom)}


class _Markup(HTMLParser):
    """Everything in an HTML fragment a browser would treat as markup, and the text it shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.found.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag: str) -> None:
        self.found.append(f"</{tag}>")

    def handle_comment(self, data: str) -> None:
        self.found.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.found.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.found.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.found.append(f"<![{data}]>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(fragment: str) -> str:
    """The text a browser shows for an HTML *fragment*, which must hold no markup at all."""
    parser = _Markup()
    parser.feed(fragment)
    parser.close()
    assert parser.found == [], f"markup in {fragment!r}: {parser.found}"
    tree = lxml.html.fragment_fromstring(fragment or " ", create_parent="div")
    assert len(tree) == 0, f"lxml sees elements in {fragment!r}"
    return "".join(parser.text)


def paragraphs(fragment: str) -> str:
    """The text of an RSS description: our own ``<p>Why: ...</p><p>abstract</p>``, nothing else as markup.

    The two bare ``<p>`` wrappers are the renderer's; each paragraph's content
    must hold no markup at all (see :func:`shown`).
    """
    found = re.fullmatch(r"<p>(.*?)</p><p>(.*)</p>", fragment, re.S)
    if found is None:
        return shown(fragment)
    return "\n\n".join(shown(part) for part in found.groups())


def same(got: str, want: str) -> None:
    """*got* is *want* as a reader shows it (XML-legal, runs of white space as one: feedparser trims)."""
    assert " ".join(got.split()) == " ".join(xml_text(want).split()), (got, want)


def reader_sees(detail: Any, field: str) -> str:
    """What a feed reader shows for a feedparser ``*_detail``: HTML is parsed, text shown as is."""
    value = str(detail["value"])
    if detail["type"] in ("text/html", "application/xhtml+xml"):
        return shown(value)
    assert detail["type"] == "text/plain", f"{field}: unexpected type {detail['type']}"
    return value


def structure(page: str) -> list[tuple[str, tuple[str, ...]]]:
    """Every element and its attribute names, in order, as a browser parses *page*."""
    doc = lxml.html.document_fromstring(page)
    return [(str(el.tag), tuple(sorted(el.attrib))) for el in doc.iter()]


def _placeholder(text: str) -> str:
    return "x" if text else ""


def build(kind: str, f: dict[str, str], cdata: bool) -> tuple[Entry, Match, Profile, tuple[str, ...]]:
    adapter, write = DOCUMENTS[kind]
    items = sources.parse(adapter, "src", write(f, cdata))
    assert len(items) == 1, f"the {kind} parser dropped the item"
    entry = sources.merge(None, items[0], NOW)
    reason = Reason(ReasonKind.KEYWORD, f'"{f["reason"]}" in title', f["reason"])
    match = Match(entry=entry, score=1.0, reasons=(reason,))
    profile = Profile(
        id="ada",
        email="ada@example.org",
        name=f["name"],
        timezone="UTC",
        send_at=time(7, 0),
        frequency="daily",
        interests=Interests(keywords=(Keyword(f["reason"] or "x"),), authors=(f["author"] or "x",)),
    )
    return entry, match, profile, (f["note"],)


def check_feeds(r: Renderer, entry: Entry, match: Match, profile: Profile, notes: tuple[str, ...]) -> None:
    title = xml_text(" ".join(entry.title.split()))
    for kind in ("rss", "atom"):
        out = r.feed(profile, (match,), kind=kind, self_url=LINKS.feed_url, updated=NOW, notes=notes)
        parsed = feedparser.parse(out.encode(), sanitize_html=False)
        assert not parsed.bozo, (kind, parsed.bozo_exception)
        channel = parsed.feed
        same(reader_sees(channel.title_detail, "feed title"), f"{r.site_title}: papers for {profile.name}")
        reader_sees(channel.subtitle_detail, "feed description")
        (item,) = parsed.entries
        same(reader_sees(item.title_detail, f"{kind} title"), title)
        summary = item.summary_detail
        if summary["type"] == "text/html":
            paragraphs(str(summary["value"]))
        else:
            reader_sees(summary, f"{kind} description")
        if entry.authors:  # author names and categories are plain text to every reader
            if kind == "rss":
                same(item.author, short_authors(entry.authors))
            else:
                for person, name in zip(item.authors, entry.authors, strict=True):
                    same(person.name, name)
        got = [" ".join(t.term.split()) for t in item.get("tags", [])]
        assert got == [" ".join(xml_text(c).split()) for c in entry.categories[:4]]


def check_email(r: Renderer, entry: Entry, match: Match, profile: Profile, notes: tuple[str, ...]) -> None:
    digest = Digest(profile, "2026-11-23", date(2026, 11, 23), (match,), NOW, notes)
    email = r.email(digest, LINKS)
    tame_entry = replace(
        entry,
        title=_placeholder(entry.title),
        summary=_placeholder(entry.summary),
        authors=tuple(_placeholder(a) for a in entry.authors),
        categories=tuple(_placeholder(c) for c in entry.categories),
    )
    tame_reasons = tuple(replace(x, text=_placeholder(x.text)) for x in match.reasons)
    tame_profile = replace(profile, name=_placeholder(profile.name))
    tame = Digest(
        tame_profile,
        digest.period,
        digest.day,
        (Match(tame_entry, 1.0, tame_reasons),),
        NOW,
        tuple(_placeholder(n) for n in notes),
    )
    # A browser builds the same elements and attributes as for harmless text: no text became markup.
    assert structure(email.html) == structure(r.email(tame, LINKS).html)
    # The text part is never escaped: the reader's name and the title come out as they went in.
    assert email.text.splitlines()[:2] == [
        r.site_title,
        f"Monday 23 November 2026 · 1 new paper for {xml_text(profile.name)}",
    ]
    assert "".join(xml_text(entry.title).split()) in "".join(email.text.split())


fields = st.fixed_dictionaries(
    {name: payload for name in ("title", "abstract", "author", "category", "reason", "name", "note")}
    | {"link": st.sampled_from(["x", *MARKUP, *(html.escape(m) for m in MARKUP)])}
)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kind=st.sampled_from(sorted(DOCUMENTS)), f=fields, cdata=st.booleans())
def test_hostile_text_in_every_field_of_every_source_renders_as_text_everywhere(
    renderer: Renderer, kind: str, f: dict[str, str], cdata: bool
) -> None:
    entry, match, profile, notes = build(kind, f, cdata)
    check_feeds(renderer, entry, match, profile, notes)
    check_email(renderer, entry, match, profile, notes)


def test_entity_encoded_markup_from_hugging_face_is_text_in_the_rss_feed(renderer: Renderer) -> None:
    """The reported case: ``&lt;img onerror&gt;`` in HF JSON became a live <img> in the RSS description."""
    attack = "&lt;img src=x onerror=alert(1)&gt;"
    f = dict.fromkeys(("title", "abstract", "author", "category", "reason", "name", "note"), attack)
    entry, match, profile, notes = build("hf", f | {"link": "x"}, cdata=False)
    assert entry.summary == "<img src=x onerror=alert(1)>"  # plain text after the sanitiser: fine as text
    rss = renderer.feed(profile, (match,), kind="rss", self_url=LINKS.feed_url, updated=NOW, notes=notes)
    parsed = feedparser.parse(rss.encode(), sanitize_html=False)
    assert parsed.entries[0].summary_detail.type == "text/html"
    assert "<img" not in parsed.entries[0].summary and "<img" not in parsed.feed.subtitle
    assert paragraphs(parsed.entries[0].summary).endswith("<img src=x onerror=alert(1)>")
    check_feeds(renderer, entry, match, profile, notes)
