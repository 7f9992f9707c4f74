"""The data folder's store: entries and source state in SQLite, the profile cache in TinyDB.

Entries (with their embeddings) and source state live in ``entries.sqlite3``:
a month of papers is ~60,000 rows, and every fetch, status and feed request
must touch only the rows it needs (indexes on ``first_seen`` and on every
identity key the merge looks up), write only changed rows, and prune with one
``DELETE``.  It is a sibling of the ledger's file, not the ledger itself: both
use the same transaction model (WAL, one write connection, ``BEGIN
IMMEDIATE``), but a fetch's bulk write must not hold the write lock that every
send's durable claim waits for, and entries can be fetched again, so their file
commits with ``synchronous=NORMAL`` (consistent after a crash, may lose the
last commit on power loss) while the ledger keeps ``FULL``.

TinyDB keeps what the design names it for: the reader profiles as loaded from
the profile files, each with the file's mtime and size, so a tick re-parses
only the files that changed.  :class:`ProfileStorage` writes it atomically,
once per :meth:`Store.batch`.  A file lock makes the data folder single-writer;
a read-only store takes no lock.

A data folder of an older release (one ``newsletter.json`` with entries,
profiles and sources) is migrated when it is opened: its entries and source
state move into SQLite and the old file is kept as ``newsletter.json.migrated``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
from pydantic import TypeAdapter, ValidationError
from tinydb import TinyDB
from tinydb.storages import Storage

from .errors import StoreCorruptError, StoreError, StoreLockedError
from .files import atomic_write
from .types import Entry, Profile, SourceState

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

STORE_FILE = "entries.sqlite3"
PROFILES_FILE = "profiles.json"
LEGACY_FILE = "newsletter.json"
"""The one TinyDB file of releases up to 0.x: entries, profiles and sources."""
LOCK_FILE = "newsletter.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id          TEXT PRIMARY KEY,
    first_seen  INTEGER NOT NULL,   -- microseconds since the epoch (UTC): sorts and compares as a number
    arxiv_id    TEXT,
    doi         TEXT,               -- lower case, as identity keys have it
    title_key   TEXT NOT NULL,      -- sources' title + first author key
    text_hash   INTEGER NOT NULL,   -- of title and abstract: the embedding is kept while they stay the same
    data        BLOB NOT NULL,      -- the Entry as zlib-compressed JSON (_entry_row, _entry)
    embedding   BLOB                -- float16 vector; NULL until the embedding model has seen it
);
CREATE INDEX IF NOT EXISTS entries_first_seen ON entries (first_seen);
CREATE INDEX IF NOT EXISTS entries_arxiv_id ON entries (arxiv_id);
CREATE INDEX IF NOT EXISTS entries_doi ON entries (doi);
CREATE INDEX IF NOT EXISTS entries_title_key ON entries (title_key);
CREATE INDEX IF NOT EXISTS entries_unembedded ON entries (first_seen) WHERE embedding IS NULL;
CREATE TABLE IF NOT EXISTS sources (
    name  TEXT PRIMARY KEY,
    data  TEXT NOT NULL              -- the SourceState as JSON (_STATE)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS text_vectors (   -- readers' phrases and seed texts, embedded once for every run
    model   TEXT NOT NULL,
    text    TEXT NOT NULL,
    vector  BLOB NOT NULL,       -- float16, as entries' embeddings
    used    INTEGER NOT NULL,    -- the day (since the epoch) a run last asked for it: unused ones are pruned
    PRIMARY KEY (model, text)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reader_models (
    reader  TEXT PRIMARY KEY,
    key     TEXT NOT NULL,           -- learn.ratings_key of the ratings, seeds and phrases it was fitted on
    model   BLOB NOT NULL            -- learn.ReaderModel.to_blob
) WITHOUT ROWID;
"""

# The one mapping between types and rows: pydantic reads and writes the dataclasses as JSON.
_ENTRY: TypeAdapter[Entry] = TypeAdapter(Entry)
_STATE: TypeAdapter[SourceState] = TypeAdapter(SourceState)
_PROFILE: TypeAdapter[Profile] = TypeAdapter(Profile)

