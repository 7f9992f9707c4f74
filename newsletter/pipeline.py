"""The composition root: :func:`make_app` wires the stages; :class:`App` runs them.

Each batch step returns one result per item with the error as a value, so a
dead feed, a broken profile or a bounced address is reported and the rest of
the run goes on (as lemon24/reader's ``update_feeds_iter``).
"""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import httpx

from . import match as ranking
from . import profiles as profile_files
from . import sources
from .config import Settings
from .delivery import OutboxSender, Sender, SendGridSender, SmtpSender, Tokens, build_message, load_secret
from .errors import AmbiguousDeliveryError, DeliveryAuthError, DeliveryError, NewsletterError
from .fetch import Fetcher
from .files import atomic_write
from .ledger import FeedItem, Ledger
from .render import ReaderLinks, Renderer, self_check
from .schedule import Period, Status, current_period, digest_since, forced_period, superseded_period
from .store import Store
from .types import (
    Delivery,
    DeliveryResult,
    DeliveryStatus,
    Digest,
    Entry,
    Match,
    Profile,
    Reason,
    ReasonKind,
    RunReport,
    SourceResult,
    SourceState,
)

Clock = Callable[[], datetime]

NOTHING_MATCHED = "nothing new matched"

LEDGER_RETENTION_FACTOR = 4
"""Delivered ids and feed items are kept this many entry-retention windows."""

