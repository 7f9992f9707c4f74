import gzip
import json
import multiprocessing
import os
import signal
import sqlite3
import time
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from newsletter import profiles as profile_files
from newsletter.errors import StoreCorruptError, StoreError, StoreLockedError
from newsletter.sources import entry_identity_keys
from newsletter.store import LEGACY_FILE, PROFILES_FILE, STORE_FILE, Store
from newsletter.types import Entry, SourceState

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
LEGACY_DEMO = Path(__file__).parent / "data" / "legacy-demo" / "newsletter.json.gz"


def entry(i: int, first_seen: datetime = T0, **kw: object) -> Entry:
    return Entry(
        id=f"arxiv:2411.{i:05d}",
        title=f"Paper {i}",
        summary="s",
        link="https://arxiv.org/abs/x",
        first_seen=first_seen,
        arxiv_id=f"2411.{i:05d}",
        **kw,  # type: ignore[arg-type]
    )


def test_entries_round_trip_through_the_file(tmp_path: Path) -> None:
    e1 = entry(1, authors=("Ada Lovelace",), categories=("cs.LG",), published=T0 - timedelta(days=1), upvotes=3)
    with Store(tmp_path) as store:
        store.put_entries([e1, entry(2, T0 + timedelta(seconds=1))])
    with Store(tmp_path, read_only=True) as store:
        assert store.get_entries()["arxiv:2411.00001"] == e1
        assert [e.id for e in store.entries_since(None)] == ["arxiv:2411.00001", "arxiv:2411.00002"]
        assert [e.id for e in store.entries_since(T0)] == ["arxiv:2411.00002"]
        assert store.count_entries() == 2


def test_a_batch_is_one_transaction_and_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1)])
        with pytest.raises(RuntimeError), store.batch():
            store.put_entries([entry(2)])
            store.put_source_states([SourceState("s", failures=1)])
            with Store(tmp_path, read_only=True) as other:  # another process sees nothing yet
                assert list(other.get_entries()) == ["arxiv:2411.00001"]
            raise RuntimeError("boom")
        assert list(store.get_entries()) == ["arxiv:2411.00001"]
        assert store.source_states() == {}
        with store.batch():
            store.put_source_states([SourceState("s", etag='"x"', missed_dates=("2026-11-20",))])
        assert store.source_state("s") == SourceState("s", etag='"x"', missed_dates=("2026-11-20",))


def test_prune_forgets_old_entries_in_one_delete(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1, T0 - timedelta(days=40)), entry(2), entry(3, T0 - timedelta(days=31))])
        assert store.prune_entries(T0 - timedelta(days=30)) == 2
        assert list(store.get_entries()) == ["arxiv:2411.00002"]


def test_related_entries_finds_every_key_a_merge_can_use_and_nothing_else(tmp_path: Path) -> None:
    by_doi = replace(entry(1), id="doi:10.1/abc", arxiv_id=None, doi="10.1/ABC")
    by_arxiv = entry(2)
    titled = replace(entry(3), arxiv_id=None, title="This week in ML")
    titled = replace(titled, id=entry_identity_keys(titled)[-1])
    same_title_other_link = replace(titled, id=titled.id + ":1234abcd", link="https://example.org/2")
    unrelated = entry(4)
    with Store(tmp_path) as store:
        store.put_entries([by_doi, by_arxiv, titled, same_title_other_link, unrelated])
        found = store.related_entries(["doi:10.1/abc", "arxiv:2411.00002", titled.id, "title:nothing"])
    assert set(found) == {by_doi.id, by_arxiv.id, titled.id, same_title_other_link.id}


def test_embeddings_are_float16_bytes_kept_until_the_text_changes(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1), entry(2, T0 + timedelta(hours=1)), entry(3, T0 + timedelta(hours=2))])
        assert store.ids_without_embedding(2) == ["arxiv:2411.00003", "arxiv:2411.00002"]  # newest first
        vectors = np.arange(2 * 384, dtype=np.float32).reshape(2, 384) / 1000
        assert store.put_embeddings(["arxiv:2411.00001", "arxiv:2411.00003"], vectors) == 2
        ids, matrix = store.embeddings(["arxiv:2411.00003", "arxiv:2411.00002", "arxiv:2411.00001"])
        assert ids == ["arxiv:2411.00003", "arxiv:2411.00001"]
        assert matrix.dtype == np.float16 and matrix.shape == (2, 384)
        np.testing.assert_array_equal(matrix[1], vectors[0].astype(np.float16))
        size = store.db.execute("SELECT length(embedding) FROM entries WHERE id = 'arxiv:2411.00001'").fetchone()
        assert size == (768,)
        store.put_entries([replace(entry(1), upvotes=5)])  # same text: the vector stays
        store.put_entries([replace(entry(3, T0 + timedelta(hours=2)), summary="a longer abstract")])
        assert store.embeddings(["arxiv:2411.00001", "arxiv:2411.00003"])[0] == ["arxiv:2411.00001"]
        assert store.ids_without_embedding(10) == ["arxiv:2411.00003", "arxiv:2411.00002"]


