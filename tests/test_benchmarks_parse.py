"""The parse benchmark runs, and at a tiny size counts what it should."""

from __future__ import annotations

import bench_parse as bench
import pytest


def test_bench_parse_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    feed = bench.build_feed(500)
    assert feed.count(b"<item>") == 500 and len(set(bench._ID.findall(feed))) >= 500  # ids unique
    figures = bench.main(size=40, repeat=1)
    assert figures["items"] == 40 and figures["ours_per_s"] > 0 and figures["baseline_per_s"] > 0
    out = capsys.readouterr().out
    assert "feedparser.parse only (baseline)" in out and "newsletter parse_arxiv" in out
