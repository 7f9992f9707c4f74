"""Fusion variants tried against the shipped ranking, on both judged dev sets (not shipped; re-run to check).

Each variant is re-implemented from the shipped Index's own lexical scores
(``eval_ranking.raw_scores``: BM25F for phrases, TF-IDF Rocchio for seeds) and
the same paper and phrase vectors, so that only the fusion differs; the first
rows re-implement the shipped fusion and must print the same figures as
``eval_ranking.py``.  Variants: min-max / z-score / reciprocal-rank fusion,
the centred space, all-but-the-top and whitening, phrases joined, RM3 on the
fused top ten, seeds by centroid / max-sim / mean-sim, seed agreement
weights, Rocchio feedback on both sides from the fused top ten, BM25 on the
seeds' terms.  Every figure is P@min(20,R), mean +- standard error, specific
and broad sets; ``--grid`` adds leave-one-interest-out cross-validation on the
specific set for the main families.  The phrases are embedded as
``eval_ranking.py`` embeds them (each profile's own, in its order);
``--one-batch`` embeds them all in one call instead: the int8 model quantises
its activations per batch, so a phrase's vector moves a little with its batch
companions, and the figures with it (a sensitivity check).

Run:  python benchmarks/eval_variants.py [--draws 5] [--grid]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import eval_ranking as ev
import numpy as np

from newsletter import match
from newsletter.embed import KnownVectors, load_embedder, paper_text, sample_vectors_path

Array = np.ndarray[Any, Any]
FLOOR = match.SEMANTIC_FLOOR


@dataclass
class Case:
    """One profile: its interest, phrases or seed rows, relevance mask, and the shipped lexical scores."""

    interest: str
    rel: Array
    lex: Array
    phrases: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()


class Data:
    def __init__(self, draws: int, one_batch: bool = False) -> None:
        entries = ev.load_entries()
        lexical = match.Index(entries)
        embedder = load_embedder()
        if embedder is None:
            raise SystemExit("the semantic model did not load")
        self.embedder = embedder
        self.entries = lexical.entries
        """In the Index's row order, as every array here."""
        known = KnownVectors(sample_vectors_path(), embedder.name)
        found = [known.get(paper_text(e.title, e.summary)) for e in lexical.entries]
        if any(v is None for v in found):
            docs = embedder.embed([paper_text(e.title, e.summary) for e in lexical.entries])
        else:
            docs = np.stack([np.asarray(v, dtype=np.float32) for v in found if v is not None])
        self.docs = docs / np.linalg.norm(docs, axis=1, keepdims=True)
        self.mu = self.docs.mean(axis=0)
        self.space("centre")
        ids = [e.id for e in lexical.entries]
        row = {i: k for k, i in enumerate(ids)}
        self.cases: dict[str, dict[str, list[Case]]] = {"kw": {}, "sd": {}}
        texts: set[str] = set()
        for name, interests in (("specific", ev.load_specific()), ("broad", ev.load_broad(draws))):
            kws, sds = [], []
            for it in interests:
                rel = set(it.relevant)
                for ph in it.keywords:
                    lex = ev.raw_scores(lexical, ev.profile(keywords=ph))
                    kws.append(Case(it.name, np.array([i in rel for i in ids]), lex, phrases=tuple(ph)))
                    texts |= {*ph, ", ".join(ph)}
                    if not one_batch:  # as eval_ranking.py embeds them: the joined sentence, then the phrases
                        match.embed_phrases(embedder, [", ".join(ph)])
                        match.embed_phrases(embedder, ph)
                for picked in ev.seed_draws(it, draws):
                    lex = ev.raw_scores(lexical, ev.profile(papers=[i.removeprefix("arxiv:") for i in picked]))
                    rest = rel - set(picked)
                    seeds = tuple(row[i] for i in picked)
                    sds.append(Case(it.name, np.array([i in rest for i in ids]), lex, seeds=seeds))
            self.cases["kw"][name], self.cases["sd"][name] = kws, sds
        self.phrases = match.embed_phrases(embedder, sorted(texts))
        self.bm25 = lexical._bm25.tocsr()
        self.tfidf = lexical._tfidf.tocsr()
        self.tfidf_dense = self.tfidf.toarray()
        self.present = (self.tfidf > 0).astype(np.float64).tocsr()

    def space(self, kind: str, param: float = 0.0) -> None:
        """The paper-to-paper space: centred (shipped), all-but-the-top *param* directions, or shrunk whitening."""
        x = self.docs - self.mu
        if kind == "centre":
            t = np.eye(x.shape[1])
        elif kind == "abtt":
            top = np.linalg.svd(x, full_matrices=False)[2][: int(param)]
            t = np.eye(x.shape[1]) - top.T @ top
        else:
            cov = x.T @ x / len(x)
            cov = (1 - param) * cov + param * np.trace(cov) / len(cov) * np.eye(len(cov))
            values, vectors = np.linalg.eigh(cov)
            t = vectors @ np.diag(values**-0.5) @ vectors.T
        y = x @ t
        self.transform = t
        self.dc = y / np.linalg.norm(y, axis=1, keepdims=True)


