"""Ranking: which entries a reader gets, in what order, and why. Pure.

``Index(entries)`` is built once per run from the day's entries: every title
and abstract is tokenised, stemmed (Snowball) and turned into terms (single
words plus adjacent word pairs, so a phrase is matched as a chain of pairs),
and kept as sparse matrices:

* a BM25F weight matrix (title counts boosted over abstract counts) that
  keyword phrases are scored against;
* a TF-IDF matrix (sublinear tf, unit rows) that seed papers ("more like
  these") are compared to by cosine;
* presence matrices for exclusions, authors (by name key, so "T. Dao",
  "Tri Dao" and "Dao, Tri" are one person) and categories.

:meth:`Index.rank_many` then scores a batch of profiles with a few sparse
matrix products (no Python loop over entry x profile x word), and only the
few winners per reader get their human-readable reasons.  Nothing here
touches the store, the clock or the network: ``(entries, profile, now)`` in,
ranked matches out.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import snowballstemmer  # type: ignore[import-untyped]
from scipy import sparse  # type: ignore[import-untyped]

from .types import Entry, Match, Profile, Reason, ReasonKind

# Model constants: chosen from IR practice (Robertson's BM25 defaults), not
# fitted to any label set.
K1 = 1.2
B = 0.75
TITLE_BOOST = 2.0
"""BM25F: one occurrence in the title counts like this many in the abstract."""
WORD_IN_PHRASE = 0.3
"""A multi-word keyword's single words score this much of a full pair match."""
AUTHOR_WEIGHT = 5.0
CATEGORY_BONUS = 1.0
SEED_WEIGHT = 10.0
"""Seed-paper cosine (0..1) times this is comparable to one keyword match."""
SEED_FLOOR = 0.02
"""Below this cosine a paper does not 'resemble' the seeds at all."""
SEED_FEEDBACK = 0.5
SEED_FEEDBACK_DOCS = 10
"""Rocchio pseudo-relevance feedback: the seed centroid is moved toward the
papers it retrieves best, which generalises a handful of seeds to their topic."""
POPULARITY_WEIGHT = 0.1
"""Hugging Face upvotes raise a score by at most 10%: a tie-breaker, not a topic."""
POPULAR_UPVOTES = 20
"""From this many upvotes the popularity is named as a reason."""
BATCH = 512
"""Profiles scored per matrix product: bounds memory at entries x BATCH floats."""

