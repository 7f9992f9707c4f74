"""Seed-paper ("more like these") ranking methods, cross-validated across interests (not shipped; re-run to check).

Every method starts from the shipped Index's own signals: its TF-IDF Rocchio
seed score (``eval_ranking.raw_scores``), its TF-IDF and BM25F matrices and
term counts, and the papers' MiniLM vectors centred on the day's mean paper.
The first row re-implements the shipped fusion and must print the figures of
``eval_ranking.py`` (specific 0.685, broad 0.807 at ``SEMANTIC_SEEDS`` 0.3).

Families (each a grid whose first point, or a zero weight, is the shipped
ranking, so cross-validation can always fall back to it):

* ``pu``: a per-profile discriminative model, the seeds positive and the day's
  other papers unlabeled, taken as negatives (PU learning / exemplar SVM, as
  arxiv-sanity ranks a tag), on centred MiniLM ⊕ our TF-IDF (block weights
  ``beta``), LinearSVC or logistic regression with balanced class weights;
  its decision values, scaled from their mean to their best, added with
  weight ``g`` to the shipped fusion.
* ``lda``: the closed-form exemplar model (Hariharan, Malik and Ramanan 2012,
  "exemplar-LDA"): ``w = (S + lam I)^-1 (mean of the seeds - mean paper)`` in
  the centred MiniLM space, S the day's covariance; added as ``pu``.
* ``rlsc``: a regularised least-squares classifier (kernel ridge regression,
  Rifkin 2002) on the same joint features, closed form: the day's hat matrix
  times the seeds' indicator (exemplar-LDA in the joint space).
* ``self``, ``self-rlsc``, ``self-logodds``, ``self-centroid``: self-training,
  two stages: the shipped fusion's top ``k`` papers join the seeds as
  positives (weight ``lam``), and the LinearSVC, the least-squares model, the
  log-odds query or a joint TF-IDF/MiniLM centroid is built once more and
  added with weight ``g`` (``seeds=False``: the top k alone, plain feedback).
* ``logodds``: the seeds' distinctive terms, by the log-odds ratio with an
  informative Dirichlet prior (Monroe, Colaresi and Quinn 2008; prior: the
  day's term counts, total ``a0``), seeds against the rest of the day; the
  ``m`` terms with the highest z-score (above 1.96) become a BM25F query
  weighted by their z-scores, added with weight ``g`` to the lexical side.
* ``bsets``: Bayesian Sets (Ghahramani and Heller 2005) on term presence,
  Beta priors from the day's document frequencies (strength ``kappa``),
  added to the lexical side.
* ``agree``, ``agree-rrf``: the semantic share set per profile, label-free,
  from how well the seeds agree with each other in each space: their mean
  pairwise cosine as a z-score against all pairs of the day's papers, in
  centred MiniLM and in TF-IDF; ``logit(w) = logit(w0) + tau (z_sem -
  z_lex)``; min-max fusion as shipped, or reciprocal-rank fusion.
* ``diffuse``: manifold ranking (Zhou et al. 2004; diffusion as in Iscen et
  al. 2017): the shipped fused scores spread over a symmetric k-nearest-
  neighbour graph of the day's papers (centred MiniLM cosines plus TF-IDF
  cosines), ``f = (1 - a) y + a W f``, ten iterations, mixed back with
  weight ``g``.

Every figure is P@min(20,R) (the seeds excluded from the ranking and from
R), mean +- standard error over profiles, on the specific set (55 profiles,
11 interests) and the broad set (15 profiles, 3 topics).  Each family's grid
is cross-validated leaving one interest out of both sets pooled (14 folds),
as ``eval_ranking.py --cv`` does for the fusion weights: the held-out
profiles are scored with the grid point best on the other 13 interests.  The
table gives held-out means, their paired differences (mean +- standard error
of the difference) from the shipped ranking as it ships (w 0.3) and from the
LinearSVC baseline on the same profiles, the in-sample best grid point, and
the baselines of ``eval_ranking.py`` from the same run.  ``--draws 10`` adds
five new seed sets per interest (140 profiles): a check that a gain is not
one of the first five draws.

Re-run on the 23 specific interests (16 with seed draws, 19 folds pooled;
2026-12-02): at 5 draws self-rlsc looked like a gain (0.684 +-0.025, +0.034
+-0.009 over shipped, one grid point in every fold; broad 0.820), pu and
rlsc +0.017 and +0.016; at 10 draws self-rlsc is +0.004 +-0.006 (broad
-0.012) and rlsc +0.000 +-0.006: the 5-draw gain was draw noise again.

First measured on 11 interests, 2026-12-02 (held out, specific / broad; the paired difference from
the shipped ranking +- its standard error; 5 draws, 70 profiles, then 10
draws, 140 profiles; the pu family was not re-run at 10 draws, its logistic
regressions take 20 minutes on a busy box):

  same-run baselines, 5 draws: LinearSVC 0.655 / 0.780, TF-IDF centroid
  0.620 / 0.787, MiniLM centroid 0.540 / 0.777, our lexical 0.625 / 0.853,
  shipped fusion 0.685 +-0.027 / 0.807 +-0.035 (10 draws: 0.651, 0.625,
  0.542, 0.629, shipped 0.685 +-0.019 / 0.802 +-0.022)

  =============  ======================================  ======================================
  family         5 draws                                 10 draws
  =============  ======================================  ======================================
  shipped (w)    0.654 (-0.032 +-0.010) / 0.807 (0)      0.679 (-0.007 +-0.003) / 0.802 (0)
  pu             0.685 (-0.001 +-0.009) / 0.823 (+0.017) -
  lda            0.670 (-0.015 +-0.006) / 0.807 (0)      0.679 (-0.007 +-0.003) / 0.802 (0)
  rlsc           0.685 (-0.001 +-0.009) / 0.830 (+0.023) 0.662 (-0.023 +-0.006) / 0.785 (-0.017)
  self           0.684 (-0.001 +-0.012) / 0.833 (+0.027) 0.684 (-0.001 +-0.007) / 0.813 (+0.012)
  self-rlsc      0.694 (+0.008 +-0.013) / 0.823 (+0.017) 0.668 (-0.017 +-0.010) / 0.770 (-0.032)
  self-centroid  0.665 (-0.020 +-0.012) / 0.823 (+0.017) 0.664 (-0.022 +-0.008) / 0.805 (+0.003)
  logodds        0.698 (+0.013 +-0.009) / 0.793 (-0.013) 0.678 (-0.007 +-0.004) / 0.772 (-0.030)
  self-logodds   0.695 (+0.010 +-0.014) / 0.820 (+0.013) 0.699 (+0.013 +-0.008) / 0.782 (-0.020)
  bsets          0.670 (-0.015 +-0.006) / 0.807 (0)      0.679 (-0.007 +-0.003) / 0.802 (0)
  agree          0.670 (-0.015 +-0.008) / 0.807 (0)      0.674 (-0.012 +-0.005) / 0.803 (+0.002)
  agree-rrf      0.663 (-0.022 +-0.018) / 0.860 (+0.053) 0.658 (-0.027 +-0.012) / 0.820 (+0.018)
  diffuse        0.667 (-0.019 +-0.009) / 0.803 (-0.003) 0.693 (+0.008 +-0.005) / 0.790 (-0.012)
  =============  ======================================  ======================================

No family beats the shipped ranking held out by more than its standard error
on the specific set at both draw counts without losing on the broad set; the
in-sample best points (up to 0.727 specific, self-rlsc) fall back to 0.67-0.70
held out, and the choices move between folds and with the grid (self: 0.702
held out with gains up to 2, 0.684 with gains up to 8).  Self-training and
rank fusion help the broad topics (+0.02-0.05), as joint Rocchio and RRF did
in ``eval_variants.py``.  The target (+0.10 over LinearSVC held out on the
specific set, 0.755) is missed by every family: the best held-out margin is
under +0.05 at either draw count (logodds +0.043 +-0.012 at 5 draws,
self-logodds 0.699 against 0.651 at 10).  A per-reader classifier (pu, self)
would also cost a LinearSVC fit per seeded reader (15-200 ms each on 334
papers on the busy 2-core box, more on a day of 2,000): far outside the
fused <= 1.3 x lexical budget of ``bench_rank.py``.  Nothing here is shipped.

Run:  python benchmarks/eval_seeds.py [--draws 5] [--only pu self ...] [--quick]
Needs scikit-learn (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import eval_ranking as ev
import numpy as np
from scipy import sparse

from newsletter import match
from newsletter.embed import KnownVectors, load_embedder, paper_text, sample_vectors_path

Array = np.ndarray[Any, Any]
FLOOR = match.SEMANTIC_FLOOR


@dataclass
class Case:
    """One seed profile: its interest, dev set, seed rows, relevance mask (seeds excluded), shipped lexical score."""

    interest: str
    dev: str
    seeds: tuple[int, ...]
    rel: Array
    lex: Array


class Data:
    """The day's papers as the shipped Index sees them, and every seed profile of both dev sets."""

    def __init__(self, draws: int) -> None:
        entries = ev.load_entries()
        index = match.Index(entries)
        self.index = index
        embedder = load_embedder()
        if embedder is None:
            raise SystemExit("the semantic model did not load")
        known = KnownVectors(sample_vectors_path(), embedder.name)
        texts = [paper_text(e.title, e.summary) for e in index.entries]
        found = [known.get(t) for t in texts]
        if any(v is None for v in found):
            docs = embedder.embed(texts)
        else:
            docs = np.stack([np.asarray(v, dtype=np.float32) for v in found if v is not None])
        docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)
        self.raw = docs
        self.mu = docs.mean(axis=0)
        x = docs - self.mu
        self.dc = x / np.linalg.norm(x, axis=1, keepdims=True)
        """Centred, re-normalised MiniLM vectors (the shipped seed space)."""
        self.n = len(index.entries)
        self.tfidf = index._tfidf.tocsr()
        self.bm25 = index._bm25.tocsr()
        self.counts = (index._title_terms + index._body_terms).tocsr()
        self.present = index._present.tocsr()
        self.lex_sims = np.asarray((self.tfidf @ self.tfidf.T).toarray())
        self.sem_sims = self.dc @ self.dc.T
        off = ~np.eye(self.n, dtype=bool)
        self.pair_stats = {
            "sem": (float(self.sem_sims[off].mean()), float(self.sem_sims[off].std())),
            "lex": (float(self.lex_sims[off].mean()), float(self.lex_sims[off].std())),
        }
        self.baseline = ev.Baselines(index.entries, ev.SMALL_TFIDF)
        ids = [e.id for e in index.entries]
        row = {i: k for k, i in enumerate(ids)}
        self.cases: list[Case] = []
        for dev, interests in (("specific", ev.load_specific()), ("broad", ev.load_broad(draws))):
            for it in interests:
                rel = set(it.relevant)
                for picked in ev.seed_draws(it, draws):
                    lex = ev.raw_scores(index, ev.profile(papers=[i.removeprefix("arxiv:") for i in picked]))
                    rest = rel - set(picked)
                    self.cases.append(
                        Case(
                            it.name,
                            dev,
                            tuple(row[i] for i in picked),
                            np.array([i in rest for i in ids]),
                            lex,
                        )
                    )
        self._features: dict[float, sparse.csr_matrix] = {}
        self._cov: Array | None = None
        self.pu_cache: dict[tuple[Any, ...], Array] = {}
        self._hats: dict[tuple[float, float], Array] = {}
        self._graphs: dict[tuple[int, float], sparse.csr_matrix] = {}

    def features(self, beta: float) -> sparse.csr_matrix:
        """Centred MiniLM ⊕ our TF-IDF, weighted so that a dot product is ``beta`` x cos_sem + (1-beta) x cos_lex."""
        got = self._features.get(beta)
        if got is None:
            got = self._features[beta] = sparse.hstack(
                [sparse.csr_matrix(math.sqrt(beta) * self.dc), math.sqrt(1 - beta) * self.tfidf], format="csr"
            )
        return got

    def covariance(self) -> Array:
        if self._cov is None:
            self._cov = np.cov(self.dc, rowvar=False, bias=True)
        return self._cov

    def hat(self, beta: float, lam: float) -> Array:
        got = self._hats.get((beta, lam))
        if got is None:
            k = beta * self.sem_sims + (1 - beta) * self.lex_sims
            c = np.eye(self.n) - 1.0 / self.n
            kc = c @ k @ c
            ridge = lam * float(np.trace(kc)) / self.n
            got = self._hats[(beta, lam)] = np.linalg.solve(kc + ridge * np.eye(self.n), kc).T
        return got

    def graph(self, k: int, beta: float) -> sparse.csr_matrix:
        """Symmetric k-nearest-neighbour graph on beta x centred MiniLM + (1-beta) x TF-IDF cosines, D^-1/2 W D^-1/2."""
        got = self._graphs.get((k, beta))
        if got is None:
            s = beta * self.sem_sims + (1 - beta) * self.lex_sims
            np.fill_diagonal(s, -np.inf)
            nn = np.argpartition(-s, k, axis=1)[:, :k]
            rows = np.repeat(np.arange(self.n), k)
            w = sparse.csr_matrix((np.maximum(s[rows, nn.ravel()], 0.0), (rows, nn.ravel())), shape=(self.n, self.n))
            w = w.maximum(w.T)
            d = np.asarray(w.sum(axis=1)).ravel()
            d[d == 0] = 1.0
            inv = sparse.diags(1.0 / np.sqrt(d))
            got = self._graphs[(k, beta)] = sparse.csr_matrix(inv @ w @ inv)
        return got


