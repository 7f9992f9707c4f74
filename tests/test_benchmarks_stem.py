"""The stemmer benchmark runs at a tiny size and times both stemmers."""

from __future__ import annotations

import bench_stem as bench
import pytest

from newsletter import match


@pytest.mark.slow
def test_bench_stem_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    kept = match._stemmer
    figures = bench.main(["--entries", "40", "--repeat", "1"])
    assert match._stemmer is kept  # the benchmark puts the app's stemmer back
    assert figures["words"] > 3_000
    assert all(figures[k] > 0 for k in ("pystemmer_stem_s", "snowball_stem_s", "pystemmer_build_s", "snowball_build_s"))
    out = capsys.readouterr().out
    assert "snowballstemmer (baseline)" in out and "PyStemmer" in out
