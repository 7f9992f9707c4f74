"""files: crash-safe writes and bounded reads of files a reader controls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from newsletter.files import FileTooLarge, NotRegularFile, atomic_write, read_regular


def test_read_regular_returns_the_bytes_and_the_open_files_stat(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    atomic_write(path, b'email = "ada@example.org"\n')
    raw, st = read_regular(path, limit=100)
    assert raw == b'email = "ada@example.org"\n'
    assert st.st_size == len(raw)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.bib"
    os.mkfifo(fifo)  # opening it for reading in blocking mode would wait for a writer forever
    with pytest.raises(NotRegularFile):
        read_regular(fifo, limit=100)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFile):
        read_regular(tmp_path, limit=100)


def test_a_file_over_the_cap_says_its_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.bib"
    path.write_bytes(b"x" * 101)
    with pytest.raises(FileTooLarge) as caught:
        read_regular(path, limit=100)
    assert (caught.value.size, caught.value.limit) == (101, 100)


def test_a_file_that_reports_a_wrong_size_is_still_capped() -> None:
    status = Path("/proc/self/status")  # stat says 0 bytes; reading gives more than a kilobyte
    if not status.exists():
        pytest.skip("needs Linux /proc")
    assert status.stat().st_size == 0
    with pytest.raises(FileTooLarge) as caught:
        read_regular(status, limit=64)
    assert caught.value.size is None
