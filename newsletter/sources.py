"""Sources: bytes from a feed into :class:`EntryData`, and items merged into entries.

Three adapters, one per feed kind (``arxiv``, ``hf``, ``feed``), each a pure
function ``bytes -> list[EntryData]``.  :func:`merge` folds an item into the
stored entry for the same paper (key: arXiv id without version, else DOI,
else normalised title + first author), keeping the richest fields and the
first-seen time.  The date arithmetic of catch-up after downtime
(:func:`catchup_plan`, :func:`missed_listing_days`) is pure too; reading the
bytes (a local file or HTTP, politely and hardened) is :mod:`newsletter.fetch`.

Everything a feed says is hostile until proven otherwise: feedparser only
ever gets bytes (a ``str`` would be taken for a URL or a path), feed HTML goes
through nh3 and comes out as plain text, and feedparser's quadratic
author-email regex is defused (see :func:`_defuse_author_regex`).
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import html
import json
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import feedparser
import feedparser.mixin
import nh3

from .errors import ParseError
from .types import Entry, EntryData

_ARXIV_NEW = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d+))?")
_ARXIV_OLD = re.compile(r"([a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_IN_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_ANNOUNCE_IN_TEXT = re.compile(r"Announce Type:\s*([a-z-]+)", re.IGNORECASE)
_OLD_TITLE_SUFFIX = re.compile(r"\s*\(arXiv:[^)]*\)\s*$")
_WS = re.compile(r"\s+")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
"""C0/C1 control characters (invalid in XML 1.0) and lone surrogates (unencodable)."""
_MAX_FIELD = 20_000
"""Longest title/summary we keep; feeds can carry megabytes in one field."""
_MAX_AUTHORS = 500
UPDATE_ONLY = frozenset({"replace", "replace-cross", "absonly"})
"""arXiv announce types of an old paper: they update a stored entry, never create one."""


def split_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """``oai:arXiv.org:2401.01234v2`` -> ``("2401.01234", 2)``; None if no id."""
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        m = pattern.search(text)
        if m:
            return m.group(1), int(m.group(2)) if m.group(2) else None
    return None


def to_text(fragment: str, limit: int = _MAX_FIELD) -> str:
    """Feed HTML to plain text: sanitised by nh3 (no tags kept), unescaped, collapsed."""
    fragment = _CONTROL.sub("", fragment[: limit * 4])
    cleaned = nh3.clean(fragment, tags=set(), clean_content_tags={"script", "style"})
    return _CONTROL.sub("", _WS.sub(" ", html.unescape(cleaned))).strip()[:limit]


def split_authors(text: str) -> tuple[str, ...]:
    """arXiv's one ``dc:creator`` line into names.

    Names are comma-separated ("A, B and C" also occurs); an affiliation in
    parentheses may itself contain commas ("Ada Lovelace (MIT, CSAIL)"), so
    commas inside parentheses do not split, and the affiliation is dropped.
    """
    names: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            names.append(text[start:i])
            start = i + 1
    names.append(text[start:])
    out = []
    for chunk in names:
        for name in re.split(r"\s+and\s+", chunk.strip()):
            name = re.sub(r"\s*\([^()]*\)\s*$", "", name).strip()
            if name.lower().startswith("and "):
                name = name[4:].strip()
            if name:
                out.append(name[:200])
    return tuple(out[:_MAX_AUTHORS])


# -- feedparser, defused -------------------------------------------------------

_EMAILISH_RUN = re.compile(r"[A-Za-z0-9_.+\-]{64,}")
"""A run of the characters feedparser's email regex backtracks over."""


FEEDPARSER_MAJOR = 6
"""The feedparser major version whose ``_FeedParserMixin._sync_author_detail`` the patch below was written for."""


