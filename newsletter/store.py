"""The TinyDB store: entries, profiles and source state, written crash-safely.

TinyDB's own JSON storage writes in place (write, flush, truncate): a kill in
between leaves a file nobody can read, and two processes lose each other's
updates.  :class:`AtomicJSONStorage` instead writes a temp file, fsyncs it and
``os.replace``-s it over the old one, so a reader sees the old file or the new
one, never half of each.  A file lock makes the data folder single-writer; a
read-only store takes no lock and reads the last complete file.

TinyDB rewrites the whole file on every write, so writes happen in batches:
:meth:`Store.batch` defers them and commits once at the end (all or nothing).
The delivery ledger, which needs one durable write per email, lives in SQLite
(:mod:`newsletter.ledger`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Table

from .errors import StoreCorruptError, StoreError, StoreLockedError
from .types import Entry, Profile

DB_FILE = "newsletter.json"
LOCK_FILE = "newsletter.lock"


class AtomicJSONStorage(Storage):
    """A TinyDB storage that replaces the file atomically and can defer writes.

    Reads are served from memory after the first load.  Inside :meth:`deferred`
    writes only mark the data dirty; the file is written once when the
    outermost block ends without an exception, and dropped if it raises.
    """

    def __init__(self, path: str | Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._data: dict[str, dict[str, Any]] | None = None
        self.lock: threading.RLock = threading.RLock()
        """Serialises threads of one process (scheduler, HTTP handlers, send workers)."""
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
        if not raw.strip():
            raise StoreCorruptError(
                f"{self.path} is empty; it was not written by newsletter. "
                "Restore it from a backup or move it away to start afresh"
            )
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise StoreCorruptError(
                f"{self.path} is not readable JSON ({e}); restore it from a backup or move it "
                "away to start afresh (it is never reset automatically)"
            ) from e
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise StoreCorruptError(f"{self.path} is JSON but not a TinyDB database; move it away")
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
        assert self._data is not None
        payload = json.dumps(self._data, ensure_ascii=False, separators=(",", ":")).encode()
        atomic_write(self.path, payload)
        self._dirty = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._data, self._dirty = None, False  # roll back to what is on disk
            raise
        self._depth -= 1
        if self._depth == 0 and self._dirty:
            self._flush()

    def close(self) -> None:
        pass


def atomic_write(path: Path, payload: bytes, *, mode: int | None = None, durable: bool = True) -> None:
    """Write *payload* to *path* so that a crash leaves the old or the new file.

    The file keeps its permissions (or gets *mode*, or the umask's default for
    a new file): a temp file alone would make every file private (0600).
    With ``durable=False`` nothing is fsynced: still all-or-nothing, but a
    power cut may lose the write, which is fine for files that are rebuilt
    from the database anyway (feeds), and saves two fsyncs per file.
    """
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class _Table(Table):
    """A TinyDB table keyed by our own string ids (entry ids, reader ids).

    TinyDB's built-in operations rewrite the table once per document; these two
    methods read or change the whole table in one go, which with
    :class:`AtomicJSONStorage` is one atomic write per batch.
    """

    document_id_class = str  # type: ignore[assignment]

    @property
    def _lock(self) -> threading.RLock:
        storage = self._storage
        assert isinstance(storage, AtomicJSONStorage)
        return storage.lock

    def docs(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._read_table())  # type: ignore[arg-type]

    def pick(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The documents with these ids, without copying the whole table."""
        with self._lock:
            table = self._read_table()
            return {i: dict(table[i]) for i in ids if i in table}

    def mutate(self, change: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._update_table(change)  # type: ignore[arg-type]


@functools.cache
def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


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


class Store:
    """Entries, profiles and source state in one TinyDB file under the data folder."""

    def __init__(self, data_dir: Path, *, read_only: bool = False) -> None:
        self.data_dir = data_dir
        self.read_only = read_only
        self._lock: filelock.BaseFileLock | None = None
        if not read_only:
            try:
                data_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create data folder {data_dir} ({e.strerror})") from e
            self._lock = filelock.FileLock(str(data_dir / LOCK_FILE), timeout=0)
            try:
                self._lock.acquire()
            except filelock.Timeout as e:
                raise StoreLockedError(
                    f"another newsletter process is using {data_dir}; wait for it to finish "
                    "or stop it (only one process may write the data folder)"
                ) from e
        self.storage = AtomicJSONStorage(data_dir / DB_FILE, read_only=read_only)
        try:
            self.storage.read()  # fail now, naming the file, if it is corrupt
        except BaseException:
            self.close()
            raise
        self.db = TinyDB(storage=lambda: self.storage)
        self.db.table_class = _Table
        self.entries = self._table("entries")
        self.profiles = self._table("profiles")
        self.sources = self._table("sources")

    def _table(self, name: str) -> _Table:
        table = self.db.table(name, cache_size=0)
        assert isinstance(table, _Table)
        return table

    def close(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one atomic file write (rolled back on error).

        Holds the store's lock throughout, so another thread's write can
        neither land inside the batch nor be rolled back with it.
        """
        with self.storage.lock, self.storage.deferred():
            yield

    # -- entries ---------------------------------------------------------------

    def get_entries(self, ids: Iterable[str] | None = None) -> dict[str, Entry]:
        """Entries by id (all when *ids* is None); asking for a few does not copy the table."""
        if ids is None:
            return {i: entry_from_doc(d) for i, d in self.entries.docs().items()}
        return {i: entry_from_doc(d) for i, d in self.entries.pick(ids).items()}

    def entries_since(self, since: datetime | None) -> list[Entry]:
        """Entries first seen after *since* (all when None), oldest first."""
        cutoff = since.astimezone(UTC).isoformat() if since is not None else ""
        # first_seen is stored as UTC ISO text, so the filter runs before parsing.
        out = [entry_from_doc(d) for d in self.entries.docs().values() if d["first_seen"] > cutoff]
        out.sort(key=lambda e: (e.first_seen, e.id))
        return out

    def newest_first_seen(self) -> datetime | None:
        """When the newest stored entry was first seen (None: no entries)."""
        newest = max((d["first_seen"] for d in self.entries.docs().values()), default=None)
        return _parse_dt(newest)

    def put_entries(self, entries: Iterable[Entry]) -> int:
        """Insert or replace entries by id, in one write."""
        docs = {e.id: entry_to_doc(e) for e in entries}
        if not docs:
            return 0

        def apply(table: dict[str, Any]) -> None:
            table.update(docs)

        self.entries.mutate(apply)
        return len(docs)

    def prune_entries(self, before: datetime) -> int:
        """Forget entries first seen before *before*; returns how many."""
        cutoff = before.isoformat()
        removed = 0

        def apply(table: dict[str, Any]) -> None:
            nonlocal removed
            for key in [k for k, d in table.items() if d["first_seen"] < cutoff]:
                del table[key]
                removed += 1

        self.entries.mutate(apply)
        return removed

    # -- profiles --------------------------------------------------------------

    def sync_profiles(self, profiles: Iterable[Profile]) -> None:
        """Make the profiles table match the files: one write, stale readers removed; none if equal."""
        docs = {p.id: profile_to_doc(p) for p in profiles}
        if self.profiles.docs() == docs:
            return

        def apply(table: dict[str, Any]) -> None:
            table.clear()
            table.update(docs)

        self.profiles.mutate(apply)

    def profile_docs(self) -> dict[str, dict[str, Any]]:
        return self.profiles.docs()

    def profile_doc(self, reader: str) -> dict[str, Any] | None:
        return self.profiles.docs().get(reader)

    # -- sources ---------------------------------------------------------------

    def source_state(self, name: str) -> SourceState:
        doc = self.sources.docs().get(name)
        return _state_from_doc(name, doc) if doc else SourceState(name=name)

    def source_states(self) -> dict[str, SourceState]:
        return {k: _state_from_doc(k, d) for k, d in self.sources.docs().items()}

    def put_source_states(self, states: Iterable[SourceState]) -> None:
        docs = {s.name: _state_to_doc(s) for s in states}

        def apply(table: dict[str, Any]) -> None:
            table.update(docs)

        self.sources.mutate(apply)


# -- (de)serialisation: dataclasses <-> JSON documents --------------------------


def _dt(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def entry_to_doc(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "title": e.title,
        "summary": e.summary,
        "link": e.link,
        "first_seen": _dt(e.first_seen),
        "authors": list(e.authors),
        "categories": list(e.categories),
        "arxiv_id": e.arxiv_id,
        "version": e.version,
        "doi": e.doi,
        "published": _dt(e.published),
        "updated": _dt(e.updated),
        "upvotes": e.upvotes,
        "code_url": e.code_url,
        "project_url": e.project_url,
        "sources": list(e.sources),
    }


def entry_from_doc(d: Mapping[str, Any]) -> Entry:
    first_seen = _parse_dt(d["first_seen"])
    assert first_seen is not None
    return Entry(
        id=d["id"],
        title=d["title"],
        summary=d["summary"],
        link=d["link"],
        first_seen=first_seen,
        authors=tuple(d.get("authors", ())),
        categories=tuple(d.get("categories", ())),
        arxiv_id=d.get("arxiv_id"),
        version=d.get("version"),
        doi=d.get("doi"),
        published=_parse_dt(d.get("published")),
        updated=_parse_dt(d.get("updated")),
        upvotes=d.get("upvotes"),
        code_url=d.get("code_url"),
        project_url=d.get("project_url"),
        sources=tuple(d.get("sources", ())),
    )


def profile_to_doc(p: Profile) -> dict[str, Any]:
    return {
        "id": p.id,
        "email": p.email,
        "name": p.name,
        "timezone": p.timezone,
        "send_at": p.send_at.strftime("%H:%M"),
        "frequency": p.frequency,
        "max_items": p.max_items,
        "min_score": p.min_score,
        "skip_empty": p.skip_empty,
        "paused": p.paused,
        "path": str(p.path) if p.path else None,
        "interests": {
            "keywords": [[k.text, k.weight] for k in p.interests.keywords],
            "exclude": list(p.interests.exclude),
            "authors": list(p.interests.authors),
            "categories": list(p.interests.categories),
            "papers": list(p.interests.papers),
        },
    }


def _state_to_doc(s: SourceState) -> dict[str, Any]:
    return {
        "etag": s.etag,
        "last_modified": s.last_modified,
        "last_attempt": _dt(s.last_attempt),
        "last_success": _dt(s.last_success),
        "last_error": s.last_error,
        "failures": s.failures,
        "last_date": s.last_date,
        "missed_dates": list(s.missed_dates),
    }


def _state_from_doc(name: str, d: Mapping[str, Any]) -> SourceState:
    return replace(
        SourceState(name=name),
        etag=d.get("etag"),
        last_modified=d.get("last_modified"),
        last_attempt=_parse_dt(d.get("last_attempt")),
        last_success=_parse_dt(d.get("last_success")),
        last_error=d.get("last_error"),
        failures=int(d.get("failures", 0)),
        last_date=d.get("last_date"),
        missed_dates=tuple(d.get("missed_dates", ())),
    )
