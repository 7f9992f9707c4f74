"""Sources: bytes from a feed into :class:`EntryData`, and items merged into entries.

Three adapters, one per feed kind (``arxiv``, ``hf``, ``feed``), each a pure
function ``bytes -> list[EntryData]``.  :func:`merge` folds an item into the
stored entry for the same paper (key: arXiv id without version, else DOI,
else normalised title + first author), keeping the richest fields and the
first-seen time.  Reading the bytes (a local file or HTTP) sits behind
:func:`read_source`; politeness and hardening of the HTTP side are in
:mod:`newsletter.fetch`.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import feedparser
import nh3

from .errors import ParseError
from .types import Entry, EntryData

_ARXIV_NEW = re.compile(r"(\d{4}\.\d{4,5})(?:v(\d+))?")
_ARXIV_OLD = re.compile(r"([a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_IN_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(\d+))?")
_ARXIV_PREFIX = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_WS = re.compile(r"\s+")
_MAX_FIELD = 20_000
"""Longest title/summary we keep; feeds can carry megabytes in one field."""
_MAX_AUTHORS = 500


def split_arxiv_id(text: str) -> tuple[str, int | None] | None:
    """``oai:arXiv.org:2401.01234v2`` -> ``("2401.01234", 2)``; None if no id."""
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        m = pattern.search(text)
        if m:
            return m.group(1), int(m.group(2)) if m.group(2) else None
    return None


def to_text(fragment: str, limit: int = _MAX_FIELD) -> str:
    """Feed HTML to plain text: sanitised by nh3 (no tags kept), unescaped, collapsed."""
    cleaned = nh3.clean(fragment[: limit * 4], tags=set(), clean_content_tags={"script", "style"})
    return _WS.sub(" ", html.unescape(cleaned)).strip()[:limit]


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _feed(data: bytes) -> feedparser.FeedParserDict:
    if not isinstance(data, bytes):  # a str would be taken for a URL or a path
        raise TypeError("feedparser must be given bytes")
    parsed = feedparser.parse(data)
    if parsed.bozo and not parsed.entries:
        raise ParseError(f"not a feed: {parsed.get('bozo_exception', 'unreadable XML')}")
    return parsed


def parse_arxiv(source: str, data: bytes) -> list[EntryData]:
    """An arXiv listing feed (RSS or Atom) from ``rss.arxiv.org``."""
    out = []
    for item in _feed(data).entries:
        guid = item.get("id") or item.get("link") or ""
        found = split_arxiv_id(guid) or split_arxiv_id(item.get("link", ""))
        if not found:
            continue
        arxiv_id, version = found
        creators = item.get("author") or ""
        authors = tuple(a.strip() for a in to_text(creators).split(",") if a.strip())[:_MAX_AUTHORS]
        summary = _ARXIV_PREFIX.sub("", item.get("summary", ""))
        out.append(
            EntryData(
                source=source,
                guid=guid,
                title=to_text(item.get("title", ""), 1000),
                summary=to_text(summary),
                link=f"https://arxiv.org/abs/{arxiv_id}",
                authors=authors,
                categories=tuple(t["term"] for t in item.get("tags", []) if t.get("term")),
                arxiv_id=arxiv_id,
                version=version,
                doi=item.get("arxiv_doi") or None,
                announce_type=(item.get("arxiv_announce_type") or "new").strip().lower(),
                published=_parse_time(item.get("published_parsed") or item.get("updated_parsed")),
            )
        )
    return out


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
        out.append(
            EntryData(
                source=source,
                guid=f"hf:{arxiv_id}",
                title=to_text(str(paper.get("title") or item.get("title") or ""), 1000),
                summary=to_text(str(paper.get("summary") or "")),
                link=f"https://arxiv.org/abs/{arxiv_id}",
                authors=tuple(
                    to_text(str(a.get("name", "")), 200)
                    for a in paper.get("authors", [])[:_MAX_AUTHORS]
                    if isinstance(a, dict) and a.get("name")
                ),
                arxiv_id=arxiv_id,
                version=version,
                published=_iso(published),
                upvotes=upvotes if isinstance(upvotes, int) else None,
                code_url=_http(paper.get("githubRepo")),
                project_url=_http(paper.get("projectPage")),
            )
        )
    return out


def parse_feed(source: str, data: bytes) -> list[EntryData]:
    """Any RSS 0.9x/1.0/2.0 or Atom feed (blogs, journals)."""
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


def parse(kind: str, source: str, data: bytes) -> list[EntryData]:
    try:
        return ADAPTERS[kind](source, data)
    except ParseError:
        raise
    except Exception as e:  # a hostile feed must never take the run down
        raise ParseError(f"cannot parse {kind} feed: {type(e).__name__}: {e}") from e


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
    for key in ("prism_doi", "dc_identifier", "arxiv_doi"):
        value = item.get(key)
        if isinstance(value, str) and value.lower().removeprefix("doi:").startswith("10."):
            return value.lower().removeprefix("doi:")
    return None


# -- one entry per paper ---------------------------------------------------------


def normalise_title(title: str) -> str:
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", folded))


def entry_key(d: EntryData) -> str:
    """The canonical id shared by every source's copy of one paper."""
    if d.arxiv_id:
        return f"arxiv:{d.arxiv_id}"
    if d.doi:
        return f"doi:{d.doi.lower()}"
    first = normalise_title(d.authors[0]).split()[-1:] if d.authors else []
    basis = normalise_title(d.title) + "|" + " ".join(first)
    return "title:" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def merge(existing: Entry | None, d: EntryData, now: datetime) -> Entry:
    """Fold one parsed item into the stored entry; pure.

    Keeps the first-seen time, the longest text, the union of categories, the
    most upvotes and the newest version; ``updated`` moves when anything did.
    """
    key = entry_key(d)
    if existing is None:
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


def merge_all(existing: Mapping[str, Entry], items: Iterable[EntryData], now: datetime) -> MergeOutcome:
    """Merge a batch of items into the stored entries; pure.

    An arXiv replacement (``replace``, ``replace-cross``) updates a stored
    paper but never creates one: it is an old paper, not news.
    """
    changed: dict[str, Entry] = {}
    new = updated = unchanged = 0
    new_ids: set[str] = set()
    for d in items:
        key = entry_key(d)
        before = changed.get(key) or existing.get(key)
        if before is None and d.announce_type in ("replace", "replace-cross"):
            unchanged += 1
            continue
        after = merge(before, d, now)
        if before is None:
            new += 1
            new_ids.add(key)
        elif after is before:
            unchanged += 1
            continue
        elif key not in new_ids and key not in changed:
            updated += 1
        changed[key] = after
    return MergeOutcome(changed, new, updated, unchanged)
