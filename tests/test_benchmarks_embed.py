"""The embedding benchmark runs, and at a tiny size counts what it should."""

from __future__ import annotations

import bench_embed as bench
import pytest


def test_bench_embed_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    day = bench.build_day(700)
    assert len(day) == 700 and len(set(day)) == 700  # copies of the 334 fixture papers all differ
    figures = bench.main(size=12, compare=4, baseline=3)
    assert figures["papers"] == 12 and figures["baseline_papers"] == 3
    assert figures["ours_per_s"] > 0 and figures["baseline_per_s"] > 0 and figures["peak_rss_mb"] > 0
    assert figures["cosine_to_256_256"] == pytest.approx(1.0, abs=1e-5)
    assert 0.5 < figures["cosine_to_256_128"] <= 1.0 + 1e-5
    out = capsys.readouterr().out
    assert "batch 1, unsorted (baseline" in out and "sorted by length, batched" in out and "192 tokens" in out
