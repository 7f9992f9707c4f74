"""Time ranking with learned reader models: 10,000 readers with ratings x 2,000 entries, next to the same without.

The workload is bench_rank's (the fixture's titles and abstracts repeated to
2,000 entries; 10,000 keyword profiles, some with authors, categories,
exclusions, seeds).  Every reader gets a model of 20-60 ratings; the speed of
ranking does not depend on what the vectors say, so the entry vectors are
random unit rows (as the store would hold: float16 on disk, float32 here) and
a few hundred distinct models, fitted once, are shared out round robin and
decoded from their store blobs inside the timed run (what "load them once per
run" costs).

Both runs use the same ``Index`` in the same process, alternating, best of
``--rounds``:

* ``without ratings``: ``Index.rank_many`` as shipped;
* ``with ratings``: the same, with the wiring proposed for match.py: per
  block of readers, after the scores are computed and ruled out,
  :func:`newsletter.learn.blend_many` mixes the models' scores in (one matrix
  product per block) before the top-k selection, and a reader with a model
  keeps entries that matched none of their explicit interests (the model may
  want them).

Also printed: one model's fit time (paid only when a reader's ratings change).

On a busy machine run it both ways: OpenBLAS's threads spin for the dense
products (the blend's one per block, the fit's small ones) and multiply their
cost; ``OPENBLAS_NUM_THREADS=1`` (set before numpy is imported) avoids that.
Measured here (2 cores shared, load 8-14): 1.63 x with the default threads
(10,000 readers; fit 540 ms), 0.91 x with one thread (3,000 readers; fit 37 ms).

Run:  python benchmarks/bench_feedback.py [--profiles 10000] [--entries 2000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time as clock
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime
from typing import Any

import numpy as np
from bench_rank import NOW, make_entries, make_profiles

from newsletter import learn, match
from newsletter.types import Entry, Profile

DIM = 384


class LearningIndex(match.Index):
    """``match.Index`` with reader models blended in: the wiring the lead puts into match.py."""

    def __init__(
        self,
        entries: Sequence[Entry],
        vectors: Mapping[str, np.ndarray[Any, Any]],
        blobs: Mapping[str, bytes],
        *,
        keep_unmatched: bool = True,
    ) -> None:
        super().__init__(entries)
        self.keep_unmatched = keep_unmatched
        # The entry vectors in index row order (the Index sorts by id), once per run.
        self.vectors = np.vstack([vectors[e.id] for e in self.entries]).astype(np.float32)
        self.blobs = blobs
        self.models: dict[str, learn.ReaderModel | None] = {}
        self._block: tuple[Any, Any, Any] | None = None

    def _select(
        self,
        batch: Sequence[Profile],
        queries: Sequence[match._Query],
        excluded: Mapping[str, Set[str]],
        since: Mapping[str, datetime | None],
    ) -> match._Selection:
        models = []
        for p in batch:  # loaded once per run, from the store's blobs
            if p.id not in self.models:
                blob = self.blobs.get(p.id)
                self.models[p.id] = learn.ReaderModel.from_blob(blob) if blob else None
            models.append(self.models[p.id])
        self._block = learn.stack_models(models, DIM)
        scores, seed_scores, seed_sims = self._scores(queries)
        self._mask(scores, batch, queries, excluded, since)
        w, b, a = self._block
        learn.blend_many(scores, self.vectors, w, b, a)
        winners = self._winners(scores, [p.max_items for p in batch])
        values = [scores[j, rows].tolist() for j, rows in enumerate(winners)]
        return match._Selection(winners, values, seed_scores, seed_sims)

    def _mask(
        self,
        scores: np.ndarray[Any, Any],
        batch: Sequence[Profile],
        queries: Sequence[match._Query],
        excluded: Mapping[str, Set[str]],
        since: Mapping[str, datetime | None],
    ) -> None:
        """match.Index._mask, except that a reader with a model keeps entries that matched nothing explicit."""
        assert self._block is not None
        has_model = (self._block[2] > 0) & self.keep_unmatched
        floors = np.array([p.min_score if m else max(p.min_score, 1e-9) for p, m in zip(batch, has_model, strict=True)])
        cutoffs = np.array([c.timestamp() if (c := since.get(p.id)) is not None else -np.inf for p in batch])
        scores[cutoffs[:, None] >= self._first_seen[None, :]] = -np.inf
        readers: list[int] = []
        rows: list[int] = []
        for j, (profile, query) in enumerate(zip(batch, queries, strict=True)):
            gone = [r for e in excluded.get(profile.id, ()) if (r := self.row_of.get(e)) is not None]
            gone.extend(query.seed_rows)
            rows.extend(gone)
            readers.extend([j] * len(gone))
        scores[readers, rows] = -np.inf
        scores[scores < floors[:, None]] = -np.inf


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
        model = learn.fit(vecs[rows[:liked]], vecs[rows[liked:]])
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
    times: dict[str, list[float]] = {"without": [], "with": [], "with, floor kept": []}
    lists: dict[str, dict[str, list[Any]]] = {}
    for i in range(args.rounds):
        order = list(times) if i % 2 == 0 else list(reversed(times))  # alternate: drift hits every run
        for run in order:
            t0 = clock.perf_counter()
            if run == "without":
                lists[run] = match.Index(es).rank_many(ps, NOW)
            else:
                index = LearningIndex(es, vectors, blobs, keep_unmatched=run == "with")
                lists[run] = index.rank_many(ps, NOW)
            times[run].append(clock.perf_counter() - t0)
    a, b, c = (min(times[k]) for k in times)

    def changed(run: str) -> int:
        return sum(
            1 for p in ps if [m.entry.id for m in lists["without"][p.id]] != [m.entry.id for m in lists[run][p.id]]
        )

    def items(run: str) -> float:
        return sum(len(v) for v in lists[run].values()) / len(ps)

    out(f"{args.profiles} readers x {args.entries} entries ({os.cpu_count()} CPUs, load average {load:.2f} at start)")
    out(f"  without ratings: Index + rank_many               {a:8.2f} s   (best of {args.rounds}, alternating order)")
    out(f"  with ratings, models blended                     {b:8.2f} s   = {b / a:.2f} x  (target <= 1.30)")
    out(f"    the same, unmatched entries still floored out  {c:8.2f} s   = {c / a:.2f} x")
    out(
        f"  items per reader: {items('without'):.1f} without, {items('with'):.1f} with models "
        f"({items('with, floor kept'):.1f} floored); lists changed: {changed('with')} / {changed('with, floor kept')}"
    )
    out(f"  one model's fit (20-60 ratings, L-BFGS)          {fit_s * 1000:8.1f} ms  (only when the ratings change)")
    return {"without_s": a, "with_s": b, "floored_s": c, "ratio": b / a, "fit_ms": fit_s * 1000}


if __name__ == "__main__":
    main(sys.argv[1:])
