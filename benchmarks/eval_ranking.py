"""Offline evaluation of the ranking: precision@20 on three labelled listings.

Data: the bundled arXiv fixture feed (``newsletter/samples/arxiv_cs.rss``, 334
papers) and ``tests/data/listing_labels.json`` (which keyword-search listing
each paper came from: noisy, weak labels).  Two kinds of reader profile:

(a) keyword profiles: two or three phrases drawn from a small pool that a
    researcher would write from the listing's *name* (fixed below, chosen
    before looking at results, never fitted to the labels);
(b) seed-paper profiles: five papers drawn from the listing ("more like these").

Each is averaged over several random draws with fixed seeds and printed next
to baselines computed in the same run on the same candidates:

* TF-IDF centroid cosine (scikit-learn TfidfVectorizer, arxiv-sanity-lite's
  settings: word 1-2 grams, sublinear tf, English stop words);
* arxiv-sanity-style LinearSVC on that TF-IDF (C=0.01, balanced classes,
  positives = the seeds or the keyword text as one pseudo-document,
  negatives = everything else), as arxiv-sanity-lite ranks a tag;
* for keywords also arxiv-sanity-lite's substring search score.

arxiv-sanity-lite prunes terms with ``min_df=5, max_df=0.1``, tuned for its
corpus of many thousands of papers; on 334 papers that drops most topic words,
so the baselines are also run with ``min_df=1, max_df=1.0`` and the better of
the two is the one the targets compare against.

Run:  python benchmarks/eval_ranking.py [--draws N]
Needs scikit-learn (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import numpy as np

from newsletter import match, sources
from newsletter.types import Entry, Interests, Keyword, Profile

ROOT = Path(__file__).resolve().parent.parent
FEED = ROOT / "newsletter" / "samples" / "arxiv_cs.rss"
LABELS = ROOT / "tests" / "data" / "listing_labels.json"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
K = 20

KEYWORD_POOLS: dict[str, tuple[str, ...]] = {
    # What a researcher would type from the listing's name alone.
    "llm-training": ("LLM training", "large language model pretraining", "language model training", "pretraining"),
    "scalable-models": ("scalable models", "scaling laws", "model scaling", "large-scale training"),
    "quantization-and-efficient-training": (
        "quantization",
        "efficient training",
        "low-precision training",
        "quantized neural networks",
    ),
}

SANITY_TFIDF = {"min_df": 5, "max_df": 0.1}
"""arxiv-sanity-lite's own pruning (compute.py)."""
SMALL_TFIDF = {"min_df": 1, "max_df": 1.0}
"""The same vectoriser without pruning, fairer on a 334-paper corpus."""


def load_entries(feed: Path = FEED) -> list[Entry]:
    items = sources.parse("arxiv", "fixture", feed.read_bytes())
    merged: dict[str, Entry] = {}
    for d in items:
        e = sources.merge(merged.get(sources.entry_key(d)), d, NOW)
        merged[e.id] = e
    return list(merged.values())


def load_labels(path: Path = LABELS) -> dict[str, set[str]]:
    raw: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
    return {name: {f"arxiv:{i}" for i in ids} for name, ids in raw.items()}


def profile(keywords: Sequence[str] = (), papers: Sequence[str] = ()) -> Profile:
    return Profile(
        id="eval",
        email="eval@example.org",
        name="eval",
        timezone="UTC",
        send_at=time(7),
        frequency="daily",
        interests=Interests(keywords=tuple(Keyword(k) for k in keywords), papers=tuple(papers)),
        max_items=K,
    )


def precision(ranked: Sequence[str], relevant: set[str]) -> float:
    return sum(1 for i in ranked[:K] if i in relevant) / K


