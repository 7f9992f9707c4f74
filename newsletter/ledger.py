"""The delivery ledger: what went to whom, when; the guard of 'exactly once'.

One row per reader per due period, moving ``planned -> sending -> sent |
failed | uncertain``.  A row is *claimed* (``sending``) with a durable write
before the email is handed to the backend, and marked ``sent`` with the
message id after.  A row still ``sending`` when a process starts belonged to a
process that died mid-send: it becomes ``uncertain`` and is reported, never
resent automatically (SendGrid has no idempotency key).

Why SQLite and not TinyDB: every send needs its own durable write, and TinyDB
rewrites the whole database file on each write, so 10,000 sends would rewrite
a multi-megabyte file 20,000 times.  SQLite (standard library) in WAL mode
with ``synchronous=FULL`` commits one small durable record per change and is
readable after a kill at any point.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from .errors import StoreCorruptError, StoreError
from .types import Delivery, DeliveryStatus, FeedItem, Reason, ReasonKind

LEDGER_FILE = "ledger.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    reader      TEXT NOT NULL,
    period      TEXT NOT NULL,
    status      TEXT NOT NULL,
    entry_ids   TEXT NOT NULL DEFAULT '[]',
    message_id  TEXT,
    error       TEXT,
    backend     TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (reader, period)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_items (
    reader    TEXT NOT NULL,
    entry_id  TEXT NOT NULL,
    score     REAL NOT NULL,
    reasons   TEXT NOT NULL,
    at        TEXT NOT NULL,
    rank      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (reader, entry_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unsubscribes (
    reader  TEXT PRIMARY KEY,
    at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ratings (
    reader    TEXT NOT NULL,
    entry_id  TEXT NOT NULL,
    choice    TEXT,
    at        TEXT NOT NULL,
    PRIMARY KEY (reader, entry_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
    old  TEXT PRIMARY KEY,
    new  TEXT NOT NULL,
    at   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    reader    TEXT NOT NULL,
    entry_id  TEXT NOT NULL,
    period    TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (reader, entry_id)
) WITHOUT ROWID;
"""

_INDEXES = """
-- pruning (every fetch) deletes by age: without these it reads every row (a million at 100,000 readers)
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (at);
CREATE INDEX IF NOT EXISTS feed_items_at ON feed_items (at);
-- status and /healthz ask for the few rows that are not sent (and the newest send): an index, not a scan
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, updated_at);
"""
"""Made by the writer (a read-only `status` never builds an index on a ledger of millions of rows)."""


def _reasons_json(reasons: Sequence[Reason]) -> str:
    """Every field of each reason, so the feed groups them as the email did."""
    return json.dumps([[r.kind.value, r.text, r.term, r.where, list(r.words), r.detail] for r in reasons])


def _reasons_from_json(text: str) -> tuple[Reason, ...]:
    """Reasons back from :func:`_reasons_json`; rows written before 0.3 hold ``[kind, text]`` only."""
    out = []
    for row in json.loads(text):
        kind, said, term, where, words, detail = [*row, None, None, [], ""][:6]
        out.append(Reason(ReasonKind(kind), said, term, where, tuple(words), detail))
    return tuple(out)


T = TypeVar("T")


class _Write(Generic[T]):
    """One thread's write waiting for a group commit (:meth:`Ledger._write`)."""

    __slots__ = ("done", "error", "op", "result")

    def __init__(self, op: Callable[[sqlite3.Connection], T]) -> None:
        self.op = op
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


# Rows in these states hold their entries: they count as delivered for no-repeat.
_HOLDING = (DeliveryStatus.SENDING.value, DeliveryStatus.SENT.value, DeliveryStatus.UNCERTAIN.value)
# Rows in these states may still be sent: a retryable failure, or a period where nothing matched yet.
_OPEN = (DeliveryStatus.PLANNED.value, DeliveryStatus.SKIPPED.value)