def test_first_seen_days_answers_status_without_loading_entries(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        assert store.first_seen_days(T0) == []
        store.put_entries([entry(1, T0 - timedelta(days=20)), entry(2, T0), entry(3, T0 + timedelta(hours=1))])
        store.put_entries([entry(4, T0 + timedelta(days=2))])
        assert store.first_seen_days(T0 - timedelta(days=3)) == [
            date(2026, 11, 3),
            date(2026, 11, 23),
            date(2026, 11, 25),
        ]


def test_a_garbage_database_file_names_the_file_and_is_not_reset(tmp_path: Path) -> None:
    (tmp_path / STORE_FILE).write_bytes(b"this is not sqlite, just text that someone saved here" * 100)
    for read_only in (False, True):
        with pytest.raises(StoreCorruptError, match=f"{STORE_FILE}.*restore it from a backup"):
            Store(tmp_path, read_only=read_only)
    assert (tmp_path / STORE_FILE).read_bytes().startswith(b"this is not sqlite")
    (tmp_path / STORE_FILE).unlink()  # after a repair the folder can be used again: the lock was released
    Store(tmp_path).close()


def test_an_entry_row_with_a_bad_date_names_the_file_the_row_and_the_fix(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1), entry(2)])
    db = sqlite3.connect(tmp_path / STORE_FILE)
    data = json.loads(
        zlib.decompress(db.execute("SELECT data FROM entries WHERE id = 'arxiv:2411.00002'").fetchone()[0])
    )
    damaged = zlib.compress(json.dumps({**data, "first_seen": "yesterday"}).encode())
    db.execute("UPDATE entries SET data = ? WHERE id = 'arxiv:2411.00002'", (damaged,))
    db.commit()
    db.close()
    with Store(tmp_path, read_only=True) as store:
        assert list(store.get_entries(["arxiv:2411.00001"])) == ["arxiv:2411.00001"]  # the rest stays readable
        with pytest.raises(StoreCorruptError, match=r"entry 'arxiv:2411.00002' in .*entries.sqlite3.*DELETE FROM"):
            store.entries_since(None)


def test_a_full_disk_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1)])
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        big = [replace(entry(i), summary="x" * 5000) for i in range(2, 200)]
        with pytest.raises(StoreError, match=f"{STORE_FILE}: the disk is full.*free space"):
            store.put_entries(big)
        assert list(store.get_entries()) == ["arxiv:2411.00001"]  # rolled back, still usable


def test_second_writer_is_refused_but_a_reader_is_not(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1)])
        with pytest.raises(StoreLockedError, match="another newsletter process"):
            Store(tmp_path)
        with Store(tmp_path, read_only=True) as reader:
            assert len(reader.get_entries()) == 1


def test_a_read_only_store_of_a_new_folder_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    with Store(tmp_path, read_only=True) as store:
        assert (store.count_entries(), store.entries_since(None), store.source_states()) == (0, [], {})
    assert list(tmp_path.iterdir()) == []


def _writer(path: str, n: int) -> None:
    with Store(Path(path)) as store:
        for i in range(n):
            with store.batch():
                store.put_entries([entry(i)])
                store.put_source_states([SourceState("s", failures=i)])


