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

Methods, all in the same run on the same draws (:class:`Learner`: the
general knobs of :mod:`newsletter.learn`, never a topic):

* ``profile, no ratings``: the base ranker alone (the same profile, ignoring ratings);
* ``as on main``: the product before this round: liked papers added to the
  profile's seeds (:func:`newsletter.learn.with_liked_seeds`), the Index's
  floor, then :func:`newsletter.learn.blend` with a model of the ratings alone;
* ``before``: the product before learn.VERSION 3: the model also trained on the profile's seed
  papers and its phrases embedded as one sentence (as liked papers), its
  share scaled by its trust (``2 AUC - 1`` on the reader's own ratings, 5 folds);
* ``shipped``: the product now: as ``before``, the ridge penalty centred on
  ``learn.PHRASE_PRIOR`` times the phrases' vector instead of 0 (seed-only profiles: unchanged);
* stacking (tried, not kept): one logistic regression on the embedding and the
  reader's own z-scored explicit-interest score of each rated paper (as shown
  that day), its score the ranking (no share), optionally with the base's
  weight penalised toward a prior;
* share schedules (tried, not kept): the share from the trust alone, ``n/(n+5)`` capped at 1;
* the other candidates: blend share, penalty, Rocchio instead of logistic,
  weak negatives (unshown papers of the days seen), unmatched entries kept;
* shown apart, never chosen: the model alone, the shipped model with one
  calibration pick rated a day (:func:`newsletter.learn.calibration_pick`),
  and models with lexical features too (MiniLM (+) the TF-IDF row, each half),
  which the product does not have;
* ``LinearSVC TF-IDF``: arxiv-sanity's method trained on the *same ratings*
  each method collected (TF-IDF word 1-2 grams, sublinear tf, C=0.01, balanced;
  positives: liked papers, seeds or the phrases as one pseudo-document;
  negatives: every other paper of the days seen and of the test day, as arxiv-sanity
  treats untagged papers).

Held out: leave one interest out, each interest's readers get the candidate
that did best (mean precision after 1, 2, 3 days) on the other interests;
those rows are the figures to quote for a chosen learner.

The base ranker is pluggable: any ``(entries, profile) -> scores`` (one score
per entry, in the given order; ``-inf`` for ruled out).  The default,
``fused``, is ``newsletter.match.Index`` as the product runs it (words fused
with MiniLM meaning, the stored vectors); ``lexical`` is words alone;
``--base`` also takes ``module:function`` taking the list of all entries and
returning such a ranker.

Each cell is the mean over (interest, draw) with its standard error (the
draws share papers, so it is a little optimistic).

Run:  python benchmarks/eval_feedback.py [--draws N] [--set specific|broad|both] [--kind keyword|seed|both]
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
from dataclasses import dataclass, field, replace
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
FRESH_MIN = 6
"""``--fresh``: only the interests with FRESH_MIN..MIN_RELEVANT-1 relevant papers, which the default run never
uses: a check of a design chosen on the others (noisier: about two relevant papers a day)."""

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


def _index_scores(index: match.Index, profile: Profile, by_id: Mapping[str, Entry], entries: Sequence[Entry]) -> Scores:
    """The Index's explicit-interest scores of *entries* (before the floor and exclusions of ``_mask``)."""
    phrases = index._batch_phrases([profile])
    scores = index._scores([index._query(profile, by_id, phrases)])[0]
    return np.asarray(scores[0])[[index.row_of[e.id] for e in entries]]


def lexical_base(all_entries: Sequence[Entry]) -> BaseRanker:
    """``newsletter.match.Index`` on words alone: the explicit-interest scores, seeds resolved from every paper."""
    by_id = {e.id: e for e in all_entries}
    cache: dict[tuple[str, ...], match.Index] = {}

    def rank(entries: Sequence[Entry], profile: Profile) -> Scores:
        key = tuple(e.id for e in entries)
        index = cache.get(key)
        if index is None:
            index = cache[key] = match.Index(entries)
        return _index_scores(index, profile, by_id, entries)

    return rank


