"""Rendering: escaping, size, text part, feeds' validity, goldens."""

from __future__ import annotations

import os
import re
import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from markupsafe import Markup, escape
from renderdata import LINKS, NOW, match_for, profile, sample_digest, sample_entries

from newsletter.errors import RenderError
from newsletter.render import (
    TEXT_WIDTH,
    Renderer,
    _wrap,
    cut,
    escape_output,
    safe_url,
    short_authors,
    subject_for,
    why,
    xml_text,
)
from newsletter.types import Entry, Match, Reason, ReasonKind

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden" / "render"
ATOM_SCHEMA = etree.RelaxNG(etree.parse(str(DATA / "atom-rfc4287.rng")))
HOSTILE = '<script>alert(1)</script><mj-include path="/etc/passwd"/>'
RSS_SELF = "https://news.example.org/feeds/tok-feed.xml"
ATOM_SELF = "https://news.example.org/feeds/tok-feed.atom"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(site_title="Paper digest", site_url="https://news.example.org", contact="ops@example.org")


def hostile_digest() -> Any:
    e = sample_entries(1)[0]
    e = replace(e, title=HOSTILE, summary=HOSTILE, authors=(HOSTILE,), categories=(HOSTILE,))
    m = Match(entry=e, score=1.0, reasons=(Reason(ReasonKind.KEYWORD, HOSTILE, "x"),))
    return replace(sample_digest(1), matches=(m,), notes=(HOSTILE,), profile=profile(name=HOSTILE))


def render_any(r: Renderer, name: str) -> str:
    """Render template *name* with hostile text in every field, as the app would."""
    d = hostile_digest()
    if name.endswith(".mjml"):
        return r.compiled(name).render(r.email_context(d, LINKS))
    if name.endswith(".txt"):
        return r._template(name).render(r.email_context(d, LINKS))
    if name.endswith(".xml"):
        return r._template(name).render(r.feed_context(d.profile, d.matches, self_url=RSS_SELF, updated=NOW))
    if name.endswith(".html"):  # the reader pages of `serve` (manage.html and the part it includes)
        from newsletter.manage import FREQUENCIES

        evil = "<script>alert(1)</script>"
        form = dict.fromkeys(("keywords", "exclude", "authors", "categories", "papers", "timezone"), evil)
        form |= {"frequency": "daily", "send_at": "07:00", "max_items": "5", "paused": ""}
        return r.page(
            name,
            matches=[{"title": evil, "url": "https://example.org/", "reasons": evil}],
            preview_errors=[],
            days=7,
            action="/manage/t",
            nonce=evil,
            version="v",
            form=form,
            frequencies=FREQUENCIES,
            email=evil,
            errors=[evil],
            saved=False,
        )
    pytest.fail(f"no test context for template {name}: teach render_any about it")


# -- escaping ------------------------------------------------------------------


def test_every_template_the_loader_lists_escapes_entry_text(tmp_path: Path) -> None:
    user = tmp_path / "templates"
    user.mkdir()
    (user / "extra.txt").write_text("{{ matches[0].title }} {{ name }}\n")
    r = Renderer(user)
    names = r.env.list_templates()
    assert {"digest.mjml", "digest.txt", "feed.rss.xml", "feed.atom.xml", "extra.txt"} <= set(names)
    for name in names:
        out = render_any(r, name)
        if name.endswith(".html"):  # a page has a script of its own: look for the hostile one
            assert "<script>alert" not in out and "&lt;script&gt;alert" in out, name
            continue
        assert "<script>" not in out, name
        assert "&lt;script&gt;" in out, name


@pytest.mark.parametrize(
    "source",
    [
        "{% autoescape false %}{{ name }}{% endautoescape %}",
        "{{ name | safe }}",
        "{% autoescape 0 %}{{ name }}{% endautoescape %}",
    ],
)
def test_a_template_that_turns_escaping_off_is_refused(tmp_path: Path, source: str) -> None:
    """HTML templates only: the text part is filled with plain values in an environment that escapes nothing."""
    (tmp_path / "digest.mjml").write_text(f"<mjml><mj-body><mj-section><mj-column><mj-text>{source}</mj-text>"
                                          "</mj-column></mj-section></mj-body></mjml>")  # fmt: skip
    with pytest.raises(RenderError, match=r"digest\.mjml"):
        Renderer(tmp_path).email(sample_digest(2), LINKS)


