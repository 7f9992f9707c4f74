"""Seed papers that no source lists today, looked up once through the arXiv API.

A reader's ``papers = ["2402.15627"]`` are usually older papers: no listing
feed carries them, so without a lookup the seed does nothing.  This module
asks ``{base}/api/query?id_list=ID1,ID2,...&max_results=N`` for them,
batched (:data:`BATCH_SIZE` ids a request), through :meth:`Fetcher.get
<newsletter.fetch.Fetcher.get>` so the SSRF guard, the deadline, the byte cap,
the retries and arXiv's politeness (one request at a time, one every 3 s:
REFERENCE.md) apply as for any source.

Each id is asked once ever: what arXiv returns goes to a :class:`LookupCache`
(the store), and an id arXiv does not know is remembered too (a negative
cache) and asked again only after :data:`RETRY_UNKNOWN_AFTER`, in case it was
a paper announced after the reader wrote it down.  Results are per id, the
error a value (as lemon24/reader's ``UpdateResult``): one bad id never costs
the reader their other seeds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from . import sources
from .errors import FetchError, MalformedIdError, NewsletterError, ParseError, UnknownPaperError
from .fetch import Fetcher
from .types import Entry, EntryData

ARXIV_API = "https://export.arxiv.org"
BATCH_SIZE = 100
"""Ids per request: arXiv takes a few hundred, but a smaller answer fails (and retries) cheaper."""
API_INTERVAL = 3.0
"""arXiv's terms: one request every 3 s; applied whatever the base URL (a mirror, a test server)."""
RETRY_UNKNOWN_AFTER = timedelta(days=7)
"""An id arXiv did not know is asked again after this long (it may have been announced since)."""
SOURCE = "arxiv-api"
"""``EntryData.source`` of a looked-up paper: not a listing, so never news."""
ACCEPT = "application/atom+xml, application/xml;q=0.9, */*;q=0.1"

_NEW_ID = re.compile(r"(\d{2})(\d{2})\.(\d{4,5})")
_ID_TEXT = re.compile(
    r"^\s*(?:arxiv:\s*|https?://(?:export\.|www\.)?arxiv\.org/(?:abs|pdf)/)?"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?(?:\.pdf)?\s*$",
    re.IGNORECASE,
)

Paper = Entry | EntryData
"""A looked-up paper: what the cache holds (an :class:`Entry`) or what arXiv just sent (an :class:`EntryData`)."""


def arxiv_id(text: str) -> str | None:
    """The canonical arXiv id (no version) *text* names, or None if it is not a well-formed one.

    Accepts ``2402.15627``, ``2402.15627v2``, ``arXiv:2402.15627``, an abs/pdf
    URL and old-style ``hep-th/9901001``.  Checks what arXiv's scheme allows
    (month 01-12, 4 digits after the dot before 2015, 5 from 1501 on), so a
    typo such as ``2402.1562`` is caught here instead of costing a request.
    """
    m = _ID_TEXT.match(text)
    if not m:
        return None
    found = m.group("id")
    new = _NEW_ID.fullmatch(found)
    if new:
        yymm, month = int(new.group(1) + new.group(2)), int(new.group(2))
        five = len(new.group(3)) == 5
        if not 1 <= month <= 12 or yymm < 704 or five != (yymm >= 1501):
            return None
        return found
    left, _, number = found.partition("/")
    archive, _, subject = left.partition(".")
    if not 1 <= int(number[2:4]) <= 12:
        return None
    return archive.lower() + ("." + subject.upper() if subject else "") + "/" + number


@dataclass(frozen=True, slots=True)
class UnknownPaper:
    """One negative-cache row: arXiv said it has no paper *arxiv_id* at *checked_at*."""

    arxiv_id: str
    checked_at: datetime
    reason: str