def fused_base(all_entries: Sequence[Entry]) -> BaseRanker:
    """``newsletter.match.Index`` as the product runs it: words fused with MiniLM meaning (the stored vectors)."""
    corpus = CORPUS.get("c") or CORPUS.setdefault("c", build_corpus(list(all_entries)))
    by_id = {e.id: e for e in all_entries}
    vectors = {e.id: corpus.emb[corpus.row[e.id]] for e in all_entries}
    cache: dict[tuple[str, ...], match.Index] = {}

    def rank(entries: Sequence[Entry], profile: Profile) -> Scores:
        key = tuple(e.id for e in entries)
        index = cache.get(key)
        if index is None:
            index = cache[key] = match.Index(entries, embeddings=vectors, embedder=corpus.embedder)
        return _index_scores(index, profile, by_id, entries)

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
    zbase: dict[int, float] = field(default_factory=dict)
    """Each rated row's explicit-interest score, z-scored over its day as it was shown (stacking's feature)."""


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


@dataclass(frozen=True)
class Learner:
    """One way of learning from ratings: the general knobs of :mod:`newsletter.learn`, tried in the same run.

    The defaults are the product as shipped before this round: the model on
    the ratings' MiniLM vectors only, liked papers added to the profile's
    seeds, the Index's floor (entries matching nothing explicit are out)
    applied before the blend, share ``n / (n + 10)`` capped at 0.8.
    """

    name: str
    learns: bool = True
    use_base: bool = True
    features: str = "emb"
    """``emb`` (MiniLM) or ``mixed`` (MiniLM and the TF-IDF row, each half)."""
    profile_positives: bool = False
    """The profile's seed papers and its phrases embedded as one sentence count as liked papers in the fit."""
    liked_as_seeds: bool = True
    floor: bool = True
    """Entries the explicit interests did not match at all stay out (the Index's ``min_score`` floor)."""
    l2: float = learn.L2
    half: float = learn.HALF_WEIGHT_AT
    cap: float = learn.MAX_MODEL_WEIGHT
    weak: float = 0.0
    """Weight of each paper of the days seen that the reader was not shown, as a negative (arxiv-sanity's view)."""
    calibrate: bool = False
    center: bool = False
    """Fit on vectors less the day's mean paper vector (free at scoring time: the blend ignores the bias)."""
    kind: str = "logistic"
    folds: int = 0
    """Cross-validate the model on the reader's ratings; its share is scaled by ``2 AUC - 1``."""
    stack: float = 0.0
    """Stacking (> 0): one logistic regression on the embedding and the reader's own z-scored base score (this
    scale, so its penalty is ``l2 / stack**2``): it learns how far to trust the profile against the content,
    and its score is the ranking (no share).  Below :data:`newsletter.learn.MIN_PER_CLASS` of a kind: the
    learner's blend as without it."""
    prior: float = 0.0
    """The ridge penalty's centre is this times the profile's phrases embedded (a unit vector) instead of 0."""
    stack_offset: float = 0.0
    """Stacking: the base's weight is this plus a penalised change (the prior is the profile's own ranking)."""
    stack_profile: bool = False
    """Stacking: the profile's phrases and seeds also count as liked papers, at the liked papers' mean z(base)."""
    rate_all: bool = False
    """A ceiling, not a reader: every paper of each day seen is rated (about 80 a day, unbiased), not the top 20."""


def _zscore(base: Scores) -> Scores:
    """*base* z-scored over its finite cells (the others stay -inf); a constant row is all zeros."""
    fin = np.isfinite(base)
    out = np.full(base.shape, -np.inf)
    if fin.any():
        v = base[fin]
        sd = float(v.std())
        out[fin] = (v - v.mean()) / (sd if sd > 1e-12 else 1.0)
    return out