def test_mj_include_in_a_title_stays_inert_text(renderer: Renderer) -> None:
    before = renderer.compile_count
    email = renderer.email(hostile_digest(), LINKS)
    renderer.email(sample_digest(3), LINKS)
    assert "&lt;mj-include path=&#34;/etc/passwd&#34;/&gt;" in email.html
    assert "<mj-include" not in email.html
    assert "root:" not in email.html
    assert '<mj-include path="/etc/passwd"/>' in email.text  # plain text shows it as typed
    assert renderer.compile_count - before <= 1  # compiled once, never per email


def test_templates_escape_through_escape_output(renderer: Renderer) -> None:
    """Every ``{{ x }}`` goes through ``escape_output``: Markup passes, the rest is escaped."""
    assert "environment.escape_output(" in renderer.env.compile("{{ x }}", raw=True)
    page = renderer.env.from_string("{{ a }}|{{ b }}|{{ c }}")
    assert page.render(a=HOSTILE, b=Markup("<b>ok</b>"), c=7) == f"{escape(HOSTILE)}|<b>ok</b>|7"


@given(st.one_of(st.text(max_size=30), st.integers(), st.text(max_size=30).map(Markup), st.none()))
def test_escape_output_agrees_with_markupsafe(value: object) -> None:
    assert escape_output(value) == escape(value)
    assert type(escape_output(value)) is Markup
    done = escape(value)
    assert escape_output(done) is done  # escaped once, passed through after


def test_a_paper_changed_under_the_same_id_is_escaped_afresh(renderer: Renderer) -> None:
    """The per-paper cache is keyed by id but checked against the entry: no stale or unescaped text."""
    d = sample_digest(2)
    first = renderer.email(d, LINKS)
    changed = replace(d.matches[0].entry, title=HOSTILE, summary="New abstract & more")
    d2 = replace(d, matches=(replace(d.matches[0], entry=changed), d.matches[1]))
    email = renderer.email(d2, LINKS)
    assert d.matches[0].entry.title in first.html
    assert d.matches[0].entry.title not in email.html
    assert escape(HOSTILE) in email.html and "<script>" not in email.html
    assert "New abstract &amp; more" in email.html
    assert HOSTILE in email.text and "New abstract & more" in email.text
    again = renderer.email(d, LINKS)  # and back: the old title returns, escaped as before
    assert again.html == first.html


words = st.text(st.sampled_from("ab-c\u00e9\u2014 \t\xa0\n."), max_size=18)


@pytest.mark.slow
@settings(max_examples=300)
@given(st.lists(words, max_size=25), st.integers(0, 9), st.integers(0, 9), st.sampled_from([" ", "  "]))
def test_wrap_gives_what_textwrap_gives(parts: list[str], first: int, rest: int, sep: str) -> None:
    text = sep.join(parts)
    expected = text
    if len(text) + first > TEXT_WIDTH:
        expected = textwrap.fill(
            text, width=TEXT_WIDTH, initial_indent=" " * first, subsequent_indent=" " * rest, break_on_hyphens=False
        )[first:]
    assert _wrap(text, first, rest) == expected


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,x",
        "vbscript:x",
        "https://ok.example.org/\njavascript:x",
        'https://x.example.org/"onmouseover="x',
        "",
    ],
)
def test_unsafe_urls_become_hash(url: str) -> None:
    assert safe_url(url) == "#"