_STOP = frozenset(
    """a an and are as at be been but by can do for from has have in into is it its of on or our over such
    than that the their then there these they this those through to under up via was we were what when where
    which while who will with within without""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[a-z0-9]+")
_ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Za-z0-9]*[A-Z0-9])s\b")
_stemmer = snowballstemmer.stemmer("english")


@lru_cache(maxsize=100_000)
def _stem(word: str) -> str:
    return str(_stemmer.stemWord(word))


def _fold(text: str) -> str:
    text = _ACRONYM_PLURAL.sub(r"\1", text)  # LLMs -> LLM, GPUs -> GPU
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def tokens(text: str) -> list[str]:
    """Stemmed words without stop words: ``"Mixture-of-Experts LLMs"`` -> ``["mixtur", "expert", "llm"]``."""
    return [_stem(w) for w in _WORD.findall(_fold(text)) if w not in _STOP]


def terms(toks: Sequence[str]) -> list[str]:
    """Index terms of a token list: every word and every adjacent pair."""
    return [*toks, *(f"{a} {b}" for a, b in pairwise(toks))]


def phrase_terms(text: str) -> tuple[str, ...]:
    """The terms that must all be present for *text* to match as a phrase."""
    toks = tokens(text)
    if len(toks) <= 1:
        return tuple(toks)
    return tuple(dict.fromkeys(f"{a} {b}" for a, b in pairwise(toks)))


def author_key(name: str) -> tuple[str, str]:
    """``(last name, first initial)``; "T. Dao", "Tri Dao" and "Dao, Tri" give ``("dao", "t")``."""
    folded = _fold(name).replace(".", " ")
    if "," in folded:
        last, _, first = folded.partition(",")
        last_words, first_words = last.split(), first.split()
    else:
        words = folded.split()
        last_words, first_words = words[-1:], words[:-1]
    last_name = "".join(w for w in last_words if w.isalnum() or w.replace("-", "").isalnum())
    initial = first_words[0][0] if first_words else ""
    return last_name, initial


@dataclass(frozen=True, slots=True)
class _Query:
    """One profile turned into term ids, the part of ranking that is per reader."""

    keywords: tuple[tuple[str, float, tuple[int, ...], tuple[int, ...]], ...]
    """(text, weight, phrase term ids, word term ids); ids only for terms the index knows."""
    excludes: tuple[tuple[int, ...], ...]
    authors: tuple[tuple[str, tuple[int, ...]], ...]
    categories: tuple[int, ...]
    seeds: tuple[tuple[str, str, npt.NDArray[np.float64]], ...]
    """(seed id, title, TF-IDF row in the index's vocabulary)."""
    seed_rows: tuple[int, ...]


class Index:
    """The day's entries, prepared once and ranked for many profiles."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        unique = {e.id: e for e in entries}  # one paper once: ids are canonical (no version)
        self.entries: tuple[Entry, ...] = tuple(unique.values())
        self.row_of = {e.id: i for i, e in enumerate(self.entries)}
        self.vocab: dict[str, int] = {}
        n = len(self.entries)
        t_rows: list[int] = []
        t_cols: list[int] = []
        b_rows: list[int] = []
        b_cols: list[int] = []
        t_len = np.zeros(n)
        b_len = np.zeros(n)
        for i, e in enumerate(self.entries):
            for field_terms, rows, cols, lengths in (
                (terms(tokens(e.title)), t_rows, t_cols, t_len),
                (terms(tokens(e.summary)), b_rows, b_cols, b_len),
            ):
                lengths[i] = len(field_terms)
                for term in field_terms:
                    rows.append(i)
                    cols.append(self.vocab.setdefault(term, len(self.vocab)))
        v = max(len(self.vocab), 1)
        title = sparse.csr_matrix((np.ones(len(t_rows)), (t_rows, t_cols)), shape=(n, v))
        body = sparse.csr_matrix((np.ones(len(b_rows)), (b_rows, b_cols)), shape=(n, v))
        title.sum_duplicates()
        body.sum_duplicates()
        self._title_terms = title
        self._body_terms = body
        present = ((title + body) > 0).astype(np.float64).tocsr()
        self._present = present
        df = np.asarray(present.sum(axis=0)).ravel()
        self.idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        self._bm25 = self._bm25_matrix(title, body, t_len, b_len)
        # Smooth idf (as scikit-learn's) for paper-to-paper cosines: BM25's idf
        # lets the rare words two papers happen to share dominate.
        self._smooth_idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
        self._tfidf = self._tfidf_matrix(title + body)
        self._authors, self._author_cols, self._last_cols = self._author_matrix()
        cats = sorted({c.lower() for e in self.entries for c in e.categories})
        self._cat_cols = {c: j for j, c in enumerate(cats)}
        rows = [i for i, e in enumerate(self.entries) for c in {c.lower() for c in e.categories}]
        cols = [self._cat_cols[c] for e in self.entries for c in {c.lower() for c in e.categories}]
        self._cats = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, max(len(cats), 1)))
        upvotes = np.array([max(e.upvotes or 0, 0) for e in self.entries], dtype=np.float64)
        self._popularity = 1.0 + POPULARITY_WEIGHT * np.minimum(1.0, np.log1p(upvotes) / math.log1p(200))
        self._first_seen = np.array([e.first_seen.timestamp() for e in self.entries], dtype=np.float64)

    # -- building -------------------------------------------------------------------

    def _bm25_matrix(
        self,
        title: sparse.csr_matrix,
        body: sparse.csr_matrix,
        t_len: npt.NDArray[np.float64],
        b_len: npt.NDArray[np.float64],
    ) -> sparse.csr_matrix:
        """BM25F: field-normalised, title-boosted term frequency, saturated, times idf."""

        def norm(m: sparse.csr_matrix, lengths: npt.NDArray[np.float64]) -> sparse.csr_matrix:
            avg = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
            scale = 1.0 / (1.0 - B + B * lengths / avg)
            return sparse.csr_matrix(sparse.diags(scale) @ m)

        tf = (norm(title, t_len) * TITLE_BOOST + norm(body, b_len)).tocsr()
        tf.data = tf.data * (K1 + 1.0) / (tf.data + K1)
        return sparse.csr_matrix(tf @ sparse.diags(self.idf))

    def _tfidf_matrix(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        """Sublinear tf times idf, rows scaled to unit length (for cosines)."""
        m = counts.tocsr(copy=True)
        m.data = 1.0 + np.log(m.data)
        m = sparse.csr_matrix(m @ sparse.diags(self._smooth_idf))
        norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ m)

    def _author_matrix(self) -> tuple[sparse.csr_matrix, dict[tuple[str, str], int], dict[str, list[int]]]:
        cols: dict[tuple[str, str], int] = {}
        rows_, cols_ = [], []
        for i, e in enumerate(self.entries):
            for key in {author_key(a) for a in e.authors}:
                rows_.append(i)
                cols_.append(cols.setdefault(key, len(cols)))
        by_last: dict[str, list[int]] = {}
        for (last, _), j in cols.items():
            by_last.setdefault(last, []).append(j)
        matrix = sparse.csr_matrix((np.ones(len(rows_)), (rows_, cols_)), shape=(len(self.entries), max(len(cols), 1)))
        return matrix, cols, by_last

    def _ids(self, names: Iterable[str]) -> tuple[int, ...]:
        return tuple(self.vocab[t] for t in names if t in self.vocab)

    def vectorise(self, entry: Entry) -> npt.NDArray[np.float64]:
        """An entry's unit TF-IDF vector in this index's vocabulary (seed papers)."""
        row = self.row_of.get(entry.id)
        if row is not None:
            return np.asarray(self._tfidf[row].toarray()).ravel()
        vec = np.zeros(max(len(self.vocab), 1))
        for text in (entry.title, entry.summary):
            for term in terms(tokens(text)):
                j = self.vocab.get(term)
                if j is not None:
                    vec[j] += 1.0
        nz = vec > 0
        vec[nz] = (1.0 + np.log(vec[nz])) * self._smooth_idf[nz]
        length = float(np.linalg.norm(vec))
        return vec / length if length else vec

    def _query(self, profile: Profile, seeds: Mapping[str, Entry]) -> _Query:
        i = profile.interests
        keywords = []
        for k in i.keywords:
            need = phrase_terms(k.text)
            phrase = self._ids(need)
            if len(phrase) < len(need):  # some pair never occurs today: the phrase cannot match
                phrase = ()
            keywords.append((k.text, k.weight, phrase, self._ids(dict.fromkeys(tokens(k.text)))))
        excludes = tuple(
            ids for x in i.exclude if (need := phrase_terms(x)) and len(ids := self._ids(need)) == len(need)
        )
        authors: list[tuple[str, tuple[int, ...]]] = []
        for name in i.authors:
            last, initial = author_key(name)
            found: tuple[int, ...]
            if initial:
                found = (self._author_cols[(last, initial)],) if (last, initial) in self._author_cols else ()
            else:
                found = tuple(self._last_cols.get(last, ()))
            authors.append((name, found))
        cats = tuple(self._cat_cols[c.lower()] for c in i.categories if c.lower() in self._cat_cols)
        seed_vecs = []
        seed_rows = []
        for paper in i.papers:
            entry = seeds.get(f"arxiv:{paper}") or seeds.get(paper)
            row = self.row_of.get(f"arxiv:{paper}")
            if entry is None and row is not None:
                entry = self.entries[row]
            if row is not None:
                seed_rows.append(row)
            if entry is not None:
                seed_vecs.append((paper, entry.title, self.vectorise(entry)))
        return _Query(tuple(keywords), excludes, tuple(authors), cats, tuple(seed_vecs), tuple(seed_rows))

    # -- ranking --------------------------------------------------------------------

    def rank(
        self,
        profile: Profile,
        now: datetime,
        *,
        exclude_ids: Set[str] = frozenset(),
        since: datetime | None = None,
        seeds: Mapping[str, Entry] | None = None,
    ) -> list[Match]:
        """The best entries for *profile*, best first, at most ``max_items``.

        Entries in *exclude_ids* (already delivered) and entries first seen at
        or before *since* are left out.  *seeds* holds the profile's seed
        papers when they are not among the indexed entries (older papers from
        the store); seeds found nowhere are simply not used (the caller
        reports them, see :func:`newsletter.profiles.missing_papers`).
        """
        return self.rank_many([profile], now, {profile.id: exclude_ids}, {profile.id: since}, seeds=seeds or {})[
            profile.id
        ]

    def rank_many(
        self,
        profiles: Sequence[Profile],
        now: datetime,
        exclude_ids_by_reader: Mapping[str, Set[str]] | None = None,
        since_by_reader: Mapping[str, datetime | None] | None = None,
        *,
        seeds: Mapping[str, Entry] | None = None,
    ) -> dict[str, list[Match]]:
        """Rank every profile at once: ``{reader id: matches}``, vectorised by batches."""
        excluded = exclude_ids_by_reader or {}
        since = since_by_reader or {}
        out: dict[str, list[Match]] = {}
        if not self.entries:
            return {p.id: [] for p in profiles}
        for start in range(0, len(profiles), BATCH):
            batch = profiles[start : start + BATCH]
            queries = [self._query(p, seeds or {}) for p in batch]
            scores, parts = self._scores(batch, queries)
            for j, (profile, query) in enumerate(zip(batch, queries, strict=True)):
                column = scores[:, j]
                cutoff = since.get(profile.id)
                if cutoff is not None:
                    column[self._first_seen <= cutoff.timestamp()] = -np.inf
                for entry_id in excluded.get(profile.id, ()):
                    row = self.row_of.get(entry_id)
                    if row is not None:
                        column[row] = -np.inf
                column[list(query.seed_rows)] = -np.inf  # the reader knows their seed papers
                column[column < max(profile.min_score, 1e-9)] = -np.inf
                out[profile.id] = self._top(profile, query, column, parts[j])
        return out

    def _scores(
        self, batch: Sequence[Profile], queries: Sequence[_Query]
    ) -> tuple[npt.NDArray[np.float64], list[dict[str, npt.NDArray[np.float64]]]]:
        """Scores of every entry for every profile in *batch*: one column each."""
        n, p, v = len(self.entries), len(batch), max(len(self.vocab), 1)

        def columns(pairs: Iterable[tuple[int, int, float]], height: int) -> sparse.csc_matrix:
            items = list(pairs)
            r = [a for a, _, _ in items]
            c = [b for _, b, _ in items]
            d = [w for _, _, w in items]
            return sparse.csc_matrix((d, (r, c)), shape=(height, p))

        def dense(m: sparse.spmatrix) -> npt.NDArray[np.float64]:
            return np.asarray(m.toarray(), dtype=np.float64)

        kw = columns(
            ((t, j, weight) for j, q in enumerate(queries) for t, weight in _keyword_weights(q)),
            v,
        )
        keyword = dense(self._bm25 @ kw)
        # Exclusions: a phrase is present when all of its terms are.
        phrases = [(j, ids) for j, q in enumerate(queries) for ids in q.excludes]
        veto = np.zeros((n, p), dtype=bool)
        if phrases:
            need = sparse.csc_matrix(
                (
                    [1.0] * sum(len(ids) for _, ids in phrases),
                    ([t for _, ids in phrases for t in ids], [k for k, (_, ids) in enumerate(phrases) for _ in ids]),
                ),
                shape=(v, len(phrases)),
            )
            hits = dense(self._present @ need) >= np.array([len(ids) for _, ids in phrases]) - 0.5
            owner = sparse.csr_matrix(
                (np.ones(len(phrases)), (range(len(phrases)), [j for j, _ in phrases])), shape=(len(phrases), p)
            )
            veto = (sparse.csr_matrix(hits.astype(np.float64)) @ owner).toarray() > 0
        authors = dense(
            self._authors
            @ columns(
                ((c, j, 1.0) for j, q in enumerate(queries) for _, cols in q.authors for c in cols),
                self._authors.shape[1],
            )
        )
        cats = (
            dense(
                self._cats
                @ columns(((c, j, 1.0) for j, q in enumerate(queries) for c in q.categories), self._cats.shape[1])
            )
            > 0
        )
        seed = np.zeros((n, p))
        seeded = [j for j, q in enumerate(queries) if q.seeds]
        if seeded:
            centroids = np.stack([np.mean([vec for _, _, vec in queries[j].seeds], axis=0) for j in seeded], axis=1)
            sims = np.asarray(self._tfidf @ centroids)
            # Rocchio feedback: add the mean of the best-retrieved non-seed papers.
            for k, j in enumerate(seeded):
                col = sims[:, k].copy()
                col[list(queries[j].seed_rows)] = -np.inf
                top = np.argsort(-col)[:SEED_FEEDBACK_DOCS]
                feedback = np.asarray(self._tfidf[top].mean(axis=0)).ravel()
                centroids[:, k] = centroids[:, k] / (np.linalg.norm(centroids[:, k]) or 1.0) + SEED_FEEDBACK * feedback
                centroids[:, k] /= np.linalg.norm(centroids[:, k]) or 1.0
            sims = np.asarray(self._tfidf @ centroids)
            sims[sims < SEED_FLOOR] = 0.0
            seed[:, seeded] = SEED_WEIGHT * sims
        base = keyword + AUTHOR_WEIGHT * authors + seed
        only_categories = np.array([not (q.keywords or q.authors or q.seeds) for q in queries] or [False], dtype=bool)[
            :p
        ]
        cat_bonus = CATEGORY_BONUS * cats * ((base > 0) | only_categories[None, :])
        total = (base + cat_bonus) * self._popularity[:, None]
        total[veto] = -np.inf
        parts = [{"seed": seed[:, j]} for j in range(p)]
        return total, parts

    def _top(
        self,
        profile: Profile,
        query: _Query,
        column: npt.NDArray[np.float64],
        parts: Mapping[str, npt.NDArray[np.float64]],
    ) -> list[Match]:
        k = min(profile.max_items, len(column))
        if k <= 0:
            return []
        candidates = np.argpartition(-column, k - 1)[:k]
        candidates = candidates[np.isfinite(column[candidates])]
        ordered = sorted(candidates.tolist(), key=lambda r: (-column[r], self.entries[r].id))
        return [
            Match(
                self.entries[r], round(float(column[r]), 4), self._reasons(r, profile, query, float(parts["seed"][r]))
            )
            for r in ordered
        ]

    # -- reasons --------------------------------------------------------------------

    def _row_terms(self, m: sparse.csr_matrix, row: int) -> set[int]:
        return set(m.indices[m.indptr[row] : m.indptr[row + 1]].tolist())

    def _reasons(self, row: int, profile: Profile, query: _Query, seed_score: float) -> tuple[Reason, ...]:
        """Why *row* was picked for *profile*, in words; only for the few winners."""
        entry = self.entries[row]
        in_title = self._row_terms(self._title_terms, row)
        in_body = self._row_terms(self._body_terms, row)
        out: list[Reason] = []
        for text, _, phrase, _words in query.keywords:
            if phrase and set(phrase) <= in_title:
                out.append(Reason(ReasonKind.KEYWORD, f'"{text}" in title', text))
            elif phrase and set(phrase) <= in_body:
                out.append(Reason(ReasonKind.KEYWORD, f'"{text}" in abstract', text))
            elif not any(r.kind is ReasonKind.KEYWORD for r in out) and (
                found := [w for w in _WORD.findall(_fold(text)) if self.vocab.get(_stem(w), -1) in in_title | in_body]
            ):
                where = "title" if any(self.vocab.get(_stem(w), -1) in in_title for w in found) else "abstract"
                out.append(
                    Reason(ReasonKind.KEYWORD, f'part of "{text}" ({", ".join(dict.fromkeys(found))}) in {where}', text)
                )
        entry_keys = {author_key(a): a for a in entry.authors}
        for name, cols in query.authors:
            if cols:
                last, initial = author_key(name)
                hit = next(
                    (a for (surname, first), a in entry_keys.items() if surname == last and initial in ("", first)),
                    None,
                )
                if hit:
                    note = "" if hit == name else f" (you follow {name})"
                    out.append(Reason(ReasonKind.AUTHOR, f"by {hit}{note}", name))
        if seed_score > 0 and query.seeds:
            vec = np.asarray(self._tfidf[row].toarray()).ravel()
            sims = [(float(vec @ s), pid, title) for pid, title, s in query.seeds]
            best, pid, title = max(sims)
            out.append(Reason(ReasonKind.PAPER, f'like your paper {pid} "{title}" (similarity {best:.2f})', pid))
        cats = [c for c in entry.categories if c.lower() in {x.lower() for x in profile.interests.categories}]
        if cats:
            out.append(Reason(ReasonKind.CATEGORY, f"in {', '.join(cats)}", cats[0]))
        if (entry.upvotes or 0) >= POPULAR_UPVOTES:
            out.append(Reason(ReasonKind.POPULAR, f"popular on Hugging Face ({entry.upvotes} upvotes)"))
        return tuple(out)


def _keyword_weights(query: _Query) -> Iterator[tuple[int, float]]:
    """Query term weights: a phrase's word pairs in full, its single words a little."""
    for _, weight, phrase, words in query.keywords:
        for t in phrase:
            yield t, weight
        if len(words) == 1 and not phrase:
            yield words[0], weight
        elif len(words) > 1:
            for t in words:
                yield t, weight * WORD_IN_PHRASE


def rank(
    entries: Sequence[Entry],
    profile: Profile,
    now: datetime,
    *,
    exclude_ids: Set[str] = frozenset(),
    since: datetime | None = None,
    seeds: Mapping[str, Entry] | None = None,
) -> list[Match]:
    """Rank *entries* for one *profile*; build an :class:`Index` once for many profiles."""
    return Index(entries).rank(profile, now, exclude_ids=exclude_ids, since=since, seeds=seeds)
