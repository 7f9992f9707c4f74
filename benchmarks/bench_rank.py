"""Time ranking many readers: 10,000 profiles x 2,000 entries, next to a naive baseline.

The entries are the bundled arXiv fixture (334 real titles and abstracts)
repeated with fresh ids up to the wanted count; the profiles draw 2-4 keyword
phrases from those titles, and some add an author, a category, an exclusion
or two seed papers (ids of entries in the run, so the seed path is timed
too).  ``Index(entries)`` is built once, then ``Index.rank_many`` scores every
profile, reasons included.  The load average is printed: on a shared machine
the wall-clock figures move with it.

The baseline, measured in the same run on a subsample of profiles and
extrapolated, is the per-pair loop this module replaced: for every profile and
every entry, a regex per keyword over title and abstract.

With the shipped semantic model (``--semantic``, on by default when it loads),
the same profiles are ranked again by an Index given the entries' embeddings
(the fixture's 334 papers embedded once; a repeated paper reuses its vector,
as it would reuse its stored one) and the embedder: lexical and semantic
scores fused, "close in meaning" reasons with the closest abstract sentence
included.  The readers' phrases are embedded first, once each, and timed
apart: in a daily run they are embedded once and cached, not per ranking.
The issue's budget is fused <= 1.3 x lexical, measured in the same run.

``--repeat N`` runs N lexical/fused pairs back to back (each from a fresh Index) and prints every ratio and
the median, in wall and in CPU time: on a shared machine one pair can be off by 2x either way.

Run:  python benchmarks/bench_rank.py [--profiles 10000] [--entries 2000] [--no-semantic] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time as clock
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from pathlib import Path

import numpy as np

from newsletter import match, sources
from newsletter.embed import TextEmbedder, load_embedder, paper_text
from newsletter.types import Entry, Interests, Keyword, Profile

FEED = Path(__file__).resolve().parent.parent / "newsletter" / "samples" / "arxiv_cs.rss"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_entries(count: int) -> list[Entry]:
    base = [sources.merge(None, d, NOW) for d in sources.parse("arxiv", "bench", FEED.read_bytes())]
    out = []
    for i in range(count):
        e = base[i % len(base)]
        n = i // len(base)
        arxiv_id = f"2699.{i:05d}"  # seed papers name entries by this id, so they resolve
        out.append(replace(e, id=f"arxiv:{arxiv_id}", arxiv_id=arxiv_id, title=e.title + (f" ({n})" if n else "")))
    return out


def make_profiles(count: int, entries: Sequence[Entry], seed: int = 7) -> list[Profile]:
    rng = random.Random(seed)
    phrases = sorted(
        {" ".join(w[i : i + 2]) for e in entries[:334] for w in [e.title.split()] for i in range(len(w) - 1)}
        | {w for e in entries[:334] for w in e.title.split() if len(w) > 6}
    )
    authors = sorted({a for e in entries[:334] for a in e.authors})
    cats = sorted({c for e in entries[:334] for c in e.categories})
    out = []
    for i in range(count):
        kws = tuple(Keyword(p, rng.choice((1.0, 1.0, 2.0))) for p in rng.sample(phrases, rng.randint(2, 4)))
        out.append(
            Profile(
                id=f"r{i}",
                email=f"r{i}@example.org",
                name=f"r{i}",
                timezone="UTC",
                send_at=time(7),
                frequency="daily",
                interests=Interests(
                    keywords=kws,
                    exclude=(rng.choice(phrases),) if rng.random() < 0.3 else (),
                    authors=(rng.choice(authors),) if rng.random() < 0.2 else (),
                    categories=(rng.choice(cats),) if rng.random() < 0.3 else (),
                    papers=tuple(e.arxiv_id or "" for e in rng.sample(list(entries), 2)) if rng.random() < 0.1 else (),
                ),
            )
        )
    return out


def naive_rank(entries: Sequence[Entry], profile: Profile) -> list[tuple[float, str]]:
    """The per-pair baseline: regexes over every entry for every keyword."""
    patterns = [
        (k.weight, re.compile(r"\b" + r"[\W_]+".join(map(re.escape, re.findall(r"\w+", k.text.lower()))) + r"\b"))
        for k in profile.interests.keywords
    ]
    scored = []
    for e in entries:
        title, body = e.title.lower(), e.summary.lower()
        score = sum(2 * w if p.search(title) else w if p.search(body) else 0.0 for w, p in patterns)
        if score > 0:
            scored.append((score, e.id))
    scored.sort(reverse=True)
    return scored[: profile.max_items]


@dataclass
class Result:
    profiles: int
    entries: int
    build_s: float
    rank_s: float
    matches: int
    naive_sample: int
    naive_s: float
    fused_build_s: float | None = None
    fused_rank_s: float | None = None
    phrases: int = 0
    phrase_s: float | None = None
    docs_embed_s: float | None = None
    fused_matches: int = 0
    similar_reasons: int = 0
    distinct_papers: int = 0
    ratios: list[float] = field(default_factory=list)
    """fused / lexical (index + rank_many) of each repeat, lexical and fused run back to back."""
    cpu_ratios: list[float] = field(default_factory=list)
    """The same in CPU time of the process (every thread), which a shared machine's load moves less."""

    @property
    def naive_extrapolated_s(self) -> float:
        return self.naive_s / self.naive_sample * self.profiles


