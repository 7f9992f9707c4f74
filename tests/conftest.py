"""Shared fixtures: real temporary folders, the bundled sample feeds, a fixed clock."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servekit import Clock

from newsletter.config import Settings, default_settings

if TYPE_CHECKING:
    from starlette.testclient import TestClient

    from newsletter.pipeline import App

SAMPLES = Path(str(resources.files("newsletter") / "samples"))
DATA = Path(__file__).parent / "data"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# The benchmark scripts are plain modules; their tests import them by name.
sys.path.insert(0, str(BENCHMARKS))


SHIFT_DAYS = "NEWSLETTER_TEST_SHIFT_DAYS"
"""Run the suite with the wall clock moved this many days ahead (see tests/test_dates.py)."""


@pytest.fixture(scope="session", autouse=True)
def _shifted_wall_clock() -> Iterator[None]:
    """With ``NEWSLETTER_TEST_SHIFT_DAYS`` set, every test sees a wall clock that many days ahead.

    time-machine moves ``datetime.now``, ``time.time`` and friends in this
    process (still ticking), so a test that only passes on the day it was
    written fails here.
    """
    days = os.environ.get(SHIFT_DAYS)
    if not days:
        yield
        return
    import time_machine

    with time_machine.travel(datetime.now(UTC) + timedelta(days=int(days)), tick=True):
        yield


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults rooted in a temp dir, with the three demo readers."""
    s = default_settings(tmp_path)
    s.paths.profiles_dir.mkdir(parents=True)
    for name in ("ada", "grace", "alan"):
        (s.paths.profiles_dir / f"{name}.toml").write_text((SAMPLES / "profiles" / f"{name}.toml").read_text())
    return s


@pytest.fixture
def arxiv_bytes() -> bytes:
    return (SAMPLES / "arxiv_cs.rss").read_bytes()


@pytest.fixture
def hf_bytes() -> bytes:
    return (SAMPLES / "hf_daily_papers.json").read_bytes()


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEWSLETTER_SECRET", raising=False)
    yield


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    """An app that fetched the samples and loaded the three readers (reader-page tests; a module may define its own)."""
    from newsletter.pipeline import make_app

    with make_app(settings) as a:
        a.fetch()
        a.load_profiles()
        yield a


@pytest.fixture
def client(app: App) -> TestClient:
    """The HTTP side of ``serve`` at the site's own base URL (forms check the Origin)."""
    from starlette.testclient import TestClient

    from newsletter.web import create_web_app

    return TestClient(create_web_app(app), follow_redirects=False, base_url="http://localhost:8080")
