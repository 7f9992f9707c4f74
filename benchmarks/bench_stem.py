"""Time stemming and the index build with PyStemmer (C) next to snowballstemmer (pure Python), same run.

The baseline is snowballstemmer's pure-Python ``EnglishStemmer`` class:
``snowballstemmer.stemmer()`` itself hands out PyStemmer once it is
installed.  Two figures per stemmer: stemming every distinct word of the bundled
fixtures (uncached, repeated), and ``match.Index`` over N entries from
:func:`bench_rank.make_entries` with the stem cache emptied first, so the
build pays for its stems as a fresh process does.  The load average is
printed: on a shared machine the wall-clock figures move with it.

Run:  python benchmarks/bench_stem.py [--entries 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time as clock
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import bench_rank
import Stemmer
from snowballstemmer.english_stemmer import EnglishStemmer  # type: ignore[import-untyped]

from newsletter import match, sources


def fixture_words() -> list[str]:
    samples = resources.files("newsletter") / "samples"
    words: set[str] = set()
    for kind, name in (("arxiv", "arxiv_cs.rss"), ("hf", "hf_daily_papers.json")):
        for item in sources.parse_document(kind, kind, (samples / name).read_bytes()).items:
            words.update(match._WORD.findall(match._fold(f"{item.title} {item.summary}")))
    return sorted(words)


def stem_seconds(stemmer: Any, words: Sequence[str], repeat: int) -> float:
    t0 = clock.perf_counter()
    for _ in range(repeat):
        for w in words:
            stemmer.stemWord(w)
    return clock.perf_counter() - t0


def build_seconds(stemmer: Any, entries: Sequence[Any]) -> float:
    kept = match._stemmer
    match._stemmer = stemmer
    match._stem.cache_clear()
    try:
        t0 = clock.perf_counter()
        match.Index(entries)
        return clock.perf_counter() - t0
    finally:
        match._stemmer = kept
        match._stem.cache_clear()


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    words = fixture_words()
    entries = bench_rank.make_entries(args.entries)
    c, python = Stemmer.Stemmer("english"), EnglishStemmer()
    uncached = Stemmer.Stemmer("english")
    uncached.maxCacheSize = 0  # PyStemmer keeps its own cache: off, so both stem every word every time
    r = {
        "words": float(len(words) * args.repeat),
        "pystemmer_stem_s": stem_seconds(uncached, words, args.repeat),
        "snowball_stem_s": stem_seconds(python, words, args.repeat),
        "pystemmer_build_s": build_seconds(c, entries),
        "snowball_build_s": build_seconds(python, entries),
    }
    out(f"stemming {len(words):,} fixture words x {args.repeat} ({os.cpu_count()} CPUs, load average {load:.2f})")
    stem_x = r["snowball_stem_s"] / r["pystemmer_stem_s"]
    build_x = r["snowball_build_s"] / r["pystemmer_build_s"]
    out(f"  snowballstemmer (baseline)  {r['snowball_stem_s']:8.3f} s")
    out(f"  PyStemmer                   {r['pystemmer_stem_s']:8.3f} s   {stem_x:.0f}x")
    out(f"match.Index over {args.entries:,} entries, stem cache empty")
    out(f"  snowballstemmer (baseline)  {r['snowball_build_s']:8.3f} s")
    out(f"  PyStemmer                   {r['pystemmer_build_s']:8.3f} s   {build_x:.1f}x")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
