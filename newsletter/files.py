"""Careful file access: crash-safe writes (a reader sees the old file or the new one, never half of each) and
bounded reads of files a reader controls (a FIFO, a device or a huge file never hangs or floods the run)."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from pathlib import Path


class NotRegularFile(Exception):
    """The path is a pipe, device or folder.  Raised by :func:`read_regular`; callers say it in their own error."""


class FileTooLarge(Exception):
    """The file is over the caller's cap.  Raised by :func:`read_regular`; callers say it in their own error."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"{size if size is not None else 'over'} bytes, cap {limit}")
        self.size = size
        """Its size as ``stat`` saw it, or None if it grew past the cap while it was read."""
        self.limit = limit

    @property
    def size_said(self) -> str:
        """Its size in words for an error message: ``"12,345 bytes"``, or ``"over 5,000 bytes"`` if unknown."""
        return f"{self.size:,} bytes" if self.size is not None else f"over {self.limit:,} bytes"


def read_regular(path: Path, limit: int) -> tuple[bytes, os.stat_result]:
    """The bytes and ``fstat`` of *path*, a regular file of at most *limit* bytes.

    The type is checked before the open and again on the open descriptor
    (opened non-blocking, so a FIFO swapped in between cannot hang the
    open), and at most ``limit + 1`` bytes are read (``/proc`` files and
    growing files report a wrong size).  OSErrors pass through.
    """
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(str(path))
    if st.st_size > limit:
        raise FileTooLarge(st.st_size, limit)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(str(path))
        raw = f.read(limit + 1)
    if len(raw) > limit:
        raise FileTooLarge(None, limit)
    return raw, st


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
