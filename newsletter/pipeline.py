"""The composition root: :func:`make_app` wires the stages; :class:`App` runs them.

Each batch step returns one result per item with the error as a value, so a
dead feed, a broken profile or a bounced address is reported and the rest of
the run goes on (as lemon24/reader's ``update_feeds_iter``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from . import match as ranking
from . import profiles as profile_files
from . import sources
from .config import Settings
from .delivery import OutboxSender, Sender, Tokens, build_message, load_secret
from .errors import (
    AmbiguousDeliveryError,
    DeliveryError,
    NewsletterError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from .fetch import Fetcher
from .ledger import Ledger
from .render import ReaderLinks, Renderer
from .schedule import Period, current_period, forced_period, lookback
from .store import SourceState, Store, atomic_write
from .types import (
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
)

Clock = Callable[[], datetime]


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
    recovered: list[Any] = field(default_factory=list)

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
        """Fetch every source, merge into entries, one store write for the lot."""
        now = self.clock()
        results: list[SourceResult] = []
        states: list[SourceState] = []
        stored = self.store.get_entries()
        changed: dict[str, Entry] = {}
        for source in self.settings.sources:
            state = self.store.source_state(source.name)
            try:
                fetched = self.fetcher.get(source, state)
                if fetched.data is None:
                    results.append(SourceResult(source.name, not_modified=True))
                    states.append(_ok(state, now, fetched.etag, fetched.last_modified))
                    continue
                items = sources.parse(source.kind, source.name, fetched.data)
            except NewsletterError as e:
                results.append(SourceResult(source.name, error=str(e)))
                states.append(_failed(state, now, str(e)))
                continue
            outcome = sources.merge_all({**stored, **changed}, items, now)
            changed.update(outcome.changed)
            results.append(SourceResult(source.name, outcome.new, outcome.updated, outcome.unchanged))
            states.append(_ok(state, now, fetched.etag, fetched.last_modified))
        with self.store.batch():
            self.store.put_entries(changed.values())
            self.store.put_source_states(states)
            self.store.prune_entries(now - timedelta(days=self.settings.fetch.retention_days))
        return results

    # -- profiles ------------------------------------------------------------------

    def load_profiles(self) -> profile_files.LoadResult:
        """Read every profile file and sync the valid ones into the store."""
        loaded = profile_files.load_profiles(self.settings.paths.profiles_dir)
        self.store.sync_profiles(loaded.profiles)
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

    def digest(self, profile: Profile, period: Period, index: ranking.Index, now: datetime) -> Digest:
        """What *profile* gets for *period*: new entries, minus everything delivered."""
        since = self.ledger.last_sent_at(profile.id) or (now - lookback(profile))
        matches = index.rank(profile, now, exclude_ids=self.ledger.delivered_ids(profile.id), since=since)
        notes = tuple(
            f"Source {s.name} has failed {s.failures} times in a row; some papers may be missing."
            for s in self.store.source_states().values()
            if s.failures >= 2
        )
        return Digest(profile, period.key, period.day, tuple(matches), now, notes)

    def deliver(self, *, force: bool = False, readers: Sequence[Profile] | None = None) -> list[DeliveryResult]:
        """Send every due digest once; returns one result per reader.

        With ``force`` each reader's digest for today is due now, whatever
        their send time (``newsletter demo``, ``run --now``).
        """
        now = self.clock()
        if readers is None:
            readers = self.load_profiles().profiles
        oldest = min((now - lookback(p) for p in readers), default=now)
        index = ranking.Index(self.store.entries_since(oldest - timedelta(days=self.settings.fetch.retention_days)))
        results: list[DeliveryResult] = []
        feed_items: dict[str, list[dict[str, Any]]] = {}
        for profile in readers:
            try:
                result = self._deliver_one(profile, now, index, force, feed_items)
            except NewsletterError as e:
                result = DeliveryResult(profile.id, DeliveryStatus.FAILED, detail=str(e))
            results.append(result)
        self.store.add_feed_items(feed_items, keep=self.settings.feed.items)
        return results

    def _deliver_one(
        self,
        profile: Profile,
        now: datetime,
        index: ranking.Index,
        force: bool,
        feed_items: dict[str, list[dict[str, Any]]],
    ) -> DeliveryResult:
        if profile.paused:
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, detail="paused (unsubscribed)")
        period = forced_period(profile, now) if force else current_period(profile, now)
        existing = self.ledger.get(profile.id, period.key)
        if existing is not None and existing.status is not DeliveryStatus.PLANNED:
            return DeliveryResult(
                profile.id,
                existing.status,
                period.key,
                len(existing.entry_ids),
                detail=f"already {existing.status.value} for {period.key}",
                already=True,
            )
        digest = self.digest(profile, period, index, now)
        if not digest.matches and profile.skip_empty:
            self.ledger.mark_skipped(profile.id, period.key, "nothing new matched", now)
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, period.key, detail="nothing new matched")
        links = self.links(profile.id)
        email = self.renderer.email(digest, links)
        d = self.settings.delivery
        message = build_message(
            email,
            reader=profile.id,
            period=period.key,
            from_address=d.from_address,
            from_name=d.from_name,
            reply_to=d.reply_to,
            unsubscribe_url=links.unsubscribe_url,
            list_id=self.settings.site.title,
            now=now,
        )
        ids = [m.entry.id for m in digest.matches]
        if not self.ledger.claim(profile.id, period.key, ids, self.sender.name, now):
            return DeliveryResult(profile.id, DeliveryStatus.SENDING, period.key, detail="claimed by another run")
        try:
            provider_id = self.sender.send(message)
        except AmbiguousDeliveryError as e:
            self.ledger.mark_uncertain(profile.id, period.key, str(e), self.clock())
            return DeliveryResult(profile.id, DeliveryStatus.UNCERTAIN, period.key, detail=str(e))
        except (PermanentDeliveryError, TransientDeliveryError, DeliveryError) as e:
            retry = isinstance(e, TransientDeliveryError)
            self.ledger.mark_failed(profile.id, period.key, str(e), self.clock(), retry=retry)
            return DeliveryResult(profile.id, DeliveryStatus.FAILED, period.key, detail=str(e))
        self.ledger.mark_sent(profile.id, period.key, provider_id, self.clock())
        feed_items[profile.id] = [_feed_item(m, now) for m in digest.matches]
        path = self.sender.path_for(message) if isinstance(self.sender, OutboxSender) else None
        return DeliveryResult(profile.id, DeliveryStatus.SENT, period.key, len(ids), path=path)

    # -- feeds ---------------------------------------------------------------------

    def write_feeds(self, readers: Sequence[Profile]) -> list[Path]:
        """Write ``<reader>.xml`` (RSS 2.0) and ``<reader>.atom`` for each reader."""
        folder = self.settings.paths.feeds_dir
        folder.mkdir(parents=True, exist_ok=True)
        now = self.clock()
        written = []
        for profile in readers:
            matches = self.feed_matches(profile.id)
            links = self.links(profile.id)
            for kind, suffix, url in (("rss", ".xml", links.feed_url), ("atom", ".atom", links.atom_url)):
                text = self.renderer.feed(profile, matches, kind=kind, self_url=url, updated=now)
                path = folder / f"{profile.id}{suffix}"
                atomic_write(path, text.encode("utf-8"))
                written.append(path)
        return written

    def feed_matches(self, reader: str) -> list[Match]:
        items = self.store.feed_items(reader)
        entries = self.store.get_entries(i["id"] for i in items)
        return [
            Match(entries[i["id"]], i["score"], tuple(Reason(ReasonKind(k), t) for k, t in i["reasons"]))
            for i in items
            if i["id"] in entries
        ]

    # -- everything --------------------------------------------------------------------

    def run(self, *, force: bool = False, fetch: bool = True) -> RunReport:
        """Fetch, then deliver what is due and refresh every reader's feed."""
        fetched = self.fetch() if fetch else []
        loaded = self.load_profiles()
        deliveries = self.deliver(force=force, readers=loaded.profiles)
        feeds = self.write_feeds(loaded.profiles)
        return RunReport(
            sources=tuple(fetched),
            deliveries=tuple(deliveries),
            profile_errors=tuple(str(e) for e in loaded.errors),
            feeds=tuple(feeds),
        )


