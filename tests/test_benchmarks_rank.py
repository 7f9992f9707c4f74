"""The ranking evaluation and benchmark scripts run at a tiny size and give sane numbers.

Correctness only: no timing assertions (the figures are for people).
"""

from __future__ import annotations

import bench_rank
import eval_ranking
import pytest


@pytest.mark.slow
def test_eval_ranking_tiny_run_prints_both_tables() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    lines: list[str] = []
    tables = eval_ranking.main(["--draws", "1"], out=lines.append)
    text = "\n".join(lines)
    assert "(a) keyword profiles" in text and "(b) seed-paper profiles" in text
    assert "LinearSVC" in text and "TF-IDF" in text
    # The same tables against the blind judgments, and the learnable reference for both relevance sources.
    assert set(tables) == {"keywords", "seeds", "judged keywords", "judged seeds"}
    assert "(a) keyword profiles, 2-3 phrases, 3 profiles over 3 listings, judged" in text
    reference = [line for line in text.splitlines() if line.strip().startswith(("listing labels ", "judgments "))]
    assert len(reference) == 2 and all("llm-training" in line for line in reference)
    for table in tables.values():
        for method, values in table.rows.items():
            assert len(values) == 3, method  # one draw per listing
            assert all(0.0 <= v <= 1.0 for v in values)
    # Better than chance (about a third of the papers are on each listing).
    assert tables["keywords"].mean("newsletter (BM25F + phrases)") > 0.4
    assert tables["seeds"].mean("newsletter (seed papers)") > 0.34
    assert tables["judged keywords"].mean("newsletter (BM25F + phrases)") > 0.4


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
    eval_ranking.main(["--draws", "1", "--experiments"], out=lines.append)
    text = "\n".join(lines)
    assert "experiments (b) seed-paper profiles" in text and "sensitivity:" in text
    assert "RRF(newsletter, that LinearSVC)" in text and "WORD_IN_PHRASE = 0.5 (shipped 0.3)" in text
    header = next(line for line in text.splitlines() if line.startswith("method"))
    assert "llm-training" in header and "+-se" in header


@pytest.mark.slow
def test_bench_rank_tiny_run() -> None:
    lines: list[str] = []
    result = bench_rank.main(["--profiles", "40", "--entries", "400", "--naive-sample", "5"], out=lines.append)
    assert result.profiles == 40 and result.entries == 400
    assert 0 < result.matches <= 40 * 15
    assert result.build_s > 0 and result.rank_s > 0 and result.naive_extrapolated_s > 0
    assert any("naive" in line for line in lines)