# -- scalings -------------------------------------------------------------------------------------------------


def unit(v: Array) -> Array:
    return np.asarray(v / max(float(np.linalg.norm(v)), 1e-12))


def by_best(x: Array) -> Array:
    best = max(float(x.max()), 0.0)
    return x / best if best > 0 else x


def scaled(c: Array, floor: float | None = FLOOR) -> Array:
    """The shipped min-max: from the larger of the mean and *floor* to the best (None: from the mean)."""
    low = float(c.mean()) if floor is None else max(float(c.mean()), floor)
    span = float(c.max()) - low
    return np.zeros_like(c) if span <= 0 else np.clip((c - low) / span, 0, 1)


def rrf(c: Array, k: int = 60) -> Array:
    """Reciprocal-rank fusion's per-list score ``1 / (k + rank)`` (Cormack et al. 2009), rank 1 the best."""
    r = np.empty(len(c))
    r[np.lexsort((np.arange(len(c)), -c))] = np.arange(len(c))
    return np.asarray(1.0 / (k + r + 1))


def others(c: Case, x: Array) -> Array:
    """*x* over the non-seed papers only (for the scalings: a seed's own score is the day's best by far)."""
    keep = np.ones(len(x), dtype=bool)
    keep[list(c.seeds)] = False
    return x[keep]