def test_javascript_urls_never_reach_email_or_feed(renderer: Renderer) -> None:
    e = replace(sample_entries(1)[0], link="javascript:alert(1)", code_url="JAVASCRIPT:x", project_url="data:x")
    d = replace(sample_digest(1), matches=(match_for(e),))
    email = renderer.email(d, replace(LINKS, unsubscribe_url="javascript:evil()"))
    rss = renderer.feed(d.profile, d.matches, kind="rss", self_url=RSS_SELF, updated=NOW)
    for out in (email.html, email.text, rss):
        assert "javascript:" not in out.lower()
        assert "data:x" not in out
    assert 'href="#"' in email.html


# -- the email -------------------------------------------------------------------


def test_a_25_item_email_stays_under_80_kb(renderer: Renderer) -> None:
    email = renderer.email(sample_digest(25), LINKS)
    assert email.html.count('class="t"') == 25
    assert len(email.html.encode()) <= 80_000


def test_email_has_header_items_footer_and_preheader(renderer: Renderer) -> None:
    d = sample_digest(7)
    email = renderer.email(d, LINKS)
    assert email.subject == "7 new papers for you: quantization, FP8 training (Mon 23 Nov)"
    assert "Monday 23 November 2026 · 7 new papers for Ada" in email.html
    for m in d.matches:
        assert f'href="{m.entry.link}"' in email.html
        assert f'href="https://arxiv.org/pdf/{m.entry.arxiv_id}"' in email.html
    assert "P. Silva, K. Haddad et al." in email.html
    assert 'href="https://github.com/example/repo0">Code</a>' in email.html
    assert 'href="https://example.org/project0">Project</a>' in email.html
    for m in d.matches:  # every sample paper came from Hugging Face: its page is linked
        assert f'href="https://huggingface.co/papers/{m.entry.arxiv_id}">Hugging Face</a>' in email.html
    assert "Matches &#34;quantization&#34; (title)" in email.html
    assert '<span class="n">1.</span>' in email.html and '<span class="n">7.</span>' in email.html
    assert email.html.count("Top match") == 1
    assert f'href="{LINKS.unsubscribe_url}">Unsubscribe' in email.html
    assert f'href="{LINKS.pause_url}">Pause' in email.html
    assert f'href="{LINKS.profile_url}">Edit your profile' in email.html
    assert "You get this because your profile (ada.toml) asks for: quantization, FP8 training" in email.html
    assert email.preheader.startswith("MegaScale")
    assert re.search(r'<div style="display:none;[^"]*">\s*MegaScale', email.html)
    assert "prefers-color-scheme: dark" in email.html
    scheme = r'<meta (name="color-scheme" content="light dark"|content="light dark" name="color-scheme")'
    assert re.search(scheme, email.html)


def test_view_in_browser_link_when_the_digest_has_a_page(renderer: Renderer) -> None:
    view = "https://news.example.org/d/tok-view"
    email = renderer.email(sample_digest(2), replace(LINKS, view_url=view))
    assert f'<a href="{view}">View in browser</a>' in email.html
    assert email.text.splitlines()[2] == f"View in browser: {view}"
    assert "View in browser" not in renderer.email(sample_digest(2), LINKS).html


def test_footer_without_pause_or_profile_url_says_what_to_edit(renderer: Renderer) -> None:
    email = renderer.email(sample_digest(1), replace(LINKS, pause_url="", profile_url=""))
    assert "set paused = true in ada.toml" in email.html
    assert "Edit ada.toml to change what you get" in email.html
    assert "Pause: set paused = true in ada.toml" in email.text


def test_text_part_is_numbered_wrapped_and_complete(renderer: Renderer) -> None:
    d = sample_digest(12)
    text = renderer.email(d, LINKS).text
    long_lines = [line for line in text.splitlines() if len(line) > 72 and "://" not in line]
    assert long_lines == []
    assert "&amp;" not in text and "&#34;" not in text
    for i, m in enumerate(d.matches, 1):
        assert re.search(rf"^ ?{i}\. ", text, re.M), i
        assert re.search(rf"^    Abstract: +{re.escape(m.entry.link)}$", text, re.M), i
        assert re.search(rf"^    PDF: +https://arxiv.org/pdf/{m.entry.arxiv_id}$", text, re.M), i
        assert f"https://huggingface.co/papers/{m.entry.arxiv_id}" in text
    assert text.count("Why: ") == 12
    assert text.count("TOP MATCH") == 1
    assert text.startswith("Paper digest\nMonday 23 November 2026 · 12 new papers for Ada\n")
    assert f"Unsubscribe: {LINKS.unsubscribe_url}" in text