class LookupCache(Protocol):
    """What the lookup needs from the store; the SQLite store implements it.

    ``put_entries`` gets papers that come from a lookup, not a listing: the
    store must keep them out of "new since" (they are old papers, never news).
    """

    def get_entries(self, arxiv_ids: Collection[str]) -> Mapping[str, Paper]:
        """The stored papers among *arxiv_ids*, keyed by arXiv id (ids without one are left out)."""
        ...

    def put_entries(self, items: Sequence[EntryData]) -> None:
        """Store looked-up papers (``source == SOURCE``)."""
        ...

    def get_unknown(self, arxiv_ids: Collection[str]) -> Mapping[str, UnknownPaper]:
        """The negative-cache rows among *arxiv_ids*."""
        ...

    def put_unknown(self, rows: Sequence[UnknownPaper]) -> None:
        """Add or replace negative-cache rows; a paper later found is removed by ``put_entries``."""
        ...


class MemoryCache:
    """A :class:`LookupCache` in a dict: for tests, ``newsletter rank`` and one-off runs."""

    def __init__(self) -> None:
        self.entries: dict[str, Paper] = {}
        self.unknown: dict[str, UnknownPaper] = {}

    def get_entries(self, arxiv_ids: Collection[str]) -> Mapping[str, Paper]:
        return {i: self.entries[i] for i in arxiv_ids if i in self.entries}

    def put_entries(self, items: Sequence[EntryData]) -> None:
        for item in items:
            if item.arxiv_id:
                self.entries[item.arxiv_id] = item
                self.unknown.pop(item.arxiv_id, None)

    def get_unknown(self, arxiv_ids: Collection[str]) -> Mapping[str, UnknownPaper]:
        return {i: self.unknown[i] for i in arxiv_ids if i in self.unknown}

    def put_unknown(self, rows: Sequence[UnknownPaper]) -> None:
        for row in rows:
            self.unknown[row.arxiv_id] = row


@dataclass(frozen=True, slots=True)
class LookupResult:
    """One asked id: the paper, or why there is none (an error value, never raised)."""

    asked: str
    """The text as given (``arXiv:2402.15627v2``)."""
    value: Paper | NewsletterError
    arxiv_id: str | None = None
    """The canonical id, None when *asked* is not one."""
    cached: bool = False
    """Answered from the cache (or the negative cache): no request was made for it."""

    @property
    def ok(self) -> bool:
        return not isinstance(self.value, NewsletterError)

    @property
    def paper(self) -> Paper | None:
        return None if isinstance(self.value, NewsletterError) else self.value

    @property
    def error(self) -> NewsletterError | None:
        return self.value if isinstance(self.value, NewsletterError) else None


def _now() -> datetime:
    return datetime.now(UTC)