def unit(v: Array) -> Array:
    return np.asarray(v / max(float(np.linalg.norm(v)), 1e-12))


def scaled(c: Array, floor: float = FLOOR) -> Array:
    """The shipped min-max: from the larger of the mean and *floor* to the best."""
    low = max(float(c.mean()), floor)
    span = float(c.max()) - low
    return np.zeros_like(c) if span <= 0 else np.clip((c - low) / span, 0, 1)


def zs(c: Array) -> Array:
    s = float(c.std())
    return (c - c.mean()) / s if s > 0 else np.zeros_like(c)


def rrf(c: Array, k: int = 60) -> Array:
    r = np.empty(len(c))
    r[np.lexsort((np.arange(len(c)), -c))] = np.arange(len(c))
    return np.asarray(k / (k + r + 1))


def by_best(lex: Array) -> Array:
    best = max(float(lex.max()), 0.0)
    return lex / best if best > 0 else lex


def normalise(norm: str, lex: Array, sem: Array, floor: float = FLOOR) -> tuple[Array, Array]:
    if norm == "minmax":
        return by_best(lex), scaled(sem, floor)
    if norm == "z":
        return zs(lex), zs(sem)
    return rrf(lex) * (lex > 0), rrf(sem)


def keywords(
    d: Data,
    c: Case,
    w: float = 0.2,
    joined: float = 0.0,
    fb: float = 0.5,
    fbk: int = 10,
    centre: bool = False,
    norm: str = "minmax",
    rm3: float = 0.0,
    gate: float | None = None,
) -> Array:
    """Keyword fusion; the defaults are the previous shipped model, centre/w 0.3/fb 1.0/gate 0.25 today's."""
    q = joined * d.phrases[", ".join(c.phrases)] + (1 - joined) * np.mean([d.phrases[t] for t in c.phrases], axis=0)
    space = d.dc if centre else d.docs
    sem = space @ (unit((q - d.mu) @ d.transform) if centre else q)
    lex_part, sem_part = normalise(norm, c.lex, sem)
    if gate is not None:
        sem_part = sem_part * (d.docs @ q >= gate)
    f = (1 - w) * lex_part + w * sem_part
    if rm3 > 0:
        top = np.argsort(-f, kind="stable")[:10]
        e = d.tfidf_dense[top].mean(axis=0)
        keep = np.argsort(-e)[:20]
        expansion = np.zeros_like(e)
        expansion[keep] = e[keep]
        f = f + rm3 * (1 - w) * by_best(np.asarray(d.bm25 @ expansion).ravel())
    if fb > 0:
        top = np.argsort(-f, kind="stable")[:fbk]
        near = space @ unit(space[top].mean(axis=0))
        part = scaled(near, 0.0 if centre else FLOOR) * (f > 0) if norm == "minmax" else normalise(norm, near, near)[1]
        f = f + fb * w * part
    return np.where(f > 1e-9, f, -np.inf) if norm == "minmax" else f