def test_helpers() -> None:
    assert short_authors(["Ana Li", "Bo Kim", "Cy Wu", "Di Xu"]) == "A. Li, B. Kim et al."
    assert short_authors(["Ana Li", "Bo Kim", "Cy Wu"]) == "A. Li, B. Kim, C. Wu"
    assert short_authors(["Dao, Tri"]) == "T. Dao"
    assert short_authors(["Plato"]) == "Plato"
    assert cut("one two three four", 9) == "one two…"
    assert cut("short", 9) == "short"
    assert xml_text("a\x00b\x1fc\ud800d\ufffee\tf") == "abcde\tf"
    empty = replace(sample_digest(0))
    assert subject_for(empty) == "No new papers for you today (Mon 23 Nov)"


def test_broken_or_missing_template_is_a_render_error(tmp_path: Path) -> None:
    (tmp_path / "digest.txt").write_text("{% for x in %}")
    with pytest.raises(RenderError, match=r"digest\.txt line 1"):
        Renderer(tmp_path).email(sample_digest(1), LINKS)
    with pytest.raises(RenderError, match="unknown feed kind"):
        Renderer().feed(profile(), (), kind="json", self_url=RSS_SELF, updated=NOW)


def test_user_template_overrides_the_default(tmp_path: Path) -> None:
    (tmp_path / "digest.txt").write_text("Hello {{ name }}: {{ count_label }}\n")
    assert Renderer(tmp_path).email(sample_digest(2), LINKS).text == "Hello Ada: 2 new papers\n"


# -- feeds ------------------------------------------------------------------------


def feeds(r: Renderer, matches: tuple[Match, ...], prof: Any = None) -> tuple[str, str]:
    p = prof or profile()
    return (
        r.feed(p, matches, kind="rss", self_url=RSS_SELF, updated=NOW),
        r.feed(p, matches, kind="atom", self_url=ATOM_SELF, updated=NOW),
    )


def check_valid(rss: str, atom: str) -> tuple[Any, Any]:
    for doc in (rss, atom):
        etree.fromstring(doc.encode())  # well-formed XML 1.0
    atom_doc = etree.fromstring(atom.encode())
    assert ATOM_SCHEMA.validate(atom_doc), ATOM_SCHEMA.error_log
    parsed = feedparser.parse(rss.encode()), feedparser.parse(atom.encode())
    for p in parsed:
        assert p.bozo == 0, p.get("bozo_exception")
    return parsed


def test_feeds_are_valid_with_stable_guids_dates_self_link_and_reason(renderer: Renderer) -> None:
    d = sample_digest(5)
    rss, atom = check_valid(*feeds(renderer, d.matches))
    for parsed, self_url in ((rss, RSS_SELF), (atom, ATOM_SELF)):
        assert [e.id for e in parsed.entries] == [f"urn:newsletter:{m.entry.id}" for m in d.matches]
        assert any(link.rel == "self" and link.href == self_url for link in parsed.feed.links)
        assert parsed.entries[0].published_parsed[:6] == (2026, 11, 22, 6, 30, 0)
    # The reason is its own paragraph: <p> in RSS (whose description is HTML), a blank line in Atom (plain text).
    why_line = 'Why: Matches "quantization" (title); 94 upvotes on Hugging Face'
    assert rss.entries[0].summary.startswith(f"<p>{why_line}</p><p>We present")
    assert atom.entries[0].summary.startswith(f"{why_line}\n\nWe present")
    assert "<pubDate>Sun, 22 Nov 2026 06:30:00 GMT</pubDate>" in feeds(renderer, d.matches)[0]
    assert "<updated>2026-11-23T06:30:00Z</updated>" in feeds(renderer, d.matches)[1]
    # The same paper keeps its id when rendered again later, for another digest.
    later = feeds(renderer, d.matches[2:3])[1]
    assert f"<id>urn:newsletter:{d.matches[2].entry.id}</id>" in later


