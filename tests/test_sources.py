"""The adapters, the merge and the catch-up arithmetic: pure functions on bytes and dates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from feedserver import arxiv_feed, arxiv_item, billion_laughs

from newsletter import sources
from newsletter.errors import ParseError
from newsletter.types import EntryData

NOW = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


def test_arxiv_rss_fixture_gives_canonical_ids_authors_and_categories(arxiv_bytes: bytes) -> None:
    parsed = sources.parse_document("arxiv", "a", arxiv_bytes, "application/rss+xml")
    items = parsed.items
    assert len(items) == 334 and len({d.arxiv_id for d in items}) == 334
    first = items[0]
    assert (first.arxiv_id, first.version, first.announce_type) == ("2409.33625", 1, "new")
    assert first.authors == ("Priya Silva", "Kofi Haddad", "Dmitri Ivanova", "Ana Novak")
    assert first.categories == ("cs.DC",) and first.link == "https://arxiv.org/abs/2409.33625"
    assert first.summary.startswith("We present the design") and "Announce Type" not in first.summary
    assert parsed.day == date(2025, 11, 16)


def test_arxiv_atom_as_served_by_rss_arxiv_org_and_by_the_api() -> None:
    listing = b"""<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom"
      xmlns:dc="http://purl.org/dc/elements/1.1/">
  <id>http://rss.arxiv.org/atom/cs.LG</id><title>cs.LG updates on arXiv.org</title>
  <updated>2025-11-14T00:00:00-05:00</updated>
  <entry>
    <id>oai:arXiv.org:2411.01234v3</id><title>A Replaced Paper</title>
    <updated>2025-11-14T00:00:00-05:00</updated>
    <link href="https://arxiv.org/abs/2411.01234" rel="alternate" type="text/html"/>
    <summary>arXiv:2411.01234v3 Announce Type: replace-cross
Abstract: Old &lt;b&gt;news&lt;/b&gt;.</summary>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="stat.ML" scheme="http://arxiv.org/schemas/atom"/>
    <published>2025-11-14T00:00:00-05:00</published>
    <arxiv:announce_type>replace-cross</arxiv:announce_type>
    <arxiv:DOI>10.1000/XYZ.1</arxiv:DOI>
    <dc:creator>Ada Lovelace (Analytical Engines, London), Alan Turing and Grace Hopper</dc:creator>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/cond-mat/0102536v1</id><title>An API entry</title>
    <updated>2001-02-28T20:12:09Z</updated><published>2001-02-28T20:12:09Z</published>
    <summary>Text.</summary>
    <author><name>David Prendergast</name></author><author><name>M. Nolan</name></author>
    <arxiv:primary_category term="cond-mat.str-el" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cond-mat.str-el" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>"""
    replaced, api = sources.parse("arxiv", "a", listing)
    assert (replaced.arxiv_id, replaced.version, replaced.announce_type) == ("2411.01234", 3, "replace-cross")
    assert replaced.authors == ("Ada Lovelace", "Alan Turing", "Grace Hopper")
    assert replaced.categories == ("cs.LG", "stat.ML") and replaced.doi == "10.1000/xyz.1"
    assert replaced.summary == "Old news."
    assert (api.arxiv_id, api.version, api.announce_type) == ("cond-mat/0102536", 1, "new")
    assert api.authors == ("David Prendergast", "M. Nolan") and api.categories == ("cond-mat.str-el",)


def test_announce_type_falls_back_to_the_description() -> None:
    item = arxiv_item("2401.00001", announce="cross")
    feed = arxiv_feed([item.replace("<arxiv:announce_type>cross</arxiv:announce_type>", "")])
    assert sources.parse("arxiv", "a", feed)[0].announce_type == "cross"


def test_hf_json_with_upvotes_and_links(hf_bytes: bytes) -> None:
    items = sources.parse("hf", "h", hf_bytes)
    assert len(items) == 334 and all(isinstance(d.upvotes, int) for d in items)
    odd = json.dumps(
        [
            {"paper": {"id": "2401.00009v2", "title": "T\ud800 <b>x</b>", "authors": "nobody", "upvotes": True,
                       "githubRepo": "https://github.com/example/x", "projectPage": "javascript:alert(1)"}},
            {"paper": {"id": 12}}, "junk", {"no": "paper"},
        ]
    ).encode()  # fmt: skip
    (one,) = sources.parse("hf", "h", odd)
    assert (one.arxiv_id, one.version, one.title, one.authors, one.upvotes) == ("2401.00009", 2, "T x", (), None)
    assert one.code_url == "https://github.com/example/x" and one.project_url is None
    with pytest.raises(ParseError, match="not JSON"):
        sources.parse("hf", "h", b"<html></html>")