def fit_stacked(
    x_pos: Scores,
    z_pos: Scores,
    x_neg: Scores,
    z_neg: Scores,
    l2: float,
    scale: float,
    offset: float = 0.0,
) -> tuple[Scores, float]:
    """Class-balanced L2 logistic regression on ``[x, scale * z]``: the embedding weights and the base's weight.

    With *offset*, the base's weight is ``offset + delta`` and the penalty is on ``delta``: the prior is the
    profile's own ranking (the base at log-odds *offset* per standard deviation), which the ratings move.
    """
    from scipy import optimize

    x = np.vstack([x_pos, x_neg])
    z = np.concatenate([z_pos, z_neg]) * scale
    y = np.concatenate([np.ones(len(x_pos)), -np.ones(len(x_neg))])
    n, d = len(y), x.shape[1]
    sample = np.concatenate([np.full(len(x_pos), 0.5 / len(x_pos)), np.full(len(x_neg), 0.5 / len(x_neg))]) * n
    fixed = offset * z / scale

    def loss(theta: Scores) -> tuple[float, Scores]:
        w, c, b = theta[:d], theta[d], theta[d + 1]
        margin = y * (x @ w + c * z + fixed + b)
        value = float(sample @ np.logaddexp(0.0, -margin) + 0.5 * l2 * (w @ w + c * c))
        g = -sample * y * 0.5 * (1.0 + np.tanh(-0.5 * margin))
        return value, np.concatenate([x.T @ g + l2 * w, [z @ g + l2 * c, g.sum()]])

    start = np.zeros(d + 2)
    start[:d] = x_pos.mean(axis=0) - learn.ROCCHIO_NEGATIVE * x_neg.mean(axis=0)
    found = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 200, "gtol": 1e-6})
    theta = np.asarray(found.x)
    return theta[:d], float(theta[d]) * scale + offset


def _prior(corpus: Corpus, profile: Profile, scale: float) -> Scores | None:
    """The ridge centre: *scale* times the profile's phrases embedded as one sentence; None without phrases."""
    q = corpus.query_vector(profile)
    return np.asarray(scale * q[0], dtype=np.float64) if len(q) else None


class System:
    """A learner on a base ranker: how it scores a day for a reader."""

    def __init__(self, base: BaseRanker, how: Learner) -> None:
        self.base, self.how = base, how

    def vectors(self, corpus: Corpus) -> np.ndarray[Any, Any]:
        return corpus.mixed if self.how.features == "mixed" else corpus.emb

    def model(
        self, corpus: Corpus, profile: Profile, seeds: Sequence[int], reader: Reader, seen: Sequence[int]
    ) -> learn.ReaderModel | None:
        how, x = self.how, self.vectors(corpus)
        positives = x[list(seeds)] if how.profile_positives else x[[]]
        if how.profile_positives:  # the phrases' vector counts as one liked paper
            q = corpus.query_vector(profile)
            if how.features == "mixed" and len(q):
                text = ", ".join(k.text for k in profile.interests.keywords)
                lexical = corpus.vectorizer.transform([text]).toarray()
                q = np.hstack([q, lexical]).astype(np.float32) / math.sqrt(2.0)
            if len(q):
                positives = np.vstack([positives, q])
        rated = {*reader.liked, *reader.disliked}
        weak = x[[r for r in seen if r not in rated]] if how.weak > 0 else None
        return learn.fit(
            x[reader.liked],
            x[reader.disliked],
            seeds=positives,
            l2=how.l2,
            weak=weak,
            weak_weight=how.weak,
            center=x.mean(axis=0) if how.center else None,
            kind=how.kind,
            folds=how.folds,
            prior=_prior(corpus, profile, how.prior) if how.prior > 0 and how.features == "emb" else None,
        )

    def scores(
        self,
        corpus: Corpus,
        day: Sequence[int],
        profile: Profile,
        seeds: Sequence[int],
        reader: Reader,
        seen: Sequence[int],
    ) -> tuple[Scores, learn.ReaderModel | None]:
        how = self.how
        if how.learns and how.liked_as_seeds and reader.liked:
            liked = [corpus.entries[r].arxiv_id or "" for r in reader.liked]
            profile = learn.with_liked_seeds(profile, Feedback(liked=tuple(f"arxiv:{i}" for i in liked)))
        base = np.asarray(self.base([corpus.entries[r] for r in day], profile), dtype=np.float64)
        model = self.model(corpus, profile, seeds, reader, seen) if how.learns else None
        if how.floor or model is None:  # the Index's _mask: below min_score (matched nothing) is out
            base = np.where(base >= 1e-9, base, -np.inf)
        if how.stack > 0 and how.learns:
            z = _zscore(base)
            for r, v in zip(day, z, strict=True):
                reader.zbase.setdefault(r, float(v))
            liked = [r for r in reader.liked if np.isfinite(reader.zbase.get(r, -np.inf))]
            disliked = [r for r in reader.disliked if np.isfinite(reader.zbase.get(r, -np.inf))]
            if len(liked) >= learn.MIN_PER_CLASS and len(disliked) >= learn.MIN_PER_CLASS:
                x = self.vectors(corpus)
                xp, zp = x[liked].astype(np.float64), np.array([reader.zbase[r] for r in liked])
                if how.stack_profile:
                    extra = np.vstack([x[list(seeds)], corpus.query_vector(profile)]).astype(np.float64)
                    xp, zp = np.vstack([extra, xp]), np.concatenate([np.full(len(extra), zp.mean()), zp])
                w, c = fit_stacked(
                    xp,
                    zp,
                    x[disliked].astype(np.float64),
                    np.array([reader.zbase[r] for r in disliked]),
                    how.l2,
                    how.stack,
                    how.stack_offset,
                )
                s = x[list(day)].astype(np.float64) @ w + c * np.where(np.isfinite(z), z, 0.0)
                return np.where(np.isfinite(base), s, -np.inf), model
        if model is None:
            return base, None
        x = self.vectors(corpus)[list(day)]
        if not how.use_base:
            s = model.score(x).astype(np.float64)
            return np.where(np.isfinite(base) | ~how.floor, s, -np.inf), model
        share = learn.model_weight(model.ratings, how.half, how.cap) * model.trust
        return learn.blend(base, model, x, share=share), model


