"""BLAS threads for the ranking's small dense products (threadpoolctl), in one place.

The ranking's products (a block of 512 readers x 384 dims x a day's papers;
a per-reader fit of tens of ratings) take milliseconds each, between Python
work.  OpenBLAS's default of one thread per core loses on them as soon as the
machine is busy: its threads wait for a core and spin between calls (fused
ranking of 10,000 readers on 2 busy cores: 1.8x the lexical time with the
default threads, 1.1x with one; a block's blend 47-88 ms against 24-31 ms).
A limit around those calls, not a process-wide setting, leaves other code's
BLAS alone.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

_CONTROLLER: list[Any] = []
"""threadpoolctl's controller, made once (making it lists the loaded BLAS libraries)."""


def limit(threads: int | None = 1) -> AbstractContextManager[object]:
    """BLAS on *threads* threads for the duration of a ``with`` block; None leaves BLAS's default."""
    if threads is None:
        return nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=threads, user_api="blas")  # type: ignore[no-any-return]
