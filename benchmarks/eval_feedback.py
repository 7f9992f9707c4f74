"""Offline evaluation of learning from ratings: precision on an unseen day after 0-3 days of 20 ratings.

Data: the 334 fixture papers (``newsletter/samples/arxiv_cs.rss``) and the
blind judgments of ``tests/data/judged_specific.json`` (13 specific
interests, with the phrases each reader typed) and
``tests/data/judged_relevance.json`` (the three broad listing topics, with
``eval_ranking.KEYWORD_POOLS`` as their phrases).

Protocol, per interest and draw (fixed seeds):

* the papers are shuffled and cut into four "days"; day 4 is the test day,
  never rated (the same test day after 0, 1, 2 and 3 days of ratings, so the
  curve does not move with one day's difficulty);
* a simulated reader starts from a keyword profile (the phrases they typed)
  or a seed profile (5 judged-relevant papers, then left out of every day);
* on days 1, 2, 3 the system shows its top 20 and the reader rates every one
  by the judgment: relevant -> liked, otherwise disliked (a "calibrate"
  variant also rates one extra pick per day, :func:`newsletter.learn.calibration_pick`);
* after each day, precision on day 4 at ``min(20, relevant that day)``.

Interests are kept when at least ``MIN_RELEVANT`` relevant papers remain (a
few per day); a draw whose test day has fewer than two relevant is skipped.

Methods, all in the same run on the same draws:

* ``profile, no ratings``: the base ranker alone (the same profile, ignoring ratings);
* ``ours``: :func:`newsletter.learn.blend` of the base ranker with the reader's
  model (logistic regression / Rocchio on MiniLM embeddings; the profile's seed
  papers and its phrases embedded as one sentence count as liked papers) - the shipped design;
* ``ours without the phrases' vector``: the same, the model trained on ratings and seeds only;
* ``ours + liked as lexical seeds``: the liked papers also seed the lexical Index
  (:func:`newsletter.learn.with_liked_seeds`);
* ``model alone``: the same model without the explicit interests;
* ``ours + lexical features``: the model on MiniLM (+) the TF-IDF row (each half);
* ``ours + calibrate``: ours, plus one calibration pick rated per day (21 ratings a day);
* ``LinearSVC TF-IDF``: arxiv-sanity's method trained on the *same ratings* that
  ``ours`` collected (TF-IDF word 1-2 grams, sublinear tf, C=0.01, balanced;
  positives: liked papers, seeds or the phrases as one pseudo-document;
  negatives: every other paper of the days seen and of the test day, as arxiv-sanity
  treats untagged papers).

The base ranker is pluggable: any ``(entries, profile) -> scores`` (one score
per entry, in the given order; ``-inf`` for ruled out).  The default is
``newsletter.match.Index`` as it is (lexical); ``--base`` names another one as
``module:function`` taking the list of all entries and returning such a ranker.

Each cell is the mean over (interest, draw) with its standard error (the
draws share papers, so it is a little optimistic).

Run:  python benchmarks/eval_feedback.py [--draws N] [--set specific|broad|both]
Needs scikit-learn (the ``bench`` extra) and the embedding model (``newsletter.embed``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eval_ranking import KEYWORD_POOLS, SMALL_TFIDF, load_entries
from eval_ranking import profile as make_profile

from newsletter import learn, match
from newsletter.types import Entry, Feedback, Profile

ROOT = Path(__file__).resolve().parent.parent
SPECIFIC = ROOT / "tests" / "data" / "judged_specific.json"
BROAD = ROOT / "tests" / "data" / "judged_relevance.json"
DAYS = 4
SHOWN = 20
SEEDS = 5
MIN_RELEVANT = 12
"""An interest is evaluated when at least this many relevant papers remain (three a day on average)."""

Scores = np.ndarray[Any, Any]
BaseRanker = Callable[[Sequence[Entry], Profile], Scores]


@dataclass(frozen=True)
class Interest:
    name: str
    phrases: tuple[str, ...]
    relevant: frozenset[str]


def load_interests(which: str) -> list[Interest]:
    if which == "specific":
        raw = json.loads(SPECIFIC.read_text(encoding="utf-8"))
        return [
            Interest(k, tuple(p["keywords"]), frozenset(f"arxiv:{i}" for i in raw["judged"][k]))
            for k, p in raw["profiles"].items()
        ]
    raw = json.loads(BROAD.read_text(encoding="utf-8"))
    return [
        Interest(k, pool[:3], frozenset(f"arxiv:{i}" for i in raw[k]))
        for k, pool in KEYWORD_POOLS.items()  # the first three phrases: fixed, not drawn
    ]


def lexical_base(all_entries: Sequence[Entry]) -> BaseRanker:
    """``newsletter.match.Index`` as shipped: the explicit-interest scores, seeds resolved from every paper."""
    by_id = {e.id: e for e in all_entries}
    cache: dict[tuple[str, ...], match.Index] = {}

    def rank(entries: Sequence[Entry], profile: Profile) -> Scores:
        key = tuple(e.id for e in entries)
        index = cache.get(key)
        if index is None:
            index = cache[key] = match.Index(entries)
        scores, _, _ = index._scores([index._query(profile, by_id)])
        return np.asarray(scores[0])[[index.row_of[e.id] for e in entries]]

    return rank


@dataclass
class Corpus:
    entries: list[Entry]
    row: dict[str, int]
    emb: np.ndarray[Any, Any]
    """MiniLM vectors, one row per entry."""
    tfidf: Any
    """sklearn TF-IDF (unit rows), one row per entry: the SVM's features."""
    vectorizer: Any
    mixed: np.ndarray[Any, Any]
    """MiniLM and TF-IDF side by side (dense), each half scaled by 1/sqrt(2): unit rows again."""
    embedder: Any
    queries: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)

    def query_vector(self, profile: Profile) -> np.ndarray[Any, Any]:
        """The reader's phrases embedded as one sentence (as the semantic ranker caches it); none: 0 rows."""
        text = ", ".join(k.text for k in profile.interests.keywords)
        if not text:
            return np.zeros((0, self.emb.shape[1]), dtype=np.float32)
        if text not in self.queries:
            self.queries[text] = np.asarray(self.embedder.embed([text]), dtype=np.float32)
        return self.queries[text]


