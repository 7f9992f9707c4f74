import json
import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.errors import StoreCorruptError, StoreLockedError
from newsletter.store import DB_FILE, SourceState, Store
from newsletter.types import Entry

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def entry(i: int, first_seen: datetime = T0) -> Entry:
    return Entry(
        id=f"arxiv:2411.{i:05d}", title=f"Paper {i}", summary="s", link="https://arxiv.org/abs/x", first_seen=first_seen
    )


def test_entries_round_trip_through_the_file(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1), entry(2)])
    with Store(tmp_path, read_only=True) as store:
        assert store.get_entries()["arxiv:2411.00001"] == entry(1)
        assert [e.id for e in store.entries_since(None)] == ["arxiv:2411.00001", "arxiv:2411.00002"]


def test_a_batch_is_one_atomic_write_and_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1)])
        before = (tmp_path / DB_FILE).read_bytes()
        with pytest.raises(RuntimeError), store.batch():
            store.put_entries([entry(2)])
            store.put_source_states([SourceState("s", failures=1)])
            assert (tmp_path / DB_FILE).read_bytes() == before  # nothing written yet
            raise RuntimeError("boom")
        assert (tmp_path / DB_FILE).read_bytes() == before
        assert list(store.get_entries()) == ["arxiv:2411.00001"]  # memory rolled back too


def test_prune_forgets_old_entries(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1, T0 - timedelta(days=40)), entry(2)])
        assert store.prune_entries(T0 - timedelta(days=30)) == 1
        assert list(store.get_entries()) == ["arxiv:2411.00002"]


def test_corrupt_file_stops_with_its_name_and_is_not_reset(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_text('{"entries": {"1": ')
    with pytest.raises(StoreCorruptError, match=DB_FILE):
        Store(tmp_path)
    assert (tmp_path / DB_FILE).read_text() == '{"entries": {"1": '
    # the lock was released: after a repair the folder can be used again
    (tmp_path / DB_FILE).write_text("{}")
    Store(tmp_path).close()


def test_second_writer_is_refused_but_a_reader_is_not(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.put_entries([entry(1)])
        with pytest.raises(StoreLockedError, match="another newsletter process"):
            Store(tmp_path)
        with Store(tmp_path, read_only=True) as reader:
            assert len(reader.get_entries()) == 1


def _writer(path: str, n: int) -> None:
    with Store(Path(path)) as store:
        for i in range(n):
            with store.batch():
                store.put_entries([entry(i)])


def test_kill_during_writes_leaves_a_readable_file(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of many atomic writes, several times."""
    ctx = multiprocessing.get_context("spawn")
    for delay in (0.3, 0.5, 0.8):
        proc = ctx.Process(target=_writer, args=(str(tmp_path), 100_000))
        proc.start()
        deadline = time.monotonic() + 20
        while not (tmp_path / DB_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        data = json.loads((tmp_path / DB_FILE).read_text())  # complete JSON, never half a file
        assert data["entries"]
        with Store(tmp_path) as store:  # and the lock died with the process
            assert store.get_entries()


def test_atomic_writes_keep_a_files_permissions(tmp_path: Path) -> None:
    from newsletter.store import _umask, atomic_write

    path = tmp_path / "profile.toml"
    atomic_write(path, b"a = 1\n")
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask(), "a new file gets the umask's default, not 0600"
    path.chmod(0o640)
    atomic_write(path, b"a = 2\n")
    assert path.stat().st_mode & 0o777 == 0o640 and path.read_bytes() == b"a = 2\n"
    atomic_write(tmp_path / "key", b"k", mode=0o600)
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
