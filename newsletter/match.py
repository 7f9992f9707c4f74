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

A keyword matches in either form of an abbreviation the day's papers define
("large language models (LLMs)", found with Schwartz and Hearst's
algorithm): "LLM training" also finds "large language model training".

:meth:`Index.rank_many` then scores a batch of profiles with a few sparse
matrix products (no Python loop over entry x profile x word) into one dense
profiles x entries array, rules out what each reader must not get in place,
picks each reader's top ``max_items`` with ``argpartition``, and only those
winners get their human-readable reasons (the costly part: about half of the
time for 10,000 readers).  Entries are kept in id order, so a tie goes to the
smaller id.  Nothing here touches the store, the clock or the network:
``(entries, profile, now)`` in, ranked matches out.
"""

from __future__ import annotations

import heapq
import math
import re
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import snowballstemmer  # type: ignore[import-untyped]
from scipy import sparse  # type: ignore[import-untyped]

from . import blas, learn
from .embed import TextEmbedder, paper_text
from .types import Entry, Match, Profile, Reason, ReasonKind

Vector = npt.NDArray[np.float32]

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
BLAS_THREADS: int | None = 1
"""BLAS threads while ranking.  Its dense products are a few milliseconds each, between Python work; extra
BLAS threads spin between them and take the core the Python thread needs (fused ranking of 10,000 readers
on 2 busy cores: 1.8x the lexical time with the default threads, 1.1x with one).  None: BLAS's default."""

# Fusion with sentence embeddings (see :class:`Index`).  Chosen by leaving one interest out
# (benchmarks/eval_ranking.py --cv): the centred space by the 23 specific interests of
# tests/data/judged_specific.json alone (22 of 23 folds) and by both dev sets pooled (18 of 26 folds, the
# rest the raw space); the weights in that space by both sets pooled (26 of 26 folds).  Held-out figures,
# not fitted ones, are in the README.
SEMANTIC_KEYWORDS = 0.5
"""Share of a keyword reader's score that comes from meaning: ``(1-w) lexical + w semantic``, each scaled 0..1."""
SEMANTIC_SEEDS = 0.3
"""The same for seed papers (their lexical part is the TF-IDF Rocchio score)."""
SEMANTIC_CENTRED = True
"""Whether phrase queries meet the papers in the centred space, as seed papers do (the phrase vector minus
the day's mean paper, against the centred papers; see :class:`_Semantic`).  On the 23 specific interests
0.767 held out, where the raw space chosen before on 13 of them gives 0.740 (on the 10 interests judged
later, which no constant had seen: 0.725 against 0.665).  On the broad dev set the raw space does better
(0.973 against 0.933), but that set's papers *are* its three topics (the fixture was collected by searching
for them), so the day's mean is the broad topic itself and centring removes part of it; in a day's real
listing the mean is the whole field.  Partial centring (c x the mean, 0 < c < 1) was tried: held out it
does worse on the specific set and no better on the broad one."""
SEMANTIC_FEEDBACK = 1.0
"""Pseudo-relevance feedback in embedding space: the fused top papers' centroid adds this much of the weight."""
SEMANTIC_FEEDBACK_DOCS = 10
SEMANTIC_JOINED = 0.0
"""Share of a reader's phrase query that is all their phrases embedded as one sentence; the rest is the
weighted mean of each phrase embedded alone.  Cross-validation found no difference (0.792 vs 0.783 in-sample,
well inside the standard error), and 0 means a phrase is embedded once for every reader who typed it, where
a joined sentence is one more embedding per reader.  (Each phrase alone by its *max* cosine is what falls to
0.61: the *mean* of the phrase vectors is as good as the joined sentence.)"""
SEMANTIC_FLOOR = 0.25
"""Below this cosine a paper is not close in meaning at all: a reader whose interests are absent today gets
no paper on meaning alone, and ``skip_empty`` still works.  For phrases both the raw and the centred cosine
must reach it (centring alone would find a "closest" paper on any day, however far the topic), for seeds
the centred one."""
CLOSE = 0.5
"""A winner gets a "close in meaning" reason from this closeness up (0..1 between the floor and the day's best)."""
REASON_SENTENCE_CHARS = 140
"""A "close in meaning" reason quotes at most this much of the abstract's closest sentence."""

_STOP = frozenset(
    """a an and are as at be been but by can do for from has have in into is it its of on or our over such
    than that the their then there these they this those through to under up via was we were what when where
    which while who will with within without""".split()  # noqa: SIM905
)
_WORD = re.compile(r"[a-z0-9]+")
_ACRONYM_PLURAL = re.compile(r"\b([A-Z][A-Za-z0-9]*[A-Z0-9])s\b")
_DEFINED = re.compile(r"\(\s*([A-Za-z][A-Za-z-]{0,9}[A-Za-z])\s*\)")
"""An abbreviation in parentheses, after its long form: "large language models (LLMs)"."""
_CLAUSE_END = re.compile(r"[.;:!?()\[\]]")
_WORD_CASED = re.compile(r"[A-Za-z0-9]+")
try:  # PyStemmer: the same Snowball algorithm in C, identical stems (tests/test_stemmer.py), far faster
    import Stemmer

    _stemmer = Stemmer.Stemmer("english")
except ImportError:  # pragma: no cover - PyStemmer is a dependency; the pure-Python one stays as the fallback
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


def sentence_tokens(text: str) -> list[list[str]]:
    """:func:`tokens` of each of *text*'s :func:`sentences`, folded in one pass: the same words as
    :func:`tokens` of the whole text, as sentences split at white space."""
    parts = sentences(text)
    if not parts:
        return []
    folded = _fold(_SENTENCE_BREAK.join(p.replace(_SENTENCE_BREAK, " ") for p in parts))  # a stray NUL is a space
    return [[_stem(w) for w in _WORD.findall(part) if w not in _STOP] for part in folded.split(_SENTENCE_BREAK)]


@lru_cache(maxsize=50_000)
def _short_tokens(text: str) -> tuple[str, ...]:
    """:func:`tokens` of a profile phrase, cached: many readers share the same keywords."""
    return tuple(tokens(text))


def terms(toks: Sequence[str]) -> list[str]:
    """Index terms of a token list: every word and every adjacent pair."""
    return [*toks, *(f"{a} {b}" for a, b in pairwise(toks))]


def abbreviations(texts: Iterable[str]) -> dict[str, tuple[tuple[str, ...], str, str]]:
    """The abbreviations *texts* define: ``{"llm": (("larg", "languag", "model"), "LLM", "large language models")}``.

    A definition is a long form followed by its abbreviation in parentheses;
    the long form is found with Schwartz and Hearst's algorithm (2003: every
    letter of the abbreviation, right to left, in the words before it, the
    first one starting a word).  The most frequent long form of each
    abbreviation wins.  Abbreviations with digits, or fewer than two capitals,
    are left alone ("GPT-4", "(a)", "(Table)").
    """
    found: Counter[tuple[str, tuple[str, ...]]] = Counter()
    shown: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
    for text in texts:
        if "(" not in text:
            continue
        for m in _DEFINED.finditer(text):
            short = _ACRONYM_PLURAL.sub(r"\1", m.group(1))
            if not _capitals(short):
                continue
            before = _CLAUSE_END.split(text[max(0, m.start() - 200) : m.start()])[-1].split()
            letters = sum(c.isalpha() for c in short)
            written = _long_form(short, " ".join(before[-min(letters + 5, letters * 2) :]))
            if written is None:
                continue
            abbrev, spelled = tokens(short), tuple(tokens(written))
            if len(abbrev) == 1 and len(spelled) >= 2:
                found[abbrev[0], spelled] += 1
                plain = " ".join(w.lower() if w.istitle() else w for w in written.split())  # "Large" -> "large"
                shown.setdefault((abbrev[0], spelled), (short, plain))
    best: dict[str, tuple[tuple[str, ...], str, str]] = {}
    for key, _ in found.most_common():
        if key[0] not in best:
            best[key[0]] = (key[1], *shown[key])
    return best


def _capitals(word: str) -> bool:
    """Written like an abbreviation: two capitals or more ("LLM", "MoE", "LoRA")."""
    return sum(c.isupper() for c in word) >= 2