def _defuse_author_regex(version: str = feedparser.__version__) -> bool:
    """Make feedparser's author-email regex linear (feedparser #562); True when the patch is active.

    ``_sync_author_detail`` searches the author text with a pattern that
    costs time proportional to the length of every run of ``[A-Za-z0-9_.+-]``
    from every start position: a 32 KB run takes ~4 s.  No real name or email
    has a run of 64 such characters, so runs are cut to 64 before the search.
    Done here, on the decoded text, it also covers entity-encoded and UTF-16
    feeds, which a byte-level pre-trim would miss.

    It wraps a private method, so it checks what it patches: on another
    feedparser major version it warns (the method may have changed meaning),
    and without the method it refuses to patch and warns that one hostile
    author field can stall a fetch.  pyproject pins ``feedparser<7``.
    """
    mixin = feedparser.mixin._FeedParserMixin
    original = getattr(mixin, "_sync_author_detail", None)
    major = version.split(".")[0]
    if major != str(FEEDPARSER_MAJOR):
        warnings.warn(
            f"feedparser {version} is not the {FEEDPARSER_MAJOR}.x newsletter.sources was written for: "
            "its author-regex patch (feedparser #562) may not fit; pin feedparser<7 or review the patch",
            RuntimeWarning,
            stacklevel=2,
        )
    if not callable(original):
        warnings.warn(
            f"feedparser {version} has no _FeedParserMixin._sync_author_detail: the author-regex patch "
            "(feedparser #562) is NOT installed and a long author field can stall parsing; pin feedparser<7",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    if getattr(original, "_defused", False):
        return True

    def _sync_author_detail(self: Any, key: str = "author") -> None:
        context = self._get_context()
        value = context.get(key)
        if isinstance(value, str) and len(value) > 64:
            context[key] = _EMAILISH_RUN.sub(lambda m: m.group(0)[:64], value)
        original(self, key)

    _sync_author_detail._defused = True  # type: ignore[attr-defined]
    mixin._sync_author_detail = _sync_author_detail
    return True


AUTHOR_REGEX_DEFUSED = _defuse_author_regex()
"""Installed once, when this module (the only one that calls feedparser) is imported."""

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_PROLOG_LIMIT = 64 * 1024


def _feed(data: bytes) -> feedparser.FeedParserDict:
    if not isinstance(data, bytes):  # a str would be taken for a URL or a path
        raise TypeError("feedparser must be given bytes")
    # feedparser drops the DOCTYPE (no entity expansion), but a document that
    # declares entities is an attack or a mistake, never a feed: say so.
    head = data[:_PROLOG_LIMIT]
    root = re.search(rb"<(?:rss|feed|rdf:RDF)\b", head)
    if _ENTITY_DECL.search(head[: root.start()] if root else head):
        raise ParseError("refused: the document declares XML entities (a feed never needs them; billion laughs?)")
    parsed = feedparser.parse(data)
    if not parsed.get("version"):
        error = parsed.get("bozo_exception")
        if error is not None and not parsed.entries:
            raise ParseError(f"not a feed: malformed XML ({error})")
        raise ParseError("not an RSS or Atom feed (is the URL a web page?)")
    if parsed.bozo and not any(e.get("id") or e.get("link") for e in parsed.entries):
        # what the lenient parser recovered has no item we could tell apart: nothing usable
        raise ParseError(f"not a feed: malformed XML ({parsed.get('bozo_exception', 'unreadable')})")
    return parsed


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


# -- adapters ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parsed:
    """One document, parsed: its items, and the listing day it is for, if known."""

    items: tuple[EntryData, ...]
    day: date | None = None
    """arXiv: the announcement day of the listing (for gap detection)."""


def _arxiv(source: str, data: bytes) -> Parsed:
    parsed = _feed(data)
    channel = parsed.get("feed", {})
    feed_time = _parse_time(channel.get("published_parsed") or channel.get("updated_parsed"))
    out = []
    for item in parsed.entries:
        guid = item.get("id") or item.get("link") or ""
        found = split_arxiv_id(guid) or split_arxiv_id(item.get("link", ""))
        if not found:
            continue
        arxiv_id, version = found
        raw_summary = item.get("summary", "")
        announce = item.get("arxiv_announce_type") or ""
        if not announce:
            in_text = _ANNOUNCE_IN_TEXT.search(raw_summary[:500])
            announce = in_text.group(1) if in_text else "new"
        people = item.get("authors") or []
        if len(people) > 1:  # Atom with one <author> per person (the arXiv API)
            authors = tuple(to_text(a.get("name", ""), 200) for a in people if a.get("name"))[:_MAX_AUTHORS]
        else:  # one comma-separated dc:creator
            authors = split_authors(to_text(item.get("author") or ""))
        categories = tuple(dict.fromkeys(t["term"].strip() for t in item.get("tags", []) if t.get("term")))
        primary = (item.get("arxiv_primary_category") or {}).get("term")
        if primary and primary not in categories:
            categories = (primary, *categories)
        out.append(
            EntryData(
                source=source,
                guid=guid,
                title=_OLD_TITLE_SUFFIX.sub("", to_text(item.get("title", ""), 1000)),
                summary=to_text(_ARXIV_PREFIX.sub("", raw_summary)),
                link=f"https://arxiv.org/abs/{arxiv_id}",
                authors=authors,
                categories=categories[:50],
                arxiv_id=arxiv_id,
                version=version,
                doi=_doi(item),
                announce_type=announce.strip().lower(),
                published=_parse_time(item.get("published_parsed") or item.get("updated_parsed")) or feed_time,
            )
        )
    dates = [d.published for d in out if d.published] or ([feed_time] if feed_time else [])
    return Parsed(tuple(out), max(dates).date() if dates else None)


def parse_arxiv(source: str, data: bytes) -> list[EntryData]:
    """An arXiv listing feed (RSS 2.0 or Atom, ``rss.arxiv.org``; also the old RSS 1.0 and the API's Atom)."""
    return list(_arxiv(source, data).items)


def parse_hf(source: str, data: bytes) -> list[EntryData]:
    """The Hugging Face ``api/daily_papers`` JSON list."""
    try:
        items = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"not JSON: {e}") from e
    if not isinstance(items, list):
        raise ParseError("expected a JSON list of daily papers")
    out = []
    for item in items:
        paper = item.get("paper") if isinstance(item, dict) else None
        if not isinstance(paper, dict) or not isinstance(paper.get("id"), str):
            continue
        found = split_arxiv_id(paper["id"])
        if not found:
            continue
        arxiv_id, version = found
        published = paper.get("publishedAt") or item.get("publishedAt")
        upvotes = paper.get("upvotes")
        people = paper.get("authors")
        out.append(
            EntryData(
                source=source,
                guid=f"hf:{arxiv_id}",
                title=to_text(str(paper.get("title") or item.get("title") or ""), 1000),
                summary=to_text(str(paper.get("summary") or "")),
                link=f"https://arxiv.org/abs/{arxiv_id}",
                authors=tuple(
                    to_text(str(a.get("name", "")), 200)
                    for a in (people[:_MAX_AUTHORS] if isinstance(people, list) else [])
                    if isinstance(a, dict) and a.get("name")
                ),
                arxiv_id=arxiv_id,
                version=version,
                published=_iso(published),
                upvotes=upvotes if isinstance(upvotes, int) and not isinstance(upvotes, bool) else None,
                code_url=_http(paper.get("githubRepo")),
                project_url=_http(paper.get("projectPage")),
            )
        )
    return out


