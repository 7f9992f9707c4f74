"""Crash-safe file writes: a reader sees the old file or the new one, never half of each."""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path


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