def test_empty_feeds_are_valid(renderer: Renderer) -> None:
    rss, atom = check_valid(*feeds(renderer, ()))
    assert rss.entries == [] and atom.entries == []


def test_xml_illegal_characters_are_stripped_from_feeds(renderer: Renderer) -> None:
    e = replace(sample_entries(1)[0], title="Bad\x00 ti\x01tle\ud800 \ufffe", authors=("A\x1b B",))
    rss, atom = check_valid(*feeds(renderer, (match_for(e),)))
    assert rss.entries[0].title == "Bad title"
    assert atom.entries[0].title == "Bad title"


def test_atom_schema_rejects_an_invalid_feed(renderer: Renderer) -> None:
    """The schema check can fail: a feed without <updated> is not Atom."""
    atom = feeds(renderer, sample_digest(1).matches)[1]
    broken = re.sub(r"<updated>[^<]*</updated>\n", "", atom, count=1)
    assert not ATOM_SCHEMA.validate(etree.fromstring(broken.encode()))


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80) | st.text(max_size=40)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=text, abstract=text, authors=st.lists(text, max_size=4), reason=text, note=text, name=text)
def test_arbitrary_text_keeps_feeds_and_email_valid(
    renderer: Renderer, title: str, abstract: str, authors: list[str], reason: str, note: str, name: str
) -> None:
    e = Entry(
        id=f"title:{title[:10]}",
        title=title,
        summary=abstract,
        link="https://arxiv.org/abs/2401.00001",
        first_seen=NOW - timedelta(hours=1),
        authors=tuple(authors),
        categories=(reason[:8],),
    )
    m = Match(entry=e, score=1.0, reasons=(Reason(ReasonKind.KEYWORD, reason, reason),))
    prof = profile(name=name)
    rss, atom = check_valid(*feeds(renderer, (m,), prof))
    assert len(rss.entries) == len(atom.entries) == 1
    digest = replace(sample_digest(0, prof), matches=(m,), notes=(note,))
    email = renderer.email(digest, LINKS)
    assert email.html.count('class="t"') == 1
    clean = xml_text(" ".join(title.split()))
    assert f'">{escape(clean)}</a></p>' in email.html


# -- golden files -----------------------------------------------------------------


def normalise_html(doc: str) -> str:
    """One tag per line and no indentation: diffs show what changed, not whitespace."""
    doc = re.sub(r">\s*<", ">\n<", doc)
    return "\n".join(line.strip() for line in doc.splitlines() if line.strip()) + "\n"


def test_golden_files(renderer: Renderer) -> None:
    """Set UPDATE_GOLDEN=1 to rewrite them after a deliberate change; review the diff."""
    d = sample_digest(4)
    email = renderer.email(d, LINKS)
    rss, atom = feeds(renderer, d.matches)
    outputs = {
        "digest.html": normalise_html(email.html),
        "digest.txt": email.text,
        "feed.rss.xml": rss,
        "feed.atom.xml": atom,
        "subject.txt": email.subject + "\n",
    }
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, out in outputs.items():
            (GOLDEN / name).write_text(out, encoding="utf-8")
    for name, out in outputs.items():
        path = GOLDEN / name
        assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 pytest tests/test_render.py"
        assert out == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


def test_self_check_names_a_broken_operator_template(tmp_path: Path) -> None:
    from newsletter.errors import RenderError
    from newsletter.render import Renderer, self_check

    self_check(Renderer())  # the defaults pass
    (tmp_path / "digest.txt").write_text("Hello {{ nme }}\n{% for m in matches %}{{ m.titel }}{% endfor %}\n")
    with pytest.raises(RenderError, match="nme"):
        self_check(Renderer(tmp_path))


