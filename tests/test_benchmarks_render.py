"""The render benchmark still runs (a tiny size: this checks it works, not its speed)."""

from __future__ import annotations

import bench_render
import pytest


def test_bench_render_tiny_run(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_render.main(["--readers", "3", "--items", "25", "--baseline", "2", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "emails/s" in out and "2 interleaved rounds" in out
    assert figures["emails_per_s"] > 0 and figures["baseline_emails_per_s"] > 0
    assert figures["speedup"] == figures["emails_per_s"] / figures["baseline_emails_per_s"]
    assert figures["emails_per_s"] >= figures["emails_per_s_median"] > 0  # best round, then the median
    assert 0 < figures["html_bytes_max"] <= 80_000