SVM = "LinearSVC TF-IDF, same ratings"


def run_reader(
    corpus: Corpus,
    days: list[list[int]],
    interest: Interest,
    profile: Profile,
    seeds: Sequence[int],
    systems: Mapping[str, System],
) -> dict[str, tuple[list[float], list[float]]]:
    """Per method, precision on the last day after 0..DAYS-1 days of ratings, and the LinearSVC's on its ratings."""
    test = days[-1]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name, system in systems.items():
        got: list[float] = []
        reader = Reader()
        for k in range(DAYS):
            seen = [r for d in days[:k] for r in d]
            s, _ = system.scores(corpus, test, profile, seeds, reader, seen)
            got.append(precision(s, test, corpus, interest.relevant))
            if k == DAYS - 1:
                break
            day = days[k]
            s, model = system.scores(corpus, day, profile, seeds, reader, seen)
            order = [int(i) for i in np.argsort(-s, kind="stable") if np.isfinite(s[i])][:SHOWN]
            rated = list(day) if system.how.rate_all else [day[i] for i in order]
            if system.how.calibrate:
                pick = learn.calibration_pick(s, model, system.vectors(corpus)[day], shown=SHOWN, pool=50)
                if pick is not None:
                    rated.append(day[pick])
            reader.days.append(rated)
            for r in rated:
                (reader.liked if corpus.entries[r].id in interest.relevant else reader.disliked).append(r)
        # arxiv-sanity's SVM on the ratings this method collected, day by day.
        svm: list[float] = []
        if system.how.learns:
            for k in range(DAYS):
                seen_rated = {r for d in reader.days[:k] for r in d}
                past = Reader(
                    [r for r in reader.liked if r in seen_rated], [r for r in reader.disliked if r in seen_rated]
                )
                seen = [r for d in days[:k] for r in d]
                s = svm_scores(corpus, test, profile, seeds, past, seen)
                svm.append(precision(s, test, corpus, interest.relevant))
        out[name] = (got, svm)
    return out