def test_mjml_compiles_once_even_when_threads_render_at_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from newsletter.render import Renderer

    renderer = Renderer()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: renderer.compiled("digest.mjml"), range(8)))
    assert renderer.compile_count == 1


# -- reasons, written for a person --------------------------------------------------


def kw(term: str, where: str, words: tuple[str, ...] = (), detail: str = "") -> Reason:
    """A keyword reason as ranking builds it; the text is the match log, which ``why`` must not parse."""
    return Reason(ReasonKind.KEYWORD, f"log text for {term}", term, where, words, detail)


def test_why_groups_deduplicates_and_puts_the_strongest_first() -> None:
    reasons = (
        kw("low-bit", "abstract"),
        kw("post-training quantization", "title"),
        kw("quantization", "title"),  # inside "post-training quantization": said once
        Reason(ReasonKind.CATEGORY, "in cs.LG", "cs.LG"),  # the card shows categories: not repeated
        Reason(ReasonKind.AUTHOR, "by Tri Dao", "Tri Dao", detail="Tri Dao"),
        Reason(
            ReasonKind.PAPER, "log", "2307.08691", detail="FlashAttention-2: Faster Attention with Better Parallelism"
        ),
        Reason(ReasonKind.POPULAR, "popular on Hugging Face (84 upvotes)", detail="84"),
    )
    assert why(reasons) == (
        'Matches "post-training quantization" (title), "low-bit"; by Tri Dao; '
        'like "FlashAttention-2: Faster Attention with Better Parallelism"; 84 upvotes on Hugging Face'
    )


def test_why_reads_partial_matches_authors_and_abbreviations_naturally() -> None:
    partial = kw("pipeline parallelism", "abstract", ("parallelism",))
    assert why((partial,)) == 'Mentions "parallelism" (from "pipeline parallelism")'
    # a partial match says nothing more once another keyword matched in full
    assert why((kw("FP8 training", "title"), kw("training", "abstract"))) == 'Matches "FP8 training" (title)'
    assert why((kw("quantization", "abstract"), kw("post-training quantization", "title"))) == (
        'Matches "post-training quantization" (title)'
    )
    # in the title beats in the abstract: the title-only keyword is not hidden by an abstract-only longer one
    assert why((kw("quantization", "title"), kw("post-training quantization", "abstract"))) == (
        'Matches "quantization" (title), "post-training quantization"'
    )
    abbr = kw("LLM training", "title", detail="LLM = large language models")
    assert why((abbr,)) == 'Matches "LLM training" (title; LLM = large language models)'
    author = Reason(ReasonKind.AUTHOR, "by T. Dao (you follow Tri Dao)", "Tri Dao", detail="T. Dao")
    assert why((author,)) == "By T. Dao"
    assert why((Reason(ReasonKind.CATEGORY, "in cs.LG, cs.CL", "cs.LG"),)) == "In cs.LG, cs.CL"
    seed = Reason(ReasonKind.PAPER, "log", "2402.15627")
    assert why((seed,)) == "Like your paper 2402.15627"
    assert why(()) == ""
    assert why((Reason(ReasonKind.POPULAR, "popular on Hugging Face (9 upvotes)"),)) == "Popular on Hugging Face"


def test_why_quotes_a_semantic_reason_unless_the_phrase_matched_word_for_word() -> None:
    close = Reason(ReasonKind.SIMILAR, 'close in meaning to "MoE": "We route tokens to experts."', "MoE")
    assert (
        why((kw("FP8", "title"), close))
        == 'Matches "FP8" (title); close in meaning to "MoE": "We route tokens to experts."'
    )
    assert why((kw("MoE", "title"), close)) == 'Matches "MoE" (title)'


def test_why_shows_an_unknown_kind_by_its_text() -> None:
    """A kind added later (e.g. semantic similarity) is shown as ranking wrote it, after the lexical ones."""
    similar = Reason("similar", 'close in meaning to "MoE": "We route tokens."', "MoE")  # type: ignore[arg-type]
    line = why((kw("MoE", "title"), similar))
    assert line == 'Matches "MoE" (title); close in meaning to "MoE": "We route tokens."'