_RANK_BLOCK = 512
"""Readers ranked together before their sends start: bounds the digests held in memory."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    """One configured newsletter: call :meth:`run`, or the stages one by one."""

    settings: Settings
    store: Store
    ledger: Ledger
    sender: Sender
    fetcher: Fetcher
    renderer: Renderer
    tokens: Tokens
    clock: Clock = utcnow
    recovered: list[Delivery] = field(default_factory=list)

    def close(self) -> None:
        self.sender.close()
        self.fetcher.close()
        self.ledger.close()
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- fetch ---------------------------------------------------------------------

    def fetch(self) -> list[SourceResult]:
        """Fetch every source at once, merge into entries, one store write for the lot.

        Sources are fetched concurrently (:meth:`Fetcher.fetch_all`) but merged
        in configuration order, so the outcome does not depend on which
        server answered first.  A failed source keeps what came before the
        failure (a partial catch-up) and counts as failed in its health.
        """
        now = self.clock()
        known = self.store.source_states()
        fetched = self.fetcher.fetch_all(self.settings.sources, known, now)
        # Only the stored entries an item may merge into: indexed lookups by every identity key.
        stored = self.store.related_entries(k for f in fetched for d in f.items for k in sources.identity_keys(d))
        aliases = sources.alias_index(stored.values())  # DOI and title keys -> entry ids, shared by all sources
        changed: dict[str, Entry] = {}
        results: list[SourceResult] = []
        states: list[SourceState] = []
        for f in fetched:
            outcome = sources.merge_all(ChainMap(changed, stored), f.items, now, aliases=aliases)
            changed.update(outcome.changed)
            if f.not_modified and not f.items:
                results.append(SourceResult(f.source, not_modified=True, missed=f.newly_missed))
            else:
                results.append(
                    SourceResult(
                        f.source, outcome.new, outcome.updated, outcome.unchanged, error=f.error, missed=f.newly_missed
                    )
                )
            states.append(_failed(f.state, now, f.error) if f.error else _ok(f.state, now))
        with self.store.batch():
            self.store.put_entries(changed.values())
            self.store.put_source_states(states)
            self.store.prune_entries(now - timedelta(days=self.settings.fetch.retention_days))
        # Delivered ids outlive their entries by far: a paper listed again after
        # it left the store must still not be offered twice.
        self.ledger.prune(now - timedelta(days=LEDGER_RETENTION_FACTOR * self.settings.fetch.retention_days))
        return results

    # -- profiles ------------------------------------------------------------------

    def load_profiles(self) -> profile_files.LoadResult:
        """Read every profile file and sync the valid ones into the store."""
        loaded = profile_files.load_profiles(self.settings.paths.profiles_dir, self.store.cached_profile)
        self.store.sync_profiles(loaded.profiles, loaded.stats)
        return loaded

    def links(self, reader: str) -> ReaderLinks:
        base = self.settings.site.base_url
        feed = self.tokens.feed(reader)
        return ReaderLinks(
            feed_url=f"{base}/feeds/{feed}.xml",
            atom_url=f"{base}/feeds/{feed}.atom",
            unsubscribe_url=f"{base}/unsubscribe/{self.tokens.unsubscribe(reader)}",
        )

    # -- digests -------------------------------------------------------------------

    def digest(
        self, profile: Profile, period: Period, index: ranking.Index, now: datetime, *, since: datetime | None = None
    ) -> Digest:
        """What *profile* gets for *period*: new entries, minus everything delivered.

        Seed papers come from the store (they may be older than the day's
        entries); seed ids the store does not have are named in the notes.
        """
        return self._digests([(profile, period, since)], index, now)[0]

    def _digests(
        self, wanted: Sequence[tuple[Profile, Period, datetime | None]], index: ranking.Index, now: datetime
    ) -> list[Digest]:
        """:meth:`digest` for many readers with one :meth:`Index.rank_many` (vectorised) call.

        A reader's ``since`` defaults to their last send, or one lookback
        period for a first digest; entries already delivered to them are left out.
        """
        since: dict[str, datetime | None] = {}
        exclude: dict[str, set[str]] = {}
        for profile, _, cutoff in wanted:
            if cutoff is None:
                cutoff = digest_since(profile, self.ledger.last_sent_at(profile.id), now)
            since[profile.id] = cutoff
            exclude[profile.id] = self.ledger.delivered_ids(profile.id)
        seeds = self.store.get_entries(f"arxiv:{p}" for profile, _, _ in wanted for p in profile.interests.papers)
        ranked = index.rank_many([p for p, _, _ in wanted], now, exclude, since, seeds=seeds)
        source_notes = self.source_notes()
        digests = []
        for profile, period, _ in wanted:
            known = [i for p in profile.interests.papers if (i := f"arxiv:{p}") in seeds or i in index.row_of]
            notes = source_notes + tuple(
                f"Seed paper {p} from your profile is not in the database yet, so it was not used; "
                "it is used once a source lists it."
                for p in profile_files.missing_papers(profile, known)
            )
            digests.append(Digest(profile, period.key, period.day, tuple(ranked[profile.id]), now, notes))
        return digests

    def source_notes(self) -> tuple[str, ...]:
        """One line per source failing twice or more in a row, for digests and feeds."""
        return tuple(
            f"Source {s.name} has failed {s.failures} times in a row; some papers may be missing."
            for s in self.store.source_states().values()
            if s.failures >= 2
        )

    def preview(self, reader_id: str, days: int = 1) -> Digest:
        """The digest *reader_id* would get now from the last *days* of entries.

        Sends nothing and records nothing (no ledger row, no feed item).
        """
        path = self.settings.paths.profiles_dir / f"{reader_id}.toml"
        if path.is_file():  # one file, not the whole profiles folder
            return self._preview(profile_files.parse_profile(path.read_text(encoding="utf-8"), path), days)
        loaded = profile_files.load_profiles(self.settings.paths.profiles_dir)
        profile = next((p for p in loaded.profiles if p.id == reader_id), None)
        if profile is None:
            broken = next((e for e in loaded.errors if e.path.stem == reader_id), None)
            if broken is not None:
                raise broken
            known = ", ".join(p.id for p in loaded.profiles) or "none"
            raise NewsletterError(
                f"no reader {reader_id!r} in {self.settings.paths.profiles_dir} (readers: {known}); "
                "use the profile file's name without .toml"
            )
        return self._preview(profile, days)

    def _preview(self, profile: Profile, days: int) -> Digest:
        now = self.clock()
        since = now - timedelta(days=days)
        index = ranking.Index(self.store.entries_since(since))
        return self.digest(profile, forced_period(profile, now), index, now, since=since)

    def deliver(
        self,
        *,
        force: bool = False,
        readers: Sequence[Profile] | None = None,
        stop: threading.Event | None = None,
    ) -> list[DeliveryResult]:
        """Send every due digest once; returns one result per reader, in reader order.

        With ``force`` each reader's digest for today is due now, whatever
        their send time (``newsletter demo``, ``run --now``).  Readers are
        ranked by blocks of ``_RANK_BLOCK`` with one vectorised
        :meth:`Index.rank_many` call each; then that block's send jobs are
        submitted.  Up to ``delivery.concurrency`` sends are in flight at once;
        each job renders its own email just before sending, and at most twice
        that many jobs are queued, so memory stays flat for 10,000 readers
        (one block of digests at a time).  When *stop* is set (SIGTERM in
        ``serve``) no new send starts; sends in flight finish and are recorded.
        """
        from concurrent.futures import ThreadPoolExecutor

        now = self.clock()
        if readers is None:
            readers = self.load_profiles().profiles
        # Each reader gets what is new since their last digest; only entries
        # newer than the earliest of those cut-offs need indexing.
        since = {p.id: digest_since(p, self.ledger.last_sent_at(p.id), now) for p in readers}
        index = ranking.Index(self.store.entries_since(min(since.values(), default=now)))
        guard = _SendGuard(stop, self.settings.delivery.auth_failure_limit)
        workers = self.settings.delivery.concurrency
        slots = threading.BoundedSemaphore(workers * 2)
        results: list[DeliveryResult | None] = [None] * len(readers)

        def job(i: int, digest: Digest) -> None:
            try:
                results[i] = self._deliver_one(digest, now, guard)
            except NewsletterError as e:
                results[i] = DeliveryResult(digest.profile.id, DeliveryStatus.FAILED, detail=str(e))
            except Exception as e:  # a bug in one reader's job must not lose the others' results
                results[i] = DeliveryResult(digest.profile.id, DeliveryStatus.FAILED, detail=f"internal error: {e!r}")
            finally:
                slots.release()

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
            for start in range(0, len(readers), _RANK_BLOCK):
                if guard.halted() is not None:
                    break
                block = range(start, min(start + _RANK_BLOCK, len(readers)))
                due = self._plan_block(readers, block, now, force, results, since)
                digests = self._rank_block(due, index, now, results)
                for (i, _), digest in zip(due, digests, strict=True):
                    if digest is None:
                        continue
                    slots.acquire()
                    if guard.halted() is not None:
                        slots.release()
                        break
                    pool.submit(job, i, digest)
        reason = guard.halted() or "not reached"
        done = [
            r if r is not None else DeliveryResult(p.id, DeliveryStatus.PLANNED, detail=f"not sent: {reason}")
            for p, r in zip(readers, results, strict=True)
        ]
        return done

    def _plan_block(
        self,
        readers: Sequence[Profile],
        positions: range,
        now: datetime,
        force: bool,
        results: list[DeliveryResult | None],
        since: dict[str, datetime],
    ) -> list[tuple[int, tuple[Profile, Period, datetime | None]]]:
        """The readers of *positions* that are due: the rest get their result now (paused, already settled)."""
        due: list[tuple[int, tuple[Profile, Period, datetime | None]]] = []
        for i in positions:
            profile = readers[i]
            try:
                planned = self._plan(profile, now, force)
            except NewsletterError as e:
                results[i] = DeliveryResult(profile.id, DeliveryStatus.FAILED, detail=str(e))
                continue
            if isinstance(planned, DeliveryResult):
                results[i] = planned
            else:
                due.append((i, (profile, planned, since.get(profile.id))))
        return due

    def _rank_block(
        self,
        due: Sequence[tuple[int, tuple[Profile, Period, datetime | None]]],
        index: ranking.Index,
        now: datetime,
        results: list[DeliveryResult | None],
    ) -> list[Digest | None]:
        """The due readers' digests, ranked together; if ranking fails, each gets a failed result."""
        try:
            return list(self._digests([w for _, w in due], index, now))
        except Exception as e:  # one block's failure is reported per reader; the next block still runs
            detail = str(e) if isinstance(e, NewsletterError) else f"internal error: {e!r}"
            for i, (profile, period, _) in due:
                results[i] = DeliveryResult(profile.id, DeliveryStatus.FAILED, period.key, detail=detail)
            return [None] * len(due)

    def _plan(self, profile: Profile, now: datetime, force: bool) -> Period | DeliveryResult:
        """The period *profile* is due for, or the result that says why nothing is due."""
        if self.is_paused(profile):
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, detail="paused (unsubscribed)")
        period = forced_period(profile, now) if force else current_period(profile, now)
        existing = self.ledger.get(profile.id, period.key)
        superseded = superseded_period(profile, now) if force else None
        if superseded is not None and self.ledger.get(profile.id, superseded.key) is None:
            # A forced send now covers the period the scheduler would send next;
            # settle it, or the next scheduled run sends a second digest.
            self.ledger.mark_skipped(profile.id, superseded.key, f"covered by the forced send for {period.key}", now)
        if existing is not None and existing.status is not DeliveryStatus.PLANNED:
            return DeliveryResult(
                profile.id,
                existing.status,
                period.key,
                len(existing.entry_ids),
                detail=f"already {existing.status.value} for {period.key}",
                already=True,
            )
        return period

    def _deliver_one(
        self,
        digest: Digest,
        now: datetime,
        guard: _SendGuard | None = None,
    ) -> DeliveryResult:
        """One reader's ranked digest: render, claim durably, send, record."""
        guard = guard or _SendGuard(None, self.settings.delivery.auth_failure_limit)
        profile, period = digest.profile, digest.period
        if not digest.matches and profile.skip_empty:
            self.ledger.mark_skipped(profile.id, period, NOTHING_MATCHED, now)
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, period, detail=NOTHING_MATCHED)
        links = self.links(profile.id)
        email = self.renderer.email(digest, links)
        d = self.settings.delivery
        message = build_message(
            email,
            reader=profile.id,
            period=period,
            from_address=d.from_address,
            from_name=d.from_name,
            reply_to=d.reply_to,
            unsubscribe_url=links.unsubscribe_url,
            unsubscribe_mailto=d.unsubscribe_mailto,
            list_id=self.settings.site.title,
            now=now,
        )
        # Right before the send: the run may have been stopped, or the reader
        # may have unsubscribed (POST /unsubscribe) since the run began.
        halted = guard.halted()
        if halted is not None:
            return DeliveryResult(profile.id, DeliveryStatus.PLANNED, period, detail=f"not sent: {halted}")
        if self.is_paused(profile):
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, period, detail="paused (unsubscribed)")
        ids = [m.entry.id for m in digest.matches]
        if not self.ledger.claim(profile.id, period, ids, self.sender.name, now):
            return DeliveryResult(profile.id, DeliveryStatus.SENDING, period, detail="claimed by another run")
        try:
            provider_id = self.sender.send(message)
        except AmbiguousDeliveryError as e:
            self.ledger.mark_uncertain(profile.id, period, str(e), self.clock())
            guard.record(auth_failed=False)
            return DeliveryResult(profile.id, DeliveryStatus.UNCERTAIN, period, detail=str(e))
        except DeliveryError as e:
            self.ledger.mark_failed(profile.id, period, str(e), self.clock(), retry=e.retry_later)
            guard.record(auth_failed=isinstance(e, DeliveryAuthError))
            return DeliveryResult(profile.id, DeliveryStatus.FAILED, period, detail=str(e))
        items = [
            FeedItem(m.entry.id, m.score, tuple((r.kind.value, r.text) for r in m.reasons)) for m in digest.matches
        ]
        self.ledger.mark_sent(profile.id, period, provider_id, self.clock(), items, keep=self.settings.feed.items)
        guard.record(auth_failed=False)
        path = self.sender.path_for(message) if isinstance(self.sender, OutboxSender) else None
        return DeliveryResult(profile.id, DeliveryStatus.SENT, period, len(ids), path=path)

    def is_paused(self, profile: Profile) -> bool:
        """Paused in the file as loaded, in the store, or by an unsubscribe since the file's last edit.

        Asked again right before each send, so a one-click unsubscribe during
        a run stops that reader's digest even if this run read the file earlier.
        """
        if profile.paused:
            return True
        doc = self.store.profile_doc(profile.id)
        if doc is not None and doc.get("paused"):
            return True
        unsubscribed = self.ledger.unsubscribed_at(profile.id)
        if unsubscribed is None:
            return False
        return profile_files.is_paused(False, _mtime(profile.path), unsubscribed)

    # -- feeds ---------------------------------------------------------------------

    def write_feeds(self, readers: Sequence[Profile]) -> list[Path]:
        """Write ``<reader>.xml`` (RSS 2.0) and ``<reader>.atom`` for each reader whose feed changed.

        A feed's ``updated`` is its newest item's send time, so an unchanged
        feed renders to the same bytes: the file is left alone and feed
        readers keep getting 304s.  Returns the files written.
        """
        folder = self.settings.paths.feeds_dir
        folder.mkdir(parents=True, exist_ok=True)
        notes = self.source_notes()
        written = []
        for profile in readers:
            items = self.ledger.feed_items(profile.id, self.settings.feed.items)
            matches = self.feed_matches(profile.id, items)
            reader_notes = notes
            last = self.ledger.latest(profile.id)
            if last is not None and last.status is DeliveryStatus.SKIPPED and last.error == NOTHING_MATCHED:
                # skip_empty readers get no email on such days: the feed says so instead.
                reader_notes = (*notes, f"Nothing new matched your interests for {last.period}.")
            updated = max((i.at for i in items if i.at), default=None) or _mtime(profile.path) or self.clock()
            links = self.links(profile.id)
            for kind, suffix, url in (("rss", ".xml", links.feed_url), ("atom", ".atom", links.atom_url)):
                body = self.renderer.feed(
                    profile, matches, kind=kind, self_url=url, updated=updated, notes=reader_notes
                ).encode("utf-8")
                path = folder / f"{profile.id}{suffix}"
                if _read_bytes(path) != body:
                    atomic_write(path, body, durable=False)  # rebuilt from the ledger if lost
                    written.append(path)
        return written

    def feed_matches(self, reader: str, items: Sequence[FeedItem] | None = None) -> list[Match]:
        """The reader's recent matches, newest first, as their feed shows them."""
        if items is None:
            items = self.ledger.feed_items(reader, self.settings.feed.items)
        entries = self.store.get_entries(i.entry_id for i in items)
        return [
            Match(entries[i.entry_id], i.score, tuple(Reason(ReasonKind(k), t) for k, t in i.reasons))
            for i in items
            if i.entry_id in entries
        ]

    # -- everything --------------------------------------------------------------------

    def run(self, *, force: bool = False, fetch: bool = True) -> RunReport:
        """Fetch, then deliver what is due and refresh every reader's feed."""
        fetched = self.fetch() if fetch else []
        loaded = self.load_profiles()
        deliveries = self.deliver(force=force, readers=loaded.profiles)
        feeds = self.write_feeds(loaded.profiles)
        recovered, self.recovered = tuple(self.recovered), []  # reported once
        return RunReport(
            sources=tuple(fetched),
            deliveries=tuple(deliveries),
            profile_errors=tuple(str(e) for e in loaded.errors),
            feeds=tuple(feeds),
            recovered=recovered,
        )

    # -- health (newsletter status, /healthz) ----------------------------------------

    def status(self, now: datetime | None = None) -> Status:
        """Run health: sources, quiet days, skipped readers, uncertain and failed sends."""
        from .health import compute

        return compute(self.store, self.ledger, self.settings.sources, now or self.clock())


