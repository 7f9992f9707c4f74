"""The seed-ranking experiments (benchmarks/eval_seeds.py) measure what the shipped Index ranks.

Correctness only: the figures are for people.
"""

from __future__ import annotations

import eval_ranking
import pytest


@pytest.mark.slow
def test_eval_seeds_reimplements_the_shipped_fusion_profile_by_profile() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    import eval_seeds

    from newsletter import match
    from newsletter.embed import load_embedder

    embedder = load_embedder()
    if embedder is None:
        pytest.skip("the semantic model did not load")
    d = eval_seeds.Data(1)
    fused = match.Index(d.index.entries, embeddings=d.raw, embedder=embedder)
    ids = [e.id for e in d.index.entries]
    assert {c.dev for c in d.cases} == {"specific", "broad"}
    for c in d.cases:
        p = eval_ranking.profile(papers=[ids[r].removeprefix("arxiv:") for r in c.seeds])
        rest = {ids[i] for i in c.rel.nonzero()[0]}
        assert not rest & {ids[r] for r in c.seeds}
        shipped = eval_ranking.p_at_r(eval_ranking.ranked_ids(fused, p), rest)
        assert eval_seeds.p_at_r(eval_seeds.shipped(d, c), c) == pytest.approx(shipped), c.interest


@pytest.mark.slow
def test_eval_seeds_quick_run_prints_every_family_held_out_next_to_the_baselines() -> None:
    pytest.importorskip("sklearn", reason="the evaluation needs the bench extra (scikit-learn)")
    import eval_seeds

    from newsletter.embed import load_embedder

    if load_embedder() is None:
        pytest.skip("the semantic model did not load")
    lines: list[str] = []
    rows = eval_seeds.main(["--draws", "1", "--quick", "--only", "agree", "logodds"], out=lines.append)
    text = "\n".join(lines)
    assert "LinearSVC, seeds vs the rest (no pruning)" in text and "leave one interest out" in text
    assert {"shipped fusion (w = SEMANTIC_SEEDS)", "logodds: distinctive terms as a BM25F query"} <= set(rows)
    assert not any(name.startswith("pu") for name in rows)  # --only
    for name, row in rows.items():
        assert all(0.0 <= v <= 1.0 for v in row.values()), name