def seeds(
    d: Data,
    c: Case,
    w: float = 0.3,
    sem: str = "centroid",
    norm: str = "minmax",
    agree: float = 0.0,
    mlt: float = 0.0,
    shared: float = 0.0,
    joint: tuple[float, float] | None = None,
) -> Array:
    """Seed fusion; the defaults are the shipped model.  *joint*: (TF-IDF, embedding) Rocchio weights from the
    fused top ten, both sides re-scored."""
    rows = list(c.seeds)
    lex = c.lex.copy()
    vectors = d.dc[rows]
    if agree > 0:
        g = vectors @ vectors.T
        np.fill_diagonal(g, np.nan)
        weights = np.exp(np.nanmean(g, axis=1) / agree)
        centroid = unit((vectors * (weights / weights.sum())[:, None]).sum(axis=0))
    else:
        centroid = unit(vectors.mean(axis=0))
    if sem == "centroid":
        cos = d.dc @ centroid
    elif sem == "max":
        cos = (d.dc @ vectors.T).max(axis=1)
    else:
        cos = (d.dc @ vectors.T).mean(axis=1)
    if mlt > 0:  # BM25 with the top 60 terms of the seeds' TF-IDF centroid
        e = np.asarray(d.tfidf[rows].mean(axis=0)).ravel()
        keep = np.argsort(-e)[:60]
        query = np.zeros_like(e)
        query[keep] = e[keep]
        lex = by_best(lex) + mlt * by_best(np.asarray(d.bm25 @ query).ravel())
    if shared > 0:  # BM25 with every term found in two seeds or more
        counts = np.asarray(d.present[rows].sum(axis=0)).ravel()
        lex = by_best(lex) + shared * by_best(np.asarray(d.bm25 @ np.where(counts >= 2, counts, 0.0)).ravel())
    lex_part, sem_part = normalise(norm, lex, cos)
    f = (1 - w) * lex_part + w * sem_part
    if joint is not None:
        g = f.copy()
        g[rows] = -np.inf
        top = np.argsort(-g, kind="stable")[:10]
        lq = unit(unit(d.tfidf_dense[rows].mean(axis=0)) + joint[0] * d.tfidf_dense[top].mean(axis=0))
        sq = unit(centroid + joint[1] * unit(d.dc[top].mean(axis=0)))
        lex_part, sem_part = normalise(norm, d.tfidf_dense @ lq, d.dc @ sq)
        f = (1 - w) * lex_part + w * sem_part
    f[rows] = -np.inf
    return np.where(f > 1e-9, f, -np.inf) if norm == "minmax" else f


def p_at_r(scores: Array, rel: Array) -> float:
    k = min(ev.K, int(rel.sum()))
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return float(rel[order].sum()) / k


Ranker = Callable[..., Array]


def score(d: Data, kind: str, fn: Ranker, **kw: Any) -> dict[str, list[float]]:
    return {s: [p_at_r(fn(d, c, **kw), c.rel) for c in cases] for s, cases in d.cases[kind].items()}


def line(name: str, got: dict[str, list[float]]) -> str:
    cells = [f"{s} {statistics.fmean(v):.3f} +-{statistics.stdev(v) / math.sqrt(len(v)):.3f}" for s, v in got.items()]
    return f"{name:<58} " + "   ".join(cells)