def _long_form(short: str, before: str) -> str | None:
    """Schwartz and Hearst: the shortest tail of *before* that *short*'s letters spell, or None."""
    s, i = len(short) - 1, len(before) - 1
    while s >= 0:
        c = short[s].lower()
        if not c.isalnum():
            s -= 1
            continue
        while i >= 0 and (before[i].lower() != c or (s == 0 and i > 0 and before[i - 1].isalnum())):
            i -= 1
        if i < 0:
            return None
        i -= 1
        s -= 1
    long = before[i + 1 :]
    return long if len(long) > len(short) else None


def phrase_terms(text: str) -> tuple[str, ...]:
    """The terms that must all be present for *text* to match as a phrase."""
    return _phrase(_short_tokens(text))


def _phrase(toks: Sequence[str]) -> tuple[str, ...]:
    """A token list's distinct word pairs; a single word stands for itself."""
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
class _Keyword:
    """A keyword looked up in one index (shared by every reader who wrote the same text)."""

    phrase: tuple[int, ...]
    """Term ids of its word pairs; empty if some pair never occurs today (the phrase cannot match)."""
    phrase_set: frozenset[int]
    words: tuple[int, ...]
    """Term ids of its distinct stemmed words that occur today."""
    typed: tuple[tuple[str, int], ...]
    """Its words as typed, with their term id (-1 if unknown): for the "part of" reason."""
    variants: tuple[tuple[tuple[int, ...], str], ...]
    """The keyword in other words ("LLM" for "large language model", or the other way round): each variant's
    term ids, all of which occur today, and how the reason names it ("LLM = large language models")."""
    any_ids: frozenset[int]
    """Every term id above: an entry with none of them has no keyword reason."""
    in_title: Reason
    in_abstract: Reason


@dataclass(frozen=True, slots=True)
class _Query:
    """One profile turned into term ids, the part of ranking that is per reader."""

    keywords: tuple[tuple[str, float, _Keyword], ...]
    """(text, weight, its terms)."""
    excludes: tuple[tuple[int, ...], ...]
    authors: tuple[tuple[str, tuple[int, ...], tuple[str, str]], ...]
    """(name as written, author columns, name key)."""
    categories: tuple[int, ...]
    category_names: frozenset[str]
    seeds: tuple[tuple[str, str], ...]
    """(seed id, title) of the seed papers found, in profile order."""
    seed_refs: tuple[int, ...]
    """Where their unit TF-IDF rows are, one per seed: see :meth:`Index._seed_ref`."""
    seed_rows: tuple[int, ...]
    joined: Vector | None = None
    """The keywords embedded as one sentence, only with :data:`SEMANTIC_JOINED` (see :func:`_meanings`)."""
    phrase_vectors: tuple[tuple[str, Vector], ...] = ()
    """Each keyword's own embedding (the query in meaning, and the closest one named in a reason); empty
    without an embedder."""
    seed_meaning: Vector | None = None
    """The seeds' centroid in the centred embedding space (see :class:`_Semantic`); None without seed embeddings."""
    seed_vectors: Vector | None = None
    """Seeds x dim: each seed's centred unit vector (which seed a paper is closest to), in ``seeds`` order."""
    seed_raw: Vector | None = None
    """The same seeds' raw unit vectors (the closest abstract sentence to a seed)."""
    close_to: Vector | None = None
    """The phrases' vectors, then the seeds' raw ones: which of them a paper is closest to is one product
    (see :meth:`Index._similar_reason`)."""
    close_skip: npt.NDArray[np.intp] | None = None
    """Rows of ``close_to`` that are seeds without a vector: never the closest."""


@dataclass(frozen=True, slots=True)
class _Fused:
    """The semantic side of one batch: which readers had one, and each part of their fused scores."""

    readers: list[int]
    matched: npt.NDArray[np.bool_]
    """len(readers) x entries: where the lexical part is positive (the words matched)."""
    closeness: npt.NDArray[np.float32]
    """The semantic part before weighting: 0..1, 1 for the day's closest paper."""


@dataclass(frozen=True, slots=True)
class _Selection:
    """One batch's winners: per profile, the chosen rows, their scores, and the seed parts for the reasons."""

    winners: list[list[int]]
    values: list[list[float]]
    seed_scores: list[npt.NDArray[np.float64] | None]
    seed_sims: list[npt.NDArray[np.float64] | None]
    fused: _Fused | None = None


_Target = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""A sparse vector in the index's vocabulary: sorted term ids and their weights (what a sentence is close to)."""
_SentenceVectors = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
"""An abstract's sentence vectors, flat: (sentence number, term id, unit weight), one per distinct term."""


def _sparse_add(
    cols: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    more: npt.NDArray[np.int64],
    add: npt.NDArray[np.float64],
) -> _Target:
    """Two sparse vectors (sorted ids, weights) summed, ids sorted."""
    both = np.concatenate((cols, more))
    ids, inverse = np.unique(both, return_inverse=True)
    summed = np.bincount(inverse, np.concatenate((values, add)), minlength=len(ids))
    return ids.astype(np.int64), np.asarray(summed, dtype=np.float64)


_PHRASE_CACHE: OrderedDict[tuple[str, str], Vector] = OrderedDict()
"""(model name, text) -> unit vector, shared by every Index of the process: each phrase is embedded once."""
PHRASE_CACHE_SIZE = 100_000


def embed_phrases(embedder: TextEmbedder, texts: Iterable[str]) -> dict[str, Vector]:
    """Unit embeddings of *texts*, from the process-wide LRU cache; the missing ones each on its own.

    On its own, not in one batch: the int8 model quantises its activations
    per batch, so a phrase embedded beside others gets a slightly different
    vector (cosine 0.98-0.99), and a reader's ranking would depend on which
    other readers' phrases were new that day, or which test ran first.
    Phrases are short and embedded once (then kept), so this costs little.
    """
    wanted = list(dict.fromkeys(texts))
    name = embedder.name
    missing = [t for t in wanted if (name, t) not in _PHRASE_CACHE]
    for t in missing:
        _PHRASE_CACHE[(name, t)] = np.asarray(embedder.embed([t])[0], dtype=np.float32)
    out = {}
    for t in wanted:
        _PHRASE_CACHE.move_to_end((name, t))
        out[t] = _PHRASE_CACHE[(name, t)]
    while len(_PHRASE_CACHE) > PHRASE_CACHE_SIZE:
        _PHRASE_CACHE.popitem(last=False)
    return out


def _unit(v: npt.NDArray[np.float32]) -> Vector:
    norm = float(np.linalg.norm(v))
    return np.asarray(v / norm if norm > 0 else v, dtype=np.float32)


_SENTENCE_BREAK = "\x00"
"""Joins sentences for one pass of :func:`_fold`: not a word character (one inside a sentence becomes a space)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    """An abstract's sentences (a full stop, question or exclamation mark, then a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _shorten(sentence: str, limit: int) -> str:
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