def _mtime(path: Path | None) -> datetime | None:
    """A file's modification time (aware, UTC), or None when there is no file."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path else None
    except OSError:
        return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _ok(state: SourceState, now: datetime) -> SourceState:
    """*state* (validators and dates already updated by the fetcher) after a success."""
    return replace(state, last_attempt=now, last_success=now, last_error=None, failures=0)


def _failed(state: SourceState, now: datetime, error: str) -> SourceState:
    """*state* after a failure: one more in a row, the reason kept for `newsletter fetch`."""
    return replace(state, last_attempt=now, last_error=error, failures=state.failures + 1)


def make_sender(settings: Settings) -> Sender:
    """The backend named by ``delivery.backend``; secrets come from the environment."""
    d = settings.delivery
    if d.backend == "sendgrid":
        return SendGridSender.from_settings(d)
    if d.backend == "smtp":
        return SmtpSender.from_settings(d)
    return OutboxSender(settings.paths.outbox_dir)


class ReadOnlySender:
    """The sender of a read-only app: sending from ``preview`` or ``status`` is a bug."""

    name = "read-only"

    def send(self, message: EmailMessage) -> str | None:
        raise NewsletterError(
            "this app opened the data folder read-only and cannot send; this is a bug, please report it"
        )

    def close(self) -> None:
        pass


class _SendGuard:
    """What the concurrent send jobs of one run share: stop requests and auth failures.

    Several 401/403 answers in a row mean the key is wrong or blocked: every
    further send would fail the same way, so the run stops starting new ones.
    """

    def __init__(self, stop: threading.Event | None, auth_limit: int) -> None:
        self.stop = stop
        self.auth_limit = auth_limit
        self.lock = threading.Lock()
        self._auth_failures = 0

    def record(self, *, auth_failed: bool) -> None:
        with self.lock:
            self._auth_failures = self._auth_failures + 1 if auth_failed else 0

    def halted(self) -> str | None:
        """Why no new send may start, or None."""
        if self.stop is not None and self.stop.is_set():
            return "the run was stopped; the next run sends it"
        with self.lock:
            if self._auth_failures >= self.auth_limit:
                return (
                    f"stopped after {self._auth_failures} credential refusals in a row; "
                    "fix the API key or password and run again"
                )
        return None


def make_app(
    settings: Settings,
    *,
    store: Store | None = None,
    sender: Sender | None = None,
    http: httpx.Client | None = None,
    clock: Clock | None = None,
) -> App:
    """Wire every stage from *settings*; pass a part to replace the real one.

    With a read-only *store* (``preview``, ``status``) the app takes no lock,
    so it must not touch sends in flight: recovery of ``sending`` rows only
    happens under the data folder's write lock, when no live process can be
    mid-send.
    """
    store = store or Store(settings.paths.data_dir)
    ledger: Ledger | None = None
    try:
        ledger = Ledger(settings.paths.data_dir)
        clock = clock or utcnow
        recovered = [] if store.read_only else ledger.recover(clock())
        renderer = Renderer(
            settings.paths.templates_dir,
            site_title=settings.site.title,
            site_url=settings.site.base_url,
            contact=settings.site.contact,
        )
        self_check(renderer)  # a broken template stops here, before any reader is claimed
        return App(
            settings=settings,
            store=store,
            ledger=ledger,
            # A read-only app (preview, status) never sends, so it needs no mail keys.
            sender=sender or (ReadOnlySender() if store.read_only else make_sender(settings)),
            fetcher=Fetcher(settings.fetch, contact=settings.site.contact, http=http),
            renderer=renderer,
            tokens=Tokens(load_secret(settings.paths.data_dir)),
            clock=clock,
            recovered=recovered,
        )
    except BaseException:
        if ledger is not None:
            ledger.close()
        store.close()
        raise
