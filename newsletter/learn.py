"""Learning from ratings: one small linear model per reader, blended with their explicit interests. Pure.

A reader's "more like this" / "less like this" ratings (``Profile.feedback``)
are papers whose sentence embeddings (384-d unit vectors, stored once per
entry) are known.  :func:`fit` turns them into a :class:`ReaderModel`, one
weight vector and a bias:

* with at least :data:`MIN_PER_CLASS` liked *and* disliked papers, an
  L2-regularised logistic regression (class-balanced, fitted by L-BFGS on at
  most :data:`MAX_RATINGS` ratings, the newest; the penalty pulls the weights
  toward :data:`PHRASE_PRIOR` times the profile's phrases embedded, not 0);
* with fewer, a Rocchio vector (the liked centroid minus
  :data:`ROCCHIO_NEGATIVE` times the disliked one), so that liked papers act
  as seeds and disliked ones as negatives from the very first rating.

A model scores a block of entries with one matrix product, and
:func:`blend_many` mixes it into the explicit-interest scores of a block of
readers in place: both are z-scored per reader over the entries still in play,
the model's share grows with the number of ratings (:func:`model_weight`), and
what a reader ruled out (``-inf``) stays ruled out.  :class:`ModelCache`
retrains a reader's model only when their ratings change.  Nothing here
touches the store, the clock or the network.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from . import blas
from .types import Feedback, Profile

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]

MIN_PER_CLASS = 2
"""Below this many liked or disliked papers the logistic model is not fitted (Rocchio instead)."""
MAX_RATINGS = 1000
"""At most this many ratings (the newest) train a model: the fit stays a few milliseconds."""
L2 = 1.0
"""Ridge penalty on the weights (the loss is the class-balanced mean log-loss times the rating count)."""
ROCCHIO_NEGATIVE = 0.5
"""Rocchio: how much of the disliked centroid is taken off the liked one."""
HALF_WEIGHT_AT = 10
"""The model gets half of the blended score at this many ratings: weight n / (n + HALF_WEIGHT_AT)."""
MAX_MODEL_WEIGHT = 0.8
"""The explicit interests always keep at least this much of a say (1 - it)."""
FOLDS = 5
"""Folds of the ratings that measure a logistic model's :attr:`ReaderModel.trust` (see :func:`fit`)."""
PHRASE_PRIOR = 1.0
"""The ridge penalty's centre: this times the profile's phrases embedded as one sentence (a unit vector), not 0:
with few ratings the model stays near what the reader typed (leave-one-interest-out: +0.03 after one day)."""
VERSION = 3
"""Bumped when the fitting changes, so cached models are retrained."""