def _feed_item(m: Match, now: datetime) -> dict[str, Any]:
    return {
        "id": m.entry.id,
        "score": m.score,
        "reasons": [[r.kind.value, r.text] for r in m.reasons],
        "at": now.isoformat(),
    }


def _ok(state: SourceState, now: datetime, etag: str | None, modified: str | None) -> SourceState:
    return SourceState(
        name=state.name,
        etag=etag,
        last_modified=modified,
        last_attempt=now,
        last_success=now,
        failures=0,
        last_date=state.last_date,
    )


def _failed(state: SourceState, now: datetime, error: str) -> SourceState:
    return SourceState(
        name=state.name,
        etag=state.etag,
        last_modified=state.last_modified,
        last_attempt=now,
        last_success=state.last_success,
        last_error=error,
        failures=state.failures + 1,
        last_date=state.last_date,
    )


def make_sender(settings: Settings) -> Sender:
    """The backend named by ``delivery.backend``."""
    backend = settings.delivery.backend
    if backend == "outbox":
        return OutboxSender(settings.paths.outbox_dir)
    raise NewsletterError(f'delivery backend {backend!r} is not available in this version; use backend = "outbox"')


def make_app(
    settings: Settings,
    *,
    store: Store | None = None,
    sender: Sender | None = None,
    http: httpx.Client | None = None,
    clock: Clock | None = None,
) -> App:
    """Wire every stage from *settings*; pass a part to replace the real one."""
    store = store or Store(settings.paths.data_dir)
    try:
        ledger = Ledger(settings.paths.data_dir)
        clock = clock or utcnow
        recovered = ledger.recover(clock())
        return App(
            settings=settings,
            store=store,
            ledger=ledger,
            sender=sender or make_sender(settings),
            fetcher=Fetcher(settings.fetch, contact=settings.site.contact, http=http),
            renderer=Renderer(
                settings.paths.templates_dir,
                site_title=settings.site.title,
                site_url=settings.site.base_url,
                contact=settings.site.contact,
            ),
            tokens=Tokens(load_secret(settings.paths.data_dir)),
            clock=clock,
            recovered=recovered,
        )
    except BaseException:
        store.close()
        raise
