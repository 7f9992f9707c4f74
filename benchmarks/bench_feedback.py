"""Time ranking with learned reader models: 10,000 readers with ratings x 2,000 entries, next to the same without.

The workload is bench_rank's (the fixture's titles and abstracts repeated to
2,000 entries; 10,000 keyword profiles, some with authors, categories,
exclusions, seeds).  Every reader gets a model of 20-60 ratings; the speed of
ranking does not depend on what the vectors say, so the entry vectors are
random unit rows (as the store would hold: float16 on disk, float32 here) and
a few hundred distinct models, fitted once, are shared out round robin and
decoded from their store blobs inside the timed run (what "load them once per
run" costs).

Both runs are the product's path, ``match.Index(entries, embeddings=...)``
and ``rank_many``, in the same process, alternating, best of ``--rounds``:

* ``without ratings``: no reader models;
* ``with ratings``: ``Index.reader_models`` filled as the pipeline does, so
  per block of readers :func:`newsletter.learn.blend_many` mixes the models'
  scores in (one matrix product per block) before the top-k selection.

Also printed: one model's fit time (paid only when a reader's ratings change).
BLAS runs as the product configures it (``learn`` keeps its small dense
products on one thread: see :mod:`newsletter.blas`).

Run:  python benchmarks/bench_feedback.py [--profiles 10000] [--entries 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time as clock
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from bench_rank import NOW, make_entries, make_profiles

from newsletter import learn, match
from newsletter.types import Entry, Profile

DIM = 384


def workload(
    profiles: int, entries: int, distinct_models: int
) -> tuple[list[Entry], list[Profile], dict[str, np.ndarray[Any, Any]], dict[str, bytes], float]:
    es = make_entries(entries)
    ps = make_profiles(profiles, es)
    rng = np.random.default_rng(11)
    vecs = rng.standard_normal((len(es), DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vectors = {e.id: vecs[i] for i, e in enumerate(es)}
    pick = random.Random(5)
    fitted: list[bytes] = []
    t0 = clock.perf_counter()
    for _ in range(distinct_models):
        n = pick.randint(20, 60)
        rows = pick.sample(range(len(es)), n)
        liked = max(2, n // 5)
        model = learn.fit(vecs[rows[:liked]], vecs[rows[liked:]], folds=learn.FOLDS)  # as ModelCache fits
        assert model is not None
        fitted.append(model.to_blob())
    fit_s = (clock.perf_counter() - t0) / distinct_models
    blobs = {p.id: fitted[i % len(fitted)] for i, p in enumerate(ps)}
    return es, ps, vectors, blobs, fit_s


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--models", type=int, default=200, help="distinct models fitted and shared out")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    es, ps, vectors, blobs, fit_s = workload(args.profiles, args.entries, args.models)
    match.Index(es).rank_many(ps[:200], NOW)  # warm the stemmer's and tokeniser's caches for both
    times: dict[str, list[float]] = {"without": [], "with": []}
    lists: dict[str, dict[str, list[Any]]] = {}
    for i in range(args.rounds):
        order = list(times) if i % 2 == 0 else list(reversed(times))  # alternate: drift hits every run
        for run in order:
            t0 = clock.perf_counter()
            index = match.Index(es, embeddings=vectors)
            if run == "with":  # loaded once per run, from the store's blobs
                index.reader_models = {p.id: learn.ReaderModel.from_blob(blobs[p.id]) for p in ps}
            lists[run] = index.rank_many(ps, NOW)
            times[run].append(clock.perf_counter() - t0)
    a, b = (min(times[k]) for k in times)
    changed = sum(
        1 for p in ps if [m.entry.id for m in lists["without"][p.id]] != [m.entry.id for m in lists["with"][p.id]]
    )

    def items(run: str) -> float:
        return sum(len(v) for v in lists[run].values()) / len(ps)

    out(f"{args.profiles} readers x {args.entries} entries ({os.cpu_count()} CPUs, load average {load:.2f} at start)")
    out(f"  without ratings: Index + rank_many               {a:8.2f} s   (best of {args.rounds}, alternating order)")
    out(f"  with ratings, models blended                     {b:8.2f} s   = {b / a:.2f} x  (target <= 1.30)")
    out(
        f"  items per reader: {items('without'):.1f} without, {items('with'):.1f} with models; lists changed: {changed}"
    )
    out(f"  one model's fit (20-60 ratings, L-BFGS, 5 folds){fit_s * 1000:8.1f} ms  (only when the ratings change)")
    return {"without_s": a, "with_s": b, "ratio": b / a, "fit_ms": fit_s * 1000}


if __name__ == "__main__":
    main(sys.argv[1:])