class ArxivLookup:
    """Looks papers up by arXiv id, each once ever; see the module docstring.

    *allow_private* lets *base* be an operator's own mirror on a private or
    loopback address (tests use it for the loopback server), exactly as
    ``allow_private`` on a source.  *now* is the wall clock of the negative
    cache; the request spacing uses the fetcher's own (injectable) clock.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        cache: LookupCache | None = None,
        *,
        base: str = ARXIV_API,
        batch_size: int = BATCH_SIZE,
        interval: float = API_INTERVAL,
        allow_private: bool = False,
        retry_unknown_after: timedelta = RETRY_UNKNOWN_AFTER,
        now: Callable[[], datetime] = _now,
    ) -> None:
        if not 1 <= batch_size <= 500:
            raise ValueError("batch_size must be between 1 and 500")
        self.fetcher = fetcher
        self.cache: LookupCache = cache if cache is not None else MemoryCache()
        self.base = base.rstrip("/")
        self.batch_size = batch_size
        self.interval = interval
        self.allow_private = allow_private
        self.retry_unknown_after = retry_unknown_after
        self.now = now
        self.requests = 0
        """Requests made so far (for reports and tests)."""

    def url(self, ids: Sequence[str]) -> str:
        return f"{self.base}/api/query?id_list={','.join(ids)}&max_results={len(ids)}"

    def lookup(self, asked: Iterable[str]) -> dict[str, LookupResult]:
        """One :class:`LookupResult` per distinct text in *asked*, in order; never raises for one id."""
        texts = list(dict.fromkeys(asked))
        canonical = {text: arxiv_id(text) for text in texts}
        answers = self._resolve(list(dict.fromkeys(c for c in canonical.values() if c)))
        results: dict[str, LookupResult] = {}
        for text in texts:
            found = canonical[text]
            if found is None:
                results[text] = LookupResult(text, MalformedIdError(_malformed(text)))
            else:
                value, cached = answers[found]
                results[text] = LookupResult(text, value, found, cached)
        return results

    def _resolve(self, ids: list[str]) -> dict[str, tuple[Paper | NewsletterError, bool]]:
        out: dict[str, tuple[Paper | NewsletterError, bool]] = {}
        for i, paper in self.cache.get_entries(ids).items():
            out[i] = (paper, True)
        now = self.now()
        for i, row in self.cache.get_unknown([i for i in ids if i not in out]).items():
            retry_at = row.checked_at + self.retry_unknown_after
            if now < retry_at:
                out[i] = (UnknownPaperError(_unknown(i, row.reason, row.checked_at, retry_at)), True)
        todo = [i for i in ids if i not in out]
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            for i, value in self._ask(batch, now).items():
                out[i] = (value, False)
        return out

    def _ask(self, batch: list[str], now: datetime) -> dict[str, Paper | NewsletterError]:
        """One request for *batch*; found papers and unknown ids go to the cache, failures do not."""
        url = self.url(batch)
        self.requests += 1
        try:
            fetched = self.fetcher.get(url, accept=ACCEPT, allow_private=self.allow_private, min_interval=self.interval)
            if fetched.data is None:
                raise FetchError(f"{url} answered 304 Not Modified to a request without validators")
            sources.check_content_type("arxiv", fetched.content_type, fetched.data)
            items = sources.parse_arxiv(SOURCE, fetched.data)
        except NewsletterError as e:
            error = e if isinstance(e, FetchError | ParseError) else ParseError(str(e))
            failed = type(error)(f"looking up {len(batch)} arXiv id(s) failed, asked again next run: {error}")
            return dict.fromkeys(batch, failed)
        found: dict[str, EntryData] = {}
        errors: dict[str, str] = {}
        for item in items:
            if _is_error(item):
                text = f"{item.guid} {item.summary}"
                for i in batch:
                    if re.search(rf"(?<![\w.]){re.escape(i)}(?![\w])", text):
                        errors[i] = item.summary or "arXiv answered Error"
                continue
            if item.arxiv_id in batch and item.arxiv_id not in found:
                found[item.arxiv_id] = replace(item, announce_type=None)
        out: dict[str, Paper | NewsletterError] = {}
        unknown: list[UnknownPaper] = []
        for i in batch:
            if i in found:
                out[i] = found[i]
            elif i in errors or not errors:
                reason = errors.get(i) or "not in arXiv's answer"
                unknown.append(UnknownPaper(i, now, reason))
                out[i] = UnknownPaperError(_unknown(i, reason, now, now + self.retry_unknown_after))
            else:  # arXiv failed the request over another id: this one was never looked at
                refused = next(iter(errors.values()))
                out[i] = FetchError(f"arXiv id {i}: not looked up, asked again next run (arXiv refused: {refused})")
        if found:
            self.cache.put_entries(list(found.values()))
        if unknown:
            self.cache.put_unknown(unknown)
        return out


def _is_error(item: EntryData) -> bool:
    return item.title.strip() == "Error" or "/api/errors" in item.guid


def _malformed(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"{shown!r} is not an arXiv id: write it like 2402.15627 (or hep-th/9901001 for papers before 2007)"


def _unknown(arxiv_id: str, reason: str, checked: datetime, retry_at: datetime) -> str:
    return (
        f"arXiv has no paper {arxiv_id} ({reason[:200]}; checked {checked:%Y-%m-%d}, asked again after "
        f"{retry_at:%Y-%m-%d}): check the id at https://arxiv.org/abs/{arxiv_id}"
    )
