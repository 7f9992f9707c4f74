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

import json
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import StoreCorruptError, StoreError
from .types import Delivery, DeliveryStatus

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
    PRIMARY KEY (reader, entry_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unsubscribes (
    reader  TEXT PRIMARY KEY,
    at      TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivered (
    reader    TEXT NOT NULL,
    entry_id  TEXT NOT NULL,
    period    TEXT NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (reader, entry_id)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One match as a reader's feed shows it: the paper, its score and why."""

    entry_id: str
    score: float
    reasons: tuple[tuple[str, str], ...]
    """``(kind, text)`` pairs, as :class:`~newsletter.types.Reason` has them."""
    at: datetime | None = None
    """When it was sent (set when read back from the ledger)."""


# Rows in these states hold their entries: they count as delivered for no-repeat.
_HOLDING = (DeliveryStatus.SENDING.value, DeliveryStatus.SENT.value, DeliveryStatus.UNCERTAIN.value)


class Ledger:
    """A thread-safe handle on the ledger database of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LEDGER_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.OperationalError as e:  # permissions, a read-only disk, a lock held too long
            raise StoreError(
                f"cannot use the ledger {self.path} ({e}); check that this user may write the data folder "
                "and that no other process holds it"
            ) from e
        except sqlite3.DatabaseError as e:
            raise StoreCorruptError(
                f"{self.path} cannot be opened as a ledger ({e}); restore it from a backup "
                "(it is never reset automatically)"
            ) from e
        except OSError as e:
            raise StoreError(f"cannot open {self.path} ({e.strerror})") from e
        self._lock = threading.Lock()
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._readers: list[sqlite3.Connection] = []

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
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            with self._lock:
                self._readers.append(conn)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            self._idle.put(conn)

    def _query_one(self, sql: str, args: Sequence[object] = ()) -> Any:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- the state machine -----------------------------------------------------

    def recover(self, now: datetime) -> list[Delivery]:
        """Turn rows left ``sending`` by a dead process into ``uncertain``.

        Call once at start-up, while holding the data folder's write lock, so
        no live process can be mid-send.  Returns the rows it changed.
        """
        with self._tx() as db:
            rows = db.execute("SELECT * FROM deliveries WHERE status = ?", (DeliveryStatus.SENDING.value,)).fetchall()
            db.execute(
                "UPDATE deliveries SET status = ?, updated_at = ?, "
                "error = 'process stopped during the send: it may or may not have gone out' "
                "WHERE status = ?",
                (DeliveryStatus.UNCERTAIN.value, now.isoformat(), DeliveryStatus.SENDING.value),
            )
        return [_row(r) for r in rows]

    def get(self, reader: str, period: str) -> Delivery | None:
        r = self._query_one("SELECT * FROM deliveries WHERE reader = ? AND period = ?", (reader, period))
        return _row(r) if r else None

    def settled(self, reader: str, period: str) -> bool:
        """True when nothing more is to be sent for this period: sent, sending,
        uncertain, failed for good or skipped on purpose (only ``planned`` is open)."""
        row = self.get(reader, period)
        return row is not None and row.status is not DeliveryStatus.PLANNED

    def claim(self, reader: str, period: str, entry_ids: Iterable[str], backend: str, now: datetime) -> bool:
        """Durably mark *reader*'s digest for *period* as being sent.

        True if this caller may send it now: no row existed, or the last attempt
        failed retryably (``planned``).  False if it was sent, is being sent,
        is uncertain, failed permanently or was skipped.
        """
        ids = list(entry_ids)
        stamp = now.isoformat()
        with self._tx() as db:
            row = db.execute(
                "SELECT status FROM deliveries WHERE reader = ? AND period = ?", (reader, period)
            ).fetchone()
            if row is not None and row[0] != DeliveryStatus.PLANNED.value:
                return False
            db.execute(
                "INSERT INTO deliveries (reader, period, status, entry_ids, backend, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (reader, period) DO UPDATE SET "
                "status = excluded.status, entry_ids = excluded.entry_ids, backend = excluded.backend, "
                "updated_at = excluded.updated_at, error = NULL",
                (reader, period, DeliveryStatus.SENDING.value, json.dumps(ids), backend, stamp, stamp),
            )
            db.executemany(
                "INSERT OR IGNORE INTO delivered (reader, entry_id, period, at) VALUES (?, ?, ?, ?)",
                [(reader, i, period, stamp) for i in ids],
            )
        return True

    def mark_sent(
        self,
        reader: str,
        period: str,
        message_id: str | None,
        now: datetime,
        items: Iterable[FeedItem] = (),
        *,
        keep: int = 100,
    ) -> None:
        """Record a send, and the matches it carried for the reader's feed, in one transaction.

        Keeping the feed items here (not in a separate write after the run)
        means a crash after a send can never leave the reader's feed without
        papers that, being delivered, will never be offered again.  The feed
        keeps the reader's newest *keep* items.
        """
        self._finish(reader, period, DeliveryStatus.SENT, now, message_id=message_id, items=list(items), keep=keep)

    def mark_uncertain(self, reader: str, period: str, error: str, now: datetime) -> None:
        self._finish(reader, period, DeliveryStatus.UNCERTAIN, now, error=error)

    def mark_failed(self, reader: str, period: str, error: str, now: datetime, *, retry: bool) -> None:
        """Record a failed send; its entries are free again for a later digest.

        With ``retry`` the row goes back to ``planned`` so the next run tries
        again; without, it stays ``failed`` for the operator to look at.
        """
        status = DeliveryStatus.PLANNED if retry else DeliveryStatus.FAILED
        with self._tx() as db:
            db.execute("DELETE FROM delivered WHERE reader = ? AND period = ?", (reader, period))
            db.execute(
                "UPDATE deliveries SET status = ?, error = ?, updated_at = ? WHERE reader = ? AND period = ?",
                (status.value, error, now.isoformat(), reader, period),
            )

    def mark_skipped(self, reader: str, period: str, reason: str, now: datetime) -> bool:
        """Record that nothing was sent on purpose (e.g. nothing matched)."""
        stamp = now.isoformat()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO deliveries (reader, period, status, error, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (reader, period, DeliveryStatus.SKIPPED.value, reason, stamp, stamp),
            )
            return cur.rowcount == 1

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
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, message_id = ?, error = ?, updated_at = ? "
                "WHERE reader = ? AND period = ?",
                (status.value, message_id, error, now.isoformat(), reader, period),
            )
            if items:
                db.executemany(
                    "INSERT OR REPLACE INTO feed_items (reader, entry_id, score, reasons, at) VALUES (?, ?, ?, ?, ?)",
                    [(reader, i.entry_id, i.score, json.dumps(i.reasons), now.isoformat()) for i in items],
                )
                db.execute(
                    "DELETE FROM feed_items WHERE reader = ? AND entry_id NOT IN (SELECT entry_id FROM feed_items "
                    "WHERE reader = ? ORDER BY at DESC, score DESC LIMIT ?)",
                    (reader, reader, keep),
                )

    # -- unsubscribes ----------------------------------------------------------------

    def record_unsubscribe(self, reader: str, at: datetime) -> None:
        """Durably remember a one-click unsubscribe; see :func:`profiles.is_paused`."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO unsubscribes (reader, at) VALUES (?, ?) "
                "ON CONFLICT (reader) DO UPDATE SET at = excluded.at",
                (reader, at.isoformat()),
            )

    def unsubscribed_at(self, reader: str) -> datetime | None:
        r = self._query_one("SELECT at FROM unsubscribes WHERE reader = ?", (reader,))
        return datetime.fromisoformat(r[0]) if r else None

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
        """What run health needs: rows changed since *since*, and every uncertain one.

        ``status`` asks this instead of :meth:`rows`, so at steady state
        (readers x days of rows) it reads a week, not the whole ledger.
        """
        found = self._query(
            "SELECT * FROM deliveries WHERE updated_at >= ? OR status = ? ORDER BY period, reader",
            (since.isoformat(), DeliveryStatus.UNCERTAIN.value),
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
        """The reader's most recently sent matches, newest first (their feed)."""
        rows = self._query(
            "SELECT entry_id, score, reasons, at FROM feed_items WHERE reader = ? ORDER BY at DESC, score DESC LIMIT ?",
            (reader, limit),
        )
        return [
            FeedItem(e, s, tuple((k, t) for k, t in json.loads(r)), datetime.fromisoformat(at)) for e, s, r, at in rows
        ]

    def prune(self, before: datetime) -> int:
        """Forget delivered ids and feed items recorded before *before*.

        Call it with a cut-off well past the entry retention window: a paper
        whose delivered id is forgotten could be offered again if a source
        lists it again after it was pruned from the store.
        """
        cutoff = before.isoformat()
        with self._tx() as db:
            db.execute("DELETE FROM feed_items WHERE at < ?", (cutoff,))
            return db.execute("DELETE FROM delivered WHERE at < ?", (cutoff,)).rowcount


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