def test_kill_during_writes_leaves_a_readable_consistent_database(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of many transactions, several times."""
    ctx = multiprocessing.get_context("spawn")
    for delay in (0.3, 0.5, 0.8):
        folder = tmp_path / str(delay)
        proc = ctx.Process(target=_writer, args=(str(folder), 100_000))
        proc.start()
        deadline = time.monotonic() + 20
        while not (folder / STORE_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        with Store(folder) as store:  # the lock died with the process
            entries = store.get_entries()
            assert entries
            # entry i and state i were one transaction: both or neither survived
            assert store.source_state("s").failures == max(int(i.rsplit(".", 1)[1]) for i in entries)


def test_atomic_writes_keep_a_files_permissions(tmp_path: Path) -> None:
    from newsletter.files import _umask, atomic_write

    path = tmp_path / "profile.toml"
    atomic_write(path, b"a = 1\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask(), "a new file gets the umask's default, not 0600"
    path.chmod(0o640)
    atomic_write(path, b"a = 2\n")
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_bytes() == b"a = 2\n"
    atomic_write(tmp_path / "key", b"k", mode=0o600)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600


# -- the profile cache -------------------------------------------------------------------

PROFILE = """email = "ada@example.org"
timezone = "Europe/Berlin"
send_at = "07:30"
[interests]
keywords = ["{kw}"]
"""


def test_an_unchanged_profile_file_is_not_parsed_again(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    path = folder / "ada.toml"
    path.write_text(PROFILE.format(kw="quantization"))
    with Store(tmp_path / "data") as store:
        first = profile_files.load_profiles(folder, store.cached_profile)
        store.sync_profiles(first.profiles, first.stats)
    written = (tmp_path / "data" / PROFILES_FILE).stat().st_mtime_ns
    # Same size and mtime, other bytes: the cache answers, so the file was not read.
    st = path.stat()
    path.write_text(PROFILE.format(kw="distillation"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with Store(tmp_path / "data") as store:  # the cache survives a restart
        again = profile_files.load_profiles(folder, store.cached_profile)
        assert again.profiles[0].interests.keywords[0].text == "quantization"
        store.sync_profiles(again.profiles, again.stats)
        assert (tmp_path / "data" / PROFILES_FILE).stat().st_mtime_ns == written, "nothing changed: no write"
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # an edit: parsed again
        edited = profile_files.load_profiles(folder, store.cached_profile)
        assert edited.profiles[0].interests.keywords[0].text == "distillation"
        store.sync_profiles(edited.profiles, edited.stats)
        assert store.profile_doc("ada") is not None and store.profile_doc("ada")["path"] == str(path)
    with Store(tmp_path / "data", read_only=True) as store:
        assert store.profile_docs()["ada"]["file"]["interests"]["keywords"][0]["text"] == "distillation"


def test_the_profile_cache_uses_tinydb_through_its_public_api_only() -> None:
    source = (Path(__file__).parent.parent / "newsletter" / "store.py").read_text()
    for private in ("_read_table", "_update_table", "document_id_class"):
        assert private not in source


# -- migration from the release's single TinyDB file ------------------------------------------


def test_a_data_folder_of_the_current_release_migrates_without_losing_anything(tmp_path: Path) -> None:
    """tests/data/legacy-demo is `newsletter demo` run by release 5961c35 (profile paths made neutral)."""
    raw = gzip.decompress(LEGACY_DEMO.read_bytes())
    old = json.loads(raw)
    data = tmp_path / "data"
    data.mkdir()
    (data / LEGACY_FILE).write_bytes(raw)
    with Store(data, read_only=True) as store:  # even `status` right after the upgrade works
        entries = store.get_entries()
        states = store.source_states()
    assert not (data / LEGACY_FILE).exists()
    assert (data / (LEGACY_FILE + ".migrated")).read_bytes() == raw, "the old file is kept, unchanged"
    assert set(entries) == set(old["entries"]) and len(entries) == 334
    for key, doc in old["entries"].items():
        e = entries[key]
        assert (e.title, e.summary, e.link, list(e.authors), list(e.categories)) == (
            doc["title"],
            doc["summary"],
            doc["link"],
            doc["authors"],
            doc["categories"],
        )
        assert e.first_seen == datetime.fromisoformat(doc["first_seen"])
        assert (e.arxiv_id, e.version, e.doi, e.upvotes, list(e.sources)) == (
            doc["arxiv_id"],
            doc["version"],
            doc["doi"],
            doc["upvotes"],
            doc["sources"],
        )
    assert set(states) == set(old["sources"]) == {"arxiv-sample", "hf-sample"}
    assert states["arxiv-sample"].last_date == old["sources"]["arxiv-sample"]["last_date"]
    assert states["arxiv-sample"].last_success == datetime.fromisoformat(old["sources"]["arxiv-sample"]["last_success"])
    with Store(data) as store:  # opening again migrates nothing twice
        assert store.count_entries() == 334
        assert set(store.profile_docs()) == set(old["profiles"])


def test_a_damaged_legacy_file_is_not_migrated_and_says_so(tmp_path: Path) -> None:
    (tmp_path / LEGACY_FILE).write_text('{"entries": {"1": ')
    with pytest.raises(StoreCorruptError, match=LEGACY_FILE):
        Store(tmp_path)
    assert (tmp_path / LEGACY_FILE).read_text() == '{"entries": {"1": '


def test_reader_models_are_kept_by_reader_and_key(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        assert store.reader_models(["ada"]) == {}
        store.put_reader_models({"ada": ("k1", b"one"), "alan": ("k2", b"two")})
        store.put_reader_models({"ada": ("k3", b"three")})
        assert store.reader_models(["ada", "alan", "grace"]) == {"ada": ("k3", b"three"), "alan": ("k2", b"two")}
        store.put_reader_models({"alan": ("k4", None)})  # no model any more: the row goes
        assert store.reader_models(["alan"]) == {}
    with sqlite3.connect(tmp_path / STORE_FILE) as db:  # a data folder from before the table
        db.execute("DROP TABLE reader_models")
    with Store(tmp_path, read_only=True) as store:
        assert store.reader_models(["ada"]) == {}
        store.put_reader_models({"ada": ("k5", b"five")})  # read-only: nothing written, no error