def build_corpus(entries: list[Entry]) -> Corpus:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from newsletter import embed

    embedder = embed.load_embedder()
    if embedder is None:
        raise SystemExit("the embedding model did not load (see the warning above)")
    texts = [embed.paper_text(e.title, e.summary) for e in entries]
    # Re-runs reuse the vectors (as the store would): keyed by the model and the texts.
    digest = hashlib.sha256("\x00".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    cached = Path(tempfile.gettempdir()) / f"newsletter-eval-feedback-{digest}.npy"
    if cached.exists():
        emb = np.load(cached)
    else:
        t0 = time.perf_counter()
        emb = embedder.embed(texts)
        print(f"embedded {len(entries)} papers in {time.perf_counter() - t0:.1f} s ({embedder.name})", file=sys.stderr)
        np.save(cached, emb)
    vectorizer = TfidfVectorizer(
        strip_accents="unicode",
        lowercase=True,
        stop_words="english",
        token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
        ngram_range=(1, 2),
        sublinear_tf=True,
        **SMALL_TFIDF,
    )
    tfidf = vectorizer.fit_transform([f"{e.title} | {e.summary}" for e in entries])
    mixed = np.hstack([np.asarray(emb), tfidf.toarray()]).astype(np.float32) / math.sqrt(2.0)
    row = {e.id: i for i, e in enumerate(entries)}
    return Corpus(entries, row, np.asarray(emb), tfidf, vectorizer, mixed, embedder)


def precision(scores: Scores, day: Sequence[int], corpus: Corpus, relevant: frozenset[str]) -> float:
    """P@min(20, relevant on the day), ties to the earlier paper."""
    rel = sum(1 for r in day if corpus.entries[r].id in relevant)
    k = min(SHOWN, rel)
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return sum(1 for i in order if corpus.entries[day[i]].id in relevant) / k


@dataclass
class Reader:
    """One simulated reader of one method: their ratings so far."""

    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    days: list[list[int]] = field(default_factory=list)
    """The rows rated each day, in order."""


def svm_scores(
    corpus: Corpus, day: Sequence[int], profile: Profile, seeds: Sequence[int], reader: Reader, seen: Sequence[int]
) -> Scores:
    """arxiv-sanity: a LinearSVC on TF-IDF, positives the liked papers (or seeds / the phrases), rest negative."""
    from scipy import sparse
    from sklearn.svm import LinearSVC

    pos = [*seeds, *reader.liked]
    rows = list(dict.fromkeys([*pos, *reader.disliked, *seen, *day]))
    x = corpus.tfidf[rows]
    y = np.array([1 if r in set(pos) else 0 for r in rows])
    if profile.interests.keywords:
        text = " ".join(k.text for k in profile.interests.keywords)
        x = sparse.vstack([x, corpus.vectorizer.transform([text])]).tocsr()
        y = np.concatenate([y, [1]])
    clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
    clf.fit(x, y)
    return np.asarray(clf.decision_function(corpus.tfidf[list(day)]))


class System:
    """A method: how it scores a day for a reader, and whether it adds a calibration pick."""

    def __init__(
        self,
        base: BaseRanker,
        features: str = "emb",
        use_base: bool = True,
        calibrate: bool = False,
        learns: bool = True,
        liked_as_seeds: bool = False,
        query_positive: bool = True,
    ) -> None:
        self.base, self.features, self.use_base, self.calibrate = base, features, use_base, calibrate
        self.learns, self.liked_as_seeds, self.query_positive = learns, liked_as_seeds, query_positive

    def vectors(self, corpus: Corpus) -> np.ndarray[Any, Any]:
        return corpus.mixed if self.features == "mixed" else corpus.emb

    def model(self, corpus: Corpus, profile: Profile, seeds: Sequence[int], reader: Reader) -> learn.ReaderModel | None:
        x = self.vectors(corpus)
        positives = x[list(seeds)]
        if self.query_positive:  # the phrases' vector counts as one liked paper
            q = corpus.query_vector(profile)
            if self.features == "mixed" and len(q):
                text = ", ".join(k.text for k in profile.interests.keywords)
                lexical = corpus.vectorizer.transform([text]).toarray()
                q = np.hstack([q, lexical]).astype(np.float32) / math.sqrt(2.0)
            if len(q):
                positives = np.vstack([positives, q])
        return learn.fit(x[reader.liked], x[reader.disliked], seeds=positives)

    def scores(
        self, corpus: Corpus, day: Sequence[int], profile: Profile, seeds: Sequence[int], reader: Reader
    ) -> tuple[Scores, learn.ReaderModel | None]:
        if self.liked_as_seeds:
            liked = [corpus.entries[r].id for r in reader.liked]
            profile = learn.with_liked_seeds(profile, Feedback(liked=tuple(liked)))
        base = self.base([corpus.entries[r] for r in day], profile)
        if not self.learns:
            return base, None
        model = self.model(corpus, profile, seeds, reader)
        x = self.vectors(corpus)[list(day)]
        if not self.use_base:
            if model is None:
                return base, None
            return model.score(x).astype(np.float64), model
        return learn.blend(base, model, x), model


def run_reader(
    corpus: Corpus,
    days: list[list[int]],
    interest: Interest,
    profile: Profile,
    seeds: Sequence[int],
    systems: Mapping[str, System],
) -> dict[str, list[float]]:
    """Precision on the last day after 0..DAYS-1 days of ratings, per method."""
    test = days[-1]
    out: dict[str, list[float]] = {}
    readers = {name: Reader() for name in systems}
    for name, system in systems.items():
        out[name] = []
        reader = readers[name]
        for k in range(DAYS):
            s, _ = system.scores(corpus, test, profile, seeds, reader)
            out[name].append(precision(s, test, corpus, interest.relevant))
            if k == DAYS - 1:
                break
            day = days[k]
            s, model = system.scores(corpus, day, profile, seeds, reader)
            order = [int(i) for i in np.argsort(-s, kind="stable") if np.isfinite(s[i])][:SHOWN]
            rated = [day[i] for i in order]
            if system.calibrate:
                pick = learn.calibration_pick(s, model, system.vectors(corpus)[day], shown=SHOWN, pool=50)
                if pick is not None:
                    rated.append(day[pick])
            reader.days.append(rated)
            for r in rated:
                (reader.liked if corpus.entries[r].id in interest.relevant else reader.disliked).append(r)
    # arxiv-sanity's SVM on the ratings "ours" collected, day by day.
    ours = readers["ours"]
    out["LinearSVC TF-IDF, same ratings"] = []
    for k in range(DAYS):
        seen_rated = {r for d in ours.days[:k] for r in d}
        reader = Reader([r for r in ours.liked if r in seen_rated], [r for r in ours.disliked if r in seen_rated])
        seen = [r for d in days[:k] for r in d]
        s = svm_scores(corpus, test, profile, seeds, reader, seen)
        out["LinearSVC TF-IDF, same ratings"].append(precision(s, test, corpus, interest.relevant))
    return out


def evaluate(which: str, kind: str, draws: int, base_factory: Callable[[Sequence[Entry]], BaseRanker]) -> None:
    entries = load_entries()
    corpus = CORPUS.get("c") or CORPUS.setdefault("c", build_corpus(entries))
    base = base_factory(corpus.entries)
    systems = {
        "profile, no ratings": System(base, learns=False),
        "ours": System(base),
        "model alone": System(base, use_base=False),
        "ours + lexical features": System(base, features="mixed"),
        "ours + calibrate (21/day)": System(base, calibrate=True),
        "ours + liked as lexical seeds": System(base, liked_as_seeds=True),
        "ours without the phrases' vector": System(base, query_positive=False),
    }
    results: dict[str, list[list[float]]] = {}
    used: list[str] = []
    n = len(corpus.entries)
    for interest in load_interests(which):
        for draw in range(draws):
            rng = random.Random(f"{which}/{kind}/{interest.name}/{draw}")
            seeds: list[int] = []
            if kind == "seed":
                pool = sorted(r for r in range(n) if corpus.entries[r].id in interest.relevant)
                seeds = rng.sample(pool, SEEDS) if len(pool) >= SEEDS else []
                if not seeds:
                    continue
            if len(interest.relevant) - len(seeds) < MIN_RELEVANT:
                break
            rows = [r for r in range(n) if r not in set(seeds)]
            rng.shuffle(rows)
            days = [sorted(rows[i::DAYS]) for i in range(DAYS)]
            if sum(1 for r in days[-1] if corpus.entries[r].id in interest.relevant) < 2:
                continue
            if kind == "seed":
                profile = make_profile(papers=[corpus.entries[r].arxiv_id or "" for r in seeds])
            else:
                profile = make_profile(keywords=interest.phrases)
            got = run_reader(corpus, days, interest, profile, seeds, systems)
            for name, values in got.items():
                results.setdefault(name, []).append(values)
            used.append(interest.name)
    names = sorted(set(used), key=used.index)
    print(
        f"\n{which} set, {kind} profiles: {len(used)} readers ({len(names)} interests x <= {draws} draws: "
        f"{', '.join(names)})"
    )
    print(f"{'method':<34} " + " ".join(f"{f'{k} day' + ('s' if k != 1 else ''):>14}" for k in range(DAYS)))
    for name, rows_ in results.items():
        cells = []
        for k in range(DAYS):
            v = [r[k] for r in rows_]
            se = statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0
            cells.append(f"{statistics.fmean(v):7.3f} +-{se:5.3f}")
        print(f"{name:<34} " + " ".join(cells))
    ours, plain, svm = results["ours"], results["profile, no ratings"], results["LinearSVC TF-IDF, same ratings"]
    for k in range(1, DAYS):
        lift = [o[k] - p[k] for o, p in zip(ours, plain, strict=True)]
        over = [o[k] - s[k] for o, s in zip(ours, svm, strict=True)]
        se_l = statistics.stdev(lift) / math.sqrt(len(lift))
        se_o = statistics.stdev(over) / math.sqrt(len(over))
        print(
            f"  after {k} day(s): ours - no ratings {statistics.fmean(lift):+.3f} +-{se_l:.3f} (paired), "
            f"ours - LinearSVC {statistics.fmean(over):+.3f} +-{se_o:.3f}"
        )


CORPUS: dict[str, Corpus] = {}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5, help="day splits (and seed draws) per interest")
    parser.add_argument("--set", choices=("specific", "broad", "both"), default="both")
    parser.add_argument("--kind", choices=("keyword", "seed", "both"), default="both")
    parser.add_argument(
        "--base", default="", help="module:function(all_entries) -> (entries, profile) -> scores; default lexical"
    )
    args = parser.parse_args(argv)
    factory: Callable[[Sequence[Entry]], BaseRanker] = lexical_base
    if args.base:
        module, _, func = args.base.partition(":")
        factory = getattr(importlib.import_module(module), func)
    print(
        f"learning from ratings: {DAYS} days, top {SHOWN} rated per day, P@min(20, relevant) on the unseen day "
        f"{DAYS}; model constants: L2={learn.L2}, half weight at {learn.HALF_WEIGHT_AT} ratings, "
        f"cap {learn.MAX_MODEL_WEIGHT}"
    )
    for which in ("specific", "broad") if args.set == "both" else (args.set,):
        for kind in ("keyword", "seed") if args.kind == "both" else (args.kind,):
            evaluate(which, kind, args.draws, factory)


if __name__ == "__main__":
    main(sys.argv[1:])
