"""The composition root: :func:`make_app` wires the stages; :class:`App` runs them.

Each batch step returns one result per item with the error as a value, so a
dead feed, a broken profile or a bounced address is reported and the rest of
the run goes on (as lemon24/reader's ``update_feeds_iter``).
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx

from . import learn, logs, site, sources
from . import match as ranking
from . import profiles as profile_files
from .config import Settings
from .delivery import OutboxSender, Sender, SendGridSender, SmtpSender, Tokens, build_message, load_secret
from .errors import AmbiguousDeliveryError, DeliveryAuthError, DeliveryError, InternalError, NewsletterError
from .fetch import Fetcher
from .files import atomic_write
from .ledger import Ledger
from .render import Renderer, self_check
from .schedule import (
    digest_since,
    forced_period,
    is_paused,
    period_keys,
    period_of_key,
    plan,
)
from .store import NOT_LISTED, Store

if TYPE_CHECKING:
    from .embed import TextEmbedder
    from .library import Library

from .types import (
    Delivery,
    DeliveryResult,
    DeliveryStatus,
    Digest,
    Due,
    Entry,
    EntryData,
    FeedItem,
    Match,
    Outgoing,
    Period,
    Profile,
    Rating,
    ReaderLinks,
    Reason,
    ReasonKind,
    Receipt,
    RunReport,
    SourceResult,
    SourceState,
    Status,
)

Clock = Callable[[], datetime]

NOTHING_MATCHED = "nothing new matched"

log = logs.get("deliver")

LEDGER_RETENTION_FACTOR = 4
"""Delivered ids and feed items are kept this many entry-retention windows."""

_UNLOADED = object()
_EMBED_CHUNK = 256
"""Papers embedded per call (the embedder batches inside; this bounds the texts held at once)."""

_RANK_BLOCK = 512
"""Readers ranked together before their sends start: bounds the digests held in memory."""

CALIBRATE_POOL = 30
"""A "to calibrate" paper is chosen among this many candidates just below a reader's cut."""
CALIBRATE_REASON = "to calibrate: not picked for your interests; rating it teaches your digest the most"


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
    _embedder: object = field(default_factory=lambda: _UNLOADED, repr=False)
    _models: learn.ModelCache | None = field(default=None, repr=False)
    _libraries: dict[str, tuple[tuple[str, int, int], Library | None]] = field(default_factory=dict, repr=False)
    _library_entries: dict[str, Entry] = field(default_factory=dict, repr=False)

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
            states.append(_failed(f.state, now, str(f.error)) if f.error else _ok(f.state, now))
        with self.store.batch():
            self.store.put_entries(changed.values())
            self.store.put_source_states(states)
            self.store.prune_entries(now - timedelta(days=self.settings.fetch.retention_days))
        # Delivered ids outlive their entries by far: a paper listed again after
        # it left the store must still not be offered twice.
        self.ledger.prune(now - timedelta(days=LEDGER_RETENTION_FACTOR * self.settings.fetch.retention_days))
        logs.log_sources(results)
        self.look_up_seeds(profile_files.load_profiles(self.settings.paths.profiles_dir, self.store.cached_profile))
        self.embed_new()
        return results

    def look_up_seeds(self, loaded: profile_files.LoadResult) -> int:
        """Seed papers (``papers = [...]``, and library records with an arXiv id but no abstract) that no
        source listed, looked up once through the arXiv API and kept in the store; returns how many."""
        from .arxiv_lookup import ArxivLookup, MemoryCache

        wanted = {p for profile in loaded.profiles for p in profile.interests.papers}
        for profile in loaded.profiles:
            library = self._library(profile)
            if library is not None:
                wanted |= {r.arxiv_id for r in library.records if r.arxiv_id and not r.abstract}
        known = self.store.get_entries(f"arxiv:{p}" for p in wanted)
        missing = sorted(p for p in wanted if f"arxiv:{p}" not in known)
        if not missing:
            return 0
        f = self.settings.fetch
        lookup = ArxivLookup(self.fetcher, MemoryCache(), base=f.arxiv_api, allow_private=f.arxiv_api_allow_private)
        results = lookup.lookup(missing)
        now = self.clock()
        found = [sources.merge(None, r.paper, now) for r in results.values() if r.ok and isinstance(r.paper, EntryData)]
        for r in results.values():
            if not r.ok:
                log.warning("seed paper %s: %s", r.asked, r.error, extra={"event": "seeds"})
        return self.store.put_looked_up(found)

    def _library(self, profile: Profile) -> Library | None:
        """The reader's reference library (``papers_from``), read once per file version; None without one."""
        path = profile.interests.papers_from
        if path is None:
            return None
        from .library import read_library

        try:
            stat = path.stat()
        except OSError:
            stat = None
        key = (str(path), stat.st_mtime_ns if stat else 0, stat.st_size if stat else 0)
        cached = self._libraries.get(key[0])
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            library = read_library(path, self.settings.paths.profiles_dir)
        except NewsletterError as e:
            log.warning("%s", e, extra={"event": "seeds"})
            library = None
        self._libraries[key[0]] = (key, library)
        return library

    # -- meaning: the sentence-embedding model ---------------------------------------

    @property
    def embedder(self) -> TextEmbedder | None:
        """The shipped semantic model, loaded on first use; None when ``ranking.semantic`` is off or it cannot load."""
        if not self.settings.ranking.semantic:
            return None
        if self._embedder is _UNLOADED:
            from .embed import load_embedder

            self._embedder = load_embedder()  # a missing or damaged model: a warning, and words only
        return cast("TextEmbedder | None", self._embedder)

    def embed_new(self) -> int:
        """Embed the stored papers that have no vector yet (newest first), once each; returns how many."""
        embedder = self.embedder
        if embedder is None or self.store.read_only:
            return 0
        import numpy as np

        from .embed import KnownVectors, paper_text, sample_vectors_path

        ids = self.store.ids_without_embedding(self.settings.ranking.embed_batch)
        if not ids:
            return 0
        start = time.perf_counter()
        entries = self.store.get_entries(ids)
        texts = {e: paper_text(entries[e].title, entries[e].summary) for e in ids if e in entries}
        known = KnownVectors(sample_vectors_path(), embedder.name)  # the bundled samples: computed ahead
        ready = {e: v for e, t in texts.items() if (v := known.get(t)) is not None}
        if ready:
            self.store.put_embeddings(list(ready), np.stack(list(ready.values())))
        todo = [e for e in texts if e not in ready]
        done = len(ready)
        for i in range(0, len(todo), _EMBED_CHUNK):
            chunk = todo[i : i + _EMBED_CHUNK]
            done += self.store.put_embeddings(chunk, embedder.embed([texts[e] for e in chunk]))
        log.info(
            "embedded %d papers in %.1f s", done, time.perf_counter() - start, extra={"event": "embed", "papers": done}
        )
        return done

    def index(self, entries: Sequence[Entry], readers: Sequence[Profile] = ()) -> ranking.Index:
        """The ranking index of *entries*, with their stored vectors and the readers' seed papers' vectors."""
        embedder = self.embedder
        if embedder is None:
            return ranking.Index(entries)
        wanted = [e.id for e in entries]
        wanted += [f"arxiv:{p}" for r in readers for p in r.interests.papers]
        wanted += [i for r in readers for i in (*r.feedback.liked, *r.feedback.disliked)]
        ids, matrix = self.store.embeddings(wanted)
        vectors = {i: matrix[k] for k, i in enumerate(ids)}
        from .embed import StoredTexts

        # Readers' phrases (and seeds no store row holds) are embedded once and kept in the store.
        kept = StoredTexts(embedder, self.store, self.clock().date())
        kept.prefetch([k.text for r in readers for k in r.interests.keywords])  # one query, not one per phrase
        return ranking.Index(entries, embeddings=vectors, embedder=kept)

    # -- profiles ------------------------------------------------------------------

    def load_profiles(self) -> profile_files.LoadResult:
        """Read every profile file (unchanged ones from the store's cache) and sync the valid ones.

        A reader is their address: a file renamed since the last sync (a new
        name, an address that was another name's) takes that name's history
        with it, so the reader gets no second digest and old links still work.
        """
        loaded = profile_files.load_profiles(self.settings.paths.profiles_dir, self.store.cached_profile)
        before = self.store.profile_docs()
        current = {p.id for p in loaded.profiles}
        key = profile_files.reader_key
        gone = {
            key(str((doc.get("file") or {}).get("email", ""))): old for old, doc in before.items() if old not in current
        }
        for p in loaded.profiles:
            old = gone.get(key(p.email))
            if p.id not in before and old is not None:
                self.ledger.rename_reader(old, p.id, self.clock())
                log.info("reader %s was renamed %s: their history follows", old, p.id, extra={"reader": p.id})
        self.store.sync_profiles(loaded.profiles, loaded.stats)
        return loaded

    def links(self, reader: str, period: str | None = None, entry_ids: Sequence[str] = ()) -> ReaderLinks:
        """The reader's signed links; with *period*, also that digest's page; with *entry_ids*, their rating links."""
        base = self.settings.site.base_url
        feed = self.tokens.feed(reader)
        unsubscribe = self.tokens.unsubscribe(reader)
        return ReaderLinks(
            feed_url=f"{base}/feeds/{feed}.xml",
            atom_url=f"{base}/feeds/{feed}.atom",
            unsubscribe_url=f"{base}/unsubscribe/{unsubscribe}",
            pause_url=f"{base}/pause/{unsubscribe}",
            view_url=f"{base}/digest/{self.tokens.digest(reader, period)}" if period else "",
            archive_url=f"{base}/archive/{self.tokens.archive(reader)}",
            profile_url=f"{base}/manage/{self.tokens.manage(reader)}",
            rate={
                e: (
                    f"{base}/rate/{self.tokens.rating(reader, e, 'liked')}",
                    f"{base}/rate/{self.tokens.rating(reader, e, 'disliked')}",
                )
                for e in entry_ids
            },
        )

    def sent_digest(self, reader: str, period: str) -> Digest | None:
        """A digest as it was sent, rebuilt from the ledger ("view in browser"); None if none was sent.

        The papers come in the order they were sent, with the reasons the
        reader's feed kept for them.
        """
        row = self.ledger.get(reader, period)
        if row is None or row.status is not DeliveryStatus.SENT:
            return None
        profile = _profile_of(self, reader)
        if profile is None:
            return None
        entries = self.store.get_entries(row.entry_ids)
        reasons = {i.entry_id: i for i in self.ledger.feed_items(reader, 10_000)}
        matches = tuple(
            Match(
                entries[i],
                reasons[i].score if i in reasons else 0.0,
                reasons[i].reasons if i in reasons else (),
            )
            for i in row.entry_ids
            if i in entries
        )
        try:
            day = period_of_key(profile, period).day
        except ValueError:
            return None
        return Digest(profile, period, day, matches, row.updated_at or self.clock())

    def archive(self, reader: str) -> list[Delivery]:
        """The reader's sent digests, newest first."""
        rows = [r for r in self.ledger.rows(reader=reader) if r.status is DeliveryStatus.SENT]
        return sorted(rows, key=lambda r: r.period, reverse=True)

    # -- digests -------------------------------------------------------------------

    def digest(
        self,
        profile: Profile,
        period: Period,
        index: ranking.Index,
        now: datetime,
        *,
        since: datetime | None = None,
        fresh_only: bool = True,
    ) -> Digest:
        """What *profile* gets for *period*: new entries, minus everything delivered.

        Seed papers come from the store (they may be older than the day's
        entries); seed ids the store does not have are named in the notes.
        """
        return self._digests([(profile, period, since)], index, now, fresh_only=fresh_only)[0]

    def _digests(
        self,
        wanted: Sequence[tuple[Profile, Period, datetime | None]],
        index: ranking.Index,
        now: datetime,
        *,
        fresh_only: bool = True,
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
            exclude[profile.id] = self.ledger.delivered_ids(profile.id) if fresh_only else set()
        # What the reader taught us: liked papers act as seed papers from the first rating, disliked ones
        # are never offered again, and with vectors a per-reader model is blended in (newsletter.learn).
        readers = [self._with_library(learn.with_liked_seeds(p) if p.feedback else p) for p, _, _ in wanted]
        for p in readers:
            if p.feedback.disliked:
                exclude[p.id] = exclude[p.id] | set(p.feedback.disliked)
        self._learn(readers, index)
        seeds = self.store.get_entries(f"arxiv:{p}" for profile in readers for p in profile.interests.papers)
        seeds.update(self._library_entries)
        # A reader who asked for a "to calibrate" paper is ranked past their cut: it comes from just below.
        wide = [replace(p, max_items=p.max_items + CALIBRATE_POOL) if p.calibrate else p for p in readers]
        ranked = index.rank_many(wide, now, exclude, since, seeds=seeds)
        source_notes = self.source_notes()
        digests = []
        for profile, period, _ in wanted:
            known = [i for p in profile.interests.papers if (i := f"arxiv:{p}") in seeds or i in index.row_of]
            notes = source_notes + tuple(
                f"Seed paper {p} from your profile is not in the database yet, so it was not used; "
                "it is used once a source lists it."
                for p in profile_files.missing_papers(profile, known)
            )
            got = ranked[profile.id]
            picked = _that_you_liked(tuple(got[: profile.max_items]), profile)
            if profile.calibrate and picked:  # one more, marked: the candidate the reader's model is least sure of
                pick = self._calibration(profile, got[profile.max_items :], index)
                picked += (pick,) if pick is not None else ()
            trending: tuple[Match, ...] = ()
            if profile.trending > 0:  # the day's most upvoted papers the reader did not get, in the window
                cutoff = since[profile.id]
                window = [e for e in index.entries if cutoff is None or e.first_seen > cutoff]
                trending = ranking.trending(
                    window, {m.entry.id for m in picked}, profile.trending, exclude_ids=exclude[profile.id]
                )
            digests.append(Digest(profile, period.key, period.day, picked, now, notes, trending=trending))
        return digests

    def _with_library(self, profile: Profile) -> Profile:
        """*profile* with its library's records as seed papers: arXiv ones by id (looked up at fetch time),
        the others as text (``library:<hash>`` entries the Index embeds once)."""
        library = self._library(profile)
        if library is None:
            return profile
        ids: list[str] = []
        for r in library.records:
            if r.arxiv_id:
                ids.append(r.arxiv_id)
            elif r.title:
                key = "library:" + hashlib.sha256(f"{r.title}\0{r.abstract}".encode()).hexdigest()[:16]
                self._library_entries.setdefault(
                    key,
                    Entry(key, r.title, r.abstract or "", "", NOT_LISTED, authors=tuple(r.authors)),
                )
                ids.append(key)
        papers = tuple(dict.fromkeys([*profile.interests.papers, *ids]))
        return replace(profile, interests=replace(profile.interests, papers=papers))

    def _calibration(self, profile: Profile, below: Sequence[Match], index: ranking.Index) -> Match | None:
        """The "to calibrate" paper among the unrated candidates *below* the cut (best first), or None.

        Uncertainty sampling (:func:`newsletter.learn.most_uncertain`): the
        one the reader's model is least sure about, or without a logistic
        model the best candidate; its first reason says why it is there.
        """
        rated = {*profile.feedback.liked, *profile.feedback.disliked}
        candidates = [m for m in below if m.entry.id not in rated]
        if not candidates:
            return None
        k = 0
        model = index.reader_models.get(profile.id)
        if model is not None and model.kind == "logistic":
            ids, matrix = self.store.embeddings([m.entry.id for m in candidates])
            if ids:
                at = {i: r for r, i in enumerate(ids)}
                candidates = [m for m in candidates if m.entry.id in at]
                k = learn.most_uncertain(model, matrix[[at[m.entry.id] for m in candidates]])
        chosen = candidates[k]
        return replace(chosen, reasons=(Reason(ReasonKind.CALIBRATE, CALIBRATE_REASON), *chosen.reasons))

    def _learn(self, readers: Sequence[Profile], index: ranking.Index) -> None:
        """Give the index each rating reader's model (trained only when their ratings changed)."""
        embedder = self.embedder
        rating = [p for p in readers if p.feedback]
        if embedder is None or not rating:
            return
        if self._models is None:
            self._models = learn.ModelCache(salt=embedder.name)
        # The profile counts as liked papers in the fit: its seed papers and its phrases embedded as one
        # sentence (the Index embeds that sentence too: one batch, cached for both).
        seeds = {p.id: tuple(i if ":" in i else f"arxiv:{i}" for i in p.interests.papers) for p in rating}
        texts = {p.id: ", ".join(k.text for k in p.interests.keywords) for p in rating}
        # Through the Index's embedder (the store's kept vectors): the very vectors its ranking uses.
        phrases = ranking.embed_phrases(index.embedder or embedder, [t for t in texts.values() if t])
        ids, matrix = self.store.embeddings(
            [i for p in rating for i in (*p.feedback.liked, *p.feedback.disliked, *seeds[p.id])]
        )
        vectors = {i: matrix[k] for k, i in enumerate(ids)}
        cache = self._models
        # Models fitted by an earlier run, from the store: kept when their key still matches (no refit).
        for reader, (stored, blob) in self.store.reader_models(
            [p.id for p in rating if cache.key(p.id) is None]
        ).items():
            try:
                cache.put(reader, stored, learn.ReaderModel.from_blob(blob))
            except (ValueError, KeyError, TypeError, struct.error):  # a damaged row: refitted below
                continue
        fitted: dict[str, tuple[str, bytes | None]] = {}
        for p in rating:
            text = texts[p.id]
            query = phrases[text][None, :] if text else None
            before = cache.key(p.id)
            model = index.reader_models[p.id] = cache.get(p.id, p.feedback, vectors, seeds[p.id], query)
            now_key = cache.key(p.id)
            if now_key is not None and now_key != before:
                fitted[p.id] = (now_key, model.to_blob() if model is not None else None)
        self.store.put_reader_models(fitted)

    def source_notes(self) -> tuple[str, ...]:
        """One line per source failing twice or more in a row, for digests and feeds."""
        return tuple(
            f"Source {s.name} has failed {s.failures} times in a row; some papers may be missing."
            for s in self.store.source_states().values()
            if s.failures >= 2
        )

    def profile(self, reader_id: str) -> Profile:
        """The valid profile of *reader_id* (the file name without .toml), or the error saying why not.

        One file is read when it is there and valid; the folder only to say what is wrong.
        """
        path = self.settings.paths.profiles_dir / f"{reader_id}.toml"
        if path.is_file():
            try:
                return profile_files.load_profile(path, self.settings.paths.profiles_dir)
            except NewsletterError:
                pass
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
        return profile

    def preview(self, reader_id: str, days: int = 1) -> Digest:
        """The digest *reader_id* would get now from the last *days* of entries.

        Sends nothing and records nothing (no ledger row, no feed item).
        """
        return self.preview_profile(self.profile(reader_id), days)

    def preview_profile(self, profile: Profile, days: int = 1, *, fresh_only: bool = True) -> Digest:
        """:meth:`preview` for a profile that need not be saved yet (the manage page's live preview).

        With ``fresh_only=False`` papers already sent count too: "what you would have got this week".
        """
        now = self.clock()
        since = now - timedelta(days=days)
        index = self.index(self.store.entries_since(since), [profile])
        return self.digest(profile, forced_period(profile, now), index, now, since=since, fresh_only=fresh_only)

    def plan(self, readers: Sequence[Profile], *, force: bool = False) -> list[Due | DeliveryResult]:
        """Who is due now (:func:`schedule.plan` over one ledger snapshot); writes nothing."""
        now = self.clock()
        keys = {k for p in readers for k in period_keys(p, now, force)}
        return plan(
            readers,
            self.ledger.rows_for(keys),
            self.ledger.unsubscribed(),
            self.store.newest_first_seen(),
            now,
            force=force,
        )

    def deliver(
        self,
        *,
        force: bool = False,
        readers: Sequence[Profile] | None = None,
        stop: threading.Event | None = None,
    ) -> list[DeliveryResult]:
        """Send every due digest once; returns one result per reader, in reader order.

        With ``force`` each reader's digest for today is due now, whatever
        their send time (``newsletter demo``, ``run --now``).  The due readers
        (:meth:`plan`) are ranked by blocks of ``_RANK_BLOCK`` with one
        vectorised :meth:`Index.rank_many` call each; then that block's send
        jobs are submitted.  Up to ``delivery.concurrency`` sends are in flight
        at once; each job renders its own email just before sending, and at
        most twice that many jobs are queued, so memory stays flat for 10,000
        readers (one block of digests at a time).  Each result is logged as it
        happens.  When *stop* is set (SIGTERM) no new send starts; sends in
        flight finish and are recorded.
        """
        from concurrent.futures import ThreadPoolExecutor

        now = self.clock()
        if readers is None:
            readers = self.load_profiles().profiles
        decisions = self.plan(readers, force=force)
        results: list[DeliveryResult | None] = [None] * len(readers)
        due: list[tuple[int, Due]] = []
        for i, d in enumerate(decisions):
            if isinstance(d, Due):
                due.append((i, d))
            else:
                results[i] = _logged(d)
        # Each reader gets what is new since their last digest; only entries
        # newer than the earliest of those cut-offs need indexing.
        since = {d.profile.id: digest_since(d.profile, self.ledger.last_sent_at(d.profile.id), now) for _, d in due}
        index = self.index(self.store.entries_since(min(since.values(), default=now)), [d.profile for _, d in due])
        guard = _SendGuard(stop, self.settings.delivery.auth_failure_limit)
        workers = self.settings.delivery.concurrency
        slots = threading.BoundedSemaphore(workers * 2)

        def job(i: int, digest: Digest, covers: Period | None) -> None:
            try:
                result = self._deliver_one(digest, now, guard, covers=covers)
            except NewsletterError as e:
                result = _failed_result(digest.profile.id, digest.period, e)
            except Exception as e:  # a bug in one reader's job must not lose the others' results
                log.exception("delivery to %s crashed", digest.profile.id)
                result = _failed_result(
                    digest.profile.id, digest.period, InternalError(f"delivering to {digest.profile.id}", e)
                )
            finally:
                slots.release()
            results[i] = _logged(result)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver") as pool:
            for start in range(0, len(due), _RANK_BLOCK):
                if guard.halted() is not None:
                    break
                block = due[start : start + _RANK_BLOCK]
                digests = self._rank_block(block, index, now, since, results)
                for (i, d), digest in zip(block, digests, strict=True):
                    if digest is None:
                        continue
                    slots.acquire()
                    if guard.halted() is not None:
                        slots.release()
                        break
                    pool.submit(job, i, digest, d.covers)
        reason = guard.halted() or "not reached"
        periods = {d.profile.id: d.period.key for _, d in due}
        return [
            r
            if r is not None
            else _logged(DeliveryResult(p.id, DeliveryStatus.PLANNED, periods.get(p.id), detail=f"not sent: {reason}"))
            for p, r in zip(readers, results, strict=True)
        ]

    def _rank_block(
        self,
        block: Sequence[tuple[int, Due]],
        index: ranking.Index,
        now: datetime,
        since: dict[str, datetime],
        results: list[DeliveryResult | None],
    ) -> list[Digest | None]:
        """The due readers' digests, ranked together; if ranking fails, each gets a failed result."""
        try:
            wanted = [(d.profile, d.period, since.get(d.profile.id)) for _, d in block]
            return list(self._digests(wanted, index, now))
        except Exception as e:  # one block's failure is reported per reader; the next block still runs
            error = e if isinstance(e, NewsletterError) else InternalError(f"ranking {len(block)} readers", e)
            if error is not e:
                log.exception("ranking a block of %d readers crashed", len(block))
            for i, d in block:
                results[i] = _logged(_failed_result(d.profile.id, d.period.key, error))
            return [None] * len(block)

    def _deliver_one(
        self,
        digest: Digest,
        now: datetime,
        guard: _SendGuard | None = None,
        *,
        covers: Period | None = None,
    ) -> DeliveryResult:
        """One reader's ranked digest: render, claim durably, send, record."""
        guard = guard or _SendGuard(None, self.settings.delivery.auth_failure_limit)
        profile, period = digest.profile, digest.period
        if not digest.matches and profile.skip_empty:
            self.ledger.mark_skipped(profile.id, period, NOTHING_MATCHED, now)
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, period, detail=NOTHING_MATCHED)
        links = self.links(profile.id, period, [m.entry.id for m in digest.matches])
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
        if is_paused(profile, self.ledger.unsubscribed_at(profile.id), self.clock()):
            return DeliveryResult(profile.id, DeliveryStatus.SKIPPED, period, detail="paused (unsubscribed)")
        ids = [m.entry.id for m in (*digest.matches, *digest.trending)]  # shown once: never offered again
        if not self.ledger.claim(profile.id, period, ids, self.sender.name, now):
            return DeliveryResult(profile.id, DeliveryStatus.SENDING, period, detail="claimed by another run")
        try:
            receipt = self.sender.send(message)
        except AmbiguousDeliveryError as e:
            self.ledger.mark_uncertain(profile.id, period, str(e), self.clock())
            guard.record(auth_failed=False)
            return DeliveryResult(profile.id, DeliveryStatus.UNCERTAIN, period, detail=str(e), error=e)
        except DeliveryError as e:
            self.ledger.mark_failed(profile.id, period, str(e), self.clock(), retry=e.retry_later)
            guard.record(auth_failed=isinstance(e, DeliveryAuthError))
            return _failed_result(profile.id, period, e)
        items = [FeedItem.of(m, rank) for rank, m in enumerate(digest.matches, 1)]
        self.ledger.mark_sent(
            profile.id,
            period,
            receipt.message_id,
            self.clock(),
            items,
            keep=self.settings.feed.items,
            covers=covers.key if covers is not None else None,
        )
        guard.record(auth_failed=False)
        return DeliveryResult(profile.id, DeliveryStatus.SENT, period, len(digest.matches), path=receipt.path)

    def is_paused(self, profile: Profile) -> bool:
        """:func:`schedule.is_paused` with this reader's unsubscribe record, asked fresh."""
        return is_paused(profile, self.ledger.unsubscribed_at(profile.id), self.clock())

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
            known = {m.entry.id for m in matches}
            picked_at = [i.at for i in items if i.entry_id in known]
            reader_notes = notes
            last = self.ledger.latest(profile.id)
            if last is not None and last.status is DeliveryStatus.SKIPPED:
                # skip_empty readers get no email on such days: the feed says so instead.
                reader_notes = (*notes, f"Nothing new matched your interests for {last.period}.")
            updated = max((i.at for i in items if i.at), default=None) or _mtime(profile.path) or self.clock()
            links = self.links(profile.id)
            for kind, suffix, url in (("rss", ".xml", links.feed_url), ("atom", ".atom", links.atom_url)):
                body = self.renderer.feed(
                    profile, matches, kind=kind, self_url=url, updated=updated, notes=reader_notes, picked_at=picked_at
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
        return [Match(entries[i.entry_id], i.score, i.reasons) for i in items if i.entry_id in entries]

    # -- everything --------------------------------------------------------------------

    def feedback(self, reader_id: str) -> list[Rating]:
        """The reader's ratings as their file holds them, newest first, with titles and the ledger's dates."""
        profile = self.profile(reader_id)
        history = self.ledger.ratings(profile.id)
        ids = [*profile.feedback.liked, *profile.feedback.disliked]
        entries = self.store.get_entries(ids)
        rows = [
            Rating(
                i,
                choice,
                entries[i].title if i in entries else "(not in the store yet)",
                history.get(i, (None, None))[1],
            )
            for choice, group in (("liked", profile.feedback.liked), ("disliked", profile.feedback.disliked))
            for i in group
        ]
        return sorted(rows, key=lambda r: r.at or datetime.min.replace(tzinfo=UTC), reverse=True)

    def write_preview_html(self, digest: Digest) -> Path:
        """The digest's email as an HTML file in the data folder (``preview --open``); nothing is sent."""
        email = self.renderer.email(
            digest, self.links(digest.profile.id, digest.period, [m.entry.id for m in digest.matches])
        )
        path = self.settings.paths.data_dir / f"preview-{digest.profile.id}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(email.html, encoding="utf-8")
        return path

    def resend(self, reader_id: str, period: str | None = None, *, uncertain: bool = False) -> DeliveryResult:
        """Send a failed digest again now (``newsletter resend``): the latest failed one, or *period*'s.

        A sent or in-flight digest is never sent again; an uncertain one only
        with *uncertain* (the operator checked the provider's log).
        """
        profile = self.profile(reader_id)
        now = self.clock()
        if period is None:
            failed = [r for r in self.ledger.rows(reader=profile.id) if r.status is DeliveryStatus.FAILED]
            if uncertain:
                failed += [r for r in self.ledger.rows(reader=profile.id) if r.status is DeliveryStatus.UNCERTAIN]
            if not failed:
                raise NewsletterError(
                    f"{reader_id} has no failed digest to send again; `newsletter status` lists failed sends"
                )
            period = max(failed, key=lambda r: r.updated_at or now).period
        try:
            self.ledger.reopen(profile.id, period, now, uncertain=uncertain)
        except LookupError:
            raise NewsletterError(
                f"{reader_id} has no digest for {period}; give a period that `newsletter status` lists"
            ) from None
        except ValueError as e:
            hint = (
                "use --uncertain once the mail provider's log shows it never went out"
                if str(e) == DeliveryStatus.UNCERTAIN.value
                else "a digest is never sent twice"
            )
            raise NewsletterError(f"the digest of {reader_id} for {period} is {e}: {hint}") from None
        target = period_of_key(profile, period)
        since = digest_since(profile, self.ledger.last_sent_at(profile.id), now)
        index = self.index(self.store.entries_since(since), [profile])
        digest = self._digests([(profile, target, since)], index, now)[0]
        return _logged(self._deliver_one(digest, now))

    def run(self, *, force: bool = False, fetch: bool = True, stop: threading.Event | None = None) -> RunReport:
        """Fetch, then deliver what is due and refresh every reader's feed; *stop* ends it early, cleanly."""
        fetched = self.fetch() if fetch else []
        loaded = self.load_profiles()
        deliveries = self.deliver(force=force, readers=loaded.profiles, stop=stop)
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

        # Read-only (status): rows "sending" while no process holds the folder were cut off by a dead one.
        alive = not self.store.read_only or site.writer_alive(self.settings.paths.data_dir)
        return compute(self.store, self.ledger, self.settings.sources, now or self.clock(), writer_alive=alive)


def _that_you_liked(matches: tuple[Match, ...], profile: Profile) -> tuple[Match, ...]:
    """A seed-paper reason for a paper the reader liked reads ``like "<title>" that you liked``."""
    liked = {i.removeprefix("arxiv:") for i in profile.feedback.liked}
    if not liked:
        return matches
    out = []
    for m in matches:
        reasons = tuple(
            replace(r, text=f'like "{r.detail}" that you liked')
            if r.kind is ReasonKind.PAPER and r.term in liked and r.detail
            else r
            for r in m.reasons
        )
        out.append(replace(m, reasons=reasons) if reasons != m.reasons else m)
    return tuple(out)


def _profile_of(app: App, reader: str) -> Profile | None:
    """The reader's profile from their file, or None when it is gone or broken."""
    doc = app.store.profile_doc(reader)
    path = Path(doc["path"]) if doc and doc.get("path") else app.settings.paths.profiles_dir / f"{reader}.toml"
    try:
        return profile_files.load_profile(path, app.settings.paths.profiles_dir)
    except NewsletterError:
        return None


def _failed_result(reader: str, period: str | None, error: NewsletterError) -> DeliveryResult:
    return DeliveryResult(reader, DeliveryStatus.FAILED, period, detail=str(error), error=error)


def _logged(result: DeliveryResult) -> DeliveryResult:
    """Log one delivery result as it happens (a killed run still leaves its trace), and return it."""
    logs.log_deliveries([result])
    return result


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


@dataclass(frozen=True, slots=True)
class RankedFile:
    """What ``newsletter rank`` shows: the matches, the seed ids the file lacks, how many entries it held."""

    matches: tuple[Match, ...]
    missing_seeds: tuple[str, ...]
    entries: int


def rank_file(profile_path: Path, entries_path: Path, now: datetime) -> RankedFile:
    """Rank a feed file (RSS/Atom/HF JSON, detected) for one profile file; no database needed."""
    try:
        data = entries_path.read_bytes()
    except OSError as e:
        raise NewsletterError(f"cannot read {entries_path} ({e.strerror}); check the path") from e
    profile = profile_files.load_profile(profile_path)
    items = sources.parse(sources.detect_kind(data), entries_path.name, data)
    merged = sources.merge_all({}, items, now).changed
    matches = ranking.rank(list(merged.values()), profile, now)
    missing = profile_files.missing_papers(profile, list(merged))
    return RankedFile(tuple(matches), tuple(missing), len(merged))


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

    def send(self, message: Outgoing) -> Receipt:
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
        clock = clock or utcnow
        if not store.read_only:  # under the write lock: no live writer of ours has temp files or sends
            site.check_lost_state(settings, store)  # a lost ledger or key is refused, never recreated silently
            p = settings.paths
            site.clean_stale_temp((p.data_dir, p.feeds_dir, p.outbox_dir, p.profiles_dir), utcnow())  # file times
        ledger = Ledger(settings.paths.data_dir, read_only=store.read_only)
        if not store.read_only:
            site.settle_outbox_sends(ledger, settings.paths.outbox_dir, clock())  # the .eml file says what happened
        recovered = [] if store.read_only else ledger.recover(clock())
        key = load_secret(settings.paths.data_dir, create=not store.read_only)
        if not store.read_only:
            site.record_site(settings.paths.data_dir, key, clock())
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
            tokens=Tokens(key),
            clock=clock,
            recovered=recovered,
        )
    except BaseException:
        if ledger is not None:
            ledger.close()
        store.close()
        raise
