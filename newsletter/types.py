"""The values that flow between pipeline stages.

All frozen: a stage receives data, never a handle it could change behind
another stage's back.  What a parser returns (:class:`EntryData`, one item of
one feed) is a different type from what the rest of the pipeline consumes
(:class:`Entry`, one paper merged across sources and stored), as in
lemon24/reader.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class EntryData:
    """One item as a source adapter parsed it, before merging and storing."""

    source: str
    """Name of the configured source it came from."""
    guid: str
    title: str
    summary: str
    """Plain text (feed HTML is sanitised and flattened by the adapter)."""
    link: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    arxiv_id: str | None = None
    """Canonical arXiv id without version, e.g. ``2401.01234``."""
    version: int | None = None
    doi: str | None = None
    announce_type: str | None = None
    """arXiv: ``new``, ``cross``, ``replace`` or ``replace-cross``."""
    published: datetime | None = None
    upvotes: int | None = None
    code_url: str | None = None
    project_url: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One paper or post, merged across sources; what ranking and rendering see."""

    id: str
    """Canonical key: ``arxiv:2401.01234``, ``doi:10.1/x`` or ``title:<hash>``."""
    title: str
    summary: str
    link: str
    first_seen: datetime
    """When any source first showed it to us (UTC); used for 'new since'."""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    arxiv_id: str | None = None
    version: int | None = None
    doi: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    upvotes: int | None = None
    code_url: str | None = None
    project_url: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def pdf_url(self) -> str | None:
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else None


@dataclass(frozen=True, slots=True)
class SourceState:
    """What we remember about one source between runs."""

    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    """Consecutive failures; 0 after any success."""
    last_date: str | None = None
    """Date-addressed sources (HF): the last date fetched successfully."""
    missed_dates: tuple[str, ...] = ()
    """Days whose listing we never saw and cannot ask for again (arXiv RSS holds only the latest day)."""