def held_out(d: Data, kind: str, fn: Ranker, grid: dict[str, Sequence[Any]], fixed: dict[str, Any]) -> str:
    """Leave one interest of the specific set out: its profiles scored with the grid point best on the rest."""
    cases = d.cases[kind]["specific"]
    configs = [dict(zip(grid, v, strict=True)) for v in itertools.product(*grid.values())]
    per = [[p_at_r(fn(d, c, **fixed, **cfg), c.rel) for c in cases] for cfg in configs]
    held: list[float] = []
    for name in sorted({c.interest for c in cases}):
        train = [i for i, c in enumerate(cases) if c.interest != name]
        best = max(range(len(configs)), key=lambda k: (statistics.fmean(per[k][i] for i in train), -k))
        held.extend(per[best][i] for i, c in enumerate(cases) if c.interest == name)
    se = statistics.stdev(held) / math.sqrt(len(held))
    return f"  {kind} {fixed} over {list(grid)}: held out {statistics.fmean(held):.3f} +-{se:.3f}"


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--grid", action="store_true", help="leave-one-interest-out over the main families")
    parser.add_argument(
        "--one-batch",
        action="store_true",
        help="embed every phrase in one call (the int8 model's vectors move a little with their batch)",
    )
    args = parser.parse_args(argv)
    d = Data(args.draws, args.one_batch)
    shipped = {"centre": True, "w": 0.3, "fb": 1.0, "gate": FLOOR}
    out("keyword profiles")
    for name, kw in (
        ("previous shipped (raw space, w 0.2, feedback 0.5)", {}),
        ("shipped (centred, gated, w 0.3, feedback 1.0)", shipped),
        ("shipped, phrases joined 0.5", {**shipped, "joined": 0.5}),
        ("shipped, phrases joined 1.0", {**shipped, "joined": 1.0}),
        ("shipped, feedback depth 5", {**shipped, "fbk": 5}),
        ("shipped, feedback depth 20", {**shipped, "fbk": 20}),
        ("raw space, phrases joined 0.5", {"joined": 0.5}),
        ("raw space, phrases joined 1.0", {"joined": 1.0}),
        ("raw space, w 0.4", {"w": 0.4}),
        ("z-score fusion, w 0.4, feedback 1.0", {"norm": "z", "w": 0.4, "fb": 1.0}),
        ("z-score fusion, centred, w 0.5, feedback 1.0", {"norm": "z", "w": 0.5, "fb": 1.0, "centre": True}),
        ("RRF (k=60), w 0.3", {"norm": "rrf", "w": 0.3}),
        ("RRF (k=60), w 0.5", {"norm": "rrf", "w": 0.5}),
        ("RM3 on the fused top ten (20 terms), 0.5", {"rm3": 0.5}),
        ("RM3 on the fused top ten (20 terms), 1.0", {"rm3": 1.0}),
    ):
        out(line(name, score(d, "kw", keywords, **kw)))
    out("seed profiles")
    for name, kw in (
        ("shipped (centred centroid, w 0.3)", {}),
        ("max-sim over the seeds", {"sem": "max"}),
        ("mean-sim over the seeds", {"sem": "mean"}),
        ("seed agreement weights, tau 0.1", {"agree": 0.1}),
        ("z-score fusion, w 0.5", {"norm": "z", "w": 0.5}),
        ("RRF (k=60), w 0.3", {"norm": "rrf", "w": 0.3}),
        ("joint Rocchio from the fused top ten (0.5, 0.5)", {"joint": (0.5, 0.5)}),
        ("joint Rocchio, z-score (0.5, 1.0)", {"joint": (0.5, 1.0), "norm": "z"}),
        ("BM25 on the seeds' top 60 terms, 0.5", {"mlt": 0.5}),
        ("BM25 on terms in 2+ seeds, 0.5", {"shared": 0.5}),
    ):
        out(line(name, score(d, "sd", seeds, **kw)))
    out("other spaces than centring")
    for kind, param in (("abtt", 1), ("abtt", 3), ("whiten", 0.5), ("whiten", 0.8)):
        d.space(kind, param)
        out(line(f"{kind} {param}: keywords, shipped weights", score(d, "kw", keywords, **shipped)))
        out(line(f"{kind} {param}: seeds, shipped weights", score(d, "sd", seeds)))
    d.space("centre")
    if args.grid:
        weights = {"w": (0.1, 0.2, 0.3, 0.4, 0.5), "fb": (0.0, 0.5, 1.0), "joined": (0.0, 0.5)}
        out("leave one interest out, specific set")
        out(held_out(d, "kw", keywords, weights, {}))
        out(held_out(d, "kw", keywords, weights, {"centre": True, "gate": FLOOR}))
        out(held_out(d, "kw", keywords, {**weights, "w": (0.2, 0.3, 0.4, 0.5, 0.6)}, {"norm": "z"}))
        out(held_out(d, "sd", seeds, {"w": (0.2, 0.3, 0.4, 0.5, 0.6)}, {}))
        out(held_out(d, "sd", seeds, {"w": (0.2, 0.3, 0.4, 0.5, 0.6)}, {"norm": "z"}))


if __name__ == "__main__":
    main(sys.argv[1:])