def test_generic_feeds_take_their_id_from_guid_then_link_then_title() -> None:
    rss091 = b"""<?xml version="1.0"?><rss version="0.91"><channel><title>Blog</title>
<item><title>With guid</title><link>https://blog.example.org/a</link><guid>tag:example.org,2025:a</guid>
<description>&lt;p&gt;Hi &lt;script&gt;alert(1)&lt;/script&gt;there&lt;/p&gt;</description></item>
<item><title>Only a link</title><link>https://blog.example.org/b</link></item>
<item><title>Only a title</title></item>
<item><title>Cites arXiv</title><link>https://arxiv.org/abs/2401.01234v2</link></item>
</channel></rss>"""
    a, b, c, d = sources.parse("feed", "blog", rss091)
    assert a.guid == "tag:example.org,2025:a" and a.summary == "Hi there"
    assert b.guid == "https://blog.example.org/b"
    assert c.guid.startswith("title:") and c.link == ""
    assert (d.arxiv_id, d.version) == ("2401.01234", 2)
    rdf = b"""<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="x"><title>J</title></channel>
<item rdf:about="https://journal.example.org/1"><title>RSS 1.0</title><link>https://journal.example.org/1</link>
<dc:identifier>doi:10.5555/ABC</dc:identifier></item></rdf:RDF>"""
    (j,) = sources.parse("feed", "journal", rdf)
    assert j.doi == "10.5555/abc" and sources.entry_key(j) == "doi:10.5555/abc"


def test_feedparser_gets_bytes_only() -> None:
    with pytest.raises(TypeError):
        sources._feed("https://example.org/feed.xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (billion_laughs(), "declares XML entities"),
        (b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>x</titl', "malformed XML"),
        (b"<!DOCTYPE html><html><body><p>Sign in</p></body></html>", "not an RSS or Atom feed"),
        (b"", "not an RSS or Atom feed"),
    ],
)
def test_hostile_documents_are_a_parse_error(document: bytes, reason: str) -> None:
    for kind in ("arxiv", "feed"):
        with pytest.raises(ParseError, match=reason):
            sources.parse(kind, "x", document)


def test_a_web_page_or_an_image_is_the_wrong_content_type() -> None:
    with pytest.raises(ParseError, match="got text/html"):
        sources.check_content_type("feed", "text/html; charset=utf-8", b"<!DOCTYPE html><html></html>")
    with pytest.raises(ParseError, match="expected JSON"):
        sources.check_content_type("hf", "text/html", b"<html></html>")
    sources.check_content_type("feed", "text/html", b'<?xml version="1.0"?><rss version="2.0"></rss>')  # sloppy
    sources.check_content_type("feed", "text/plain", b"anything")  # decided by the parser


@pytest.mark.timeout(10)
@pytest.mark.parametrize("author", ["a" * 131_072, "&#97;" * 65_536, "x." * 65_536])
def test_a_huge_author_field_is_defused(author: str) -> None:
    """feedparser's author-email regex is quadratic: undefused, 128 KB of letters take about a minute."""
    (item,) = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00002", creator=author)]))
    assert item.arxiv_id == "2401.00002" and len(item.authors[0]) <= 200