def parse_feed(source: str, data: bytes) -> list[EntryData]:
    """Any RSS 0.9x/1.0/2.0 or Atom feed (blogs, journals): id from guid, else link, else title hash."""
    out = []
    for item in _feed(data).entries:
        title = to_text(item.get("title", ""), 1000)
        link = _http(item.get("link")) or ""
        guid = item.get("id") or link or "title:" + hashlib.sha256(title.encode()).hexdigest()[:16]
        found = _ARXIV_IN_URL.search(link)
        content = item.get("content") or []
        body = content[0].get("value", "") if content else item.get("summary", "")
        authors = tuple(to_text(a.get("name", ""), 200) for a in item.get("authors", []) if a.get("name"))
        out.append(
            EntryData(
                source=source,
                guid=guid,
                title=title,
                summary=to_text(body),
                link=link,
                authors=authors[:_MAX_AUTHORS],
                categories=tuple(t["term"] for t in item.get("tags", []) if t.get("term"))[:50],
                arxiv_id=found.group(1) if found else None,
                version=int(found.group(2)) if found and found.group(2) else None,
                doi=_doi(item),
                published=_parse_time(item.get("published_parsed") or item.get("updated_parsed")),
            )
        )
    return out


ADAPTERS: Mapping[str, Callable[[str, bytes], list[EntryData]]] = {
    "arxiv": parse_arxiv,
    "hf": parse_hf,
    "feed": parse_feed,
}


def detect_kind(data: bytes) -> str:
    """Which adapter reads *data*: a JSON document is Hugging Face, an arXiv listing says so, else any feed."""
    if data.lstrip()[:1] in (b"[", b"{"):
        return "hf"
    head = data[:200_000]
    if b"oai:arXiv.org:" in head or b"arxiv:announce_type" in head:
        return "arxiv"
    return "feed"


def parse(kind: str, source: str, data: bytes) -> list[EntryData]:
    """The items of one document of *kind*; hostile input raises :class:`ParseError`, nothing else."""
    return list(parse_document(kind, source, data).items)


def parse_document(kind: str, source: str, data: bytes, content_type: str | None = None) -> Parsed:
    """Like :func:`parse`, also checking the content type and returning the listing day."""
    check_content_type(kind, content_type, data)
    try:
        if kind == "arxiv":
            return _arxiv(source, data)
        return Parsed(tuple(ADAPTERS[kind](source, data)))
    except ParseError:
        raise
    except Exception as e:  # a hostile feed must never take the run down
        raise ParseError(f"cannot parse {kind} feed: {type(e).__name__}: {e}") from e


