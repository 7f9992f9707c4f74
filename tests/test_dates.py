"""No test depends on today's date: the date-sensitive tests pass with the wall clock a year ahead.

The suite once failed on every date after 2026-11-30 because ``newsletter
status`` read the real clock while its test pinned the app's.  This runs the
tests that deal with dates, periods, health windows, tokens and feeds again in
a child pytest whose wall clock is moved 365 days ahead (``conftest.py``,
time-machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHIFT_DAYS

HERE = Path(__file__).parent
DATE_SENSITIVE = [
    "test_serve.py",
    "test_schedule.py",
    "test_pipeline.py",
    "test_web.py",
    "test_ledger.py",
    "test_cli.py",
]


@pytest.mark.slow
def test_date_sensitive_tests_pass_a_year_ahead(tmp_path: Path) -> None:
    if os.environ.get(SHIFT_DAYS):
        pytest.skip("already running shifted")
    env = {**os.environ, SHIFT_DAYS: "365"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         *(str(HERE / f) for f in DATE_SENSITIVE)],
        cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