_CHUNK = 500
"""Keys per ``IN (...)`` list: well under SQLite's limit on bound parameters."""
_DECODED = 8192
"""Decoded entries kept per store (~25 MB): more than a month of feed items in practice."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOT_LISTED = _EPOCH
"""The ``first_seen`` of a paper looked up for a reader's seeds: no listing showed it, so it is never news."""
_DAY_US = 86_400_000_000


def _us(t: datetime) -> int:
    """An aware time as integer microseconds since the epoch (exact, unlike a float timestamp)."""
    return (t - _EPOCH) // timedelta(microseconds=1)


def _from_us(us: int) -> datetime:
    """The inverse of :func:`_us`: microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(us))


def _entry_row(e: Entry) -> tuple[str, int, str | None, str | None, str, int, bytes]:
    """An entry as its row: the indexed keys, and the whole entry as compressed JSON.

    Compressed because an abstract's JSON (~2.1 KB) is just over half a 4 KB
    page: uncompressed, SQLite fits one row per page and a month of papers
    takes 240 MB; compressed (~1.1 KB, ~50 us) two rows and their embeddings
    share a page.  By hand: ``zlib.decompress(data)`` is the JSON.
    """
    from .sources import entry_identity_keys  # sources imports nothing of ours but types

    return (
        e.id,
        _us(e.first_seen),
        e.arxiv_id,
        e.doi.lower() if e.doi else None,
        entry_identity_keys(e)[-1],
        int.from_bytes(hashlib.blake2b(f"{e.title}\0{e.summary}".encode(), digest_size=8).digest(), "big", signed=True),
        zlib.compress(_ENTRY.dump_json(e, exclude_defaults=True), 6),
    )


def _entry(data: bytes) -> Entry:
    """The inverse of :func:`_entry_row`'s last column."""
    return _ENTRY.validate_json(zlib.decompress(data))