def scaled_others(c: Case, x: Array, floor: float | None) -> Array:
    """:func:`scaled` with its mean and best taken over the papers other than the seeds."""
    rest = others(c, x)
    low = float(rest.mean()) if floor is None else max(float(rest.mean()), floor)
    span = float(rest.max()) - low
    return np.zeros_like(x) if span <= 0 else np.clip((x - low) / span, 0, 1)


# -- the shipped fusion and the families ---------------------------------------------------------------------


def shipped(d: Data, c: Case, w: float = match.SEMANTIC_SEEDS, lex: Array | None = None) -> Array:
    """``(1-w) lexical/best + w scaled(centred cosine to the seeds' centred centroid)``, as ``Index._fuse``."""
    lex = c.lex if lex is None else lex
    cos = d.dc @ unit(d.dc[list(c.seeds)].mean(axis=0))
    return (1 - w) * by_best(lex) + w * scaled(cos)


def _positives(d: Data, c: Case, extra: Sequence[int] = (), lam: float = 1.0) -> tuple[Array, Array]:
    y = np.zeros(d.n)
    y[list(c.seeds)] = 1
    weights = np.ones(d.n)
    if extra:
        y[list(extra)] = 1
        weights[list(extra)] = lam
    # balanced classes, computed on the sample weights as scikit-learn's "balanced" on counts
    pos = weights[y == 1].sum()
    neg = weights[y == 0].sum()
    weights = np.where(y == 1, weights * (pos + neg) / (2 * pos), weights * (pos + neg) / (2 * neg))
    return y, weights


