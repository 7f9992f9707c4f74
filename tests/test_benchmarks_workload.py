"""The synthetic benchmark workload is realistic input the real pipeline accepts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import workload

from newsletter.profiles import parse_profile
from newsletter.sources import parse_arxiv


def test_items_become_a_feed_that_parses_back_to_distinct_papers() -> None:
    items = workload.make_items(400)
    parsed = parse_arxiv("bench", workload.arxiv_rss(items))
    assert len(parsed) == 400
    assert len({p.arxiv_id for p in parsed}) == 400
    assert [p.title for p in parsed] == [i.title for i in items]


def test_profiles_are_valid_profile_files(tmp_path: Path) -> None:
    items = workload.make_items(50)
    profiles = workload.make_profiles(30, items)
    for p in profiles:
        parsed = parse_profile(workload.profile_toml(p), tmp_path / f"{p.id}.toml")
        assert parsed.interests.keywords == p.interests.keywords
        assert parsed.interests.papers == p.interests.papers
    assert len(workload.vocabulary()) >= 20


def test_entries_are_stored_entries_with_distinct_ids() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    entries = workload.make_entries(120, now)
    assert len({e.id for e in entries}) == 120
    assert all(e.first_seen == now and e.id == f"arxiv:{e.arxiv_id}" for e in entries)
