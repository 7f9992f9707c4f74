"""The ranking evaluation and benchmark scripts run at a tiny size and give sane numbers.

Correctness only: no timing assertions (the figures are for people).
"""

from __future__ import annotations

import bench_rank
import eval_ranking
import pytest


@pytest.mark.slow
def test_eval_ranking_tiny_run_prints_both_dev_sets() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    lines: list[str] = []
    tables = eval_ranking.main(["--draws", "1", "--no-semantic"], out=lines.append)
    text = "\n".join(lines)
    assert set(tables) == {"specific keywords", "specific seeds", "broad keywords", "broad seeds"}
    assert "specific interests (judged_specific.json)" in text and "broad listing topics" in text
    assert "LinearSVC, seeds vs the rest" in text and "TF-IDF cosine" in text and "vs the best baseline" in text
    assert len(tables["specific keywords"].rows["newsletter lexical (BM25F + phrases)"]) == 23  # one per interest
    assert "(the 10 fresh interests)" in text  # the interests judged after the constants were chosen, apart
    assert len(tables["specific seeds"].listings) == 16  # interests with at least 8 judged papers, one draw each
    for table in tables.values():
        for method, values in table.rows.items():
            assert all(0.0 <= v <= 1.0 for v in values), method
    assert tables["specific keywords"].mean("newsletter lexical (BM25F + phrases)") > 0.5
    assert tables["broad seeds"].mean("newsletter lexical (TF-IDF + Rocchio)") > 0.4


def test_specific_judgments_cover_fixture_papers_and_name_the_typed_phrases() -> None:
    ids = {e.id for e in eval_ranking.load_entries()}
    interests = eval_ranking.load_specific()
    assert len(interests) == 23
    for it in interests:
        assert it.relevant <= ids and it.relevant
        assert 2 <= len(it.keywords[0]) <= 3
    # The fresh interests were judged after the constants were chosen: a named subset, not new names.
    fresh = eval_ranking.fresh_interests()
    assert len(fresh) == 10 and fresh < {it.name for it in interests}


def test_judged_relevance_covers_every_fixture_paper_and_listing() -> None:
    judged = eval_ranking.load_judged()
    ids = {e.id for e in eval_ranking.load_entries()}
    assert set(judged) == set(eval_ranking.KEYWORD_POOLS) == set(eval_ranking.load_labels())
    for relevant in judged.values():
        assert relevant <= ids and 20 < len(relevant) < len(ids)


@pytest.mark.slow
def test_eval_ranking_experiments_and_per_listing_columns() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    lines: list[str] = []
    eval_ranking.main(["--draws", "1", "--no-semantic", "--experiments"], out=lines.append)
    text = "\n".join(lines)
    assert "experiments (b) seed-paper profiles" in text and "sensitivity:" in text
    assert "RRF(newsletter, that LinearSVC)" in text and "WORD_IN_PHRASE = 0.5 (shipped 0.3)" in text
    headers = [line for line in text.splitlines() if line.startswith("method")]
    assert "S13" in headers[0] and "+-se" in headers[0]  # the specific set: one column per interest
    assert "llm-training" in headers[-1]  # the experiments: per listing


@pytest.mark.slow
def test_bench_rank_tiny_run() -> None:
    lines: list[str] = []
    result = bench_rank.main(["--profiles", "40", "--entries", "60", "--naive-sample", "5"], out=lines.append)
    assert result.profiles == 40 and result.entries == 60
    assert 0 < result.matches <= 40 * 15
    # The fused path ran on the same profiles, with its own timings and reasons.
    assert result.fused_rank_s is not None and result.fused_rank_s > 0 and 0 < result.fused_matches <= 40 * 15
    assert any("x lexical (budget 1.3 x)" in line for line in lines)
    assert result.build_s > 0 and result.rank_s > 0 and result.naive_extrapolated_s > 0
    assert any("naive" in line for line in lines)


@pytest.mark.slow
def test_bench_rank_repeats_give_one_ratio_per_pair() -> None:
    lines: list[str] = []
    argv = ["--profiles", "30", "--entries", "50", "--naive-sample", "2", "--repeat", "3"]
    result = bench_rank.main(argv, out=lines.append)
    assert len(result.ratios) == 3 and len(result.cpu_ratios) == 2  # the first pair's CPU is not separated
    assert all(r > 0 for r in result.ratios + result.cpu_ratios)
    assert any(line.strip().startswith("3 pairs, fused / lexical wall:") and "median" in line for line in lines)


@pytest.mark.slow
def test_eval_variants_reproduces_the_shipped_fusion() -> None:
    """Its first rows re-implement the shipped fusion from the Index's parts: they must agree with the Index."""
    import eval_variants

    from newsletter import match

    d = eval_variants.Data(draws=1)
    index = match.Index(d.entries, embeddings=d.docs, embedder=d.embedder)
    for interest in eval_ranking.load_specific()[:4]:
        for phrases in interest.keywords:
            ours = eval_ranking.ranked_ids(index, eval_ranking.profile(keywords=phrases))
            case = next(c for c in d.cases["kw"]["specific"] if c.phrases == tuple(phrases))
            shipped = {"centre": True, "w": match.SEMANTIC_KEYWORDS, "fb": match.SEMANTIC_FEEDBACK, "gate": 0.25}
            assert eval_variants.p_at_r(eval_variants.keywords(d, case, **shipped), case.rel) == pytest.approx(
                eval_ranking.p_at_r(ours, set(interest.relevant))
            )


@pytest.mark.slow
def test_eval_ranking_ceiling_prints_classifiers_trained_on_the_judgments() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    lines: list[str] = []
    tables = eval_ranking.main(["--draws", "1", "--no-semantic", "--ceiling"], out=lines.append)
    table = tables["specific ceiling"]
    assert any(line.startswith("ceiling: classifiers on 80% of the judgments") for line in lines)
    (row,) = table.rows  # without the semantic model: the TF-IDF LinearSVC alone
    assert row.startswith("LinearSVC TF-IDF, 80%, C=")
    assert len(table.rows[row]) == 22  # the interests with at least five relevant papers
    assert 0.5 < table.mean(row) < 1.0
