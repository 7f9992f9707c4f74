"""The per-reader model learned from ratings (newsletter/learn.py): fit, blend, cache, calibration pick."""

from __future__ import annotations

import numpy as np
import pytest

from newsletter import learn
from newsletter.types import Feedback

DIM = 384


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(v: np.ndarray, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
    """A near-duplicate of *v*: cosine about 0.95."""
    w = v + noise * unit(rng, 1)[0]
    return w / np.linalg.norm(w)


@pytest.mark.parametrize(("n_liked", "n_disliked", "kind"), [(1, 1, "rocchio"), (1, 0, "rocchio"), (3, 5, "logistic")])
def test_a_liked_papers_near_duplicate_ranks_above_a_disliked_ones(n_liked: int, n_disliked: int, kind: str) -> None:
    rng = np.random.default_rng(1)
    liked, disliked = unit(rng, n_liked), unit(rng, max(n_disliked, 1))
    model = learn.fit(liked, disliked[:n_disliked])
    assert model is not None and model.kind == kind
    assert (model.liked, model.disliked) == (n_liked, n_disliked)
    for i in range(n_liked):
        twin_of_liked = near(liked[i], rng)
        twin_of_disliked = near(disliked[i % len(disliked)], rng)
        s = model.score(np.vstack([twin_of_liked, twin_of_disliked]))
        assert s[0] > s[1]


def test_logistic_model_separates_two_topics_and_beats_chance_on_new_papers() -> None:
    rng = np.random.default_rng(2)
    topic_a, topic_b = unit(rng, 2)
    liked = np.vstack([near(topic_a, rng, 1.0) for _ in range(10)])
    disliked = np.vstack([near(topic_b, rng, 1.0) for _ in range(30)])
    model = learn.fit(liked, disliked)
    assert model is not None and model.kind == "logistic"
    new_a = np.vstack([near(topic_a, rng, 1.0) for _ in range(50)])
    new_b = np.vstack([near(topic_b, rng, 1.0) for _ in range(50)])
    assert (model.score(new_a) > 0).mean() > 0.9
    assert (model.score(new_b) < 0).mean() > 0.9


def test_no_ratings_means_no_model_and_scores_unchanged() -> None:
    rng = np.random.default_rng(3)
    entries = unit(rng, 50)
    base = rng.standard_normal(50)
    base[[3, 7]] = -np.inf
    assert learn.fit(np.zeros((0, DIM)), np.zeros((0, DIM))) is None
    assert learn.fit([], []) is None
    # Seeds alone train nothing: the explicit interests rank those already.
    assert learn.fit([], [], seeds=entries[:5]) is None
    assert np.array_equal(learn.blend(base, None, entries), base)
    block = np.vstack([base, base[::-1]])
    before = block.copy()
    w, b, a = learn.stack_models([None, None], DIM)
    assert learn.blend_many(block, entries, w, b, a) is block
    assert np.array_equal(block, before)
    assert learn.model_weight(0) == 0.0


def test_a_reader_without_a_model_is_untouched_next_to_one_with_a_model() -> None:
    rng = np.random.default_rng(4)
    entries = unit(rng, 40)
    block = rng.standard_normal((2, 40))
    before = block.copy()
    model = learn.fit(entries[:3], entries[3:8])
    w, b, a = learn.stack_models([None, model], DIM)
    learn.blend_many(block, entries, w, b, a)
    assert np.array_equal(block[0], before[0])
    assert not np.array_equal(block[1], before[1])


def test_exclusions_still_veto_after_blending() -> None:
    rng = np.random.default_rng(5)
    entries = unit(rng, 30)
    liked = np.vstack([near(entries[0], rng, 0.1) for _ in range(5)])
    model = learn.fit(liked, entries[20:25])
    assert model is not None
    base = np.ones(30)
    base[0] = -np.inf  # the paper the model likes most is excluded by the profile
    out = learn.blend(base, model, entries)
    assert out[0] == -np.inf
    assert np.isfinite(out[1:]).all()
    assert int(np.argmax(model.score(entries))) == 0  # it would have won


def test_the_model_moves_the_ranking_more_with_more_ratings() -> None:
    weights = [learn.model_weight(n) for n in (1, 5, 10, 20, 100, 10_000)]
    assert weights == sorted(weights)
    assert weights[2] == pytest.approx(0.5)
    assert weights[-1] == learn.MAX_MODEL_WEIGHT


def test_blend_does_not_depend_on_the_scale_of_either_score() -> None:
    rng = np.random.default_rng(6)
    entries = unit(rng, 60)
    model = learn.fit(entries[:4], entries[4:10])
    base = np.abs(rng.standard_normal(60))
    one = learn.blend(base, model, entries)
    scaled = learn.blend(base * 1000.0 + 3.0, model, entries)
    assert np.allclose(one, scaled)


def test_cache_hit_when_ratings_did_not_change_retrain_when_they_did() -> None:
    rng = np.random.default_rng(7)
    vecs = unit(rng, 10)
    vectors = {f"arxiv:2501.{i:05d}": vecs[i] for i in range(10)}
    cache = learn.ModelCache(salt="test-model")
    fb = Feedback(liked=("arxiv:2501.00000", "arxiv:2501.00001"), disliked=("arxiv:2501.00002", "arxiv:2501.00003"))
    first = cache.get("ada", fb, vectors)
    again = cache.get("ada", Feedback(liked=fb.liked, disliked=fb.disliked), vectors)
    assert first is not None and again is first and cache.fits == 1
    other_reader = cache.get("alan", fb, vectors)
    assert cache.fits == 2 and other_reader is not first
    changed = cache.get("ada", Feedback(liked=fb.liked, disliked=(*fb.disliked, "arxiv:2501.00004")), vectors)
    assert cache.fits == 3 and changed is not None and changed.disliked == 3
    taken_back = cache.get("ada", Feedback(), vectors)
    assert taken_back is None and cache.fits == 4
    with_seed = cache.get("ada", Feedback(), vectors, seeds=("arxiv:2501.00005",))
    assert with_seed is None and cache.fits == 5  # seeds change the key; alone they train nothing
    query = vecs[9:10]
    with_query = cache.get("ada", fb, vectors, query=query)
    assert with_query is not None and with_query.seeds == 1 and cache.fits == 6
    assert cache.get("ada", fb, vectors, query=query.copy()) is with_query and cache.fits == 6
    # A model from the store fills a fresh cache under its key: no fit.
    key = cache.key("ada")
    assert key is not None
    fresh = learn.ModelCache(salt="test-model")
    fresh.put("ada", key, learn.ReaderModel.from_blob(with_query.to_blob()))
    loaded = fresh.get("ada", fb, vectors, query=query)
    assert fresh.fits == 0 and loaded is not None and np.array_equal(loaded.weights, with_query.weights)


def test_store_blob_round_trip() -> None:
    rng = np.random.default_rng(8)
    vecs = unit(rng, 8)
    model = learn.fit(vecs[:3], vecs[3:7], seeds=vecs[7:])
    assert model is not None
    back = learn.ReaderModel.from_blob(model.to_blob())
    assert np.array_equal(back.weights, model.weights)
    assert (back.bias, back.liked, back.disliked, back.kind, back.seeds) == (
        pytest.approx(model.bias),
        3,
        4,
        "logistic",
        1,
    )
    assert len(model.to_blob()) < DIM * 4 + 200


def test_rated_vectors_skip_unknown_and_contradictory_ids_and_cap_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    vecs = unit(rng, 6)
    vectors = {f"arxiv:{i}": vecs[i] for i in range(6)}
    fb = Feedback(liked=("arxiv:0", "arxiv:1", "arxiv:missing", "arxiv:5"), disliked=("arxiv:2", "arxiv:5"))
    rated = learn.rated_vectors(fb, vectors)
    assert rated.liked_ids == ("arxiv:0", "arxiv:1")
    assert rated.disliked_ids == ("arxiv:2",)
    assert np.array_equal(rated.liked[1], vecs[1])
    monkeypatch.setattr(learn, "MAX_RATINGS", 2)
    capped = learn.rated_vectors(Feedback(liked=("arxiv:0", "arxiv:1", "arxiv:3"), disliked=("arxiv:4",)), vectors)
    assert capped.liked_ids == ("arxiv:3",)  # the newest like
    assert capped.disliked_ids == ("arxiv:4",)


def test_calibration_pick_is_an_unrated_candidate_below_the_shown_ones() -> None:
    rng = np.random.default_rng(10)
    entries = unit(rng, 100)
    model = learn.fit(entries[:5], entries[5:15])
    assert model is not None
    base = rng.standard_normal(100)
    base[50] = -np.inf
    blended = learn.blend(base, model, entries)
    rated = list(range(15))
    pick = learn.calibration_pick(blended, model, entries, shown=20, pool=50, rated=rated)
    assert pick is not None
    top = [int(r) for r in np.argsort(-blended, kind="stable")[:50]]
    assert pick in top[20:]
    assert pick not in rated and np.isfinite(blended[pick])
    # Without a logistic model: the best candidate just below the cut.
    assert learn.calibration_pick(blended, None, entries, rated=rated) == next(r for r in top[20:] if r not in rated)
    # Nothing left to ask about.
    assert learn.calibration_pick(np.full(10, -np.inf), model, entries[:10]) is None


def test_liked_papers_become_seed_papers_for_the_lexical_index() -> None:
    from datetime import time

    from newsletter.types import Interests, Profile

    p = Profile(
        id="ada",
        email="ada@example.org",
        name="Ada",
        timezone="UTC",
        send_at=time(7),
        frequency="daily",
        interests=Interests(papers=("2401.00001",)),
        feedback=Feedback(liked=("arxiv:2401.00001", "arxiv:2510.19702"), disliked=("arxiv:2402.00001",)),
    )
    assert learn.with_liked_seeds(p).interests.papers == ("2401.00001", "2510.19702")
    assert learn.with_liked_seeds(p, Feedback()) is p


def test_closest_liked_names_the_liked_paper_a_winner_resembles() -> None:
    rng = np.random.default_rng(11)
    vecs = unit(rng, 4)
    vectors = {f"arxiv:{i}": vecs[i] for i in range(4)}
    rated = learn.rated_vectors(Feedback(liked=("arxiv:0", "arxiv:1"), disliked=("arxiv:2",)), vectors)
    found = learn.closest_liked(rated, np.vstack([near(vecs[1], rng, 0.1), near(vecs[0], rng, 0.1)]))
    assert [i for i, _ in found] == ["arxiv:1", "arxiv:0"]
    assert all(c > 0.9 for _, c in found)
    assert learn.closest_liked(learn.rated_vectors(Feedback(), vectors), vecs) == []


def test_most_uncertain_is_the_candidate_nearest_the_boundary() -> None:
    rng = np.random.default_rng(12)
    entries = unit(rng, 40)
    model = learn.fit(entries[:5], entries[5:15])
    assert model is not None and model.kind == "logistic"
    candidates = entries[15:]
    k = learn.most_uncertain(model, candidates)
    margins = np.abs(model.score(candidates))
    assert margins[k] == margins.min() and k != int(np.argmax(model.score(candidates)))
    rocchio = learn.fit(entries[:1], entries[1:2])
    assert rocchio is not None and rocchio.kind == "rocchio"
    assert learn.most_uncertain(rocchio, candidates) == 0, "no boundary: the best candidate, nearest the cut"
    assert learn.most_uncertain(None, candidates) == 0


def test_trust_follows_how_well_the_model_predicts_held_out_ratings() -> None:
    """A reader whose likes differ from their dislikes along one direction gets a trusted model; random labels
    get (almost) none, and the blend then leaves their explicit interests nearly alone."""
    rng = np.random.default_rng(13)
    topic = unit(rng, 1)[0]
    liked = np.stack([near(topic, rng, 0.6) for _ in range(8)])
    disliked = unit(rng, 24)
    clear = learn.fit(liked, disliked, folds=learn.FOLDS)
    assert clear is not None and clear.kind == "logistic" and clear.trust > 0.8
    papers = unit(rng, 32)
    noise = learn.fit(papers[:8], papers[8:], folds=learn.FOLDS)
    assert noise is not None and noise.trust < 0.5
    unmeasured = learn.fit(liked, disliked)
    assert unmeasured is not None and unmeasured.trust == 1.0, "without folds: not measured, the full share"
    back = learn.ReaderModel.from_blob(noise.to_blob())
    assert back.trust == pytest.approx(noise.trust)
    _, _, shares = learn.stack_models([clear, noise], DIM)
    assert shares[0] == pytest.approx(learn.model_weight(clear.ratings) * clear.trust)
    assert shares[1] == pytest.approx(learn.model_weight(noise.ratings) * noise.trust) and shares[1] < shares[0]


def test_the_penalty_pulls_toward_the_prior_and_the_cache_centres_it_on_the_phrases() -> None:
    rng = np.random.default_rng(9)
    liked, disliked, prior = unit(rng, 3), unit(rng, 3), unit(rng, 1)[0]
    # A strong penalty leaves the weights at its centre: 0 without a prior, the prior with one.
    plain = learn.fit(liked, disliked, l2=1e6)
    centred = learn.fit(liked, disliked, l2=1e6, prior=prior)
    assert plain is not None and centred is not None
    assert np.linalg.norm(plain.weights) < 1e-3
    assert np.allclose(centred.weights, prior, atol=1e-3)
    # The cache centres a reader's fit on PHRASE_PRIOR x their phrases' vector (and keys the model by it).
    vectors = {f"arxiv:{i}": v for i, v in enumerate([*liked, *disliked])}
    feedback = Feedback(liked=("arxiv:0", "arxiv:1", "arxiv:2"), disliked=("arxiv:3", "arxiv:4", "arxiv:5"))
    got = learn.ModelCache().get("r", feedback, vectors, query=prior.reshape(1, -1))
    q = prior.reshape(1, -1)
    want = learn.fit(liked, disliked, seeds=q, folds=learn.FOLDS, prior=learn.PHRASE_PRIOR * prior)
    assert got is not None and want is not None
    assert np.allclose(got.weights, want.weights, atol=1e-5) and got.trust == want.trust
    without = learn.fit(liked, disliked, seeds=q, folds=learn.FOLDS)
    assert without is not None and float(prior @ got.weights) > float(prior @ without.weights)