MAIN = Learner("as on main (ratings only)")
PREVIOUS = Learner("before: + profile as liked, share x trust", profile_positives=True, folds=learn.FOLDS)
"""The product before learn.VERSION 3: :class:`newsletter.learn.ModelCache` fits with the profile's papers and
phrases as liked papers and 5-fold trust; the Index's floor stays (keeping unmatched entries changed no figure)."""
SHIPPED = Learner(
    "shipped: + profile as liked, share x trust, L2 centred on phrases",
    profile_positives=True,
    folds=learn.FOLDS,
    prior=learn.PHRASE_PRIOR,
)
"""The product now: as :data:`PREVIOUS`, the ridge penalty centred on ``PHRASE_PRIOR`` x the phrases' vector."""
LEARNERS = (
    MAIN,
    Learner("+ profile as liked", profile_positives=True),
    Learner("+ profile as liked, unmatched kept", profile_positives=True, floor=False),
    Learner("+ profile as liked, share n/(n+5) cap .9", profile_positives=True, half=5, cap=0.9),
    Learner("+ profile as liked, weak negatives .05", profile_positives=True, weak=0.05),
    Learner("+ profile as liked, share n/(n+30)", profile_positives=True, half=30),
    Learner("+ profile as liked, share n/(n+30), L2 0.1", profile_positives=True, half=30, l2=0.1),
    Learner("+ profile as liked, share n/(n+30), L2 10", profile_positives=True, half=30, l2=10.0),
    Learner("+ profile as liked, n/(n+30), Rocchio", profile_positives=True, half=30, kind="rocchio"),
    Learner(
        "+ profile as liked, n/(n+30), centred Rocchio", profile_positives=True, half=30, kind="rocchio", center=True
    ),
    PREVIOUS,
    SHIPPED,
    Learner("+ profile as liked, share n/(n+30) x trust", profile_positives=True, half=30, folds=learn.FOLDS),
    Learner("+ profile as liked, share x trust, cap 1", profile_positives=True, folds=learn.FOLDS, cap=1.0),
    Learner("+ profile as liked, share = trust alone", profile_positives=True, folds=learn.FOLDS, half=0, cap=1.0),
    Learner("+ profile as liked, n/(n+5) cap 1 x trust", profile_positives=True, folds=learn.FOLDS, half=5, cap=1.0),
    Learner("stacked: emb + z(base), scale 1", profile_positives=True, folds=learn.FOLDS, stack=1.0),
    Learner("stacked: emb + z(base), scale 3", profile_positives=True, folds=learn.FOLDS, stack=3.0),
    Learner("stacked: emb + z(base), scale 3, L2 0.3", profile_positives=True, folds=learn.FOLDS, stack=3.0, l2=0.3),
    Learner("stacked: scale 3, L2 0.1", profile_positives=True, folds=learn.FOLDS, stack=3.0, l2=0.1),
    Learner("stacked: scale 3, L2 0.03", profile_positives=True, folds=learn.FOLDS, stack=3.0, l2=0.03),
    Learner("stacked: scale 3, L2 0.01", profile_positives=True, folds=learn.FOLDS, stack=3.0, l2=0.01),
    Learner("shipped, L2 centred on 3 x phrases", profile_positives=True, folds=learn.FOLDS, prior=3.0),
    Learner("shipped, L2 0.3 centred on 3 x phrases", profile_positives=True, folds=learn.FOLDS, prior=3.0, l2=0.3),
    Learner("stacked, prior base weight 1", profile_positives=True, folds=learn.FOLDS, stack=1.0, stack_offset=1.0),
    Learner("stacked, prior base weight 3", profile_positives=True, folds=learn.FOLDS, stack=1.0, stack_offset=3.0),
    *(
        Learner(
            f"stacked, prior {offset:g}, + profile as liked",
            profile_positives=True,
            folds=learn.FOLDS,
            stack=1.0,
            stack_offset=offset,
            stack_profile=True,
        )
        for offset in (1.0, 3.0)
    ),
)
"""The candidates the product could run (the embeddings only): the held-out figures choose among all of them on
the other half of the interests."""
EXTRA = (
    Learner("profile, no ratings", learns=False),
    replace(SHIPPED, name="model alone (shipped model)", use_base=False),
    replace(SHIPPED, name="shipped + calibrate (21 ratings a day)", calibrate=True),
    Learner("not shipped: + lexical features (TF-IDF)", profile_positives=True, features="mixed"),
    Learner("not shipped: + lexical features, x trust", profile_positives=True, features="mixed", folds=learn.FOLDS),
    replace(SHIPPED, name="ceiling: shipped, every paper of a day rated", rate_all=True),
    Learner("ceiling: model alone, every paper rated", profile_positives=True, use_base=False, rate_all=True),
)
"""Shown for comparison, never chosen: the baseline, the model alone, the calibrate variant, a model with
lexical features too (better, but the product's models are on the embeddings only: see the README), and two
ceilings: how far these features can go when the reader rates every paper of each day, not only the top 20."""