def pu_scores(
    d: Data, c: Case, beta: float, model: str, cc: float, extra: Sequence[int] = (), lam: float = 1.0
) -> Array:
    """Decision values of a classifier trained on the seeds (and *extra* pseudo-positives) vs the rest."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    key = (c.seeds, beta, model, cc, tuple(extra), lam)
    got = d.pu_cache.get(key)
    if got is not None:
        return got
    x = d.features(beta)
    y, weights = _positives(d, c, extra, lam)
    clf: Any
    if model == "svm":
        clf = LinearSVC(C=cc, max_iter=10000, tol=1e-6)
    else:
        clf = LogisticRegression(C=cc, solver="liblinear", max_iter=2000, tol=1e-5)
    clf.fit(x, y, sample_weight=weights)
    got = d.pu_cache[key] = np.asarray(clf.decision_function(x))
    return got


def lda_scores(d: Data, c: Case, lam: float) -> Array:
    """Exemplar-LDA: the day's covariance, shrunk by *lam* x its mean variance, inverted against the seeds' mean."""
    cov = d.covariance()
    shrunk = cov + lam * float(np.trace(cov)) / len(cov) * np.eye(len(cov))
    w = np.linalg.solve(shrunk, d.dc[list(c.seeds)].mean(axis=0) - d.dc.mean(axis=0))
    return np.asarray(d.dc @ w)


def rlsc_scores(d: Data, c: Case, beta: float, lam: float, extra: Sequence[int] = (), weight: float = 1.0) -> Array:
    """A regularised least-squares classifier (kernel ridge regression, Rifkin 2002) on the centred features
    centred MiniLM ⊕ TF-IDF: ``H y`` with the day's hat matrix ``H = Kc (Kc + lam' I)^-1``, y the seeds
    (and *weight* on the *extra* pseudo-positives).  Closed form: H is the day's, a reader costs a sum of
    its positives' columns; on centred features it is exemplar-LDA in the joint space."""
    h = d.hat(beta, lam)
    y = np.zeros(d.n)
    y[list(c.seeds)] = 1.0
    if extra:
        y[list(extra)] = weight
    return np.asarray(h @ y)


def joint_centroid(d: Data, c: Case, beta: float, extra: Sequence[int], weight: float, seeds: bool) -> Array:
    """Cosine to the (weighted) centroid of the seeds and *extra*, ``beta`` x centred MiniLM + (1-beta) x TF-IDF:
    the limit of :func:`rlsc_scores` for a large ridge, and pseudo-relevance feedback in both spaces at once."""
    rows = [*(c.seeds if seeds else ()), *extra]
    y = np.array([*([1.0] * (len(c.seeds) if seeds else 0)), *([weight] * len(extra))])
    sem = d.dc @ unit(y @ d.dc[rows])
    lex = np.asarray(d.tfidf @ unit(np.asarray((sparse.csr_matrix(y) @ d.tfidf[rows]).toarray()).ravel())).ravel()
    return beta * sem + (1 - beta) * lex


