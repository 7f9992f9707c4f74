"""The parse benchmark runs, and at a tiny size counts what it should."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_parse.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_parse", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_parse_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load()
    feed = bench.build_feed(500)
    assert feed.count(b"<item>") == 500 and len(set(bench._ID.findall(feed))) >= 500  # ids unique
    figures = bench.main(size=40, repeat=1)
    assert figures["items"] == 40 and figures["ours_per_s"] > 0 and figures["baseline_per_s"] > 0
    out = capsys.readouterr().out
    assert "feedparser.parse only (baseline)" in out and "newsletter parse_arxiv" in out