class Baselines:
    """TF-IDF (arxiv-sanity-lite settings) centroid cosine, LinearSVC and substring search."""

    def __init__(self, entries: Sequence[Entry], prune: dict[str, Any]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.entries = entries
        self.vectorizer = TfidfVectorizer(
            strip_accents="unicode",
            lowercase=True,
            analyzer="word",
            stop_words="english",
            token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
            ngram_range=(1, 2),
            norm="l2",
            use_idf=True,
            smooth_idf=True,
            sublinear_tf=True,
            **prune,
        )
        self.x = self.vectorizer.fit_transform([f"{e.title} | {e.summary}" for e in entries])
        self.row = {e.id: i for i, e in enumerate(entries)}

    def _order(self, scores: np.ndarray[Any, Any], skip: set[int]) -> list[str]:
        order = [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in skip]
        return [self.entries[i].id for i in order]

    def centroid(self, seed_ids: Sequence[str] = (), text: str = "") -> list[str]:
        rows = [self.row[i] for i in seed_ids]
        if text:
            vec = np.asarray(self.vectorizer.transform([text]).toarray()).ravel()
        else:
            vec = np.asarray(self.x[rows].mean(axis=0)).ravel()
        scores = np.asarray(self.x @ vec).ravel()
        return self._order(scores, set(rows))

    def svm(self, seed_ids: Sequence[str] = (), text: str = "") -> list[str]:
        from scipy import sparse
        from sklearn.svm import LinearSVC

        rows = [self.row[i] for i in seed_ids]
        if text:
            x = sparse.vstack([self.x, self.vectorizer.transform([text])]).tocsr()
            y = np.zeros(x.shape[0])
            y[-1] = 1
        else:
            x = self.x
            y = np.zeros(x.shape[0])
            y[rows] = 1
        clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        scores = clf.decision_function(self.x)
        return self._order(scores, set(rows))

    def sanity_search(self, text: str) -> list[str]:
        """arxiv-sanity-lite's ``search_rank``: query words found in authors, title, abstract."""
        words = text.lower().split()

        def score(e: Entry) -> float:
            authors = " ".join(e.authors).lower()
            title = e.title.lower()
            body = e.summary.lower()
            return (
                10.0 * sum(w in authors for w in words)
                + 20.0 * sum(w in title for w in words)
                + sum(min(3, body.count(w)) for w in words)
            )

        scores = np.array([score(e) for e in self.entries])
        return self._order(scores, set())


@dataclass
class Table:
    title: str
    rows: dict[str, list[float]]

    def mean(self, method: str) -> float:
        return statistics.fmean(self.rows[method])

    def render(self) -> str:
        lines = [self.title, f"{'method':<34} {'P@20':>6} {'min':>6} {'max':>6}"]
        for name, values in self.rows.items():
            lines.append(f"{name:<34} {statistics.fmean(values):6.3f} {min(values):6.3f} {max(values):6.3f}")
        return "\n".join(lines)


def evaluate(draws: int = 8, *, listings: Sequence[str] | None = None) -> dict[str, Table]:
    """Both tables; *draws* random profiles per listing (fixed seeds)."""
    entries = load_entries()
    labels = load_labels()
    ids = {e.id for e in entries}
    index = match.Index(entries)
    baselines = {
        "arxiv-sanity pruning": Baselines(entries, SANITY_TFIDF),
        "no pruning": Baselines(entries, SMALL_TFIDF),
    }
    names = list(listings or KEYWORD_POOLS)

    def ours(p: Profile) -> list[str]:
        return [m.entry.id for m in index.rank(p, NOW)]

    kw: dict[str, list[float]] = {}
    seeds: dict[str, list[float]] = {}

    def add(table: dict[str, list[float]], method: str, value: float) -> None:
        table.setdefault(method, []).append(value)

    for listing in names:
        relevant = labels[listing] & ids
        pool = KEYWORD_POOLS[listing]
        for draw in range(draws):
            rng = random.Random(f"{listing}/{draw}")
            phrases = rng.sample(pool, rng.choice((2, 3)))
            text = " ".join(phrases)
            add(kw, "newsletter (BM25F + phrases)", precision(ours(profile(keywords=phrases)), relevant))
            for label, b in baselines.items():
                add(kw, f"TF-IDF cosine ({label})", precision(b.centroid(text=text), relevant))
                add(kw, f"LinearSVC ({label})", precision(b.svm(text=text), relevant))
            add(kw, "arxiv-sanity search", precision(baselines["no pruning"].sanity_search(text), relevant))

            picked = rng.sample(sorted(relevant), 5)
            papers = [i.removeprefix("arxiv:") for i in picked]
            add(seeds, "newsletter (seed papers)", precision(ours(profile(papers=papers)), relevant))
            for label, b in baselines.items():
                add(seeds, f"TF-IDF centroid ({label})", precision(b.centroid(seed_ids=picked), relevant))
                add(seeds, f"LinearSVC ({label})", precision(b.svm(seed_ids=picked), relevant))
    n = len(names) * draws
    return {
        "keywords": Table(f"(a) keyword profiles, 2-3 phrases, {n} profiles over {len(names)} listings", kw),
        "seeds": Table(f"(b) seed-paper profiles, 5 seeds, {n} profiles over {len(names)} listings", seeds),
    }


def best_svm(table: Table) -> float:
    return max(table.mean(m) for m in table.rows if m.startswith("LinearSVC"))


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> dict[str, Table]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=8, help="random profiles per listing (default 8)")
    args = parser.parse_args(argv)
    tables = evaluate(args.draws)
    out("Keyword pools (2-3 drawn per profile):")
    for listing, pool in KEYWORD_POOLS.items():
        out(f"  {listing}: {', '.join(pool)}")
    for table in tables.values():
        out("")
        out(table.render())
    kw, sd = tables["keywords"], tables["seeds"]
    out("")
    out(f"keyword P@20 {kw.mean('newsletter (BM25F + phrases)'):.3f} (target >= 0.85)")
    margin = sd.mean("newsletter (seed papers)") - best_svm(sd)
    out(f"seed P@20 minus best LinearSVC: {margin:+.3f} (target >= +0.08)")
    return tables


if __name__ == "__main__":
    main(sys.argv[1:])