class _Semantic:
    """The day's paper embeddings, raw and centred.

    Phrase queries compare with the raw unit vectors.  Paper-to-paper cosines
    (seeds) use vectors centred on the day's mean paper and re-normalised:
    sentence embeddings share a large common direction, so raw cosines between
    any two papers of one field are high and barely tell a sub-field apart
    (Mu and Viswanath 2018, "All-but-the-top"); on the specific-interest dev
    set centring took seed profiles from 0.52 to 0.62 P@min(20,R) with the
    embedding alone, and from 0.63 to 0.68 fused.
    """

    def __init__(self, vectors: Vector, present: npt.NDArray[np.bool_], embedder: TextEmbedder | None) -> None:
        self.raw = vectors
        self.present = present
        self.embedder = embedder
        self.mean = (
            np.asarray(vectors[present].mean(axis=0), dtype=np.float32)
            if present.any()
            else np.zeros(vectors.shape[1], dtype=np.float32)
        )
        centred = vectors - self.mean[None, :]
        norms = np.linalg.norm(centred, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.centred = np.asarray(np.where(present[:, None], centred / norms, 0.0), dtype=np.float32)
        # raw = mean + norm x centred, so a query's raw cosines follow from its centred ones (see :meth:`gate`).
        self._norm_inv = np.where(present, 1.0 / norms[:, 0], 0.0).astype(np.float32)
        self._mean_dot = np.where(present, self.centred @ self.mean, -np.inf).astype(np.float32)
        self._extra: dict[str, Vector] = {}

    def centre(self, v: Vector) -> Vector:
        return _unit(v - self.mean)

    def gate(self, queries: Vector, centred_cosines: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """Where each query's *raw* cosine to each paper reaches :data:`SEMANTIC_FLOOR`, from its centred cosines.

        A paper is ``mean + n x centred`` and a unit query ``q = mean + a x centred_q``, so
        ``q . paper = q . mean + n (mean . centred + a x centred cosine)``: the test is one comparison with a
        per-query, per-paper threshold, not a second readers x papers product.  A paper without a vector never
        passes.
        """
        a = np.linalg.norm(queries - self.mean[None, :], axis=1)
        a[a == 0] = 1.0
        q_mean = queries @ self.mean
        threshold = ((SEMANTIC_FLOOR - q_mean) / a)[:, None] * self._norm_inv[None, :]
        threshold -= (1.0 / a)[:, None] * self._mean_dot[None, :]
        return np.asarray(centred_cosines >= threshold)


class Index:
    """The day's entries, prepared once and ranked for many profiles.

    It fills small caches as it ranks (keyword lookups, reasons, seed vectors),
    so use one Index from one thread at a time.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        embeddings: npt.ArrayLike | Mapping[str, npt.ArrayLike] | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        """*embeddings*: the entries' stored unit vectors, either an array aligned with *entries* or a mapping
        ``{entry id: vector}`` (an entry without one is ranked on its words alone; ids that are not entries are
        seed papers' vectors); *embedder* embeds the readers' phrases (cached) and seed papers without a stored
        vector.
        With neither, the ranking is the lexical model's alone.
        """
        unique = {e.id: e for e in entries}  # one paper once: ids are canonical (no version)
        # In id order, so that ties go to the smaller id by row number alone.
        self.entries: tuple[Entry, ...] = tuple(sorted(unique.values(), key=lambda e: e.id))
        self.row_of = {e.id: i for i, e in enumerate(self.entries)}
        self.vocab: dict[str, int] = {}
        n = len(self.entries)
        vocab = self.vocab
        t_cols: list[int] = []
        b_cols: list[int] = []
        t_len = np.zeros(n)
        b_len = np.zeros(n)
        # The abstract is tokenised a sentence at a time (the same words as in one go: sentences split at
        # white space), so that a quoted sentence later needs no second pass over the words.
        self._sentence_words: list[npt.NDArray[np.int64]] = []
        """Per row, how many of the abstract's words each of its :func:`sentences` holds."""
        for i, e in enumerate(self.entries):
            parts = sentence_tokens(e.summary)
            self._sentence_words.append(np.array([len(p) for p in parts], dtype=np.int64))
            for field_terms, cols, lengths in (
                (terms(tokens(e.title)), t_cols, t_len),
                (terms([t for p in parts for t in p]), b_cols, b_len),
            ):
                lengths[i] = len(field_terms)
                cols.extend([vocab.setdefault(term, len(vocab)) for term in field_terms])
        t_rows = np.repeat(np.arange(n), t_len.astype(np.int64))
        b_rows = np.repeat(np.arange(n), b_len.astype(np.int64))
        v = max(len(self.vocab), 1)
        title = sparse.csr_matrix((np.ones(len(t_rows)), (t_rows, t_cols)), shape=(n, v))
        body = sparse.csr_matrix((np.ones(len(b_rows)), (b_rows, b_cols)), shape=(n, v))
        title.sum_duplicates()
        body.sum_duplicates()
        self._body_ids = np.array(b_cols, dtype=np.int64)
        """The abstracts' term ids in text order (each row's words, then its word pairs), for quoting."""
        self._body_starts = np.concatenate(([0], np.cumsum(b_len.astype(np.int64))))
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
        self._tfidf_t = self._tfidf.T.tocsr()
        """Terms x entries: ``vectors @ _tfidf_t`` is the fastest way to the entries' cosines to a few vectors."""
        self._authors, self._author_cols, self._last_cols = self._author_matrix()
        cats = sorted({c.lower() for e in self.entries for c in e.categories})
        self._cat_cols = {c: j for j, c in enumerate(cats)}
        rows = [i for i, e in enumerate(self.entries) for c in {c.lower() for c in e.categories}]
        cols = [self._cat_cols[c] for e in self.entries for c in {c.lower() for c in e.categories}]
        self._cats = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, max(len(cats), 1)))
        upvotes = np.array([max(e.upvotes or 0, 0) for e in self.entries], dtype=np.float64)
        self._popularity = 1.0 + POPULARITY_WEIGHT * np.minimum(1.0, np.log1p(upvotes) / math.log1p(200))
        self._first_seen = np.array([e.first_seen.timestamp() for e in self.entries], dtype=np.float64)
        # Terms (authors, categories) x entries: a batch of profiles times these
        # gives one row of scores per profile, the layout top-k selection wants.
        self._bm25_t = self._bm25.T.tocsr()
        self._present_t = self._present.T.tocsr()
        self._authors_t = self._authors.T.tocsr()
        self._cats_t = self._cats.T.tocsr()
        # Filled lazily, only for rows that win somewhere (reasons).
        self._term_sets: list[tuple[frozenset[int], frozenset[int], frozenset[int]] | None] = [None] * n
        self._keywords: dict[str, _Keyword] = {}
        self._extra_refs: dict[str, int] = {}
        self._extra_rows: list[sparse.csr_matrix] = []
        self._with_extra: sparse.csr_matrix | None = None
        self._keyword_reasons: dict[tuple[int, str], tuple[Reason | None, bool]] = {}
        self.abbreviations = abbreviations(f"{e.title}. {e.summary}" for e in self.entries)
        """Abbreviations today's papers define: see :func:`abbreviations`."""
        self._long_forms: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for ab, (long, _, _) in sorted(self.abbreviations.items(), key=lambda kv: -len(kv[1][0])):
            self._long_forms.setdefault(long[0], []).append((long, ab))  # longest first
        self.embedder = embedder
        self._semantic = self._semantic_index(entries, embeddings, embedder)
        self._phrase_targets: dict[str, _Target] = {}
        self._seed_targets: dict[int, _Target] = {}
        self._sentences: dict[int, tuple[list[str], _SentenceVectors]] = {}
        self._similar_reasons: dict[tuple[int, str, int | None], Reason] = {}
        """(row, phrase or seed, seed ref) -> its "close in meaning" reason: readers share phrases and papers
        (row -1: the reason without a quote, the same for every row)."""
        self.reader_models: dict[str, learn.ReaderModel | None] = {}
        """Per reader id, the model learned from their ratings (set by the pipeline; see :mod:`newsletter.learn`)."""

    def _semantic_index(
        self,
        given: Sequence[Entry],
        embeddings: npt.ArrayLike | Mapping[str, npt.ArrayLike] | None,
        embedder: TextEmbedder | None,
    ) -> _Semantic | None:
        """The entries' vectors in row order (zeros where missing), or None when there are none at all."""
        if embeddings is None:
            by_id: dict[str, npt.ArrayLike] = {}
        elif isinstance(embeddings, Mapping):
            by_id = dict(embeddings)
        else:
            matrix = np.asarray(embeddings, dtype=np.float32)
            if matrix.ndim != 2 or matrix.shape[0] != len(given):
                raise ValueError(f"embeddings must be one row per entry ({len(given)}), got shape {matrix.shape}")
            by_id = {e.id: matrix[i] for i, e in enumerate(given)}  # a repeated id keeps its last row, as entries do
        if not by_id:
            return None
        dim = len(np.asarray(next(iter(by_id.values()))).ravel())
        if embedder is not None and embedder.dim != dim:
            raise ValueError(f"the embedder gives {embedder.dim}-d vectors but the embeddings are {dim}-d")
        vectors = np.zeros((len(self.entries), dim), dtype=np.float32)
        present = np.zeros(len(self.entries), dtype=bool)
        for i, e in enumerate(self.entries):
            v = by_id.get(e.id)
            if v is not None:
                vectors[i] = _unit(np.asarray(v, dtype=np.float32).ravel())
                present[i] = bool(np.any(vectors[i]))
        if not present.any():
            return None
        sem = _Semantic(vectors, present, embedder)
        for pid, v in by_id.items():  # older papers' stored vectors (seed papers no source lists today)
            if pid not in self.row_of:
                sem._extra[pid] = _unit(np.asarray(v, dtype=np.float32).ravel())
        return sem

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
        self._entry_authors: list[dict[tuple[str, str], str]] = []
        """Per row: name key -> the author's name as printed (for "by ..." reasons)."""
        for i, e in enumerate(self.entries):
            keys = {author_key(a): a for a in e.authors}
            self._entry_authors.append(keys)
            for key in keys:
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

    def _seed_ref(self, entry: Entry) -> int:
        """A seed paper's row in :meth:`_seed_rows`: its own row if indexed, else one added after the entries.

        An older paper from the store is vectorised once, however many readers name it.
        """
        row = self.row_of.get(entry.id)
        if row is not None:
            return row
        ref = self._extra_refs.get(entry.id)
        if ref is None:
            ref = self._extra_refs[entry.id] = len(self.entries) + len(self._extra_rows)
            self._extra_rows.append(sparse.csr_matrix(self.vectorise(entry)))
            self._with_extra = None
        return ref

    def _seed_rows(self, refs: Sequence[int]) -> sparse.csr_matrix:
        """The TF-IDF rows of seed references, in order, with one fancy index."""
        if not self._extra_rows:
            return self._tfidf[list(refs)]
        if self._with_extra is None:
            self._with_extra = sparse.vstack([self._tfidf, *self._extra_rows], format="csr")
        return self._with_extra[list(refs)]

    def _keyword(self, text: str) -> _Keyword:
        """*text*'s term ids, looked up once per index however many readers wrote it."""
        found = self._keywords.get(text)
        if found is None:
            need = phrase_terms(text)
            phrase = self._ids(need)
            if len(phrase) < len(need):
                phrase = ()
            words = self._ids(dict.fromkeys(_short_tokens(text)))
            typed = tuple((w, self.vocab.get(_stem(w), -1)) for w in _WORD.findall(_fold(text)))
            variants = []
            for toks, note in self._variants(text):
                need = _phrase(toks)
                if len(ids := self._ids(need)) == len(need):
                    variants.append((ids, note))
            any_ids = frozenset(phrase) | {t for _, t in typed if t >= 0} | {t for ids, _ in variants for t in ids}
            found = self._keywords[text] = _Keyword(
                phrase,
                frozenset(phrase),
                words,
                typed,
                tuple(variants),
                any_ids,
                Reason(ReasonKind.KEYWORD, f'"{text}" in title', text, "title"),
                Reason(ReasonKind.KEYWORD, f'"{text}" in abstract', text, "abstract"),
            )
        return found

    def _variants(self, text: str) -> list[tuple[tuple[str, ...], str]]:
        """*text*'s tokens with each abbreviation defined today spelled out, and with each long form abbreviated.

        Only an abbreviation typed with two capitals or more is spelled out:
        "MAP" may be mean average precision, "map" is a map.
        """
        toks = _short_tokens(text)
        out: list[tuple[tuple[str, ...], str]] = []
        caps = {t for w in _WORD_CASED.findall(_ACRONYM_PLURAL.sub(r"\1", text)) if _capitals(w) for t in tokens(w)}
        spelled: list[str] = []
        notes: list[str] = []
        for t in toks:
            known = self.abbreviations.get(t) if t in caps else None
            spelled.extend(known[0] if known else (t,))
            if known:
                notes.append(f"{known[1]} = {known[2]}")
        if notes:
            out.append((tuple(spelled), ", ".join(notes)))
        short: list[str] = []
        notes = []
        i = 0
        while i < len(toks):
            forms = self._long_forms.get(toks[i], ())
            hit = next(((ab, long) for long, ab in forms if toks[i : i + len(long)] == long), None)
            if hit:
                ab, long = hit
                short.append(ab)
                notes.append(f"{self.abbreviations[ab][1]} = {self.abbreviations[ab][2]}")
                i += len(long)
            else:
                short.append(toks[i])
                i += 1
        if notes:
            out.append((tuple(short), ", ".join(notes)))
        return out

    def _query(
        self, profile: Profile, seeds: Mapping[str, Entry], phrases: Mapping[str, Vector] | None = None
    ) -> _Query:
        i = profile.interests
        keywords = tuple((k.text, k.weight, self._keyword(k.text)) for k in i.keywords)
        vetoed = [self._keyword(x) for x in i.exclude]
        excludes = tuple(ids for kw in vetoed for ids in (kw.phrase, *(v for v, _ in kw.variants)) if ids)
        authors: list[tuple[str, tuple[int, ...], tuple[str, str]]] = []
        for name in i.authors:
            last, initial = author_key(name)
            found: tuple[int, ...]
            if initial:
                found = (self._author_cols[(last, initial)],) if (last, initial) in self._author_cols else ()
            else:
                found = tuple(self._last_cols.get(last, ()))
            authors.append((name, found, (last, initial)))
        cats = tuple(self._cat_cols[c.lower()] for c in i.categories if c.lower() in self._cat_cols)
        seed_vecs: list[tuple[str, str]] = []
        refs: list[int] = []
        seed_rows = []
        seed_entries: list[Entry] = []
        for paper in i.papers:
            entry = seeds.get(f"arxiv:{paper}") or seeds.get(paper)
            row = self.row_of.get(f"arxiv:{paper}")
            if entry is None and row is not None:
                entry = self.entries[row]
            if row is not None:
                seed_rows.append(row)
            if entry is not None:
                seed_vecs.append((paper, entry.title))
                refs.append(self._seed_ref(entry))
                seed_entries.append(entry)
        joined, phrase_vectors = self._meaning(keywords, phrases)
        seed_meaning, seed_vectors, seed_raw = self._seed_meaning(seed_entries)
        close_to, close_skip = None, None
        if phrase_vectors or seed_raw is not None:
            rows = [v for _, v in phrase_vectors]
            if seed_raw is not None:
                rows.extend(seed_raw)
                absent = np.flatnonzero(~np.any(seed_raw, axis=1))
                close_skip = absent + len(phrase_vectors) if len(absent) else None
            close_to = np.array(rows, dtype=np.float32)  # np.array, not np.stack: a fifth of the overhead
        return _Query(
            keywords=keywords,
            excludes=excludes,
            authors=tuple(authors),
            categories=cats,
            category_names=frozenset(c.lower() for c in i.categories),
            seeds=tuple(seed_vecs),
            seed_refs=tuple(refs),
            seed_rows=tuple(seed_rows),
            joined=joined,
            phrase_vectors=phrase_vectors,
            seed_meaning=seed_meaning,
            seed_vectors=seed_vectors,
            seed_raw=seed_raw,
            close_to=close_to,
            close_skip=close_skip,
        )

    @staticmethod
    def _joined(keywords: Sequence[tuple[str, float, _Keyword]]) -> str:
        """The keywords as one sentence, as embedded."""
        return ", ".join(text for text, _, _ in keywords)

    def _meaning(
        self, keywords: Sequence[tuple[str, float, _Keyword]], phrases: Mapping[str, Vector] | None
    ) -> tuple[Vector | None, tuple[tuple[str, Vector], ...]]:
        """The keywords embedded as one sentence (with :data:`SEMANTIC_JOINED` only) and each keyword's vector
        (None, () without an embedder).  Their weighted mean is taken for the whole batch: :func:`_meanings`."""
        if self._semantic is None or self.embedder is None or not keywords:
            return None, ()
        joined = self._joined(keywords) if SEMANTIC_JOINED > 0 else None
        wanted = [*([joined] if joined else []), *(t for t, _, _ in keywords)]
        if phrases is None or not all(t in phrases for t in wanted):
            phrases = embed_phrases(self.embedder, wanted)
        return (None if joined is None else phrases[joined]), tuple([(t, phrases[t]) for t, _, _ in keywords])

    def _seed_meaning(self, seed_entries: Sequence[Entry]) -> tuple[Vector | None, Vector | None, Vector | None]:
        """The seeds' centred centroid, their centred and raw unit vectors; Nones when none has a vector."""
        sem = self._semantic
        if sem is None or not seed_entries:
            return None, None, None
        raw = []
        for e in seed_entries:
            v = self._seed_vector(e)
            raw.append(v if v is not None else np.zeros(sem.raw.shape[1], dtype=np.float32))
        if not any(np.any(v) for v in raw):
            return None, None, None
        raw_m = np.stack(raw)
        centred = np.stack([sem.centre(v) if np.any(v) else v for v in raw])
        return _unit(centred.mean(axis=0)), centred, raw_m

    def _seed_vector(self, entry: Entry) -> Vector | None:
        """A seed paper's raw unit vector: its row's, else embedded once (with the embedder) and kept."""
        sem = self._semantic
        assert sem is not None
        row = self.row_of.get(entry.id)
        if row is not None and sem.present[row]:
            return np.asarray(sem.raw[row], dtype=np.float32)
        found = sem._extra.get(entry.id)
        if found is None and self.embedder is not None:
            found = sem._extra[entry.id] = _unit(self.embedder.embed([paper_text(entry.title, entry.summary)])[0])
        return None if found is None else np.asarray(found, dtype=np.float32)

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
        with blas.limit(BLAS_THREADS):
            for start in range(0, len(profiles), BATCH):
                batch = profiles[start : start + BATCH]
                phrases = self._batch_phrases(batch)
                queries = [self._query(p, seeds or {}, phrases) for p in batch]
                self._emit(batch, queries, self._select(batch, queries, excluded, since), out)
        return out

    def _batch_phrases(self, batch: Sequence[Profile]) -> dict[str, Vector] | None:
        """Every keyword of the batch, and each reader's keywords joined, embedded in one call (cached)."""
        if self._semantic is None or self.embedder is None:
            return None
        texts: list[str] = []
        for p in batch:
            kws = p.interests.keywords
            if kws:
                if SEMANTIC_JOINED > 0:
                    texts.append(", ".join(k.text for k in kws))
                texts.extend(k.text for k in kws)
        return embed_phrases(self.embedder, texts) if texts else {}

    def _select(
        self,
        batch: Sequence[Profile],
        queries: Sequence[_Query],
        excluded: Mapping[str, Set[str]],
        since: Mapping[str, datetime | None],
    ) -> _Selection:
        """Score one batch, rule out what each reader must not get, and pick each reader's winners."""
        scores, seed_scores, seed_sims, fused = self._scores(queries)
        self._mask(scores, batch, queries, excluded, since)
        models = [self.reader_models.get(p.id) for p in batch] if self.reader_models else []
        if any(m is not None for m in models) and self._semantic is not None:
            # What the reader taught us by rating papers, blended in (learn.blend_many): exclusions stay -inf.
            w, b, a = learn.stack_models(models, self._semantic.raw.shape[1])
            learn.blend_many(scores, self._semantic.raw, w, b, a)
        winners = self._winners(scores, [p.max_items for p in batch])
        values = [scores[j, rows].tolist() for j, rows in enumerate(winners)]
        return _Selection(winners, values, seed_scores, seed_sims, fused)

    def _emit(
        self, batch: Sequence[Profile], queries: Sequence[_Query], chosen: _Selection, out: dict[str, list[Match]]
    ) -> None:
        """Turn one batch's winners into matches with their reasons."""
        similar = self._similar_winners(chosen, queries)
        for j, (profile, query) in enumerate(zip(batch, queries, strict=True)):
            seed_part, cosines = chosen.seed_scores[j], chosen.seed_sims[j]
            close = similar.get(j, {})
            out[profile.id] = [
                Match(
                    self.entries[r],
                    round(v, 4),
                    self._reasons(
                        r,
                        profile,
                        query,
                        cosines[r].tolist()
                        if cosines is not None and seed_part is not None and seed_part[r] > 0
                        else [],
                        close.get(r),
                    ),
                )
                for r, v in zip(chosen.winners[j], chosen.values[j], strict=True)
            ]

    def _similar_winners(self, chosen: _Selection, queries: Sequence[_Query]) -> dict[int, dict[int, int]]:
        """Per reader of the batch, the winners close in meaning (in the top half of the day's closeness
        scale, or matched on meaning alone), each with the row of ``close_to`` it is closest to.

        The test is one fancy index for the whole batch, and the closest phrase or seed one product per
        reader: one per winner (37,952 for the benchmark's 10,000 readers) cost 7% of the fused ranking's
        extra time.
        """
        fused, sem = chosen.fused, self._semantic
        if fused is None or sem is None:
            return {}
        winners = [chosen.winners[j] for j in fused.readers]
        counts = [len(rows) for rows in winners]
        if not sum(counts):
            return {}
        k = np.repeat(np.arange(len(winners)), counts)
        rows = np.fromiter((r for rs in winners for r in rs), dtype=np.intp, count=len(k))
        close = fused.closeness[k, rows]
        picked = (close >= CLOSE) | ((close > 0) & ~fused.matched[k, rows])
        out: dict[int, dict[int, int]] = {}
        starts = np.cumsum([0, *counts])
        for at, j in enumerate(fused.readers):
            here = rows[starts[at] : starts[at + 1]][picked[starts[at] : starts[at + 1]]]
            query = queries[j]
            if not len(here) or query.close_to is None:
                continue
            # The phrases, then the seed papers (the first of equals wins); a seed without a vector never does.
            cosines = query.close_to @ sem.raw[here].T
            if query.close_skip is not None:
                cosines[query.close_skip] = -np.inf
            out[j] = dict(zip(here.tolist(), np.argmax(cosines, axis=0).tolist(), strict=True))
        return out

    def _similar_reason(self, row: int, query: _Query, at: int, *, quote: bool = True) -> Reason | None:
        """The reason naming phrase or seed paper *at* (its row of ``close_to``, the closest to *row* in
        meaning) and, with *quote*, the abstract sentence closest to it."""
        sem = self._semantic
        if sem is None or not sem.present[row]:
            return None
        phrases = len(query.phrase_vectors)
        if at < phrases:
            term, seed_ref = query.phrase_vectors[at][0], None
            named = f'"{term}"'
        else:
            term, seed_ref = query.seeds[at - phrases][0], query.seed_refs[at - phrases]
            named = f"your paper {term}"
        key = (row if quote else -1, term, seed_ref)  # unquoted, the reason is the same for every row
        cached = self._similar_reasons.get(key)
        if cached is not None:
            return cached
        if not quote:
            reason = self._similar_reasons[key] = Reason(ReasonKind.SIMILAR, f"close in meaning to {named}", term)
            return reason
        target = (
            self._phrase_target(term, dict(query.phrase_vectors)[term])
            if seed_ref is None
            else self._seed_target(seed_ref)
        )
        sentence = self._closest_sentence(row, target)
        said = f"close in meaning to {named}"
        if sentence:
            said += f': "{_shorten(sentence, REASON_SENTENCE_CHARS)}"'
        reason = self._similar_reasons[key] = Reason(ReasonKind.SIMILAR, said, term)
        return reason

    def _mask(
        self,
        scores: npt.NDArray[np.float64],
        batch: Sequence[Profile],
        queries: Sequence[_Query],
        excluded: Mapping[str, Set[str]],
        since: Mapping[str, datetime | None],
    ) -> None:
        """Rule out, in place, what a reader must not get: old, delivered, own seeds, below min_score."""
        cutoffs = np.array([c.timestamp() if (c := since.get(p.id)) is not None else -np.inf for p in batch])
        scores[cutoffs[:, None] >= self._first_seen[None, :]] = -np.inf
        readers: list[int] = []
        rows: list[int] = []
        for j, (profile, query) in enumerate(zip(batch, queries, strict=True)):
            # Already delivered, and the reader's own seed papers (they know them).
            delivered = excluded.get(profile.id, ())
            if len(delivered) <= len(self.row_of):
                gone = [r for e in delivered if (r := self.row_of.get(e)) is not None]
            else:  # a long-time reader's history is longer than today's list: walk the list instead
                gone = [r for e, r in self.row_of.items() if e in delivered]
            gone.extend(query.seed_rows)
            rows.extend(gone)
            readers.extend([j] * len(gone))
        scores[readers, rows] = -np.inf
        floors = np.array([max(p.min_score, 1e-9) for p in batch])
        scores[scores < floors[:, None]] = -np.inf

    def _winners(self, scores: npt.NDArray[np.float64], limits: Sequence[int]) -> list[list[int]]:
        """Per reader (row of *scores*), the entries of its best ``limit`` finite scores, best first.

        Ties go to the smaller entry id, which is the smaller row (entries are
        kept in id order), also when a tie straddles the cut.
        """
        p, n = scores.shape
        ks = np.minimum(np.asarray(limits, dtype=np.int64), n)
        top = int(ks.max(initial=0))
        if top <= 0:
            return [[] for _ in range(p)]
        if top < n:
            cand = np.argpartition(scores, n - top, axis=1)[:, n - top :]
            last = np.take_along_axis(scores, cand, axis=1).min(axis=1)
            # Where the cut falls inside a run of equal scores, argpartition
            # took arbitrary members of the run: take the lowest rows instead.
            tied = np.flatnonzero(np.isfinite(last) & ((scores >= last[:, None]).sum(axis=1) > top))
            if len(tied):
                sub, cut = scores[tied], last[tied, None]
                above, equal = sub > cut, sub == cut
                wanted = top - above.sum(axis=1)
                chosen = above | (equal & (np.cumsum(equal, axis=1, dtype=np.int32) <= wanted[:, None]))
                cand[tied] = np.nonzero(chosen)[1].reshape(len(tied), top)
        else:
            cand = np.broadcast_to(np.arange(n), (p, n))
        vals = np.take_along_axis(scores, cand, axis=1)
        order = np.lexsort((cand, -vals), axis=1)
        cand = np.take_along_axis(cand, order, axis=1)
        finite = np.isfinite(np.take_along_axis(vals, order, axis=1))
        return [cand[j, : ks[j]][finite[j, : ks[j]]].tolist() for j in range(p)]

    def _scores(
        self, queries: Sequence[_Query]
    ) -> tuple[
        npt.NDArray[np.float64],
        list[npt.NDArray[np.float64] | None],
        list[npt.NDArray[np.float64] | None],
        _Fused | None,
    ]:
        """Scores of every entry for every profile of the batch: one row per profile, one column per entry.

        Also, per profile, the seed-paper part of its scores and each entry's
        cosine to each seed (None without seeds), for the reasons, and the
        semantic side of the fusion (None without embeddings).  One dense
        array is updated in place; the sparse signals (authors, categories,
        exclusions) touch only their non-zero cells.
        """
        p, v = len(queries), max(len(self.vocab), 1)

        def rows(pairs: Iterable[tuple[int, int, float]], width: int) -> sparse.csr_matrix:
            items = list(pairs)
            r = [a for a, _, _ in items]
            c = [b for _, b, _ in items]
            d = [w for _, _, w in items]
            return sparse.csr_matrix((d, (r, c)), shape=(p, width))

        kw = rows(((j, t, weight) for j, q in enumerate(queries) for t, weight in _keyword_weights(q)), v)
        total = np.asarray((kw @ self._bm25_t).toarray(), dtype=np.float64)
        width = self._authors_t.shape[0]
        authors = (
            rows(((j, c, 1.0) for j, q in enumerate(queries) for _, cols, _ in q.authors for c in cols), width)
            @ self._authors_t
        ).tocoo()
        total[authors.row, authors.col] += AUTHOR_WEIGHT * authors.data
        seed_part, seeded, seed_sims = self._seed_scores(queries)
        seed_scores: list[npt.NDArray[np.float64] | None] = [None] * p
        if seeded:
            total[seeded] += seed_part.T
            for k, j in enumerate(seeded):
                seed_scores[j] = seed_part[:, k]
        # A category lifts what matched otherwise, or is the whole profile.
        only_categories = np.array([not (q.keywords or q.authors or q.seeds) for q in queries], dtype=bool)
        width = self._cats_t.shape[0]
        cats = (rows(((j, c, 1.0) for j, q in enumerate(queries) for c in q.categories), width) @ self._cats_t).tocoo()
        lift = (total[cats.row, cats.col] > 0) | only_categories[cats.row]
        total[cats.row[lift], cats.col[lift]] += CATEGORY_BONUS
        total *= self._popularity[None, :]
        # Exclusions: a phrase is present when all of its terms are.
        phrases = [(j, ids) for j, q in enumerate(queries) for ids in q.excludes]
        if phrases:
            need = sparse.csr_matrix(
                (
                    [1.0] * sum(len(ids) for _, ids in phrases),
                    ([k for k, (_, ids) in enumerate(phrases) for _ in ids], [t for _, ids in phrases for t in ids]),
                ),
                shape=(len(phrases), v),
            )
            counts = (need @ self._present_t).tocoo()
            full = counts.data >= np.array([len(ids) for _, ids in phrases])[counts.row] - 0.5
            owner = np.array([j for j, _ in phrases])
            total[owner[counts.row[full]], counts.col[full]] = -np.inf
        fused = self._fuse(total, queries) if self._semantic is not None else None
        return total, seed_scores, seed_sims, fused

    def _fuse(self, total: npt.NDArray[np.float64], queries: Sequence[_Query]) -> _Fused | None:
        """Fuse, in place, each reader's lexical scores with similarity in meaning to their phrases and seeds.

        Per reader, both sides are scaled to 0..1 over the day's entries
        (CombSUM of min-max scores, the robust choice when the two scales
        differ reader by reader): the lexical score by its best, the cosine
        from the larger of its mean and :data:`SEMANTIC_FLOOR` up to its best
        (phrases and seeds in the centred space, see :data:`SEMANTIC_CENTRED`).
        Then ``(1 - w) lexical + w semantic``; for phrases, the centroid of
        the fused top ten adds ``SEMANTIC_FEEDBACK x w`` of its own scaled
        cosine to the papers already matched (pseudo-relevance feedback in
        embedding space).  Vetoed entries stay vetoed.  Readers with neither phrases nor seeds (or no
        embeddings) keep their lexical scores exactly.
        """
        sem = self._semantic
        assert sem is not None
        by_phrase = [j for j, q in enumerate(queries) if q.phrase_vectors]
        by_seed = [j for j, q in enumerate(queries) if q.seed_meaning is not None]
        readers = sorted({*by_phrase, *by_seed})
        if not readers:
            return None
        at = {j: k for k, j in enumerate(readers)}
        n = total.shape[1]
        # The semantic side in float32 (the vectors' own precision), products one per kind, and the
        # readers x entries steps in place: no float64 copy of the batch's scores, no veto mask.
        part: npt.NDArray[np.float32] | None = None
        weight = np.zeros(len(readers))
        parts = np.zeros(len(readers))
        if by_phrase:
            queries_m = _meanings([queries[j] for j in by_phrase])
            k = [at[j] for j in by_phrase]
            if SEMANTIC_CENTRED:
                cosines = _unit_dense(queries_m - sem.mean[None, :]) @ sem.centred.T
                gate = sem.gate(queries_m, cosines)
                close = _scaled(cosines)
                close *= gate
            else:
                close = _scaled(queries_m @ sem.raw.T)
            part = _into(part, len(readers), k, close)
            weight[k] += SEMANTIC_KEYWORDS
            parts[k] += 1
        if by_seed:
            queries_s = np.stack([queries[j].seed_meaning for j in by_seed]).astype(np.float32)  # type: ignore[misc]
            k = [at[j] for j in by_seed]
            part = _into(part, len(readers), k, _scaled(queries_s @ sem.centred.T))
            weight[k] += SEMANTIC_SEEDS
            parts[k] += 1
        assert part is not None
        if parts.max() > 1:  # a reader with both phrases and seeds: the mean of the two
            part /= parts[:, None].astype(np.float32)
        weight /= parts
        every = len(readers) == len(total)
        fused = total if every else total[readers]
        best = np.maximum(fused.max(axis=1), 0.0)
        best[best == 0] = 1.0
        fused *= ((1.0 - weight) / best)[:, None]  # the weighted lexical part; vetoes stay -inf
        matched = fused > 0
        fused += part * weight.astype(np.float32)[:, None]  # plus the weighted semantic part: -inf + x = -inf
        if by_phrase and SEMANTIC_FEEDBACK > 0:
            fb = [at[j] for j in by_phrase]
            all_fb = len(fb) == len(readers)
            first = fused if all_fb else fused[fb]
            found = first > 0
            take = min(SEMANTIC_FEEDBACK_DOCS, n)
            # Papers that matched nothing get distinct keys below every match: argpartition slows down
            # badly on long runs of equal values (zeros, vetoes).
            # In float32: half the bytes to partition (the order of two scores closer than that never matters here).
            key = np.where(found, first.astype(np.float32), (-1.0 - np.arange(n) / n).astype(np.float32))
            top = (
                np.argpartition(key, n - take, axis=1)[:, n - take :]
                if take < n
                else np.tile(np.arange(n), (len(fb), 1))
            )
            space = sem.centred if SEMANTIC_CENTRED else sem.raw
            centroids = _unit_dense(_mean_rows(space, top))
            # Feedback re-orders what matched; it never brings in a paper nothing else found (nor a vetoed one),
            # so it needs no floor of its own: scaled from its mean to its best.
            feedback = _scaled(centroids @ space.T, 0.0 if SEMANTIC_CENTRED else SEMANTIC_FLOOR)
            feedback *= found
            feedback *= (SEMANTIC_FEEDBACK * weight[fb]).astype(np.float32)[:, None]
            if all_fb:
                fused += feedback
            else:
                fused[fb] += feedback
        if not every:
            total[readers] = fused
        return _Fused(readers, matched, part)

    def _seed_scores(
        self, queries: Sequence[_Query]
    ) -> tuple[npt.NDArray[np.float64], list[int], list[npt.NDArray[np.float64] | None]]:
        """Seed-paper scores (entries x seeded profiles), which profiles those are, and per profile each entry's
        cosine to each seed.

        The seeds' centroid retrieves its ten nearest papers; Rocchio feedback
        moves the centroid toward their mean, and the moved centroid scores.
        All profiles of the batch at once, with sparse products.
        """
        n, p = len(self.entries), len(queries)
        seed_sims: list[npt.NDArray[np.float64] | None] = [None] * p
        seeded = [j for j, q in enumerate(queries) if q.seed_refs]
        if not seeded:
            return np.zeros((n, 0)), seeded, seed_sims
        vectors = self._seed_rows([r for j in seeded for r in queries[j].seed_refs])
        each = np.asarray((vectors @ self._tfidf_t).toarray().T)  # entries x all seeds of the batch
        counts = np.array([len(queries[j].seeds) for j in seeded])
        starts = np.concatenate(([0], np.cumsum(counts)))
        for k, j in enumerate(seeded):
            seed_sims[j] = each[:, starts[k] : starts[k + 1]]
        s = len(seeded)
        mean = sparse.csr_matrix(
            (np.repeat(1.0 / counts, counts), (np.repeat(np.arange(s), counts), np.arange(starts[-1]))),
            shape=(s, starts[-1]),
        )
        # Similarity to each centroid, for picking neighbours.  A sparse product:
        # a dense one would start BLAS threads that spin on a busy machine.
        first = np.asarray(mean @ each.T).T
        own = [(r, k) for k, j in enumerate(seeded) for r in queries[j].seed_rows]
        if own:
            first[[r for r, _ in own], [k for _, k in own]] = -np.inf
        take = min(SEED_FEEDBACK_DOCS, n)
        top = np.argpartition(-first, take - 1, axis=0)[:take] if take < n else np.tile(np.arange(n)[:, None], (1, s))
        feedback = sparse.csr_matrix(
            (np.full(s * take, 1.0 / take), (np.repeat(np.arange(s), take), top.T.ravel())), shape=(s, n)
        )
        moved = _unit_rows(_unit_rows(mean @ vectors) + SEED_FEEDBACK * (feedback @ self._tfidf))
        sims = np.asarray((moved @ self._tfidf_t).toarray().T)
        sims[sims < SEED_FLOOR] = 0.0
        return SEED_WEIGHT * sims, seeded, seed_sims

    # -- reasons --------------------------------------------------------------------

    def _terms_of(self, row: int) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        """Term ids in *row*'s title, abstract and either, computed once per row."""
        cached = self._term_sets[row]
        if cached is None:
            t, b = self._title_terms, self._body_terms
            title = frozenset(t.indices[t.indptr[row] : t.indptr[row + 1]].tolist())
            body = frozenset(b.indices[b.indptr[row] : b.indptr[row + 1]].tolist())
            cached = self._term_sets[row] = (title, body, title | body)
        return cached

    def _keyword_reason(self, row: int, text: str, kw: _Keyword) -> tuple[Reason | None, bool]:
        """How keyword *text* matches *row*, and whether in full; cached, as readers share keywords."""
        in_title, in_body, anywhere = self._terms_of(row)
        if kw.phrase and kw.phrase_set <= in_title:
            return kw.in_title, True
        if kw.phrase and kw.phrase_set <= in_body:
            return kw.in_abstract, True
        for field, where in ((in_title, "title"), (in_body, "abstract")):
            for ids, note in kw.variants:
                if set(ids) <= field:
                    return Reason(ReasonKind.KEYWORD, f'"{text}" in {where} ({note})', text, where, detail=note), True
        hits = [(w, t) for w, t in kw.typed if t in anywhere]
        if not hits:
            return None, False
        # A word's term id is its stem's, so the words found are the hits: no second scan of the typed words
        # (fused winners take this path more often than lexical ones).
        where = "title" if any(t in in_title for _, t in hits) else "abstract"
        words = tuple(dict.fromkeys(w for w, _ in hits))
        said = f'part of "{text}" ({", ".join(words)}) in {where}'
        return Reason(ReasonKind.KEYWORD, said, text, where, words), False

    def _phrase_target(self, text: str, vector: Vector) -> _Target:
        """A phrase in words for picking a sentence: its own terms plus the TF-IDF centroid of the
        :data:`SEMANTIC_FEEDBACK_DOCS` papers closest to it in meaning (cached per phrase).

        A paraphrase shares no word with the phrase, but it shares words with
        the papers that are close to the phrase in meaning.
        """
        found = self._phrase_targets.get(text)
        if found is None:
            sem = self._semantic
            assert sem is not None
            n = len(self.entries)
            take = min(SEMANTIC_FEEDBACK_DOCS, n)
            near = np.argpartition(sem.raw @ vector, n - take)[n - take :] if take < n else np.arange(n)
            # The rows' sum straight from the CSR arrays: a vocabulary-long dense sum cost more than the rest.
            tfidf = self._tfidf
            spans = [slice(tfidf.indptr[r], tfidf.indptr[r + 1]) for r in np.sort(near).tolist()]
            ids = np.concatenate([tfidf.indices[s] for s in spans])
            cols, inverse = np.unique(ids, return_inverse=True)
            centroid = np.bincount(inverse, np.concatenate([tfidf.data[s] for s in spans]), minlength=len(cols))
            weights = centroid / (float(np.linalg.norm(centroid)) or 1.0)
            cols = cols.astype(np.int64)
            own = sorted({j for t in terms(_short_tokens(text)) if (j := self.vocab.get(t)) is not None})
            if own:
                idf = self._smooth_idf[own]
                cols, weights = _sparse_add(cols, weights, np.array(own, dtype=np.int64), idf / math.sqrt(idf @ idf))
            found = self._phrase_targets[text] = (cols, weights)
        return found

    def _seed_target(self, ref: int) -> _Target:
        """A seed paper's TF-IDF row as a target (cached per seed: readers share seed papers); an indexed
        paper's straight from the CSR arrays, without a sparse fancy index."""
        found = self._seed_targets.get(ref)
        if found is None:
            if ref < len(self.entries):
                span = slice(self._tfidf.indptr[ref], self._tfidf.indptr[ref + 1])
                indices, data = self._tfidf.indices[span], self._tfidf.data[span]
            else:
                row = self._seed_rows([ref])
                indices, data = row.indices, row.data
            order = np.argsort(indices)
            found = self._seed_targets[ref] = (indices[order].astype(np.int64), data[order])
        return found

    def _sentence_vectors(self, row: int) -> tuple[list[str], _SentenceVectors]:
        """*row*'s abstract sentences and their unit TF-IDF vectors, as flat arrays (cached per row).

        From the term ids the index kept in text order: a word belongs to its sentence, a word pair to
        the sentence holding both words (a pair across two sentences to neither).
        """
        found = self._sentences.get(row)
        if found is None:
            parts = sentences(self.entries[row].summary)
            per_sentence = self._sentence_words[row]
            ids = self._body_ids[self._body_starts[row] : self._body_starts[row + 1]]
            words = int(per_sentence.sum())
            of_word = np.repeat(np.arange(len(per_sentence)), per_sentence)
            inside = of_word[:-1] == of_word[1:]
            which = np.concatenate((of_word, of_word[:-1][inside]))
            flat = np.concatenate((ids[:words], ids[words:][inside]))
            # One (sentence, term) pair per distinct term of a sentence, with its count.
            width = max(len(self.vocab), 1)
            pairs, counts = np.unique(which * width + flat, return_counts=True)
            sent, term = pairs // width, pairs % width
            weights = (1.0 + np.log(counts)) * self._smooth_idf[term]
            lengths = np.sqrt(np.bincount(sent, weights * weights, minlength=len(parts)))
            lengths[lengths == 0] = 1.0
            found = self._sentences[row] = (parts, (sent, term, weights / lengths[sent]))
        return found

    def _closest_sentence(self, row: int, target: _Target) -> str | None:
        """The sentence of *row*'s abstract whose TF-IDF vector is closest (cosine) to *target*.

        Words, not the model: embedding every winner's sentences would cost
        more than ranking 10,000 readers.  Only winners quoted in a reason get here.
        """
        parts, (sent, term, weights) = self._sentence_vectors(row)
        if not parts:
            return None
        cols, values = target
        at = np.minimum(np.searchsorted(cols, term), max(len(cols) - 1, 0))
        hit = cols[at] == term if len(cols) else np.zeros(len(term), dtype=bool)
        scores = np.bincount(sent[hit], weights[hit] * values[at[hit]], minlength=len(parts))
        return parts[int(np.argmax(scores))]

    def _reasons(
        self, row: int, profile: Profile, query: _Query, seed_cosines: Sequence[float], closest: int | None = None
    ) -> tuple[Reason, ...]:
        """Why *row* was picked for *profile*, in words; only for the few winners.

        *seed_cosines* are the row's similarities to each seed paper, empty
        when the seeds did not count toward its score; *closest*, when it is
        close in meaning to the profile, the row of ``close_to`` it is closest
        to (a "close in meaning" reason).
        """
        entry = self.entries[row]
        out: list[Reason] = []
        said = False  # a "part of" reason only while no keyword matched in full
        anywhere = self._terms_of(row)[2]
        cache = self._keyword_reasons
        for text, _, kw in query.keywords:
            if kw.any_ids.isdisjoint(anywhere):  # the common case, settled without building a reason
                continue
            found = cache.get((row, text))
            if found is None:
                found = cache[(row, text)] = self._keyword_reason(row, text, kw)
            reason, full = found
            if reason is not None and (full or not said):
                out.append(reason)
                said = True
        entry_keys = self._entry_authors[row] if query.authors else {}
        for name, cols, (last, initial) in query.authors:
            if cols:
                hit = (
                    entry_keys.get((last, initial))
                    if initial
                    else next((a for (surname, _), a in entry_keys.items() if surname == last), None)
                )
                if hit:
                    note = "" if hit == name else f" (you follow {name})"
                    out.append(Reason(ReasonKind.AUTHOR, f"by {hit}{note}", name, detail=hit))
        # The quoted sentence costs a search of the paper's words: only where meaning is the whole reason.
        if closest is not None and (close := self._similar_reason(row, query, closest, quote=not out)) is not None:
            out.append(close)
        if seed_cosines:
            best, pid, title = max((c, pid, title) for c, (pid, title) in zip(seed_cosines, query.seeds, strict=True))
            like = f'like your paper {pid} "{title}" (similarity {best:.2f})'
            out.append(Reason(ReasonKind.PAPER, like, pid, detail=title))
        cats = [c for c in entry.categories if c.lower() in query.category_names] if query.category_names else []
        if cats:
            out.append(Reason(ReasonKind.CATEGORY, f"in {', '.join(cats)}", cats[0]))
        if (entry.upvotes or 0) >= POPULAR_UPVOTES:
            popular = f"popular on Hugging Face ({entry.upvotes} upvotes)"
            out.append(Reason(ReasonKind.POPULAR, popular, detail=str(entry.upvotes)))
        return tuple(out)


def _scaled(cosines: npt.NDArray[np.float32], floor: float | None = None) -> npt.NDArray[np.float32]:
    """Per row, cosines scaled 0..1 from the larger of the row's mean and *floor* (:data:`SEMANTIC_FLOOR`)
    to its best.  In place: *cosines* is a fresh product, and a copy of readers x entries costs."""
    c = np.asarray(cosines, dtype=np.float32)
    low = np.maximum(c.mean(axis=1), SEMANTIC_FLOOR if floor is None else floor).astype(np.float32)
    span = c.max(axis=1) - low
    span[span <= 0] = np.inf  # nothing above the floor: no semantic credit at all
    c -= low[:, None]
    c *= (1.0 / span)[:, None]
    return np.clip(c, 0.0, 1.0, out=c)


def _meanings(queries: Sequence[_Query]) -> Vector:
    """Each query's keywords in embedding space (raw), one row per query: the weighted mean of its phrases'
    vectors, plus :data:`SEMANTIC_JOINED` of the phrases embedded as one sentence.

    One sparse product over the batch's distinct phrases: a small product per reader cost as much as
    the batch's readers x papers product.
    """
    column: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    weights: list[float] = []
    vectors: list[Vector] = []
    for i, q in enumerate(queries):
        ws = [max(w, 0.0) for _, w, _ in q.keywords]
        total = sum(ws) or 1.0
        for (text, vector), w in zip(q.phrase_vectors, ws, strict=True):
            col = column.setdefault(text, len(column))
            if col == len(vectors):
                vectors.append(vector)
            rows.append(i)
            cols.append(col)
            weights.append(w / total)
    mix = sparse.csr_matrix(
        (np.array(weights, dtype=np.float32), (rows, cols)), shape=(len(queries), len(vectors)), dtype=np.float32
    )
    each = np.asarray(mix @ np.stack(vectors), dtype=np.float32)
    if SEMANTIC_JOINED > 0:
        joined = np.stack([q.joined for q in queries])  # type: ignore[misc]
        each = np.asarray(SEMANTIC_JOINED * joined + (1.0 - SEMANTIC_JOINED) * each, dtype=np.float32)
    return each


def _mean_rows(m: Vector, rows: npt.NDArray[np.intp]) -> Vector:
    """``m[rows].mean(axis=1)``, the same sums in the same order, one column of *rows* at a time: without the
    readers x rows x dims copy (512 x 10 x 384 floats a batch), about a third of the time."""
    total = np.take(m, rows[:, 0], axis=0)
    for i in range(1, rows.shape[1]):
        total += np.take(m, rows[:, i], axis=0)
    total /= rows.shape[1]
    return total


def _into(
    into: npt.NDArray[np.float32] | None, height: int, rows: Sequence[int], values: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """``into[rows] += values`` (*into* zeros of *height* rows when None), and *into*; *values* themselves when
    they are the whole of it: no zeros to add to, no fancy-index copy."""
    if into is None and len(rows) == height:
        return values
    if into is None:
        into = np.zeros((height, values.shape[1]), dtype=np.float32)
    if len(rows) == len(into):
        into += values
    else:
        into[rows] += values
    return into


def _unit_dense(m: npt.NDArray[np.float32]) -> Vector:
    """*m* with every row scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.asarray(m / np.maximum(norms, 1e-12), dtype=np.float32)


def _unit_rows(m: sparse.csr_matrix) -> sparse.csr_matrix:
    """*m* with every non-zero row scaled to length 1."""
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ m)


def _keyword_weights(query: _Query) -> Iterator[tuple[int, float]]:
    """Query term weights: a phrase's word pairs in full, its single words a little."""
    for _, weight, kw in query.keywords:
        phrase, words = kw.phrase, kw.words
        for t in phrase:
            yield t, weight
        # Each other wording carries the weight of the keyword as typed, however many terms it has.
        typed_terms = len(phrase) or 1
        for ids, _ in kw.variants:
            for t in ids:
                yield t, weight * typed_terms / len(ids)
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


def trending(
    entries: Iterable[Entry], picked: Set[str], n: int, *, exclude_ids: Set[str] = frozenset()
) -> tuple[Match, ...]:
    """The *n* most upvoted of the day's *entries* that were not *picked*, for ``trending = N``.

    What the Hugging Face community reads today, shown apart from the
    reader's picks (``Digest.trending``); *exclude_ids* are papers the reader
    was already sent.  Ties go to the smaller id, as in ranking.
    """
    if n <= 0:
        return ()
    pool = (e for e in entries if (e.upvotes or 0) > 0 and e.id not in picked and e.id not in exclude_ids)
    top = heapq.nsmallest(n, pool, key=lambda e: (-(e.upvotes or 0), e.id))
    said = "trending on Hugging Face ({} upvotes)"
    return tuple(
        Match(e, float(e.upvotes or 0), (Reason(ReasonKind.POPULAR, said.format(e.upvotes), detail=str(e.upvotes)),))
        for e in top
    )