def test_trending_section_and_compact_layout(renderer: Renderer) -> None:
    d = sample_digest(3)
    trending = tuple(match_for(e) for e in sample_entries(6)[4:6])
    email = renderer.email(replace(d, trending=trending), LINKS)
    assert email.html.count("Trending on Hugging Face") == 1
    for m in trending:
        assert f"{m.entry.upvotes} upvotes" in email.html
        assert f"https://huggingface.co/papers/{m.entry.arxiv_id}" in email.text
    assert '<span class="n">4.</span>' in email.html  # numbering goes on after the picks
    assert "Trending on Hugging Face" in email.text
    assert "Trending" not in renderer.email(d, LINKS).html
    full = renderer.email(d, LINKS)
    compact = renderer.email(replace(d, profile=profile(layout="compact")), LINKS)
    abstract = " ".join(d.matches[0].entry.summary.split())
    assert cut(abstract, 250) in full.html and cut(abstract, 250) not in compact.html
    assert cut(abstract, 110) in compact.html
    assert len(compact.html) < len(full.html)
    assert compact.html.count('class="t"') == 3


def test_feed_items_are_dated_by_when_they_were_picked_in_rank_order(renderer: Renderer) -> None:
    """Feed readers sort by date: items carry their digest's send time, a second apart in rank order."""
    d = sample_digest(4)
    earlier = NOW - timedelta(days=1)
    picked_at = [NOW, NOW, earlier, earlier]  # newest digest first, each in the order it was picked
    p = profile()
    rss = feedparser.parse(renderer.feed(p, d.matches, kind="rss", self_url=RSS_SELF, updated=NOW, picked_at=picked_at))
    atom = feedparser.parse(
        renderer.feed(p, d.matches, kind="atom", self_url=ATOM_SELF, updated=NOW, picked_at=picked_at).encode()
    )
    for parsed in (rss, atom):
        dates = [e.published_parsed[:6] for e in parsed.entries]
        assert dates == [(2026, 11, 23, 6, 30, 0), (2026, 11, 23, 6, 29, 59), (2026, 11, 22, 6, 30, 0),
                         (2026, 11, 22, 6, 29, 59)]  # fmt: skip
        assert sorted(dates, reverse=True) == dates  # a reader sorting newest first keeps the digest order
    # Without pick times (a feed rendered from matches alone) the paper's own date stays.
    plain = feedparser.parse(renderer.feed(p, d.matches, kind="rss", self_url=RSS_SELF, updated=NOW))
    assert plain.entries[0].published_parsed[:6] == (2026, 11, 22, 6, 30, 0)


def test_why_line_for_a_real_fixture_paper() -> None:
    """The bundled samples ranked for the bundled Ada: issue 18's match log, now one sentence."""
    from datetime import UTC, datetime

    from newsletter import match, sources
    from newsletter.profiles import load_profile

    samples = Path(match.__file__).parent / "samples"
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    items = []
    for name in ("arxiv_cs.rss", "hf_daily_papers.json"):
        data = (samples / name).read_bytes()
        items += sources.parse(sources.detect_kind(data), name, data)
    entries = list(sources.merge_all({}, items, now).changed.values())
    ada = load_profile(samples / "profiles" / "ada.toml")
    got = {
        m.entry.title.split(":")[0]: m for m in match.rank(entries, ada, now, since=datetime(2000, 1, 1, tzinfo=UTC))
    }
    pd_quant = got["PD-Quant"]
    assert pd_quant.reason_line == (
        '"post-training quantization" in title; "low-bit" in abstract; "quantization" in title; in cs.LG; '
        "popular on Hugging Face (84 upvotes)"
    )
    assert why(pd_quant.reasons) == (
        'Matches "post-training quantization" (title), "low-bit"; 84 upvotes on Hugging Face'
    )