_XML_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<(?:\?xml|rss|feed|rdf:RDF|!--)", re.IGNORECASE)
_JSON_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*[\[{]")


def check_content_type(kind: str, content_type: str | None, data: bytes) -> None:
    """Refuse a web page or a binary file served where a feed was expected.

    Feeds are often served with a sloppy type (``text/plain``,
    ``application/octet-stream``), so the type alone decides nothing: only a
    type that says "web page" or "not text", with a body that does not look
    like the expected format, is an error.
    """
    mime = (content_type or "").split(";")[0].strip().lower()
    if not mime:
        return
    expected = "JSON" if kind == "hf" else "an RSS/Atom feed"
    looks_right = (_JSON_START if kind == "hf" else _XML_START).match(data[:1024]) is not None
    if is_binary_type(mime) or (mime in ("text/html", "application/xhtml+xml") and not looks_right):
        raise ParseError(f"wrong content type: expected {expected}, got {mime} (is the URL right?)")


def is_binary_type(mime: str) -> bool:
    """Content types that can never be a feed: refused before the body is read."""
    major = mime.split("/")[0]
    return major in ("image", "audio", "video", "font") or mime in (
        "application/pdf",
        "application/zip",
        "application/x-tar",
        "application/vnd.ms-excel",
    )


def _http(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else None


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _doi(item: Mapping[str, Any]) -> str | None:
    for key in ("arxiv_doi", "prism_doi", "dc_identifier"):
        value = item.get(key)
        if isinstance(value, str):
            value = value.strip().lower().removeprefix("doi:").removeprefix("https://doi.org/")
            if value.startswith("10."):
                return value.split()[0]
    return None


# -- catch-up after downtime (pure) --------------------------------------------


def catchup_plan(last_date: str | None, today: date, max_days: int) -> tuple[list[date], list[date]]:
    """Which past days a date-addressed source (HF ``?date=``) should be asked for.

    Returns ``(fetch, missed)``: the days from the last successful one (again:
    it may have grown after we fetched it) up to yesterday, at most the
    *max_days* most recent; older days go to *missed*.  Today is the
    source's plain URL, fetched anyway.  Nothing before the first success.
    """
    if last_date is None:
        return [], []
    try:
        start = date.fromisoformat(last_date)
    except ValueError:
        return [], []
    days = [start + timedelta(days=i) for i in range((today - start).days)]
    cut = max(0, len(days) - max_days)
    return days[cut:], days[:cut]


def missed_listing_days(last_day: str | None, day: date | None) -> list[date]:
    """Weekdays strictly between the last listing we saw and this one.

    arXiv's RSS holds only the latest announcement, so these listings are
    gone: they can only be recorded and reported.  (Holidays have no listing
    either; a weekday reported here may be one.)
    """
    if last_day is None or day is None:
        return []
    try:
        start = date.fromisoformat(last_day)
    except ValueError:
        return []
    gap = [start + timedelta(days=i) for i in range(1, (day - start).days)]
    return [d for d in gap if d.weekday() < 5]


# -- one entry per paper ---------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def normalise_title(title: str) -> str:
    """Folded, lower-case words of a title or name (cached: a fetch asks for each item's ~8 times)."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", folded))


def _title_key(title: str, authors: Sequence[str]) -> str:
    first = normalise_title(authors[0]).split()[-1:] if authors else []
    basis = normalise_title(title) + "|" + " ".join(first)
    return "title:" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def _identity(arxiv_id: str | None, doi: str | None, title: str, authors: Sequence[str]) -> list[str]:
    keys = [f"arxiv:{arxiv_id}"] if arxiv_id else []
    if doi:
        keys.append(f"doi:{doi.lower()}")
    keys.append(_title_key(title, authors))
    return keys


def identity_keys(d: EntryData) -> list[str]:
    """Every key one paper can be known by, strongest first: arXiv id, DOI, title + first author."""
    return _identity(d.arxiv_id, d.doi, d.title, d.authors)


def entry_identity_keys(e: Entry) -> list[str]:
    """:func:`identity_keys` of a stored entry, for the alias index."""
    return _identity(e.arxiv_id, e.doi, e.title, e.authors)


def entry_key(d: EntryData) -> str:
    """The canonical id of a paper first seen as *d*: its strongest identity key."""
    return identity_keys(d)[0]


def alias_index(entries: Iterable[Entry]) -> dict[str, str]:
    """Every identity key of the stored entries -> the id of the entry it belongs to."""
    aliases: dict[str, str] = {}
    for e in entries:
        for k in entry_identity_keys(e):
            aliases.setdefault(k, e.id)
    return aliases


def _resolve(d: EntryData, get: Callable[[str], Entry | None], aliases: Mapping[str, str]) -> tuple[str, Entry | None]:
    """The id *d* merges into (and that entry), or the id a new entry gets.

    Any shared key joins two copies: an arXiv listing that carries a DOI and a
    journal's item with that DOI are one paper.  A title match is weaker: two
    items of the *same* source with the same title but different links are
    different posts ("This week in ML"), so the second gets a key of its own.
    """
    keys = identity_keys(d)
    new_id = keys[0]
    for k in keys:
        target = k if get(k) is not None else aliases.get(k)
        found = get(target) if target is not None else None
        if target is None or found is None:
            continue
        if k.startswith("title:") and d.source in found.sources and found.link != d.link:
            own = f"{k}:{hashlib.sha256(d.link.encode()).hexdigest()[:8]}"
            mine = get(own)
            if mine is not None:
                return own, mine
            if new_id == k:
                new_id = own
            continue
        return target, found
    return new_id, None


def merge(existing: Entry | None, d: EntryData, now: datetime, *, key: str | None = None) -> Entry:
    """Fold one parsed item into the stored entry; pure.

    Keeps the first-seen time, the longest text, the union of categories, the
    most upvotes and the newest version; ``updated`` moves when anything did.
    A new entry gets *key* as its id (default: :func:`entry_key`).
    """
    if existing is None:
        key = key or entry_key(d)
        return Entry(
            id=key,
            title=d.title,
            summary=d.summary,
            link=d.link,
            first_seen=now,
            authors=d.authors,
            categories=d.categories,
            arxiv_id=d.arxiv_id,
            version=d.version,
            doi=d.doi,
            published=d.published,
            upvotes=d.upvotes,
            code_url=d.code_url,
            project_url=d.project_url,
            sources=(d.source,),
        )
    newer = (d.version or 0) > (existing.version or 0)
    merged = replace(
        existing,
        title=d.title if newer and d.title else existing.title or d.title,
        summary=d.summary if (newer and d.summary) or len(d.summary) > len(existing.summary) else existing.summary,
        authors=d.authors if len(d.authors) > len(existing.authors) else existing.authors,
        categories=tuple(dict.fromkeys((*existing.categories, *d.categories))),
        version=max(existing.version or 0, d.version or 0) or None,
        doi=existing.doi or d.doi,
        published=existing.published or d.published,
        upvotes=max(existing.upvotes or 0, d.upvotes or 0) if (existing.upvotes, d.upvotes) != (None, None) else None,
        code_url=existing.code_url or d.code_url,
        project_url=existing.project_url or d.project_url,
        sources=tuple(dict.fromkeys((*existing.sources, d.source))),
    )
    if merged == existing:
        return existing
    return replace(merged, updated=now)


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    changed: dict[str, Entry]
    """Entries to write: new or updated."""
    new: int
    updated: int
    unchanged: int


def merge_all(
    existing: Mapping[str, Entry],
    items: Iterable[EntryData],
    now: datetime,
    *,
    aliases: dict[str, str] | None = None,
) -> MergeOutcome:
    """Merge a batch of items into the stored entries; pure but for *aliases*.

    *aliases* (:func:`alias_index` of *existing*) lets a copy that shares only
    a DOI or a title + first author with a stored paper find it; pass the same
    dict for every source of one fetch and it is kept up to date.  An arXiv
    replacement (``replace``, ``replace-cross``, ``absonly``) updates a stored
    paper but never creates one: it is an old paper, not news.
    """
    if aliases is None:
        aliases = alias_index(existing.values())
    changed: dict[str, Entry] = {}

    def get(key: str) -> Entry | None:
        return changed.get(key) or existing.get(key)

    new = updated = unchanged = 0
    new_ids: set[str] = set()
    for d in items:
        key, before = _resolve(d, get, aliases)
        if before is None and d.announce_type in UPDATE_ONLY:
            unchanged += 1
            continue
        after = merge(before, d, now, key=key)
        if before is None:
            new += 1
            new_ids.add(key)
        elif after is before:
            unchanged += 1
            continue
        elif key not in new_ids and key not in changed:
            updated += 1
        changed[key] = after
        for k in entry_identity_keys(after):
            aliases.setdefault(k, key)
    return MergeOutcome(changed, new, updated, unchanged)
