"""The send and ledger benchmarks run end to end at a tiny size (figures are not checked)."""

from __future__ import annotations

import bench_ledger
import bench_send
import pytest


@pytest.mark.slow
def test_bench_send_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    figures = bench_send.main(
        ["--readers", "40", "--baseline", "5", "--concurrency", "8", "--latency", "0.01", "--html-kb", "4"]
    )
    assert figures["readers"] == 40 and figures["concurrent_s"] > 0 and figures["baseline_extrapolated_s"] > 0
    assert "speed-up" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_ledger_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_ledger.main(["--readers", "50", "100", "--sample", "60"])
    assert [r["readers"] for r in rows] == [50, 100]
    assert all(r["sqlite_changes_per_s"] > 0 and r["tinydb_changes_per_s"] > 0 for r in rows)
    assert "sqlite" in capsys.readouterr().out