@dataclass(frozen=True, slots=True)
class ReaderModel:
    """One reader's learned preference: ``score(x) = x @ weights + bias``."""

    weights: Vector
    bias: float
    liked: int
    """Ratings it was trained on, of each kind."""
    disliked: int
    kind: str
    """``logistic`` or ``rocchio``."""
    seeds: int = 0
    """Seed papers (the profile's ``papers``) trained on as liked, beyond the ratings; they add no weight."""
    trust: float = 1.0
    """How well the model predicted ratings it had not seen (``2 AUC - 1`` by cross-validation, 0..1):
    its share of the blend is scaled by it.  1 for a Rocchio model or a fit without cross-validation."""

    @property
    def ratings(self) -> int:
        """Ratings the model learned from: what its share of the blend grows with."""
        return self.liked + self.disliked

    def score(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Scores of the rows of *x* (entries x dim): higher is more like what the reader liked."""
        return np.asarray(np.asarray(x, dtype=np.float32) @ self.weights + np.float32(self.bias), dtype=np.float32)

    def to_blob(self) -> bytes:
        """A compact form for the store: a JSON header, then the float32 weights."""
        head = json.dumps(
            {
                "v": VERSION,
                "bias": self.bias,
                "liked": self.liked,
                "disliked": self.disliked,
                "kind": self.kind,
                "seeds": self.seeds,
                "trust": self.trust,
            }
        ).encode()
        return struct.pack("<I", len(head)) + head + np.asarray(self.weights, dtype="<f4").tobytes()

    @classmethod
    def from_blob(cls, blob: bytes) -> ReaderModel:
        (n,) = struct.unpack_from("<I", blob)
        head = json.loads(blob[4 : 4 + n])
        weights = np.frombuffer(blob[4 + n :], dtype="<f4").astype(np.float32)
        counts = int(head["liked"]), int(head["disliked"])
        trust = float(head.get("trust", 1.0))
        return cls(weights, float(head["bias"]), *counts, str(head["kind"]), int(head["seeds"]), trust)


@dataclass(frozen=True, slots=True)
class RatedVectors:
    """The vectors of a reader's rated papers that could be found, newest last."""

    liked_ids: tuple[str, ...]
    liked: Matrix
    disliked_ids: tuple[str, ...]
    disliked: Matrix


def rated_vectors(feedback: Feedback, vectors: Mapping[str, npt.ArrayLike], dim: int = 384) -> RatedVectors:
    """The liked (seed) and disliked (negative) papers' vectors, for the model and for the Index's seeds.

    *vectors* maps entry ids (``"arxiv:2510.19702"``) to embeddings; ids it
    does not know are skipped.  A paper both liked and disliked (a hand edit)
    counts as neither.  At most :data:`MAX_RATINGS` are kept, the newest.
    """
    both = set(feedback.liked) & set(feedback.disliked)
    liked = [i for i in dict.fromkeys(feedback.liked) if i not in both and i in vectors]
    disliked = [i for i in dict.fromkeys(feedback.disliked) if i not in both and i in vectors]
    total = len(liked) + len(disliked)
    if total > MAX_RATINGS:  # keep the newest of each kind, in proportion: a cap, not a change of balance
        keep = round(MAX_RATINGS * len(liked) / total)
        keep = max(min(keep, MAX_RATINGS - (1 if disliked else 0)), 1 if liked else 0)  # one of each kind stays
        liked, disliked = liked[len(liked) - keep :], disliked[len(disliked) - (MAX_RATINGS - keep) :]

    def stack(ids: Sequence[str]) -> Matrix:
        if not ids:
            return np.zeros((0, dim), dtype=np.float32)
        return np.vstack([np.asarray(vectors[i], dtype=np.float32).reshape(1, -1) for i in ids])

    return RatedVectors(tuple(liked), stack(liked), tuple(disliked), stack(disliked))


def with_liked_seeds(profile: Profile, feedback: Feedback | None = None, limit: int = 50) -> Profile:
    """*profile* with its newest liked papers (at most *limit*) added to its seed papers, for the lexical Index.

    The Index resolves a seed from its entries or from the ``seeds`` mapping
    it is given (the store's older entries), by entry id or arXiv id.
    """
    liked = (profile.feedback if feedback is None else feedback).liked
    if not liked:
        return profile
    ids = [i.removeprefix("arxiv:") for i in liked[-limit:]]  # ``papers`` holds bare arXiv ids
    papers = tuple(dict.fromkeys([*profile.interests.papers, *ids]))
    return replace(profile, interests=replace(profile.interests, papers=papers))


def fit(
    liked: npt.ArrayLike,
    disliked: npt.ArrayLike,
    *,
    seeds: npt.ArrayLike | None = None,
    l2: float = L2,
    weak: npt.ArrayLike | None = None,
    weak_weight: float = 0.0,
    center: npt.ArrayLike | None = None,
    kind: str = "logistic",
    folds: int = 0,
    prior: npt.ArrayLike | None = None,
) -> ReaderModel | None:
    """A reader's model from the vectors of the papers they liked and disliked; None without ratings.

    *seeds* (the profile's seed papers) count as liked papers in the fit but
    not as ratings: a profile with seeds and no ratings gets no model.
    *weak* are papers the reader could have rated and did not (weak
    negatives): each weighs *weak_weight* of a disliked paper in the fit.
    *center* (the mean paper vector) is taken off every vector before the
    fit, so that the penalty does not spend itself on the direction all papers
    share; the weights still apply to the raw vectors (only the bias moves,
    and the blend ignores the bias).  *kind* ``rocchio`` never fits the
    logistic model.  With *folds* >= 2, the logistic model's :attr:`~ReaderModel.trust`
    comes from that many folds of the ratings (each held out once, the
    profile's own papers always trained on).  *prior* (a weight vector, e.g.
    the profile's phrases embedded) is the centre of the ridge penalty
    instead of 0: ``l2/2 |w - prior|^2`` (:class:`ModelCache` passes :data:`PHRASE_PRIOR` times the query).
    """
    parts = [np.asarray(v, dtype=np.float64) for v in (liked, disliked, () if seeds is None else seeds)]
    dim = max((p.shape[-1] for p in parts if p.size), default=0)
    rated_pos, neg, extra = (p.reshape(-1, dim) if p.size else np.zeros((0, dim)) for p in parts)
    if center is not None:
        mu = np.asarray(center, dtype=np.float64).reshape(-1)
        rated_pos, neg, extra = rated_pos - mu, neg - mu, extra - mu
        if weak is not None:
            weak = np.asarray(weak, dtype=np.float64).reshape(-1, dim) - mu
    n_rated, n_neg = len(rated_pos), len(neg)
    if n_rated + n_neg == 0:
        return None
    pos = np.vstack([extra, rated_pos])
    n_pos = len(pos)
    if n_pos < MIN_PER_CLASS or n_neg < MIN_PER_CLASS or kind == "rocchio":
        m = _rocchio(pos, neg)
        return ReaderModel(m.weights, 0.0, n_rated, n_neg, "rocchio", len(extra))
    soft = np.asarray(weak, dtype=np.float64).reshape(-1, dim) if weak is not None and weak_weight > 0 else None
    soft = soft if soft is not None and len(soft) else np.zeros((0, dim))
    x = np.vstack([pos, neg, soft])
    y = np.concatenate([np.ones(n_pos), -np.ones(n_neg + len(soft))])
    # Class-balanced: each class carries half of the loss, however lopsided the ratings.
    neg_w = np.concatenate([np.ones(n_neg), np.full(len(soft), weak_weight)])
    sample = np.concatenate([np.full(n_pos, 0.5 / n_pos), 0.5 * neg_w / neg_w.sum()]) * (n_pos + n_neg)
    start = _rocchio(pos, neg).weights
    centre = None if prior is None else np.asarray(prior, dtype=np.float64).reshape(-1)
    with blas.limit(1):
        theta = _lbfgs(x, y, sample, l2, start, centre)
        trust = _trust(extra, rated_pos, neg, soft, weak_weight, l2, start, folds, centre) if folds >= 2 else 1.0
    return ReaderModel(theta[:-1].astype(np.float32), float(theta[-1]), n_rated, n_neg, "logistic", len(extra), trust)


def _trust(
    extra: npt.NDArray[np.float64],
    liked: npt.NDArray[np.float64],
    disliked: npt.NDArray[np.float64],
    soft: npt.NDArray[np.float64],
    weak_weight: float,
    l2: float,
    start: npt.NDArray[np.float32],
    folds: int,
    centre: npt.NDArray[np.float64] | None = None,
) -> float:
    """``2 AUC - 1`` (clipped to 0..1) of the model's scores on ratings it was not trained on, by k-fold.

    The model's share of the blend should follow how well it predicts the
    reader, which differs reader by reader: a reader whose top papers the
    explicit interests already rank well teaches a model little, one whose
    likes and dislikes differ in ways the embeddings see teaches it a lot.
    Measured on the reader's own ratings, so no constant is tuned per topic.
    """
    k = min(folds, len(liked), len(disliked))
    if k < 2:  # fewer than two liked (or disliked) ratings: nothing to measure it on, so no say yet
        return 0.0
    out_pos: list[float] = []
    out_neg: list[float] = []
    for f in range(k):
        keep_pos = np.arange(len(liked)) % k != f
        keep_neg = np.arange(len(disliked)) % k != f
        pos = np.vstack([extra, liked[keep_pos]])
        neg = disliked[keep_neg]
        x = np.vstack([pos, neg, soft])
        y = np.concatenate([np.ones(len(pos)), -np.ones(len(neg) + len(soft))])
        neg_w = np.concatenate([np.ones(len(neg)), np.full(len(soft), weak_weight)])
        sample = np.concatenate([np.full(len(pos), 0.5 / len(pos)), 0.5 * neg_w / neg_w.sum()]) * (len(pos) + len(neg))
        theta = _lbfgs(x, y, sample, l2, start, centre)
        w, b = theta[:-1], theta[-1]
        out_pos.extend((liked[~keep_pos] @ w + b).tolist())
        out_neg.extend((disliked[~keep_neg] @ w + b).tolist())
    p, q = np.asarray(out_pos)[:, None], np.asarray(out_neg)[None, :]
    auc = float(np.mean((p > q) + 0.5 * (p == q)))
    return float(np.clip(2.0 * auc - 1.0, 0.0, 1.0))


def _lbfgs(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    sample: npt.NDArray[np.float64],
    l2: float,
    start_w: npt.NDArray[np.float32],
    centre: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """Weights and bias (last) of the L2 logistic regression, by L-BFGS from the Rocchio vector.

    The penalty pulls the weights toward *centre* (0 when None).

    Measured faster than Newton's method (IRLS) here: with tens of ratings and
    384 dims, a (d+1) x (d+1) solve per step costs more than L-BFGS's few
    dozen gradient evaluations (24 ms against 257 ms for 60 ratings, busy machine).
    """
    d = x.shape[1]
    mu = np.zeros(d) if centre is None else centre

    def loss(theta: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        w, b = theta[:d], theta[d]
        margin = y * (x @ w + b)
        off = w - mu
        value = float(sample @ np.logaddexp(0.0, -margin) + 0.5 * l2 * (off @ off))
        g = -sample * y * _sigmoid(-margin)
        return value, np.concatenate([x.T @ g + l2 * off, [g.sum()]])

    start = np.zeros(d + 1)
    start[:d] = start_w
    from scipy import optimize  # type: ignore[import-untyped]  # here, not at import: `fetch` and `status` skip it

    found = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 200, "gtol": 1e-6})
    return np.asarray(found.x, dtype=np.float64)


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


def _rocchio(pos: npt.NDArray[np.float64], neg: npt.NDArray[np.float64]) -> ReaderModel:
    """Liked centroid minus a part of the disliked one (only dislikes: pushes their direction down)."""
    d = pos.shape[1] if len(pos) else neg.shape[1]
    w = np.zeros(d)
    if len(pos):
        w += pos.mean(axis=0)
    if len(neg):
        w -= ROCCHIO_NEGATIVE * neg.mean(axis=0) if len(pos) else neg.mean(axis=0)
    return ReaderModel(w.astype(np.float32), 0.0, len(pos), len(neg), "rocchio")


def ratings_key(feedback: Feedback, salt: str = "", seeds: Sequence[str] = ()) -> str:
    """A short hash of a reader's ratings and seeds (and the embedder's name in *salt*): the model cache's key."""
    h = hashlib.sha256(f"{VERSION}\x00{salt}\x00".encode())
    for ids in (feedback.liked, feedback.disliked, seeds):
        h.update("\x1f".join(ids).encode() + b"\x1e")
    return h.hexdigest()[:24]


@dataclass
class ModelCache:
    """Per reader, the model of their current ratings: retrained only when the ratings change.

    In memory, for one process; the pipeline keeps each fit in the store as
    :meth:`ReaderModel.to_blob` under ``(reader, key)`` and :meth:`put` s it
    back in the next process.  *salt* names the embedding model: vectors from
    another model need another fit.
    """

    salt: str = ""
    fits: int = 0
    """How many models were trained (a cache miss each)."""
    _models: dict[str, tuple[str, ReaderModel | None]] = field(default_factory=dict)

    def get(
        self,
        reader: str,
        feedback: Feedback,
        vectors: Mapping[str, npt.ArrayLike],
        seeds: Sequence[str] = (),
        query: npt.ArrayLike | None = None,
    ) -> ReaderModel | None:
        """*reader*'s model for *feedback*, trained now if anything it depends on changed since the last call.

        *vectors* must hold the rated and seed papers' embeddings (the store's).
        *seeds* are the profile's seed paper ids and *query* its phrases
        embedded as one sentence (1 x dim, or None): both count as liked
        papers in the fit, not as ratings; *query* (times :data:`PHRASE_PRIOR`)
        is also the centre of the fit's ridge penalty.
        """
        q = np.zeros((0, 0), dtype=np.float32) if query is None else np.asarray(query, dtype=np.float32)
        key = ratings_key(feedback, self.salt, (*seeds, hashlib.sha256(q.tobytes()).hexdigest()))
        hit = self._models.get(reader)
        if hit is not None and hit[0] == key:
            return hit[1]
        dim = next((len(np.asarray(v).ravel()) for v in vectors.values()), 384)
        rated = rated_vectors(feedback, vectors, dim)
        seed_rows = rated_vectors(Feedback(liked=tuple(i for i in seeds if i not in rated.liked_ids)), vectors, dim)
        positives = np.vstack([seed_rows.liked, q.reshape(-1, dim)]) if q.size else seed_rows.liked
        prior = PHRASE_PRIOR * q.reshape(-1, dim)[0] if q.size else None
        model = fit(rated.liked, rated.disliked, seeds=positives, folds=FOLDS, prior=prior)
        self.fits += 1
        self._models[reader] = (key, model)
        return model

    def put(self, reader: str, key: str, model: ReaderModel | None) -> None:
        """Fill the cache with a model loaded from the store, under the :meth:`key` it was stored with."""
        self._models[reader] = (key, model)

    def key(self, reader: str) -> str | None:
        """The key of *reader*'s cached model (to store it next to its blob), or None."""
        hit = self._models.get(reader)
        return hit[0] if hit else None


def closest_liked(rated: RatedVectors, entry_vectors: npt.ArrayLike) -> list[tuple[str, float]]:
    """For each row of *entry_vectors* (the winners only), the liked paper it is closest to and the cosine.

    For the reason ``like "<title>" that you liked``; empty without liked papers.
    """
    if not rated.liked_ids:
        return []
    sims = np.asarray(entry_vectors, dtype=np.float32) @ rated.liked.T
    best = sims.argmax(axis=1)
    return [(rated.liked_ids[int(j)], float(sims[i, j])) for i, j in enumerate(best)]


def model_weight(ratings: int, half: float = HALF_WEIGHT_AT, cap: float = MAX_MODEL_WEIGHT) -> float:
    """The model's share of the blended score: 0 without ratings, half at *half* ratings, at most *cap*."""
    if ratings <= 0:
        return 0.0
    return min(cap, ratings / (ratings + half))


def stack_models(models: Sequence[ReaderModel | None], dim: int) -> tuple[Matrix, Vector, Vector]:
    """A block of readers' models as arrays for :func:`blend_many`: weights (readers x dim), biases, shares."""
    w = np.zeros((len(models), dim), dtype=np.float32)
    b = np.zeros(len(models), dtype=np.float32)
    a = np.zeros(len(models), dtype=np.float32)
    for j, m in enumerate(models):
        if m is not None:
            w[j] = m.weights
            b[j] = m.bias
            a[j] = model_weight(m.ratings) * m.trust
    return w, b, a


def blend_many(
    base: npt.NDArray[np.float64],
    entry_vectors: npt.ArrayLike,
    weights: npt.ArrayLike,
    biases: npt.ArrayLike,
    shares: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """Mix per-reader model scores into *base* (readers x entries) in place, and return it.

    For each reader with a share ``a > 0``: ``(1 - a) * z(base) + a * z(model)``,
    z-scored over that reader's finite entries (a constant row counts as all
    zeros), so the mix does not depend on either score's scale.  Entries at
    ``-inf`` (ruled out: an exclusion) stay there; readers without a model
    keep their scores untouched, so their ranking is unchanged.  One matrix
    product for the block: ``weights @ entry_vectors.T``.
    """
    a = np.asarray(shares, dtype=np.float64)
    rows = np.flatnonzero(a > 0)
    if len(rows) == 0:
        return base
    e = np.asarray(entry_vectors, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float32)
    every = len(rows) == len(a)  # the common case: no fancy-index copies
    sub = base if every else base[rows]
    # The bias is left out: it shifts a reader's row by a constant, which z-scoring takes off again.
    with blas.limit(1):
        model = (w if every else w[rows]) @ e.T
    finite = np.isfinite(sub)
    count = np.maximum(finite.sum(axis=1), 1)
    mean_b, sd_b = _moments(np.where(finite, sub, 0.0), count)
    model *= finite  # cells ruled out count for neither moment (and stay -inf below)
    mean_m, sd_m = _moments(model, count)
    # (1 - a) z(base) + a z(model) as one affine mix: x * alpha + m * beta + gamma, a few passes over the block.
    share = a[rows]
    alpha = (1.0 - share) / sd_b
    beta = share / sd_m
    gamma = -(alpha * mean_b + beta * mean_m)
    sub *= alpha[:, None]
    model *= beta[:, None].astype(np.float32)
    sub += model  # -inf + a finite number stays -inf: exclusions still veto
    sub += gamma[:, None]
    if not every:
        base[rows] = sub
    return base


def _moments(
    x: npt.NDArray[np.floating[Any]], count: npt.NDArray[np.int_]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row, the mean and standard deviation over *count* cells (the others are zeros in *x*); std 1 when 0."""
    mean = np.sum(x, axis=1, dtype=np.float64) / count
    square = np.einsum("ij,ij->i", x, x, dtype=np.float64) / count
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    std[std <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0  # a constant row: all zeros after centring
    return mean, std


def blend(
    base: npt.ArrayLike, model: ReaderModel | None, entry_vectors: npt.ArrayLike, share: float | None = None
) -> npt.NDArray[np.float64]:
    """One reader's blended scores (see :func:`blend_many`); *base* unchanged (a copy) without a model.

    *share*: the model's share instead of :func:`model_weight` of its ratings (experiments).
    """
    scores = np.array(base, dtype=np.float64, ndmin=2)
    e = np.asarray(entry_vectors, dtype=np.float32)
    if model is None:
        return np.asarray(scores[0], dtype=np.float64)
    w, b, a = stack_models([model], e.shape[1])
    if share is not None:
        a[0] = share
    return np.asarray(blend_many(scores, e, w, b, a)[0], dtype=np.float64)


def calibration_pick(
    blended: npt.ArrayLike,
    model: ReaderModel | None,
    entry_vectors: npt.ArrayLike,
    *,
    shown: int = 20,
    pool: int = 50,
    rated: Sequence[int] = (),
) -> int | None:
    """The most informative candidate to ask the reader about: a row index, or None.

    Among the best *pool* entries (by *blended* score) that are not already
    shown (the top *shown*) nor rated, the one the model is least sure about:
    nearest its decision boundary (logistic), or for a Rocchio or no model the
    best-ranked one just below the cut.  Rated rows and ``-inf`` rows never
    come back.
    """
    s = np.asarray(blended, dtype=np.float64)
    order = [int(r) for r in np.argsort(-s, kind="stable") if np.isfinite(s[r])]
    taken = set(rated)
    candidates = [r for r in order[shown:pool] if r not in taken]
    if not candidates:
        return None
    return candidates[most_uncertain(model, np.asarray(entry_vectors, dtype=np.float32)[candidates])]


def most_uncertain(model: ReaderModel | None, candidates: npt.ArrayLike) -> int:
    """Which row of *candidates* (the vectors of the unrated papers just below the cut, best first) to ask about.

    Uncertainty sampling: the one the logistic model puts nearest its
    decision boundary (probability closest to 0.5), since its rating moves
    the model most; a Rocchio model has no boundary (and no model has no
    view), so then the best-ranked candidate, the one nearest the cut.
    """
    e = np.asarray(candidates, dtype=np.float32)
    if model is None or model.kind != "logistic" or len(e) == 0:
        return 0
    return int(np.argmin(np.abs(model.score(e))))