def log_odds_query(d: Data, c: Case, a0: float, m: int, extra: Sequence[int] = (), lam: float = 1.0) -> Array:
    """Term weights: the seeds' (and *lam* x *extra*'s) most distinctive terms against the rest of the day,
    by log-odds z-score."""
    rows = list(c.seeds)
    y_s = np.asarray(d.counts[rows].sum(axis=0)).ravel()
    if extra:
        y_s = y_s + lam * np.asarray(d.counts[list(extra)].sum(axis=0)).ravel()
    y_all = np.asarray(d.counts.sum(axis=0)).ravel()
    y_r = y_all - y_s
    alpha = a0 * y_all / y_all.sum()
    n_s, n_r = y_s.sum(), y_r.sum()
    delta = np.log((y_s + alpha) / (n_s + a0 - y_s - alpha)) - np.log((y_r + alpha) / (n_r + a0 - y_r - alpha))
    z = delta / np.sqrt(1 / (y_s + alpha) + 1 / (y_r + alpha))
    z[y_s == 0] = 0.0
    top = np.argsort(-z, kind="stable")[:m]
    top = top[z[top] > 1.96]
    q = np.zeros(len(z))
    q[top] = z[top]
    return q


def bayesian_sets(d: Data, c: Case, kappa: float) -> Array:
    """Bayesian Sets (Ghahramani and Heller 2005): log p(paper | seeds) / p(paper), Beta-Bernoulli on term presence.

    The prior of each term is its share of the day's papers, with strength *kappa*; the score is linear in the
    paper's binary terms: ``sum_j x_j (log(a~_j / a_j) - log(b~_j / b_j))``.
    """
    rows = list(c.seeds)
    m = np.clip(np.asarray(d.present.mean(axis=0)).ravel(), 1e-6, 1 - 1e-6)
    a, b = kappa * m, kappa * (1 - m)
    hits = np.asarray(d.present[rows].sum(axis=0)).ravel()
    q = np.log((a + hits) / a) - np.log((b + len(rows) - hits) / b)
    return np.asarray(d.present @ q).ravel()


def agreement_weight(d: Data, c: Case, w0: float, tau: float) -> float:
    """The semantic share for this profile, from the seeds' coherence in each space (label-free)."""
    rows = list(c.seeds)
    iu = np.triu_indices(len(rows), 1)
    z = {}
    for space, sims in (("sem", d.sem_sims), ("lex", d.lex_sims)):
        mean, std = d.pair_stats[space]
        z[space] = (float(sims[np.ix_(rows, rows)][iu].mean()) - mean) / std
    logit = math.log(w0 / (1 - w0)) + tau * (z["sem"] - z["lex"])
    return 1 / (1 + math.exp(-logit))


def diffuse(d: Data, y: Array, k: int, beta: float, a: float, steps: int = 10) -> Array:
    w = d.graph(k, beta)
    f = y.copy()
    for _ in range(steps):
        f = (1 - a) * y + a * (w @ f)
    return f


# -- evaluation ------------------------------------------------------------------------------------------------


def p_at_r(scores: Array, c: Case) -> float:
    s = scores.astype(float).copy()
    s[list(c.seeds)] = -np.inf
    k = min(ev.K, int(c.rel.sum()))
    order = np.lexsort((np.arange(len(s)), -s))[:k]
    return float(c.rel[order].sum()) / k


@dataclass
class Family:
    name: str
    configs: list[dict[str, Any]]
    scores: list[list[float]]
    """scores[config][case]"""


def run_family(d: Data, name: str, grid: dict[str, Sequence[Any]], fn: Callable[..., Array]) -> Family:
    configs = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
    scores = [[p_at_r(fn(d, c, **cfg), c) for c in d.cases] for cfg in configs]
    return Family(name, configs, scores)


def run_cached(
    d: Data,
    name: str,
    grid: dict[str, Sequence[Any]],
    inner: dict[str, Sequence[Any]],
    prepare: Callable[..., Any],
    combine: Callable[..., Array],
) -> Family:
    """A grid whose *inner* keys only recombine what *prepare* computed once per (outer config, case)."""
    outer = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
    inner_cfgs = [dict(zip(inner, v, strict=True)) for v in itertools.product(*inner.values())]
    configs = [{**o, **i} for o in outer for i in inner_cfgs]
    scores: list[list[float]] = [[] for _ in configs]
    for c in d.cases:
        for oi, o in enumerate(outer):
            prepared = prepare(d, c, **o)
            for ii, i in enumerate(inner_cfgs):
                scores[oi * len(inner_cfgs) + ii].append(p_at_r(combine(d, c, prepared, **o, **i), c))
    return Family(name, configs, scores)