class ProfileStorage(Storage):
    """TinyDB storage that replaces its file atomically and writes once per batch.

    Reads are served from memory after the first load.  Inside :meth:`deferred`
    a write only keeps the data; the file is written once when the outermost
    block ends without an exception, and the change is dropped if it raises.
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._data: dict[str, dict[str, Any]] | None = None
        self._depth = 0
        self._dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def _load(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"{self.path}: cannot read ({e.strerror}); check permissions") from e
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreCorruptError(
                f"{self.path} is not readable JSON ({e}); it only caches the profile files: "
                "delete it and it is rebuilt from them on the next run"
            ) from e
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise StoreCorruptError(f"{self.path} is JSON but not a TinyDB database; delete it (it is rebuilt)")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} was opened read-only; this is a bug, please report it")
        self._data = data
        if self._depth:
            self._dirty = True
        else:
            self._flush()

    def _flush(self) -> None:
        payload = json.dumps(self._data, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            atomic_write(self.path, payload)
        except OSError as e:
            raise StoreError(f"cannot write {self.path} ({e.strerror}); free disk space or fix permissions") from e
        self._dirty = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0 and self._dirty:
                self._data, self._dirty = None, False  # roll back to what is on disk
            raise
        self._depth -= 1
        if self._depth == 0 and self._dirty:
            self._flush()

    def close(self) -> None:
        pass


class Store:
    """Entries, embeddings and source state (SQLite) and the profile cache (TinyDB) of one data folder.

    Thread-safe: one connection behind a lock (the scheduler, HTTP handlers
    and send workers share one store).  :meth:`batch` makes the writes inside
    it one transaction in each file.
    """

    def __init__(self, data_dir: Path, *, read_only: bool = False) -> None:
        self.data_dir = data_dir
        self.read_only = read_only
        self.path = data_dir / STORE_FILE
        self._lock = threading.RLock()
        self._depth = 0
        self._decoded: OrderedDict[str, tuple[bytes, Entry]] = OrderedDict()
        self._file_lock: filelock.BaseFileLock | None = None
        self._db: sqlite3.Connection | None = None
        if read_only and (data_dir / LEGACY_FILE).exists():
            try:
                Store(data_dir).close()  # migrates; a read-only store never writes
            except StoreLockedError as e:
                raise StoreLockedError(
                    f"{data_dir / LEGACY_FILE} still needs migrating and another process holds {data_dir}: "
                    "stop the older newsletter process, then run this again"
                ) from e
        try:
            if not read_only:
                self._take_lock()
            self._db = self._connect()
            legacy = data_dir / LEGACY_FILE
            self.profile_storage = ProfileStorage(data_dir / PROFILES_FILE, read_only=read_only)
            self._tiny = TinyDB(storage=lambda: self.profile_storage)
            self._profiles_table = self._tiny.table("profiles", cache_size=0)
            if legacy.exists() and not read_only:
                self._migrate_legacy(legacy)
            self._loaded_profiles: dict[str, dict[str, Any]] | None = None  # read on first use: fetch needs none
            self._parsed: dict[str, tuple[tuple[int, int], Profile]] = {}
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create data folder {self.data_dir} ({e.strerror})") from e
        self._file_lock = filelock.FileLock(str(self.data_dir / LOCK_FILE), timeout=0)
        try:
            self._file_lock.acquire()
        except filelock.Timeout as e:
            self._file_lock = None
            raise StoreLockedError(
                f"another newsletter process is using {self.data_dir}; wait for it to finish "
                "or stop it (only one process may write the data folder)"
            ) from e

    def _connect(self) -> sqlite3.Connection:
        """The write connection, or a read-only one (an empty in-memory store when there is no file yet)."""
        with self._errors():
            if self.read_only and not self.path.exists():
                db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                db.executescript(_SCHEMA)
                return db
            if self.read_only:
                # Not mode=ro: a read-only *connection* to a WAL database leaves its -wal and -shm files
                # behind when it closes; a normal one that never writes deletes them (read-only commands
                # create no files).  query_only makes any write an error.
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
                db.execute("PRAGMA query_only = ON")
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a garbage file fails here
                return db
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            return db

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as ours, naming the file and what to do."""
        try:
            yield
        except sqlite3.OperationalError as e:
            text = str(e)
            if "full" in text:
                raise StoreError(
                    f"{self.path}: the disk is full ({text}); free space on that disk and run again "
                    "(nothing was half-written: the last change was rolled back)"
                ) from e
            raise StoreError(
                f"cannot use {self.path} ({text}); check that this user may write the data folder "
                "and that no other process holds it"
            ) from e
        except sqlite3.DatabaseError as e:
            raise StoreCorruptError(
                f"{self.path} is not a readable entry database ({e}); restore it from a backup, or move it "
                "away and run `newsletter fetch` to start the entries afresh (it is never reset automatically)"
            ) from e

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
        if self._file_lock is not None and self._file_lock.is_locked:
            self._file_lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"{self.path} is closed; this is a bug, please report it")
        return self._db

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make the writes inside one transaction (SQLite) and one file write (profiles); all or nothing.

        Holds the store's lock throughout, so another thread's write can
        neither land inside the batch nor be rolled back with it.
        """
        with self._lock, self.profile_storage.deferred(), self._tx():
            yield

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, or the enclosing one when nested."""
        with self._lock, self._errors():
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                self._depth = 0
                if self.db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                    self.db.execute("ROLLBACK")
                raise
            self._depth = 0
            self.db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock, self._errors():
            return self.db.execute(sql, args).fetchall()

    def _entries(self, rows: Iterable[tuple[str, bytes]]) -> list[Entry]:
        """Decode rows; a row decoded before (same bytes) comes from a bounded cache.

        Feeds ask for the same recent entries once per reader: 10,000 readers
        would otherwise decompress and validate the same papers 10,000 times.
        """
        out = []
        cache = self._decoded
        with self._lock:  # the cache is shared by the threads of serve
            for entry_id, data in rows:
                hit = cache.get(entry_id)
                if hit is not None and hit[0] == data:
                    cache.move_to_end(entry_id)
                    out.append(hit[1])
                    continue
                try:
                    entry = _entry(data)
                    out.append(entry)
                    cache[entry_id] = (data, entry)
                    if len(cache) > _DECODED:
                        cache.popitem(last=False)
                except (ValidationError, zlib.error, TypeError) as e:
                    why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
                    raise StoreCorruptError(
                        f"entry {entry_id!r} in {self.path} is damaged ({why}); delete that row "
                        f"(sqlite3 {self.path} \"DELETE FROM entries WHERE id = '{entry_id}'\") or restore a backup"
                    ) from e
        return out

    # -- entries ---------------------------------------------------------------

    def get_entries(self, ids: Iterable[str] | None = None) -> dict[str, Entry]:
        """Entries by id (all when *ids* is None: only tests and tools should ask for all)."""
        if ids is None:
            rows = self._query("SELECT id, data FROM entries ORDER BY first_seen, id")
        else:
            wanted = list(dict.fromkeys(ids))
            rows = []
            for i in range(0, len(wanted), _CHUNK):
                part = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                rows += self._query(f"SELECT id, data FROM entries WHERE id IN ({marks})", part)
        return {e.id: e for e in self._entries(rows)}

    def entries_since(self, since: datetime | None) -> list[Entry]:
        """Entries first seen after *since* (all when None), oldest first: one index range."""
        cutoff = _us(since) if since is not None else -(2**62)
        rows = self._query("SELECT id, data FROM entries WHERE first_seen > ? ORDER BY first_seen, id", (cutoff,))
        return self._entries(rows)

    def related_entries(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Every stored entry that any of these identity keys may merge into (see :func:`sources.alias_index`).

        A key matches an entry's id, arXiv id, DOI or title key, and a title
        key also the entries whose id it prefixes (same title, other link).
        Indexed lookups: a fetch never loads the whole table.
        """
        keys = list(dict.fromkeys(keys))
        by_kind: dict[str, list[str]] = {"arxiv_id": [], "doi": [], "title_key": []}
        for k in keys:
            kind, _, value = k.partition(":")
            if kind == "arxiv":
                by_kind["arxiv_id"].append(value)
            elif kind == "doi":
                by_kind["doi"].append(value.lower())
            elif kind == "title":
                by_kind["title_key"].append(k)
        rows: dict[str, tuple[int, str, bytes]] = {}

        def collect(where: str, args: Sequence[object]) -> None:
            for r in self._query(f"SELECT first_seen, id, data FROM entries WHERE {where}", args):
                rows[r[1]] = r

        for column, values in (("id", keys), *by_kind.items()):
            for i in range(0, len(values), _CHUNK):
                part = values[i : i + _CHUNK]
                collect(f"{column} IN ({','.join('?' * len(part))})", part)
        for k in by_kind["title_key"]:
            collect("id > ? AND id < ?", (k + ":", k + ";"))
        ordered = sorted(rows.values())  # oldest first, as alias_index expects the first owner to win
        return {e.id: e for e in self._entries((i, d) for _, i, d in ordered)}

    def put_entries(self, entries: Iterable[Entry]) -> int:
        """Insert or replace entries by id in one transaction; an embedding survives unless the text changed."""
        rows = [_entry_row(e) for e in entries]
        if not rows:
            return 0
        with self._tx() as db:
            db.executemany(
                "INSERT INTO entries (id, first_seen, arxiv_id, doi, title_key, text_hash, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET first_seen = excluded.first_seen, "
                "arxiv_id = excluded.arxiv_id, doi = excluded.doi, title_key = excluded.title_key, "
                "embedding = CASE WHEN text_hash = excluded.text_hash THEN embedding END, "
                "text_hash = excluded.text_hash, data = excluded.data",
                rows,
            )
        return len(rows)

    def prune_entries(self, before: datetime) -> int:
        """Forget entries first seen before *before* (one ``DELETE``), and text vectors no run asked for since."""
        with self._tx() as db:
            db.execute("DELETE FROM text_vectors WHERE used < ?", ((before.date() - _EPOCH.date()).days,))
            return db.execute(
                "DELETE FROM entries WHERE first_seen < ? AND first_seen <> ?", (_us(before), _us(NOT_LISTED))
            ).rowcount

    def count_entries(self) -> int:
        return int(self._query("SELECT count(*) FROM entries")[0][0])

    def put_looked_up(self, entries: Iterable[Entry]) -> int:
        """Store papers looked up for seeds (not from a listing): dated :data:`NOT_LISTED`, so never "new"
        in any digest's window, and kept by pruning ("looked up once ever")."""
        return self.put_entries(replace(e, first_seen=NOT_LISTED) for e in entries)

    def newest_first_seen(self) -> datetime | None:
        """When the newest stored entry was first seen (None: no entries); the planner reopens skipped periods."""
        newest = self._query("SELECT max(first_seen) FROM entries")[0][0]
        return _from_us(newest) if newest is not None else None

    def first_seen_days(self, since: datetime) -> list[date]:
        """The UTC days on which entries first seen at or after *since* arrived, oldest first.

        The day of the oldest stored entry is included too when it is older,
        so :func:`schedule.quiet_days` can tell a new install from a silence.
        """
        rows = self._query(
            "SELECT DISTINCT first_seen / ? FROM entries WHERE first_seen >= ? "
            "UNION SELECT min(first_seen) / ? FROM entries WHERE first_seen < ?",
            (_DAY_US, _us(since), _DAY_US, _us(since)),
        )
        return sorted(date(1970, 1, 1) + timedelta(days=int(r[0])) for r in rows if r[0] is not None)

    # -- embeddings --------------------------------------------------------------

    def put_embeddings(self, ids: Sequence[str], matrix: npt.ArrayLike) -> int:
        """Store one vector per id (row *i* of *matrix* for ``ids[i]``) as float16; returns rows updated."""
        import numpy as np  # only the embedding paths need it: `status` stays light

        vectors = np.asarray(matrix, dtype=np.float16)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"need one row per id: {len(ids)} ids, matrix of shape {vectors.shape}")
        with self._tx() as db:
            cur = db.executemany(
                "UPDATE entries SET embedding = ? WHERE id = ?",
                [(v.tobytes(), i) for i, v in zip(ids, vectors, strict=True)],
            )
            return cur.rowcount

    # -- reader models (learned from ratings) ----------------------------------------

    def reader_models(self, readers: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """The stored model of each of *readers* that has one: ``{reader: (key, blob)}``.

        A run that starts afresh (``newsletter run`` from cron) loads them
        instead of refitting every rating reader (a few ms each, with folds).
        A data folder from before this table (read-only) has none.
        """
        wanted = list(dict.fromkeys(readers))
        if not wanted or not self._query("SELECT 1 FROM sqlite_master WHERE name = 'reader_models'"):
            return {}
        out: dict[str, tuple[str, bytes]] = {}
        for i in range(0, len(wanted), _CHUNK):
            part = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            for reader, key, blob in self._query(
                f"SELECT reader, key, model FROM reader_models WHERE reader IN ({marks})", part
            ):
                out[reader] = (key, bytes(blob))
        return out

    def put_reader_models(self, models: Mapping[str, tuple[str, bytes | None]]) -> None:
        """Keep each reader's newly fitted model under its key (None: no model now, the row goes)."""
        if self.read_only or not models:
            return
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO reader_models (reader, key, model) VALUES (?, ?, ?)",
                [(r, k, b) for r, (k, b) in models.items() if b is not None],
            )
            db.executemany(
                "DELETE FROM reader_models WHERE reader = ?", [(r,) for r, (_, b) in models.items() if b is None]
            )

    def embeddings(self, ids: Sequence[str]) -> tuple[list[str], npt.NDArray[np.float16]]:
        """The ids among *ids* that have a vector (in the order asked), and those vectors as one float16 matrix."""
        import numpy as np

        found: dict[str, bytes] = {}
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), _CHUNK):
            part = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            sql = f"SELECT id, embedding FROM entries WHERE embedding IS NOT NULL AND id IN ({marks})"
            found.update(self._query(sql, part))
        have = [i for i in wanted if i in found]
        if not have:
            return [], np.zeros((0, 0), dtype=np.float16)
        return have, np.frombuffer(b"".join(found[i] for i in have), dtype=np.float16).reshape(len(have), -1)

    def ids_without_embedding(self, limit: int) -> list[str]:
        """Up to *limit* entries still to embed, newest first (those a digest needs soonest)."""
        rows = self._query(
            "SELECT id FROM entries WHERE embedding IS NULL ORDER BY first_seen DESC, id LIMIT ?", (limit,)
        )
        return [r[0] for r in rows]

    def text_vectors(self, model: str, texts: Sequence[str], today: date) -> dict[str, npt.NDArray[np.float16]]:
        """The stored vectors of those *texts* that *model* embedded before; marks them used *today*."""
        import numpy as np

        found: dict[str, npt.NDArray[np.float16]] = {}
        wanted = list(dict.fromkeys(texts))
        for i in range(0, len(wanted), _CHUNK):
            part = wanted[i : i + _CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._query(
                f"SELECT text, vector FROM text_vectors WHERE model = ? AND text IN ({marks})", [model, *part]
            )
            found.update((t, np.frombuffer(v, dtype=np.float16)) for t, v in rows)
        if found and not self.read_only:
            day = (today - _EPOCH.date()).days
            with self._tx() as db:
                db.executemany(
                    "UPDATE text_vectors SET used = ? WHERE model = ? AND text = ? AND used < ?",
                    [(day, model, t, day) for t in found],
                )
        return found

    def put_text_vectors(self, model: str, texts: Sequence[str], matrix: npt.ArrayLike, today: date) -> None:
        """Keep *model*'s vectors of *texts* (row *i* for ``texts[i]``); a read-only store keeps nothing."""
        import numpy as np

        if self.read_only or not len(texts):
            return
        vectors = np.asarray(matrix, dtype=np.float16)
        day = (today - _EPOCH.date()).days
        with self._tx() as db:
            db.executemany(
                "INSERT INTO text_vectors (model, text, vector, used) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (model, text) DO UPDATE SET vector = excluded.vector, used = excluded.used",
                [(model, t, v.tobytes(), day) for t, v in zip(texts, vectors, strict=True)],
            )

    # -- sources ---------------------------------------------------------------

    def source_state(self, name: str) -> SourceState:
        rows = self._query("SELECT data FROM sources WHERE name = ?", (name,))
        return self._state(name, rows[0][0]) if rows else SourceState(name=name)

    def source_states(self) -> dict[str, SourceState]:
        return {name: self._state(name, data) for name, data in self._query("SELECT name, data FROM sources")}

    def put_source_states(self, states: Iterable[SourceState]) -> None:
        rows = [(s.name, _STATE.dump_json(s)) for s in states]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO sources (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = excluded.data",
                rows,
            )

    def _state(self, name: str, data: str | bytes) -> SourceState:
        try:
            return _STATE.validate_json(data)
        except ValidationError as e:
            raise StoreCorruptError(
                f"the state of source {name!r} in {self.path} is damaged ({e.errors()[0]['msg']}); delete that row "
                f"(sqlite3 {self.path} \"DELETE FROM sources WHERE name = '{name}'\"): the source is fetched afresh"
            ) from e

    # -- profiles (TinyDB: as loaded from the files) ------------------------------------

    @property
    def _profiles(self) -> dict[str, dict[str, Any]]:
        """The profile cache's documents by reader id, read from TinyDB the first time a caller needs them.

        At 100,000 readers the file is ~75 MB of JSON: ``fetch`` and ``status``
        never ask, so they never pay for reading it.
        """
        if self._loaded_profiles is None:
            with self._lock:
                if self._loaded_profiles is None:
                    self._loaded_profiles = {d["id"]: dict(d) for d in self._profiles_table.all()}
        return self._loaded_profiles

    def cached_profile(self, path: Path, mtime_ns: int, size: int) -> Profile | None:
        """The profile loaded from *path* when the file had this mtime and size, if it has not changed since."""
        doc = self._profiles.get(path.stem)
        if doc is None or doc.get("path") != str(path) or (doc.get("mtime_ns"), doc.get("size")) != (mtime_ns, size):
            return None
        parsed = self._parsed.get(path.stem)
        if parsed is None or parsed[0] != (mtime_ns, size):
            try:
                profile = _PROFILE.validate_python(doc["file"])
            except (KeyError, ValidationError):
                return None  # an older cache entry: parse the file again
            parsed = ((mtime_ns, size), profile)
            self._parsed[path.stem] = parsed
        return parsed[1]

    def sync_profiles(self, profiles: Iterable[Profile], stats: dict[Path, tuple[int, int]] | None = None) -> None:
        """Make the profile cache match the files: one write, stale readers removed; none if equal.

        *stats* gives each file's ``(mtime_ns, size)`` as read before parsing,
        so :meth:`cached_profile` can skip unchanged files on the next tick.
        """
        stats = stats or {}
        docs: dict[str, dict[str, Any]] = {}
        for p in profiles:
            stat = stats.get(p.path) if p.path else None
            old = self._profiles.get(p.id)
            if (
                old is not None
                and stat is not None
                and old.get("path") == str(p.path)
                and (old.get("mtime_ns"), old.get("size"), old.get("paused")) == (*stat, p.paused)
            ):
                docs[p.id] = old  # the file did not change: no re-serialising 100,000 profiles per tick
                continue
            docs[p.id] = {
                "id": p.id,
                "path": str(p.path) if p.path else None,
                "mtime_ns": stat[0] if stat else None,
                "size": stat[1] if stat else None,
                "paused": p.paused,
                "file": _PROFILE.dump_python(p, mode="json"),
            }
            if stat is not None:
                self._parsed[p.id] = (stat, p)
        if docs == self._profiles:
            return
        with self._lock, self.profile_storage.deferred():
            self._profiles_table.truncate()
            self._profiles_table.insert_multiple(docs.values())
        self._loaded_profiles = docs

    def profile_docs(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._profiles.items()}

    def profile_doc(self, reader: str) -> dict[str, Any] | None:
        doc = self._profiles.get(reader)
        return dict(doc) if doc is not None else None

    # -- migration from the single TinyDB file ---------------------------------------

    def _migrate_legacy(self, legacy: Path) -> None:
        """Move an older release's entries and source state into SQLite; keep the old file renamed.

        Idempotent (rows already present are kept), so a crash between the
        commit and the rename just migrates again on the next open.  A
        read-only open migrates too when no writer holds the folder; while
        one does, that writer has migrated already.
        """
        assert not self.read_only
        try:
            data = json.loads(legacy.read_bytes())
            if not isinstance(data, dict):
                raise ValueError("not a TinyDB database")
        except (OSError, ValueError) as e:
            raise StoreCorruptError(
                f"{legacy} (the store of an older release) cannot be read ({e}), so it was not migrated; "
                "restore it from a backup, or move it away to start afresh"
            ) from e
        entries, states = [], []
        for key, doc in data.get("entries", {}).items():
            try:
                entries.append(_ENTRY.validate_python(doc))
            except ValidationError as e:
                raise StoreCorruptError(
                    f"entry {key!r} in {legacy} is damaged ({e.errors()[0]['msg']}); fix or delete it in that "
                    "file and run again (nothing was migrated yet)"
                ) from e
        for name, doc in data.get("sources", {}).items():
            try:
                states.append(_STATE.validate_python({**doc, "name": name}))
            except ValidationError as e:
                raise StoreCorruptError(
                    f"source {name!r} in {legacy} is damaged ({e.errors()[0]['msg']}); delete it in that file "
                    "and run again (nothing was migrated yet)"
                ) from e
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO entries (id, first_seen, arxiv_id, doi, title_key, text_hash, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [_entry_row(e) for e in entries],
            )
            db.executemany(
                "INSERT OR IGNORE INTO sources (name, data) VALUES (?, ?)",
                [(s.name, _STATE.dump_json(s)) for s in states],
            )
        old_profiles = data.get("profiles", {})
        if old_profiles and not self._profiles_table.all():
            # No file stats: every file is parsed again once; `paused` set by unsubscribes is kept.
            self._profiles_table.insert_multiple(
                {"id": k, "path": d.get("path"), "paused": bool(d.get("paused"))} for k, d in old_profiles.items()
            )
        os.replace(legacy, legacy.with_name(legacy.name + ".migrated"))