@dataclass(frozen=True, slots=True)
class Keyword:
    text: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Interests:
    keywords: tuple[Keyword, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    papers: tuple[str, ...] = ()
    """Seed papers by canonical arXiv id: 'more like these'."""
    papers_from: Path | None = None
    """A reference library to seed from (BibTeX, RIS or Zotero CSV), resolved against the profile's folder."""


@dataclass(frozen=True, slots=True)
class SeedPaper:
    """One seed as text, ready to embed or index: a looked-up arXiv paper or a library record."""

    title: str
    summary: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    doi: str | None = None
    origin: str = ""
    """Where the reader named it, for reasons and errors: ``library.bib line 12``."""


@dataclass(frozen=True, slots=True)
class Feedback:
    """The reader's ratings, as their profile file's ``[feedback]`` section holds them (the file is the truth)."""

    liked: tuple[str, ...] = ()
    """Entry ids rated "more like this", oldest first: they act as seed papers."""
    disliked: tuple[str, ...] = ()
    """Entry ids rated "less like this", oldest first: they push similar papers down."""

    def __bool__(self) -> bool:
        return bool(self.liked or self.disliked)


@dataclass(frozen=True, slots=True)
class Rating:
    """One rating as ``newsletter feedback`` lists it."""

    entry_id: str
    choice: str
    """``liked`` or ``disliked``."""
    title: str
    at: datetime | None
    """When the link was confirmed; None for an id the reader wrote into the file by hand."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One reader, as validated from their profile file."""

    id: str
    """The profile file's stem; stable, used in the ledger and feed URLs."""
    email: str
    name: str
    timezone: str
    send_at: time
    frequency: str
    """``daily`` or ``weekly:mon`` .. ``weekly:sun``."""
    interests: Interests
    max_items: int = 15
    min_score: float = 0.0
    skip_empty: bool = True
    paused: bool = False
    """``paused = true`` in the file; an unsubscribe may pause the reader too (:func:`schedule.is_paused`)."""
    trending: int = 0
    """Also show this many of the day's most upvoted Hugging Face papers not picked (0: none)."""
    calibrate: bool = False
    """``[feedback] calibrate = true``: each digest adds one "to calibrate" paper, the candidate just below
    the cut that the reader's model is least sure about (rating it teaches the most)."""
    layout: str = "full"
    """``full`` (abstracts) or ``compact`` (titles, reasons and a one-line abstract: for long digests)."""
    path: Path | None = None
    mtime: datetime | None = None
    """The file's modification time when it was loaded (aware, UTC)."""
    feedback: Feedback = Feedback()
    paused_until: date | None = None
    """No digest before this local date ("pause for a week"); mail resumes by itself."""


class ReasonKind(enum.StrEnum):
    KEYWORD = "keyword"
    AUTHOR = "author"
    CATEGORY = "category"
    PAPER = "paper"
    SIMILAR = "similar"
    """Close in meaning (sentence embeddings) to one of the reader's phrases or seed papers."""
    POPULAR = "popular"
    CALIBRATE = "calibrate"
    """Not picked for the reader's interests: added so that rating it teaches the model the most."""


@dataclass(frozen=True, slots=True)
class Reason:
    """One human-readable reason a paper was picked."""

    kind: ReasonKind
    text: str
    """Ready to show, e.g. ``"quantization" in title``."""
    term: str | None = None
    """What in the profile matched (a keyword, an author, a seed paper id)."""
    where: str | None = None
    """Keywords: ``title`` or ``abstract``, where the match is."""
    words: tuple[str, ...] = ()
    """Keywords matched only in part: the words of the phrase that were found."""
    detail: str = ""
    """What the reader needs besides the term: a seed paper's title, the name as the paper
    writes it (an author), the abbreviation a keyword matched through ("LLM = large language models"),
    the upvote count (popular)."""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry
    score: float
    reasons: tuple[Reason, ...]

    @property
    def reason_line(self) -> str:
        return "; ".join(r.text for r in self.reasons)


@dataclass(frozen=True, slots=True)
class Digest:
    """What one reader gets for one due period."""

    profile: Profile
    period: str
    """The due period's key: ``2026-11-23`` (daily) or ``2026-W48`` (weekly)."""
    day: date
    """The reader's local date the digest is for."""
    matches: tuple[Match, ...]
    generated_at: datetime
    notes: tuple[str, ...] = ()
    """Operator-visible remarks shown in the footer (e.g. a failing source)."""
    trending: tuple[Match, ...] = ()
    """The day's most upvoted papers not among ``matches`` (``Profile.trending`` of them; see
    :func:`newsletter.match.trending`), shown apart as "Trending on Hugging Face"."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered digest, ready for any backend; rendering never sends."""

    to: str
    to_name: str
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One match as a reader's feed shows it: the paper, its score and why."""

    entry_id: str
    score: float
    reasons: tuple[Reason, ...]
    at: datetime | None = None
    """When it was sent (set when read back from the ledger)."""
    rank: int = 0
    """Its place in the digest (1 = top): the feed shows a digest in the order it was picked."""

    @classmethod
    def of(cls, match: Match, rank: int) -> FeedItem:
        return cls(match.entry.id, match.score, match.reasons, rank=rank)


@dataclass(frozen=True, slots=True)
class ReaderLinks:
    """Per-reader URLs, signed by the caller; rendering only prints them."""

    feed_url: str
    atom_url: str
    unsubscribe_url: str
    pause_url: str = ""
    """Where the reader pauses mail; empty: the footer says to set ``paused`` in the profile."""
    profile_url: str = ""
    """Where the reader edits their profile; empty: the footer names the file."""
    view_url: str = ""
    """This digest as a web page ("view in browser"); empty when not known yet."""
    archive_url: str = ""
    """The reader's past digests."""
    rate: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Per entry id, its signed "more like this" and "less like this" URLs (feedback)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for any backend: the rendered parts, the addresses and the headers that go with them.

    Each backend serialises it its own way (MIME for SMTP and the outbox, the
    v3 JSON for SendGrid), so nothing is encoded only to be decoded again.
    Every text field is already header-safe (one line, no CR/LF).
    """

    reader: str
    """The reader id (a confirmation notice: its key), for the outbox file name and provider metadata."""
    period: str
    """The period key (a notice: ``notices``)."""
    message_id: str
    """``<...@domain>``, deterministic per reader and period, so a duplicate is recognisable."""
    date: datetime
    sender: str
    sender_name: str
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    reply_to: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """The list headers and the like, in order: ``List-Id``, ``List-Unsubscribe``, ``List-Unsubscribe-Post``..."""

    @property
    def key(self) -> str:
        """``reader/period``: how webhooks and logs name this message."""
        return f"{self.reader}/{self.period}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a backend says after taking a message."""

    message_id: str | None
    """The provider's id (SendGrid's ``X-Message-Id``) or our Message-ID; None if the provider gave none."""
    path: Path | None = None
    """The outbox backend: the ``.eml`` file written."""


class DeliveryStatus(enum.StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"
    """Nothing matched: no email.  The period stays open, and a later run that finds matches sends once."""
    COVERED = "covered"
    """Settled by a digest sent for a neighbouring period (``run --now`` before the send time)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one reader, one due period."""

    reader: str
    period: str
    status: DeliveryStatus
    entry_ids: tuple[str, ...] = ()
    message_id: str | None = None
    error: str | None = None
    backend: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SourceResult:
    """The outcome of fetching one source; the error is a value, not a raise."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    error: Exception | None = None
    """Why it failed, as the exception itself (a ``NewsletterError``; a bug is an ``InternalError``)."""
    not_modified: bool = False
    missed: tuple[str, ...] = ()
    """Listing days found missing in this fetch (arXiv keeps only today's)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one reader's delivery in a run."""

    reader: str
    status: DeliveryStatus
    period: str | None = None
    items: int = 0
    detail: str | None = None
    path: Path | None = None
    """Outbox backend: where the .eml landed."""
    already: bool = False
    """True when the ledger already had this period: nothing was done now."""
    error: Exception | None = None
    """Why it failed or is uncertain, as the exception itself (a ``NewsletterError``; an unexpected one is an
    ``InternalError`` whose ``__cause__`` is the original): callers can tell the kinds apart by type."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything a run did, for the CLI to print and tests to check."""

    sources: tuple[SourceResult, ...] = ()
    deliveries: tuple[DeliveryResult, ...] = ()
    profile_errors: tuple[str, ...] = ()
    feeds: tuple[Path, ...] = field(default_factory=tuple)
    recovered: tuple[Delivery, ...] = ()
    """Sends a killed earlier run left in flight, now marked uncertain: the operator must look."""


# -- the schedule's values (newsletter.schedule decides them) ------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    """``2026-11-23`` (daily) or ``2026-W48`` (weekly): the ledger's key."""
    day: date
    """The reader's local date of the send."""
    due_at: datetime
    """The send time (aware, UTC) this period became due."""


@dataclass(frozen=True, slots=True)
class Due:
    """One reader to rank and send to now."""

    profile: Profile
    period: Period
    covers: Period | None = None
    """The scheduled period a forced send stands in for; settled with the send, only if it succeeds."""


FAILING_AFTER = 2
"""Consecutive failures after which a source is reported as failing."""


@dataclass(frozen=True, slots=True)
class Status:
    """What ``newsletter status`` and ``/healthz`` report: no silent days."""

    now: datetime
    sources: tuple[SourceState, ...]
    """Every source's last attempt, last success and failure streak."""
    quiet_days: tuple[date, ...]
    """UTC days in the window on which no new entry arrived (weekends are normal)."""
    skipped: tuple[Delivery, ...]
    """Recent periods a reader got nothing because nothing matched."""
    uncertain: tuple[Delivery, ...]
    """Sends that may or may not have gone out; never retried automatically."""
    failed: tuple[Delivery, ...]
    """Sends that failed for good and need the operator."""
    last_send: datetime | None
    entries: int
    interrupted: tuple[Delivery, ...] = ()
    """Rows left ``sending`` by a process that is gone (no process holds the data folder)."""

    @property
    def failing(self) -> tuple[SourceState, ...]:
        return tuple(s for s in self.sources if s.failures >= FAILING_AFTER)

    @property
    def last_fetch(self) -> datetime | None:
        return max((s.last_success for s in self.sources if s.last_success), default=None)

    @property
    def healthy(self) -> bool:
        """False when every source is failing: nothing new can arrive."""
        return not self.sources or len(self.failing) < len(self.sources)

    def as_json(self) -> dict[str, Any]:
        """The one JSON shape of run health, for ``status --json`` and ``/healthz``."""

        def at(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        def rows(ds: tuple[Delivery, ...], key: str) -> list[dict[str, str | None]]:
            return [{"reader": d.reader, "period": d.period, key: d.error} for d in ds]

        return {
            "healthy": self.healthy,
            "now": at(self.now),
            "last_fetch": at(self.last_fetch),
            "last_send": at(self.last_send),
            "sources": [
                {
                    "name": s.name,
                    "last_attempt": at(s.last_attempt),
                    "last_success": at(s.last_success),
                    "failures": s.failures,
                    "last_error": s.last_error,
                }
                for s in self.sources
            ],
            "failing": [s.name for s in self.failing],
            "quiet_days": [d.isoformat() for d in self.quiet_days],
            "skipped": rows(self.skipped, "reason"),
            "uncertain": rows(self.uncertain, "error"),
            "interrupted": rows(self.interrupted, "error"),
            "failed": rows(self.failed, "error"),
        }