FIXED_SHARES = [
    Learner(f"shipped model, fixed share {w:g}", profile_positives=True, prior=learn.PHRASE_PRIOR, half=0, cap=w)
    for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
]
"""``--shares``: the shipped model blended at fixed shares (``half=0``: the cap is the share; no trust), and the
bound any per-reader choice of the share could reach: the best of them for each reader on the test day."""


def _cell(v: Sequence[float]) -> str:
    se = statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    return f"{statistics.fmean(v):7.3f} +-{se:5.3f}"


def _row(name: str, rows_: Sequence[Sequence[float]]) -> str:
    return f"{name:<44} " + " ".join(_cell([r[k] for r in rows_]) for k in range(DAYS))


def _paired(label: str, a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> str:
    cells = []
    for k in range(1, DAYS):
        d = [x[k] - y[k] for x, y in zip(a, b, strict=True)]
        cells.append(f"{k}d {statistics.fmean(d):+.3f} +-{statistics.stdev(d) / math.sqrt(len(d)):.3f}")
    return f"  {label}: " + ", ".join(cells)


def evaluate(
    which: str,
    kind: str,
    draws: int,
    base_factory: Callable[[Sequence[Entry]], BaseRanker],
    only: str = "",
    fresh: bool = False,
    shares: bool = False,
) -> None:
    entries = load_entries()
    corpus = CORPUS.get("c") or CORPUS.setdefault("c", build_corpus(entries))
    base = base_factory(corpus.entries)
    picked = set(only.split(";")) if only else set()
    learners = [h for h in (*EXTRA, *LEARNERS) if not only or h.name in picked or h is EXTRA[0]]
    if shares:
        learners += FIXED_SHARES
    systems = {h.name: System(base, h) for h in learners}
    results: dict[str, list[list[float]]] = {}
    svms: dict[str, list[list[float]]] = {}
    used: list[str] = []
    n = len(corpus.entries)
    least = FRESH_MIN if fresh else MIN_RELEVANT
    for interest in load_interests(which):
        if fresh and len(interest.relevant) >= MIN_RELEVANT:
            continue
        for draw in range(draws):
            rng = random.Random(f"{which}/{kind}/{interest.name}/{draw}")
            seeds: list[int] = []
            if kind == "seed":
                pool = sorted(r for r in range(n) if corpus.entries[r].id in interest.relevant)
                seeds = rng.sample(pool, SEEDS) if len(pool) >= SEEDS else []
                if not seeds:
                    continue
            if len(interest.relevant) - len(seeds) < least:
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
            for name, (got, svm) in run_reader(corpus, days, interest, profile, seeds, systems).items():
                results.setdefault(name, []).append(got)
                svms.setdefault(name, []).append(svm)
            used.append(interest.name)
    names = sorted(set(used), key=used.index)
    print(
        f"\n{which} set, {kind} profiles: {len(used)} readers ({len(names)} interests x <= {draws} draws: "
        f"{', '.join(names)})",
        flush=True,
    )
    print(f"{'method (all interests: in-sample)':<44} " + " ".join(f"{f'{k} days':>14}" for k in range(DAYS)))
    plain = results[EXTRA[0].name]
    for name, rows_ in results.items():
        print(_row(name, rows_))
        if svms[name] and svms[name][0]:
            print(_row(f"    {SVM}", svms[name]))
    if shares:
        # An upper bound, not a learner: each reader's best fixed share chosen on the test day itself.
        best = [[max(results[h.name][i][k] for h in FIXED_SHARES) for k in range(DAYS)] for i in range(len(plain))]
        print(_row("bound: the best fixed share per reader, chosen on the test day", best))
    for h in learners:
        if h.learns and h.use_base:
            print(f"{h.name}")
            print(_paired("- no ratings", results[h.name], plain))
            print(_paired("- its LinearSVC", results[h.name], svms[h.name]))
    candidates = [h.name for h in LEARNERS if h.name in results]
    if len(candidates) < 2 or len(names) < 2:
        return

    # Held out, leave one interest out: each interest's readers get the candidate that did best on the
    # other interests (mean precision after 1, 2 and 3 days), so no held-out figure was chosen on its interest.
    def merit(name: str, left_out: str) -> float:
        return statistics.fmean(sum(r[1:]) for r, u in zip(results[name], used, strict=True) if u != left_out)

    chosen = {i: max(candidates, key=lambda c: merit(c, i)) for i in names}
    held = [results[chosen[u]][k] for k, u in enumerate(used)]
    held_svm = [svms[chosen[u]][k] for k, u in enumerate(used)]
    picks = statistics.multimode(chosen.values())
    print(f"held out (leave one interest out; chosen for {len(names)} interests: {dict(chosen)!r}; most: {picks!r})")
    print(_row("profile, no ratings", plain))
    print(_row("learner chosen without the interest", held))
    print(_row(f"    {SVM}", held_svm))
    for fixed in (MAIN, PREVIOUS, SHIPPED):
        if fixed.name in results:
            print(_row(fixed.name, results[fixed.name]))
            print(_row(f"    {SVM}", svms[fixed.name]))
    print(_paired("held out - no ratings", held, plain))
    print(_paired("held out - its LinearSVC", held, held_svm))
    if SHIPPED.name in results:
        print(_paired("shipped - no ratings", results[SHIPPED.name], plain))
        print(_paired("shipped - its LinearSVC", results[SHIPPED.name], svms[SHIPPED.name]))
    if SHIPPED.name in results and PREVIOUS.name in results:
        print(_paired("shipped - before", results[SHIPPED.name], results[PREVIOUS.name]))
    if PREVIOUS.name in results:
        print(_paired("held out - before", held, results[PREVIOUS.name]))


CORPUS: dict[str, Corpus] = {}
BASES: dict[str, Callable[[Sequence[Entry]], BaseRanker]] = {"fused": fused_base, "lexical": lexical_base}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5, help="day splits (and seed draws) per interest")
    parser.add_argument("--set", choices=("specific", "broad", "both"), default="both")
    parser.add_argument("--kind", choices=("keyword", "seed", "both"), default="both")
    parser.add_argument(
        "--base",
        default="fused",
        help="fused (the product: words and meaning), lexical, or module:function(all_entries) -> "
        "(entries, profile) -> scores",
    )
    parser.add_argument(
        "--only", default="", help="run only the learners of these names, ;-separated (and the no-ratings row)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help=f"only the interests with {FRESH_MIN}..{MIN_RELEVANT - 1} relevant papers"
    )
    parser.add_argument(
        "--shares", action="store_true", help="also fixed blend shares and the bound of choosing one per reader"
    )
    args = parser.parse_args(argv)
    factory = BASES.get(args.base)
    if factory is None:
        module, _, func = args.base.partition(":")
        factory = getattr(importlib.import_module(module), func)
    print(
        f"learning from ratings: {DAYS} days, top {SHOWN} rated per day, P@min(20, relevant) on the unseen day "
        f"{DAYS}; base {args.base}"
    )
    for which in ("specific", "broad") if args.set == "both" else (args.set,):
        for kind in ("keyword", "seed") if args.kind == "both" else (args.kind,):
            evaluate(which, kind, args.draws, factory, args.only, args.fresh, args.shares)


if __name__ == "__main__":
    main(sys.argv[1:])