class Ledger:
    """A thread-safe handle on the ledger database of one data folder."""

    def __init__(self, data_dir: Path, *, read_only: bool = False) -> None:
        """Open (or, unless *read_only*, create) the ledger of *data_dir*.

        Read-only (``status``, ``preview``) creates no file: a site that never
        sent gets an empty ledger in memory.
        """
        self.path = data_dir / LEDGER_FILE
        self._target: str | Path = self.path
        self._uri = False
        try:
            if read_only and not self.path.exists():
                self._target, self._uri = f"file:newsletter-ledger-{id(self)}?mode=memory&cache=shared", True
            elif not read_only:
                data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self._target, uri=self._uri, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            if "rank" not in {row[1] for row in self._db.execute("PRAGMA table_info(feed_items)")}:
                # Before 0.3 the feed kept no rank: old items get 0 and keep their score order.
                self._db.execute("ALTER TABLE feed_items ADD COLUMN rank INTEGER NOT NULL DEFAULT 0")
            if not read_only:
                self._db.executescript(_INDEXES)
            if not read_only:  # before 0.2 a forced send settled the scheduled period with a "skipped" row
                self._db.execute(
                    "UPDATE deliveries SET status = ? WHERE status = ? AND error LIKE 'covered by %'",
                    (DeliveryStatus.COVERED.value, DeliveryStatus.SKIPPED.value),
                )
        except sqlite3.Error as e:  # permissions, a read-only or full disk, a lock held too long, a damaged file
            raise self._error(e) from e
        except OSError as e:
            raise StoreError(f"cannot open {self.path} ({e.strerror})") from e
        self._lock = threading.Lock()  # the write connection: held by the thread committing a group
        self._queue_lock = threading.Lock()
        self._queue: list[_Write[Any]] = []
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._readers: list[sqlite3.Connection] = []

    def _error(self, e: sqlite3.Error) -> StoreError:
        """A SQLite error as one line naming the file and the fix (no traceback reaches the user)."""
        if "full" in str(e):  # SQLITE_FULL: "database or disk is full"
            return StoreError(
                f"the disk holding the ledger {self.path} is full ({e}); free some space and run again "
                "(the change that failed was not recorded)"
            )
        if type(e) is sqlite3.OperationalError:
            return StoreError(
                f"cannot use the ledger {self.path} ({e}); check that this user may write the data folder "
                "and that no other process holds it"
            )
        return StoreCorruptError(
            f"the ledger {self.path} is damaged ({e}); restore it from a backup, or move it away and set "
            "NEWSLETTER_ACCEPT_NEW_LEDGER=1 for one run to start a new one (readers may get repeats); "
            "it is never reset automatically"
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """Run a read on a pooled read-only connection.

        In WAL mode readers never wait for the writer, so the questions send
        threads ask (paused? already settled?) do not queue behind other
        threads' durable commits on the one write connection.  The pool grows
        to the number of threads reading at once and no further.
        """
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            try:
                conn = sqlite3.connect(
                    self._target, uri=self._uri, isolation_level=None, timeout=30, check_same_thread=False
                )
                conn.execute("PRAGMA query_only = ON")
            except sqlite3.Error as e:
                raise self._error(e) from e
            with self._lock:
                self._readers.append(conn)
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.Error as e:  # garbage pages show at the first query, not at open
            raise self._error(e) from e
        finally:
            self._idle.put(conn)

    def _query_one(self, sql: str, args: Sequence[object] = ()) -> Any:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run *op* in a durable transaction, grouped with the writes other threads asked for meanwhile.

        Group commit: 64 send threads each needing a durable claim and a
        durable "sent" would otherwise queue for one fsync each.  A thread
        queues its write, then takes the write lock; if the thread before it
        already committed the write, it is done, else it commits everything
        queued in one transaction (one fsync).  Each write runs in its own
        savepoint, so one write's exception undoes that write alone and is
        raised in the thread that asked for it; nothing returns before its
        write is on disk, so the exactly-once promise (claimed before sent)
        is unchanged.
        """
        job = _Write(op)
        with self._queue_lock:
            self._queue.append(job)
        with self._lock:
            if not job.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        if job.error is not None:
            raise job.error
        return cast(T, job.result)

    def _commit(self, batch: list[_Write[Any]]) -> None:
        """One transaction for *batch*, one COMMIT (the caller holds the write lock).

        No savepoint per write: every statement gives up the GIL while SQLite
        works and must win it back from the send threads, so the group's
        statements are kept few.  If one write raises, the whole transaction is
        rolled back, that write gets its error, and the others run again in a
        new transaction (they have seen nothing durable yet).
        """
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for k, job in enumerate(batch):
                try:
                    job.result = job.op(db)
                except Exception as e:  # this write's own failure: the others go again without it
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    job.error = self._error(e) if isinstance(e, sqlite3.Error) else e
                    job.done = True
                    self._commit(batch[:k] + batch[k + 1 :])
                    return
            db.execute("COMMIT")
        except BaseException as e:
            with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (disk full)
                db.execute("ROLLBACK")
            failed: BaseException = self._error(e) if isinstance(e, sqlite3.Error) else e
            for job in batch:
                job.result, job.error = None, failed
            if not isinstance(e, Exception):
                raise
        finally:
            for job in batch:
                job.done = True

    # -- the state machine -----------------------------------------------------

    def recover(self, now: datetime) -> list[Delivery]:
        """Turn rows left ``sending`` by a dead process into ``uncertain``.

        Call once at start-up, while holding the data folder's write lock, so
        no live process can be mid-send.  Returns the rows it changed.
        """

        def op(db: sqlite3.Connection) -> list[Delivery]:
            rows = db.execute("SELECT * FROM deliveries WHERE status = ?", (DeliveryStatus.SENDING.value,)).fetchall()
            db.execute(
                "UPDATE deliveries SET status = ?, updated_at = ?, "
                "error = 'process stopped during the send: it may or may not have gone out' "
                "WHERE status = ?",
                (DeliveryStatus.UNCERTAIN.value, now.isoformat(), DeliveryStatus.SENDING.value),
            )
            return [_row(r) for r in rows]

        return self._write(op)

    def get(self, reader: str, period: str) -> Delivery | None:
        r = self._query_one("SELECT * FROM deliveries WHERE reader = ? AND period = ?", (reader, period))
        return _row(r) if r else None

    def rows_for(self, periods: Iterable[str]) -> dict[tuple[str, str], Delivery]:
        """Every row of these period keys, by ``(reader, period)``: the planner's snapshot, in one query."""
        keys = sorted(set(periods))
        out: dict[tuple[str, str], Delivery] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self._query(f"SELECT * FROM deliveries WHERE period IN ({marks})", chunk):
                row = _row(r)
                out[row.reader, row.period] = row
        return out

    def claim(self, reader: str, period: str, entry_ids: Iterable[str], backend: str, now: datetime) -> bool:
        """Durably mark *reader*'s digest for *period* as being sent.

        True if this caller may send it now: no row existed, the last attempt
        failed retryably (``planned``), or nothing had matched yet (``skipped``).
        False if it was sent, is being sent, is uncertain, failed permanently or
        was covered by another digest.
        """
        ids_json = json.dumps(list(entry_ids))
        stamp = now.isoformat()

        def op(db: sqlite3.Connection) -> bool:
            claimed = db.execute(
                "INSERT INTO deliveries (reader, period, status, entry_ids, backend, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reader, period) DO UPDATE SET "
                "status = excluded.status, entry_ids = excluded.entry_ids, backend = excluded.backend, "
                "updated_at = excluded.updated_at, error = NULL WHERE deliveries.status IN (?, ?)",
                (reader, period, DeliveryStatus.SENDING.value, ids_json, backend, stamp, stamp, *_OPEN),
            ).rowcount
            if claimed != 1:
                return False  # sent, being sent, uncertain, failed for good or covered
            db.execute(  # one statement for every id (json_each), not one step per row
                "INSERT OR IGNORE INTO delivered (reader, entry_id, period, at) "
                "SELECT ?, value, ?, ? FROM json_each(?)",
                (reader, period, stamp, ids_json),
            )
            return True

        return self._write(op)

    def mark_sent(
        self,
        reader: str,
        period: str,
        message_id: str | None,
        now: datetime,
        items: Iterable[FeedItem] = (),
        *,
        keep: int = 100,
        covers: str | None = None,
    ) -> None:
        """Record a send, and the matches it carried for the reader's feed, in one transaction.

        Keeping the feed items here (not in a separate write after the run)
        means a crash after a send can never leave the reader's feed without
        papers that, being delivered, will never be offered again.  The feed
        keeps the reader's newest *keep* items.  *covers* names a scheduled
        period this send stands in for (``run --now`` before the send time):
        it is settled in the same transaction, so a later scheduled run does
        not send a second digest, and a failed send settles nothing.
        """
        self._finish(
            reader, period, DeliveryStatus.SENT, now, message_id=message_id, items=list(items), keep=keep, covers=covers
        )

    def mark_uncertain(self, reader: str, period: str, error: str, now: datetime) -> None:
        self._finish(reader, period, DeliveryStatus.UNCERTAIN, now, error=error)

    def mark_failed(self, reader: str, period: str, error: str, now: datetime, *, retry: bool) -> None:
        """Record a failed send; its entries are free again for a later digest.

        With ``retry`` the row goes back to ``planned`` so the next run tries
        again; without, it stays ``failed`` for the operator to look at.
        """
        status = DeliveryStatus.PLANNED if retry else DeliveryStatus.FAILED

        def op(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM delivered WHERE reader = ? AND period = ?", (reader, period))
            db.execute(
                "UPDATE deliveries SET status = ?, error = ?, updated_at = ? WHERE reader = ? AND period = ?",
                (status.value, error, now.isoformat(), reader, period),
            )

        self._write(op)

    def mark_skipped(self, reader: str, period: str, reason: str, now: datetime) -> bool:
        """Record that nothing matched for *period*; the period stays open for a later run.

        The row's time says when it was last looked at: new entries after it
        make the period worth ranking again (:func:`schedule.is_open`).  A row
        that is settled (sent, failed, ...) is never changed; returns whether
        this call wrote.
        """
        stamp = now.isoformat()

        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "INSERT INTO deliveries (reader, period, status, error, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reader, period) DO UPDATE SET "
                "status = excluded.status, error = excluded.error, updated_at = excluded.updated_at "
                "WHERE deliveries.status IN (?, ?)",
                (reader, period, DeliveryStatus.SKIPPED.value, reason, stamp, stamp, *_OPEN),
            )
            return cur.rowcount == 1

        return self._write(op)

    def reopen(self, reader: str, period: str, now: datetime, *, uncertain: bool = False) -> Delivery:
        """Make a failed (or, with *uncertain*, an uncertain) digest sendable again: ``newsletter resend``.

        Returns the row as it was.  Raises :class:`LookupError` when there is
        no such row and :class:`ValueError` when its state does not allow it
        (sent, being sent, or uncertain without *uncertain*).
        """
        allowed = {DeliveryStatus.FAILED.value, DeliveryStatus.PLANNED.value, DeliveryStatus.SKIPPED.value}
        if uncertain:
            allowed.add(DeliveryStatus.UNCERTAIN.value)

        def op(db: sqlite3.Connection) -> Delivery:
            r = db.execute("SELECT * FROM deliveries WHERE reader = ? AND period = ?", (reader, period)).fetchone()
            if r is None:
                raise LookupError(period)
            before = _row(r)
            if before.status.value not in allowed:
                raise ValueError(before.status.value)
            db.execute("DELETE FROM delivered WHERE reader = ? AND period = ?", (reader, period))
            db.execute(
                "UPDATE deliveries SET status = ?, updated_at = ? WHERE reader = ? AND period = ?",
                (DeliveryStatus.PLANNED.value, now.isoformat(), reader, period),
            )
            return before

        return self._write(op)

    def _finish(
        self,
        reader: str,
        period: str,
        status: DeliveryStatus,
        now: datetime,
        *,
        message_id: str | None = None,
        error: str | None = None,
        items: list[FeedItem] | None = None,
        keep: int = 100,
        covers: str | None = None,
    ) -> None:
        rows = json.dumps([[i.entry_id, i.score, _reasons_json(i.reasons), i.rank] for i in items or ()])

        def op(db: sqlite3.Connection) -> None:
            if covers is not None:
                stamp = now.isoformat()
                db.execute(
                    "INSERT INTO deliveries (reader, period, status, error, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reader, period) DO UPDATE SET "
                    "status = excluded.status, error = excluded.error, updated_at = excluded.updated_at "
                    "WHERE deliveries.status IN (?, ?)",
                    (
                        reader,
                        covers,
                        DeliveryStatus.COVERED.value,
                        f"covered by the digest sent for {period}",
                        stamp,
                        stamp,
                        *_OPEN,
                    ),
                )
            db.execute(
                "UPDATE deliveries SET status = ?, message_id = ?, error = ?, updated_at = ? "
                "WHERE reader = ? AND period = ?",
                (status.value, message_id, error, now.isoformat(), reader, period),
            )
            if items:
                db.execute(  # one statement for every item (json_each), not one step per row
                    "INSERT OR REPLACE INTO feed_items (reader, entry_id, score, reasons, at, rank) "
                    "SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
                    "json_extract(value, '$[2]'), ?, json_extract(value, '$[3]') FROM json_each(?)",
                    (reader, now.isoformat(), rows),
                )
                db.execute(
                    "DELETE FROM feed_items WHERE reader = ? AND entry_id NOT IN (SELECT entry_id FROM feed_items "
                    "WHERE reader = ? ORDER BY at DESC, rank, score DESC LIMIT ?)",
                    (reader, reader, keep),
                )

        self._write(op)

    # -- unsubscribes ----------------------------------------------------------------

    def record_unsubscribe(self, reader: str, at: datetime) -> None:
        """Durably remember a one-click unsubscribe; see :func:`profiles.is_paused`."""

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO unsubscribes (reader, at) VALUES (?, ?) "
                "ON CONFLICT (reader) DO UPDATE SET at = excluded.at",
                (reader, at.isoformat()),
            )

        self._write(op)

    def unsubscribed(self) -> dict[str, datetime]:
        """Every reader's last one-click unsubscribe, for the planner's snapshot."""
        return {r: datetime.fromisoformat(at) for r, at in self._query("SELECT reader, at FROM unsubscribes")}

    def unsubscribed_at(self, reader: str) -> datetime | None:
        r = self._query_one("SELECT at FROM unsubscribes WHERE reader = ?", (reader,))
        return datetime.fromisoformat(r[0]) if r else None

    # -- ratings ("more like this" / "less like this") ------------------------------------

    def record_rating(self, reader: str, entry_id: str, choice: str | None, at: datetime) -> None:
        """Durably note a rating (None: taken back) before it is written into the profile file.

        The file is the source of truth for the ranking; this record is the
        history ``newsletter feedback`` shows and what rate limits count.
        """

        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO ratings (reader, entry_id, choice, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (reader, entry_id) DO UPDATE SET choice = excluded.choice, at = excluded.at",
                (reader, entry_id, choice, at.isoformat()),
            )

        self._write(op)

    def ratings(self, reader: str) -> dict[str, tuple[str | None, datetime]]:
        """The reader's ratings by entry id: ``(choice, when)``, latest first."""
        rows = self._query("SELECT entry_id, choice, at FROM ratings WHERE reader = ? ORDER BY at DESC", (reader,))
        return {e: (c, datetime.fromisoformat(at)) for e, c, at in rows}

    # -- renamed profile files --------------------------------------------------------

    def rename_reader(self, old: str, new: str, now: datetime) -> None:
        """A reader's profile file was renamed (*old* -> *new* stem, same address): their history follows.

        Every row moves in one transaction, and *old* stays an alias, so links
        in digests already sent (feed, unsubscribe) keep working.
        """

        def op(db: sqlite3.Connection) -> None:
            for table in ("deliveries", "feed_items", "delivered", "unsubscribes", "ratings"):
                db.execute(f"UPDATE OR IGNORE {table} SET reader = ? WHERE reader = ?", (new, old))
                db.execute(f"DELETE FROM {table} WHERE reader = ?", (old,))
            db.execute("UPDATE aliases SET new = ? WHERE new = ?", (new, old))
            db.execute(
                "INSERT INTO aliases (old, new, at) VALUES (?, ?, ?) "
                "ON CONFLICT (old) DO UPDATE SET new = excluded.new",
                (old, new, now.isoformat()),
            )
            db.execute("DELETE FROM aliases WHERE old = new")

        self._write(op)

    def resolve(self, reader: str) -> str:
        """The reader id a (possibly old) id now stands for: links in old digests name old ids."""
        r = self._query_one("SELECT new FROM aliases WHERE old = ?", (reader,))
        return str(r[0]) if r else reader

    # -- questions the pipeline asks ---------------------------------------------

    def delivered_ids(self, reader: str) -> set[str]:
        """Entry ids this reader has been sent (or may have been): never repeat them."""
        rows = self._query("SELECT entry_id FROM delivered WHERE reader = ?", (reader,))
        return {r[0] for r in rows}

    def last_sent_at(self, reader: str) -> datetime | None:
        r = self._query_one(
            "SELECT MAX(updated_at) FROM deliveries WHERE reader = ? AND status IN (?, ?, ?)",
            (reader, *_HOLDING),
        )
        return datetime.fromisoformat(r[0]) if r and r[0] else None

    def rows(self, *, reader: str | None = None, status: DeliveryStatus | None = None) -> list[Delivery]:
        sql, args = "SELECT * FROM deliveries WHERE 1=1", []
        if reader is not None:
            sql += " AND reader = ?"
            args.append(reader)
        if status is not None:
            sql += " AND status = ?"
            args.append(status.value)
        found = self._query(sql + " ORDER BY period, reader", args)
        return [_row(r) for r in found]

    def health_rows(self, since: datetime) -> list[Delivery]:
        """What run health reports: skipped and failed rows changed since *since*, every uncertain or in-flight one.

        Sent and covered rows are not among them (``status`` takes the last
        send from :meth:`last_send`), so at 100,000 readers ``status`` reads
        the few rows it shows, through the ``(status, updated_at)`` index, not
        a week of sends.
        """
        found = self._query(
            "SELECT * FROM deliveries WHERE (status IN (?, ?) AND updated_at >= ?) OR status IN (?, ?) "
            "ORDER BY period, reader",
            (
                DeliveryStatus.SKIPPED.value,
                DeliveryStatus.FAILED.value,
                since.isoformat(),
                DeliveryStatus.UNCERTAIN.value,
                DeliveryStatus.SENDING.value,
            ),
        )
        return [_row(r) for r in found]

    def last_send(self) -> datetime | None:
        """When the most recent digest went out (any reader)."""
        r = self._query_one("SELECT MAX(updated_at) FROM deliveries WHERE status = ?", (DeliveryStatus.SENT.value,))
        return datetime.fromisoformat(r[0]) if r and r[0] else None

    def latest(self, reader: str) -> Delivery | None:
        """The reader's most recently changed row."""
        r = self._query_one("SELECT * FROM deliveries WHERE reader = ? ORDER BY updated_at DESC LIMIT 1", (reader,))
        return _row(r) if r else None

    def feed_items(self, reader: str, limit: int) -> list[FeedItem]:
        """The reader's most recently sent matches (their feed): newest digest first, each in pick order."""
        rows = self._query(
            "SELECT entry_id, score, reasons, at, rank FROM feed_items WHERE reader = ? "
            "ORDER BY at DESC, rank, score DESC LIMIT ?",
            (reader, limit),
        )
        return [FeedItem(e, s, _reasons_from_json(r), datetime.fromisoformat(at), rank) for e, s, r, at, rank in rows]

    def prune(self, before: datetime) -> int:
        """Forget delivered ids and feed items recorded before *before*.

        Call it with a cut-off well past the entry retention window: a paper
        whose delivered id is forgotten could be offered again if a source
        lists it again after it was pruned from the store.
        """
        cutoff = before.isoformat()

        def op(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM feed_items WHERE at < ?", (cutoff,))
            return db.execute("DELETE FROM delivered WHERE at < ?", (cutoff,)).rowcount

        return self._write(op)


def _row(r: tuple[str, ...]) -> Delivery:
    reader, period, status, entry_ids, message_id, error, backend, created, updated = r
    return Delivery(
        reader=reader,
        period=period,
        status=DeliveryStatus(status),
        entry_ids=tuple(json.loads(entry_ids)),
        message_id=message_id,
        error=error,
        backend=backend,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
    )
