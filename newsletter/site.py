"""The data folder's life: a marker from the first start, lost state refused, leftovers cleaned.

Deleting ``ledger.sqlite3`` used to make the next run resend every digest;
deleting ``secret.key`` silently minted a new key, breaking every link in mail
already sent (issue 14).  Now the first start writes ``site.json`` (when, and
a fingerprint of the signing key); when the folders show a previous life (the
marker, stored data, feeds, outbox mail) but the ledger or the key is gone,
or the key is not the one the site was made with, the app refuses with one
line saying what was lost and how to go on: restore the file, or set
``NEWSLETTER_ACCEPT_NEW_LEDGER=1`` / ``NEWSLETTER_ACCEPT_NEW_KEY=1`` once.

Also here: sends a killed process left ``sending`` (settled from the outbox
file when there is one; :func:`writer_alive` lets read-only ``status`` call
them interrupted at once), and temp files of killed atomic writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email import message_from_binary_file, policy
from pathlib import Path

from .config import Settings, secret
from .errors import StateLostError, StoreError
from .files import atomic_write
from .ledger import LEDGER_FILE, Ledger
from .store import LOCK_FILE, PROFILES_FILE, STORE_FILE, Store
from .types import Delivery, DeliveryStatus, FeedItem

SITE_FILE = "site.json"
SECRET_FILE = "secret.key"  # as newsletter.delivery names it
SECRET_ENV = "NEWSLETTER_SECRET"
ACCEPT_NEW_LEDGER = "NEWSLETTER_ACCEPT_NEW_LEDGER"
ACCEPT_NEW_KEY = "NEWSLETTER_ACCEPT_NEW_KEY"
STALE_AFTER = timedelta(hours=1)
"""A temp file of an atomic write older than this belongs to a killed process."""
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp\Z")
"""``atomic_write``'s temp names: ``.<name>.<random>.tmp``."""
_OWN = {LOCK_FILE, SITE_FILE, SECRET_FILE, LEDGER_FILE, f"{LEDGER_FILE}-wal", f"{LEDGER_FILE}-shm"}
_STORE_FILES = {STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", PROFILES_FILE}
"""The store's own files: opening the store creates them, so they count as a past life only if they hold data."""


def _accepted(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes")


def fingerprint(key: str) -> str:
    """A short one-way digest of the signing key: tells keys apart, reveals nothing."""
    return hashlib.sha256(b"newsletter-site-key\0" + key.encode()).hexdigest()[:16]


def _read_marker(data_dir: Path) -> dict[str, str] | None:
    path = data_dir / SITE_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StoreError(f"{path} is unreadable ({e}); restore it, or delete it to write a new one") from e
    return data if isinstance(data, dict) else {}


def previous_life(settings: Settings, store: Store | None = None) -> list[str]:
    """What shows that this site ran before, besides the ledger and the key (empty: a fresh site).

    With the open *store*, its files count only when they hold entries or readers.
    """
    p = settings.paths
    evidence = []
    if (p.data_dir / SITE_FILE).exists():
        evidence.append(f"{p.data_dir / SITE_FILE}")
    skip = _OWN | (_STORE_FILES if store is not None else set())
    with contextlib.suppress(OSError):
        data = [f.name for f in p.data_dir.iterdir() if f.name not in skip and not _TEMP.match(f.name)]
        if data:
            evidence.append(f"stored data ({', '.join(sorted(data)[:3])})")
    if store is not None and (store.count_entries() or store.profile_docs()):
        evidence.append(f"stored data ({store.count_entries()} entries in {p.data_dir / STORE_FILE})")
    with contextlib.suppress(OSError):
        if any(f.is_file() and not _TEMP.match(f.name) for f in p.feeds_dir.iterdir()):
            evidence.append(f"feeds in {p.feeds_dir}")
    with contextlib.suppress(OSError):
        if next(p.outbox_dir.glob("*/*.eml"), None) is not None:
            evidence.append(f"mail in {p.outbox_dir}")
    return evidence


def check_lost_state(settings: Settings, store: Store | None = None) -> None:
    """Refuse to recreate the ledger or the key of a site that ran before; call before opening either."""
    data_dir = settings.paths.data_dir
    ledger_gone = not (data_dir / LEDGER_FILE).exists() and not _accepted(ACCEPT_NEW_LEDGER)
    key_gone = secret(SECRET_ENV) is None and not (data_dir / SECRET_FILE).exists() and not _accepted(ACCEPT_NEW_KEY)
    if not (ledger_gone or key_gone):
        return
    evidence = previous_life(settings, store)
    if not evidence:
        return
    seen = "; ".join(evidence)
    if ledger_gone:
        raise StateLostError(
            f"the ledger {data_dir / LEDGER_FILE} is missing, but this site ran before ({seen}): a new ledger "
            "would send every reader every digest again. Restore it from a backup, or set "
            f"{ACCEPT_NEW_LEDGER}=1 for one run to start a new one (readers may get repeats)"
        )
    raise StateLostError(
        f"the signing key {data_dir / SECRET_FILE} is missing (and {SECRET_ENV} is unset), but this site ran "
        f"before ({seen}): a new key breaks every feed and unsubscribe link in mail already sent. Restore the "
        f"file or set {SECRET_ENV} to the old key, or set {ACCEPT_NEW_KEY}=1 for one run to make a new key"
    )


def record_site(data_dir: Path, key: str, now: datetime) -> None:
    """Write the marker at first start; refuse a signing key that is not the site's (unless accepted)."""
    marker = _read_marker(data_dir)
    mark = fingerprint(key)
    known = (marker or {}).get("key_fingerprint")
    if known == mark:
        return
    if known and not _accepted(ACCEPT_NEW_KEY):
        raise StateLostError(
            f"the signing key is not the one this site was made with ({data_dir / SITE_FILE} has fingerprint "
            f"{known}, the key now in use has {mark}): links in mail already sent would stop working. "
            f"Restore {data_dir / SECRET_FILE} or set {SECRET_ENV} to the old key, or set {ACCEPT_NEW_KEY}=1 "
            "for one run to adopt this key"
        )
    created = (marker or {}).get("created") or now.astimezone(UTC).isoformat()
    body = {"created": created, "key_fingerprint": mark}
    if known:
        body["key_changed"] = now.astimezone(UTC).isoformat()
    try:
        atomic_write(data_dir / SITE_FILE, (json.dumps(body, indent=2) + "\n").encode())
    except OSError as e:
        raise StoreError(f"cannot write {data_dir / SITE_FILE} ({e.strerror}); check the data folder") from e


def clean_stale_temp(folders: Iterable[Path], now: datetime, max_age: timedelta = STALE_AFTER) -> list[Path]:
    """Delete temp files that killed atomic writes left behind (older than *max_age*); returns them.

    Only names ``atomic_write`` makes, only regular files, one level of
    subfolders deep (the outbox has one per period).  Young ones may belong to
    a write in progress and are left alone.
    """
    removed = []
    cutoff = (now - max_age).timestamp()
    for folder in folders:
        with contextlib.suppress(OSError):
            candidates = [*folder.glob(".*.tmp"), *folder.glob("*/.*.tmp")]
            for path in candidates:
                with contextlib.suppress(OSError):
                    st = path.lstat()
                    if _TEMP.match(path.name) and path.is_file() and not path.is_symlink() and st.st_mtime < cutoff:
                        path.unlink()
                        removed.append(path)
    return removed


def writer_alive(data_dir: Path) -> bool:
    """Whether a process holds the data folder's write lock; creates nothing.

    ``/proc/locks`` answers without touching the lock.  When it lists no
    holder (or is not there), a shared lock is tried for an instant: a writer
    starting at that very instant would be told the folder is in use.
    """
    path = data_dir / LOCK_FILE
    try:
        st = path.stat()
    except OSError:
        return False
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        table = None
    if table is not None:
        needle = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
        if any(needle in line + " " for line in table.splitlines()):
            return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def settle_outbox_sends(ledger: Ledger, outbox_dir: Path, now: datetime) -> list[Delivery]:
    """Settle rows a killed process left ``sending`` through the outbox: its file says what happened.

    The outbox writes each message atomically, so the file exists whole or
    not at all: there, the message was delivered (``sent``, with its
    Message-ID); missing, it never was, and the period is open again for the
    next run.  Call under the write lock, before :meth:`Ledger.recover`.
    Returns the rows settled.
    """
    settled = []
    for row in ledger.rows(status=DeliveryStatus.SENDING):
        if row.backend != "outbox":
            continue
        path = outbox_dir / row.period / f"{row.reader}.eml"
        try:
            with path.open("rb") as f:
                message_id = message_from_binary_file(f, policy=policy.default)["Message-ID"]
        except FileNotFoundError:
            ledger.mark_failed(
                row.reader, row.period, "process stopped before the outbox file was written", now, retry=True
            )
        except OSError as e:
            raise StoreError(
                f"cannot read {path} ({e.strerror}) to settle an interrupted send; check the outbox"
            ) from e
        else:
            items = [FeedItem(entry_id, 0.0, (), rank=rank) for rank, entry_id in enumerate(row.entry_ids, 1)]
            ledger.mark_sent(row.reader, row.period, str(message_id) if message_id else None, now, items)
        settled.append(row)
    return settled


__all__ = [
    "ACCEPT_NEW_KEY",
    "ACCEPT_NEW_LEDGER",
    "SITE_FILE",
    "check_lost_state",
    "clean_stale_temp",
    "fingerprint",
    "previous_life",
    "record_site",
    "settle_outbox_sends",
    "writer_alive",
]