def run(
    profiles: int = 10_000,
    entries: int = 2_000,
    naive_sample: int = 50,
    semantic: bool = True,
    cache: Path | None = None,
    repeat: int = 1,
) -> Result:
    es = make_entries(entries)
    ps = make_profiles(profiles, es)
    t0 = clock.perf_counter()
    index = match.Index(es)
    t1 = clock.perf_counter()
    ranked = index.rank_many(ps, NOW)
    t2 = clock.perf_counter()
    sample = ps[: min(naive_sample, len(ps))]
    t3 = clock.perf_counter()
    for p in sample:
        naive_rank(es, p)
    t4 = clock.perf_counter()
    result = Result(profiles, entries, t1 - t0, t2 - t1, sum(len(v) for v in ranked.values()), len(sample), t4 - t3)
    embedder = load_embedder() if semantic else None
    if embedder is not None:
        _fused(result, es, ps, embedder, cache, repeat)
    return result


def _fused(
    result: Result,
    es: Sequence[Entry],
    ps: Sequence[Profile],
    embedder: TextEmbedder,
    cache: Path | None,
    repeat: int = 1,
) -> None:
    """The same profiles through the fused path: embeddings given, phrases cached, reasons with sentences."""
    first: dict[str, Entry] = {}
    for e in es:  # the fixture's papers; the rest repeat them
        first.setdefault(e.summary, e)
    at = {summary: i for i, summary in enumerate(first)}
    t0 = clock.perf_counter()
    if cache is not None and cache.exists() and len(cached := np.load(cache)) == len(first):
        docs = cached
    else:
        docs = embedder.embed([paper_text(e.title, e.summary) for e in first.values()])
        if cache is not None:
            np.save(cache, docs)
    result.docs_embed_s = clock.perf_counter() - t0
    result.distinct_papers = len(first)
    vectors = docs[[at[e.summary] for e in es]]
    texts = {t for p in ps for k in p.interests.keywords for t in (k.text,)}
    texts |= {", ".join(k.text for k in p.interests.keywords) for p in ps if match.SEMANTIC_JOINED > 0}
    t1 = clock.perf_counter()
    match.embed_phrases(embedder, sorted(texts))
    result.phrase_s, result.phrases = clock.perf_counter() - t1, len(texts)
    t2 = clock.perf_counter()
    index = match.Index(es, embeddings=vectors, embedder=embedder)
    t3 = clock.perf_counter()
    ranked = index.rank_many(ps, NOW)
    t4 = clock.perf_counter()
    result.fused_build_s, result.fused_rank_s = t3 - t2, t4 - t3
    result.fused_matches = sum(len(v) for v in ranked.values())
    result.similar_reasons = sum(1 for v in ranked.values() for m in v for r in m.reasons if r.kind == "similar")
    result.ratios.append((t4 - t2) / (result.build_s + result.rank_s))
    # Repeats: lexical then fused, back to back, each from a fresh Index; on a shared machine the load moves
    # between runs, and the median of same-moment ratios says more than one pair.
    for _ in range(repeat - 1):
        times = []
        for kwargs in ({}, {"embeddings": vectors, "embedder": embedder}):
            w0, c0 = clock.perf_counter(), clock.process_time()
            match.Index(es, **kwargs).rank_many(ps, NOW)  # type: ignore[arg-type]
            times.append((clock.perf_counter() - w0, clock.process_time() - c0))
        (lw, lc), (fw, fc) = times
        result.ratios.append(fw / lw)
        result.cpu_ratios.append(fc / lc)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Result:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--naive-sample", type=int, default=50, help="profiles timed with the naive loop")
    parser.add_argument("--no-semantic", action="store_true", help="the lexical path only")
    parser.add_argument("--vectors", type=Path, help="a .npy file keeping the papers' embeddings between runs")
    parser.add_argument("--repeat", type=int, default=1, help="lexical/fused pairs run back to back (median ratio)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    r = run(
        args.profiles,
        args.entries,
        args.naive_sample,
        semantic=not args.no_semantic,
        cache=args.vectors,
        repeat=args.repeat,
    )
    out(f"{r.profiles} profiles x {r.entries} entries ({os.cpu_count()} CPUs, load average {load:.2f} at start)")
    out(f"  index build (once)          {r.build_s:8.2f} s")
    out(f"  rank_many (all profiles)    {r.rank_s:8.2f} s   ({r.rank_s / r.profiles * 1000:.2f} ms per profile)")
    out(f"  matches returned            {r.matches:8d}")
    out(
        f"  naive per-pair regex loop   {r.naive_extrapolated_s:8.2f} s   "
        f"(extrapolated from {r.naive_sample} profiles: {r.naive_s:.2f} s; keywords only, no seeds/authors)"
    )
    total = r.build_s + r.rank_s
    out(f"  index + rank_many           {total:8.2f} s")
    out(f"  speed-up                    {r.naive_extrapolated_s / total:8.1f} x")
    if r.fused_rank_s is not None and r.fused_build_s is not None:
        out("  fused with the semantic model (same profiles, same run):")
        out(f"    embed {r.distinct_papers} distinct papers (once, at fetch time) {r.docs_embed_s:8.2f} s")
        out(f"    embed {r.phrases} distinct phrases (once, cached) {r.phrase_s:8.2f} s")
        out(f"    index build (once)        {r.fused_build_s:8.2f} s")
        out(f"    rank_many (all profiles)  {r.fused_rank_s:8.2f} s   ({r.similar_reasons} 'close in meaning' reasons)")
        out(f"    matches returned          {r.fused_matches:8d}")
        ratio = (r.fused_build_s + r.fused_rank_s) / total
        out(
            f"    index + rank_many         {r.fused_build_s + r.fused_rank_s:8.2f} s"
            f"   = {ratio:.2f} x lexical (budget 1.3 x)"
        )
        if len(r.ratios) > 1:
            walls = ", ".join(f"{x:.2f}" for x in r.ratios)
            cpus = ", ".join(f"{x:.2f}" for x in r.cpu_ratios)
            out(f"    {len(r.ratios)} pairs, fused / lexical wall: {walls}; median {statistics.median(r.ratios):.2f} x")
            out(f"    repeats' CPU time ratio: {cpus}; median {statistics.median(r.cpu_ratios):.2f} x")
        load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        out(f"    load average {load_end:.2f} at the end")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