def folds(d: Data) -> Iterator[tuple[str, list[int], list[int]]]:
    names = sorted({c.interest for c in d.cases})
    for name in names:
        test = [i for i, c in enumerate(d.cases) if c.interest == name]
        train = [i for i, c in enumerate(d.cases) if c.interest != name]
        yield name, train, test


def held_out(d: Data, f: Family) -> tuple[list[float], Counter[str]]:
    """Per case, its score with the grid point best on the other interests (both sets pooled); ties: earlier."""
    held = [0.0] * len(d.cases)
    chosen: Counter[str] = Counter()
    for _, train, test in folds(d):
        best = max(range(len(f.configs)), key=lambda k: (statistics.fmean(f.scores[k][i] for i in train), -k))
        chosen[label(f.configs[best])] += 1
        for i in test:
            held[i] = f.scores[best][i]
    return held, chosen


def label(cfg: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in cfg.items()) or "-"


def mean_se(values: Sequence[float]) -> str:
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} +-{se:.3f}"


def by_dev(d: Data, values: Sequence[float], dev: str) -> list[float]:
    return [v for v, c in zip(values, d.cases, strict=True) if c.dev == dev]


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[], help="only these families (pu lda self logodds ...)")
    parser.add_argument("--quick", action="store_true", help="small grids (a smoke test)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    d = Data(args.draws)
    q = args.quick
    out(f"{len(d.cases)} seed profiles ({sum(c.dev == 'specific' for c in d.cases)} specific), {d.n} papers")

    ws = (0.3,) if q else (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    ws_near = (0.3,) if q else (0.2, 0.3, 0.4)
    big_gains = (0.0, 0.5) if q else (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    families: list[Family] = [run_family(d, "shipped fusion (w = SEMANTIC_SEEDS)", {"w": ws}, shipped)]

    def add(key: str, run: Callable[[], Family]) -> None:
        if not args.only or key in args.only:
            families.append(run())

    def pu_prepare(d: Data, c: Case, beta: float, model: str, cc: float) -> Array:
        return pu_scores(d, c, beta, model, cc)

    def pu_combine(d: Data, c: Case, s: Array, w: float, g: float, **_: Any) -> Array:
        return shipped(d, c, w) + g * scaled_others(c, s, None)

    pu_grid: dict[str, Sequence[Any]] = {
        "model": ("svm",) if q else ("svm", "lr"),
        "beta": (0.5,) if q else (0.0, 0.3, 0.5, 0.7, 1.0),
        "cc": (0.1,) if q else (0.01, 0.1, 1.0),
    }
    add(
        "pu",
        lambda: run_cached(
            d, "pu: classifier, seeds vs the day", pu_grid, {"w": ws_near, "g": big_gains}, pu_prepare, pu_combine
        ),
    )
    add("pu", lambda: run_cached(d, "pu alone (no fusion)", pu_grid, {}, pu_prepare, lambda d, c, s, **_: s))

    def lda_prepare(d: Data, c: Case, lam: float) -> Array:
        return lda_scores(d, c, lam)

    add(
        "lda",
        lambda: run_cached(
            d,
            "lda: exemplar-LDA, centred MiniLM",
            {"lam": (0.1,) if q else (0.01, 0.1, 1.0)},
            {"w": ws_near, "g": big_gains},
            lda_prepare,
            pu_combine,
        ),
    )

    def first_stage(d: Data, c: Case, k: int) -> list[int]:
        """The shipped fusion's top *k* papers other than the seeds (the pseudo-positives)."""
        first = shipped(d, c)
        first[list(c.seeds)] = -np.inf
        return [int(i) for i in np.argsort(-first, kind="stable")[:k]]

    def self_prepare(d: Data, c: Case, beta: float, cc: float, k: int, lam: float) -> Array:
        return pu_scores(d, c, beta, "svm", cc, first_stage(d, c, k), lam)

    add(
        "self",
        lambda: run_cached(
            d,
            "self: shipped top k join the seeds, LinearSVC",
            {
                "beta": (0.5,) if q else (0.0, 0.5),
                "cc": (0.1,) if q else (0.01, 0.1, 1.0),
                "k": (10,) if q else (5, 10, 20),
                "lam": (0.5,) if q else (0.25, 0.5, 1.0),
            },
            {"w": ws_near, "g": big_gains},
            self_prepare,
            pu_combine,
        ),
    )

    def rlsc_prepare(d: Data, c: Case, beta: float, lam: float) -> Array:
        return rlsc_scores(d, c, beta, lam)

    rlsc_grid = {"beta": (0.5,) if q else (0.0, 0.3, 0.5, 0.7, 1.0), "lam": (0.1,) if q else (0.01, 0.1, 1.0, 10.0)}
    add(
        "rlsc",
        lambda: run_cached(
            d,
            "rlsc: least-squares classifier, closed form",
            rlsc_grid,
            {"w": ws_near, "g": big_gains},
            rlsc_prepare,
            pu_combine,
        ),
    )
    add("rlsc", lambda: run_cached(d, "rlsc alone", rlsc_grid, {}, rlsc_prepare, lambda d, c, s, **_: s))

    def self_rlsc_prepare(d: Data, c: Case, beta: float, lam: float, k: int, weight: float) -> Array:
        return rlsc_scores(d, c, beta, lam, first_stage(d, c, k), weight)

    add(
        "self-rlsc",
        lambda: run_cached(
            d,
            "self-rlsc: shipped top k join the seeds, least squares",
            {**rlsc_grid, "k": (10,) if q else (5, 10, 20), "weight": (0.5,) if q else (0.25, 0.5, 1.0)},
            {"w": ws_near, "g": big_gains},
            self_rlsc_prepare,
            pu_combine,
        ),
    )

    def self_centroid_prepare(d: Data, c: Case, beta: float, k: int, weight: float, seeds: bool) -> Array:
        return joint_centroid(d, c, beta, first_stage(d, c, k), weight, seeds)

    add(
        "self-centroid",
        lambda: run_cached(
            d,
            "self-centroid: feedback from the shipped top k, both spaces",
            {
                "beta": (0.5,) if q else (0.0, 0.3, 0.5, 0.7, 1.0),
                "k": (10,) if q else (5, 10, 20),
                "weight": (0.5,) if q else (0.25, 0.5, 1.0),
                "seeds": (True,) if q else (True, False),
            },
            {"w": ws_near, "g": big_gains},
            self_centroid_prepare,
            pu_combine,
        ),
    )

    def self_lo_prepare(d: Data, c: Case, a0: float, m: int, k: int, lam: float) -> Array:
        return np.asarray(d.bm25 @ log_odds_query(d, c, a0, m, first_stage(d, c, k), lam)).ravel()

    def lo_prepare(d: Data, c: Case, a0: float, m: int) -> Array:
        return np.asarray(d.bm25 @ log_odds_query(d, c, a0, m)).ravel()

    def lo_combine(d: Data, c: Case, s: Array, w: float, g: float, **_: Any) -> Array:
        return shipped(d, c, w, lex=by_best(c.lex) + g * by_best(s))

    add(
        "logodds",
        lambda: run_cached(
            d,
            "logodds: distinctive terms as a BM25F query",
            {"a0": (1000.0,) if q else (100.0, 1000.0, 10000.0), "m": (30,) if q else (10, 30, 100)},
            {"w": ws_near, "g": big_gains},
            lo_prepare,
            lo_combine,
        ),
    )

    add(
        "self-logodds",
        lambda: run_cached(
            d,
            "self-logodds: seeds + shipped top k, distinctive terms",
            {
                "a0": (1000.0,) if q else (100.0, 1000.0),
                "m": (30,) if q else (10, 30, 100),
                "k": (10,) if q else (5, 10, 20),
                "lam": (0.5,) if q else (0.25, 0.5, 1.0),
            },
            {"w": ws_near, "g": big_gains},
            self_lo_prepare,
            lo_combine,
        ),
    )

    def bs_prepare(d: Data, c: Case, kappa: float) -> Array:
        return bayesian_sets(d, c, kappa)

    def bs_combine(d: Data, c: Case, s: Array, w: float, g: float, **_: Any) -> Array:
        return shipped(d, c, w, lex=by_best(c.lex) + g * scaled_others(c, s, None))

    add(
        "bsets",
        lambda: run_cached(
            d,
            "bsets: Bayesian Sets on term presence, lexical side",
            {"kappa": (2.0,) if q else (0.5, 2.0, 10.0)},
            {"w": ws_near, "g": big_gains},
            bs_prepare,
            bs_combine,
        ),
    )
    add(
        "bsets",
        lambda: run_cached(
            d, "bsets alone", {"kappa": (2.0,) if q else (0.5, 2.0, 10.0)}, {}, bs_prepare, lambda d, c, s, **_: s
        ),
    )

    def agree_fn(d: Data, c: Case, w0: float, tau: float) -> Array:
        return shipped(d, c, agreement_weight(d, c, w0, tau))

    def agree_rrf_fn(d: Data, c: Case, w0: float, tau: float, k: int) -> Array:
        w = agreement_weight(d, c, w0, tau)
        cos = d.dc @ unit(d.dc[list(c.seeds)].mean(axis=0))
        return (1 - w) * rrf(c.lex, k) * (c.lex > 0) + w * rrf(cos, k)

    add(
        "agree",
        lambda: run_family(
            d,
            "agree: per-profile share from seed coherence",
            {"w0": (0.3,) if q else (0.2, 0.3, 0.4, 0.5), "tau": (0.0, 0.5) if q else (0.0, 0.1, 0.25, 0.5, 1.0)},
            agree_fn,
        ),
    )
    add(
        "agree",
        lambda: run_family(
            d,
            "agree-rrf: the same share, reciprocal-rank fusion",
            {
                "w0": (0.3,) if q else (0.2, 0.3, 0.4, 0.5),
                "tau": (0.0, 0.5) if q else (0.0, 0.1, 0.25, 0.5, 1.0),
                "k": (60,) if q else (10, 60),
            },
            agree_rrf_fn,
        ),
    )

    def diffuse_prepare(d: Data, c: Case, k: int, beta: float, a: float) -> Array:
        return diffuse(d, np.maximum(shipped(d, c, 0.3), 0.0), k, beta, a)

    def diffuse_combine(d: Data, c: Case, f: Array, g: float, **_: Any) -> Array:
        return shipped(d, c, 0.3) + g * by_best(f)

    add(
        "diffuse",
        lambda: run_cached(
            d,
            "diffuse: manifold ranking of the fused scores",
            {
                "k": (10,) if q else (5, 10, 20),
                "beta": (0.5,) if q else (0.3, 0.5, 0.7),
                "a": (0.5,) if q else (0.5, 0.8),
            },
            {"g": big_gains},
            diffuse_prepare,
            diffuse_combine,
        ),
    )

    # -- the table
    as_shipped = [p_at_r(shipped(d, c), c) for c in d.cases]
    rows: dict[str, dict[str, float]] = {}
    baselines: dict[str, list[float]] = {
        "LinearSVC, seeds vs the rest (no pruning)": [],
        "TF-IDF centroid (no pruning)": [],
        "MiniLM alone, seed centroid": [],
        "newsletter lexical (TF-IDF + Rocchio)": [],
    }
    ids = [e.id for e in d.index.entries]
    for c in d.cases:
        picked = [ids[r] for r in c.seeds]
        rest = {ids[i] for i in np.flatnonzero(c.rel)}
        got = (
            ev.p_at_r(d.baseline.svm(seed_ids=picked), rest),
            ev.p_at_r(d.baseline.centroid(seed_ids=picked), rest),
            p_at_r(d.raw @ unit(d.raw[list(c.seeds)].mean(axis=0)), c),
            p_at_r(np.where(c.lex > 0, c.lex, -np.inf), c),
        )
        for values, value in zip(baselines.values(), got, strict=True):
            values.append(value)
    baselines["newsletter fused, as shipped (w 0.3)"] = as_shipped
    devs = ("specific", "broad")
    out("")
    out(f"same-run baselines (no parameters to choose), P@min(20,R) mean +- se; {args.draws} seed draws per interest")
    for name, values in baselines.items():
        out(f"  {name:<46} " + "   ".join(f"{dev} {mean_se(by_dev(d, values, dev))}" for dev in devs))
        rows[name] = {dev: statistics.fmean(by_dev(d, values, dev)) for dev in devs}
    svm = baselines["LinearSVC, seeds vs the rest (no pruning)"]
    out("")
    out(f"families: leave one interest out of both sets pooled ({len(set(c.interest for c in d.cases))} folds).")
    out("  held out: mean +- se; d shipped: paired held-out difference from the shipped ranking on the same")
    out("  profiles (+- se of the difference); d svm: the same from the LinearSVC baseline; in-sample: the grid")
    out("  point best on every interest, scored on them (optimistic)")
    for f in families:
        held, chosen = held_out(d, f)
        top = max(range(len(f.configs)), key=lambda k: (statistics.fmean(f.scores[k]), -k))
        out(f"{f.name}  ({len(f.configs)} grid points)")
        for dev in devs:
            h = by_dev(d, held, dev)
            vs_shipped = [a - b for a, b in zip(h, by_dev(d, as_shipped, dev), strict=True)]
            vs_svm = [a - b for a, b in zip(h, by_dev(d, svm, dev), strict=True)]
            ins = by_dev(d, f.scores[top], dev)
            out(
                f"  {dev:<9} held out {mean_se(h)}   d shipped {mean_se(vs_shipped)}   d svm {mean_se(vs_svm)}"
                f"   in-sample {mean_se(ins)}"
            )
            rows[f.name] = {
                **rows.get(f.name, {}),
                f"{dev} held": statistics.fmean(h),
                f"{dev} in": statistics.fmean(ins),
            }
        out(f"  in-sample best: {label(f.configs[top])}")
        out(f"  chosen per fold: {dict(chosen.most_common(3))}")
    out("")
    out(f"{time.perf_counter() - started:.0f} s")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