def test_real_author_lists_survive_the_defusing() -> None:
    names = [f"Firstname{i} Lastname{i}" for i in range(1500)]
    (item,) = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00003", creator=", ".join(names))]))
    assert item.authors == tuple(names[:500])
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>b</title><item><title>t</title>
<link>https://blog.example.org/x</link>
<author>ada.lovelace@engines.example.org (Ada Lovelace)</author></item></channel></rss>"""
    assert sources.parse("feed", "b", feed)[0].authors == ("Ada Lovelace",)


def test_text_is_sanitised_and_stripped_of_control_characters() -> None:
    assert sources.to_text('<img src=x onerror="alert(1)"><b>bold</b>\x00\x1b text\ud800') == "bold text"
    assert sources.to_text("<style>p{}</style>a &amp; b") == "a & b"


def test_one_entry_per_paper_across_sources_with_merged_fields(arxiv_bytes: bytes, hf_bytes: bytes) -> None:
    first = sources.merge_all({}, sources.parse("arxiv", "arxiv", arxiv_bytes), NOW)
    later = datetime(2025, 11, 15, tzinfo=UTC)
    second = sources.merge_all(first.changed, sources.parse("hf", "hf", hf_bytes), later)
    assert (first.new, second.new, second.updated) == (334, 0, 334)
    entry = second.changed["arxiv:2409.33625"]
    assert entry.categories == ("cs.DC",) and entry.upvotes is not None
    assert entry.first_seen == NOW and entry.updated == later and entry.sources == ("arxiv", "hf")


def test_replacements_update_but_never_create() -> None:
    v1 = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00004")]))
    v2 = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00004", version=2, announce="replace")]))
    absonly = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00005", announce="absonly")]))
    assert sources.merge_all({}, v2 + absonly, NOW).new == 0
    stored = sources.merge_all({}, v1, NOW).changed
    outcome = sources.merge_all(stored, v2, NOW)
    assert (outcome.new, outcome.updated, outcome.changed["arxiv:2401.00004"].version) == (0, 1, 2)


def test_catch_up_plan_fetches_from_the_last_success_to_yesterday() -> None:
    today = date(2025, 11, 14)
    assert sources.catchup_plan(None, today, 7) == ([], [])
    assert sources.catchup_plan("2025-11-14", today, 7) == ([], [])
    assert sources.catchup_plan("2025-11-13", today, 7) == ([date(2025, 11, 13)], [])
    fetch, missed = sources.catchup_plan("2025-11-01", today, 3)
    assert fetch == [date(2025, 11, 11), date(2025, 11, 12), date(2025, 11, 13)]
    assert missed[0] == date(2025, 11, 1) and missed[-1] == date(2025, 11, 10)


def test_missed_arxiv_listings_are_the_weekdays_in_between() -> None:
    assert sources.missed_listing_days("2025-11-14", date(2025, 11, 17)) == []  # Friday to Monday
    assert sources.missed_listing_days("2025-11-12", date(2025, 11, 18)) == [
        date(2025, 11, 13), date(2025, 11, 14), date(2025, 11, 17)
    ]  # fmt: skip
    assert sources.missed_listing_days(None, date(2025, 11, 18)) == []


def test_split_authors_keeps_affiliations_with_commas_together() -> None:
    assert sources.split_authors("A. One (X, Y), B. Two, and C. Three") == ("A. One", "B. Two", "C. Three")
    assert sources.split_authors("") == ()


def _item(source: str, title: str, link: str, **kw: object) -> EntryData:
    return EntryData(source=source, guid=link, title=title, summary="s", link=link, **kw)  # type: ignore[arg-type]


def test_copies_sharing_any_key_are_one_entry() -> None:
    """An arXiv listing carrying a DOI, the journal's item with that DOI, a blog post with the same title."""
    arxiv = _item("arxiv", "FP8 Training at Scale", "https://arxiv.org/abs/2501.00001", authors=("Ana Li",),
                  arxiv_id="2501.00001", doi="10.1234/fp8")  # fmt: skip
    journal = _item("journal", "FP8 training at scale", "https://journal.example.org/fp8", doi="10.1234/FP8")
    blog = _item("blog", "FP8 Training at Scale!", "https://blog.example.org/fp8", authors=("A. Li",))
    outcome = sources.merge_all({}, [arxiv, journal, blog], NOW)
    assert list(outcome.changed) == ["arxiv:2501.00001"] and outcome.new == 1
    assert outcome.changed["arxiv:2501.00001"].sources == ("arxiv", "journal", "blog")
    # and in the other order, over two fetches, with the store in between
    first = sources.merge_all({}, [journal], NOW)
    second = sources.merge_all(first.changed, [arxiv, blog], NOW)
    assert (second.new, second.updated) == (0, 1) and list(second.changed) == ["doi:10.1234/fp8"]


def test_same_title_posts_of_one_source_stay_apart() -> None:
    week1 = _item("blog", "This week in ML", "https://blog.example.org/2026/47")
    week2 = _item("blog", "This week in ML", "https://blog.example.org/2026/48")
    first = sources.merge_all({}, [week1], NOW)
    second = sources.merge_all(first.changed, [week1, week2], NOW)
    assert (second.new, second.unchanged) == (1, 1)
    stored = {**first.changed, **second.changed}
    assert sorted(e.link for e in stored.values()) == [week1.link, week2.link]
    again = sources.merge_all(stored, [week1, week2], NOW)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 2)
