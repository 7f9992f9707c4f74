"""Ranking: retrieval quality signals, reasons, no repeats, the batch API, and the rank/preview commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from click.testing import CliRunner
from conftest import SAMPLES
from servekit import Clock

from newsletter import embed, match, pipeline, sources
from newsletter.cli import cli
from newsletter.config import Settings
from newsletter.ledger import Ledger
from newsletter.pipeline import make_app
from newsletter.schedule import forced_period
from newsletter.types import DeliveryStatus, Entry, Interests, Keyword, Profile, ReasonKind

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
FILLER = [
    ("Graph neural networks for molecules", "We predict molecular properties with message passing."),
    ("A survey of reinforcement learning", "Policy gradients, value functions and exploration."),
    ("Speech recognition with transformers", "End-to-end acoustic models for many languages."),
    ("Protein folding at scale", "Structure prediction from sequences with attention."),
]


def entry(n: int | str, title: str, summary: str = "", **kw: object) -> Entry:
    base = Entry(
        id=f"arxiv:2401.{int(n):05d}" if isinstance(n, int) else n,
        title=title,
        summary=summary,
        link="https://arxiv.org/abs/x",
        first_seen=NOW - timedelta(hours=1),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def corpus(*extra: Entry) -> list[Entry]:
    return [entry(100 + i, t, s) for i, (t, s) in enumerate(FILLER)] + list(extra)


def profile(keywords: tuple[str | Keyword, ...] = (), **interests: object) -> Profile:
    kws = tuple(k if isinstance(k, Keyword) else Keyword(k) for k in keywords)
    extra = {k: v for k, v in interests.items() if k in ("max_items", "min_score")}
    inner = {k: v for k, v in interests.items() if k not in extra}
    return Profile(
        id="ada",
        email="ada@example.org",
        name="Ada",
        timezone="UTC",
        send_at=time(7),
        frequency="daily",
        interests=Interests(keywords=kws, **inner),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def ids(matches: list[match.Match] | list[object]) -> list[str]:
    return [m.entry.id for m in matches]  # type: ignore[attr-defined]


def test_stemming_and_phrase_reason() -> None:
    es = corpus(entry(1, "Quantizing Models to 4 bits", "We study low-bit weights."))
    m = match.rank(es, profile(("quantized models",)), NOW)[0]
    assert m.entry.id == "arxiv:2401.00001"
    assert m.reasons[0].kind is ReasonKind.KEYWORD and m.reasons[0].text == '"quantized models" in title'


def test_adjacent_phrase_beats_scattered_words() -> None:
    es = corpus(
        entry(1, "Routing tokens", "A mixture of experts layer routes tokens."),
        entry(2, "Routing tokens", "Experts disagree; a mixture of opinions helps layer routes."),
    )
    got = match.rank(es, profile(("mixture of experts",)), NOW)
    assert ids(got)[0] == "arxiv:2401.00001"
    assert got[0].score > got[1].score
    assert got[1].reasons[0].text.startswith('part of "mixture of experts"')


def test_abbreviations_are_learned_from_their_definitions() -> None:
    found = match.abbreviations(
        [
            "We study large language models (LLMs) and their training.",
            "Sparse Mixture-of-Experts (MoE) layers route tokens; post-training quantization (PTQ) shrinks them.",
            "Results on GPT-4 (OpenAI) and in Table 3 (a), (b).",  # no definitions here
            "Large Language Models (LLMs) again.",
        ]
    )
    assert found["llm"] == (("larg", "languag", "model"), "LLM", "large language models")
    assert found["moe"][0] == ("mixtur", "expert")
    assert found["ptq"][0] == ("post", "train", "quantiz")
    assert set(found) == {"llm", "moe", "ptq"}


def test_a_keyword_matches_the_other_form_of_an_abbreviation() -> None:
    es = corpus(
        entry(1, "Instruction tuning", "Large language models (LLMs) follow instructions after tuning."),
        entry(2, "Large language model training at scale", "We train on many GPUs."),
        entry(3, "Faster MoE routing", "Experts in a layer."),
        entry(4, "Sparse mixture of experts", "A Mixture of Experts (MoE) layer routes tokens."),
    )
    got = match.rank(es, profile(("LLM training",)), NOW)
    assert ids(got)[0] == "arxiv:2401.00002"
    assert got[0].reasons[0].text == '"LLM training" in title (LLM = large language models)'
    # The other way round: the long form typed, the abbreviation found.
    got = match.rank(es, profile(("mixture of experts",)), NOW)
    assert set(ids(got)[:2]) == {"arxiv:2401.00003", "arxiv:2401.00004"}
    # Lower case is a word, not an abbreviation: "moe" is not spelled out.
    assert "arxiv:2401.00004" not in ids(match.rank(es, profile(("moe routing",)), NOW))[:1]
    # An excluded abbreviation vetoes its long form too.
    vetoed = match.rank(es, profile(("training", "tuning"), exclude=("LLM",)), NOW)
    assert not {"arxiv:2401.00001", "arxiv:2401.00002"} & set(ids(vetoed))


def test_title_match_beats_abstract_match() -> None:
    es = corpus(
        entry(1, "Notes on training", "Here we cover pipeline parallelism in depth for large jobs today."),
        entry(2, "Pipeline parallelism revisited", "Notes on training large jobs in depth for today here."),
    )
    assert ids(match.rank(es, profile(("pipeline parallelism",)), NOW))[0] == "arxiv:2401.00002"


def test_keyword_weight_changes_the_order() -> None:
    es = corpus(entry(1, "Sparse attention kernels", ""), entry(2, "Low-rank adapters", ""))
    plain = match.rank(es, profile(("sparse attention", "low-rank adapters")), NOW)
    weighted = match.rank(es, profile(("sparse attention", Keyword("low-rank adapters", 3.0))), NOW)
    assert ids(weighted)[0] == "arxiv:2401.00002"
    assert ids(plain)[0] != ids(weighted)[0] or plain[0].score != weighted[0].score


def test_exclusion_is_a_veto() -> None:
    es = corpus(
        entry(1, "Quantization for satellite images", "Remote sensing imagery compressed."),
        entry(2, "Quantization for chat models", "Language models compressed."),
    )
    assert ids(match.rank(es, profile(("quantization",), exclude=("remote sensing",)), NOW)) == ["arxiv:2401.00002"]


def test_author_name_forms_match() -> None:
    es = corpus(
        entry(1, "Fast attention", authors=("Tri Dao", "Ana Li")),
        entry(2, "Slow attention", authors=("Dao, Tri",)),
        entry(3, "Other attention", authors=("T. Dao",)),
        entry(4, "Unrelated", authors=("A. Dao",)),
    )
    for form in ("T. Dao", "Tri Dao", "Dao, Tri"):
        got = match.rank(es, profile(authors=(form,)), NOW)
        assert sorted(ids(got)) == ["arxiv:2401.00001", "arxiv:2401.00002", "arxiv:2401.00003"], form
        assert all(r.kind is ReasonKind.AUTHOR and r.term == form for m in got for r in m.reasons)
    assert any("by Tri Dao" in m.reason_line for m in match.rank(es, profile(authors=("T. Dao",)), NOW))


def test_categories_alone_and_as_bonus() -> None:
    es = corpus(
        entry(1, "Quantization A", categories=("cs.LG",)),
        entry(2, "Quantization B", categories=("cs.CV",)),
        entry(3, "Something else", categories=("cs.LG",)),
    )
    with_kw = match.rank(es, profile(("quantization",), categories=("cs.lg",)), NOW)
    assert ids(with_kw) == ["arxiv:2401.00001", "arxiv:2401.00002"]  # category lifts, never adds
    assert "in cs.LG" in with_kw[0].reason_line
    only = match.rank(es, profile(categories=("cs.LG",)), NOW)
    assert sorted(ids(only)) == ["arxiv:2401.00001", "arxiv:2401.00003"]


def test_seed_papers_rank_similar_papers_and_name_the_seed() -> None:
    seed = entry(
        "arxiv:2301.00001", "Speculative decoding with draft models", "Draft tokens verified by a target model."
    )
    es = corpus(
        entry(1, "Faster speculative decoding", "Draft models propose tokens; the target model verifies them."),
        entry(2, "Image segmentation", "Pixels and masks."),
    )
    got = match.rank(es, profile(papers=("2301.00001",)), NOW, seeds={seed.id: seed})
    assert ids(got)[0] == "arxiv:2401.00001"
    reason = got[0].reasons[0]
    assert reason.kind is ReasonKind.PAPER and reason.term == "2301.00001"
    assert "Speculative decoding with draft models" in reason.text


def test_seed_in_index_is_used_but_not_recommended() -> None:
    es = corpus(
        entry(1, "Speculative decoding with draft models", "Draft tokens verified by a target model."),
        entry(2, "Faster speculative decoding", "Draft models propose tokens; the target model verifies them."),
    )
    got = match.rank(es, profile(papers=("2401.00001",)), NOW)
    assert ids(got)[0] == "arxiv:2401.00002" and "arxiv:2401.00001" not in ids(got)


def test_min_score_and_max_items() -> None:
    es = corpus(*(entry(i, f"Quantization study {i}", "quantization " * i) for i in range(1, 8)))
    assert len(match.rank(es, profile(("quantization",), max_items=3), NOW)) == 3
    scores = [m.score for m in match.rank(es, profile(("quantization",)), NOW)]
    cut = sorted(scores)[3]
    assert all(m.score >= cut for m in match.rank(es, profile(("quantization",), min_score=cut), NOW))
    assert len(match.rank(es, profile(("quantization",), min_score=cut), NOW)) == len([s for s in scores if s >= cut])


def test_upvotes_are_a_mild_boost() -> None:
    es = corpus(
        entry(1, "Quantization of models", "", upvotes=0),
        entry(2, "Quantization of models", "", upvotes=150),
        entry(3, "Quantization of models: quantization", "quantization quantization", upvotes=0),
    )
    got = match.rank(es, profile(("quantization",)), NOW)
    assert ids(got) == ["arxiv:2401.00003", "arxiv:2401.00002", "arxiv:2401.00001"]
    assert any(r.kind is ReasonKind.POPULAR for r in got[1].reasons)


def test_no_repeats_delivered_ids_since_and_duplicate_ids() -> None:
    es = corpus(
        entry(1, "Quantization one"),
        entry(2, "Quantization two", first_seen=NOW - timedelta(days=3)),
        entry(3, "Quantization three"),
        entry(3, "Quantization three, version 2"),
    )
    got = match.rank(
        es, profile(("quantization",)), NOW, exclude_ids={"arxiv:2401.00001"}, since=NOW - timedelta(days=1)
    )
    assert ids(got) == ["arxiv:2401.00003"]


@pytest.mark.slow
def test_rank_many_agrees_with_rank_one_by_one() -> None:
    entries = [
        sources.merge(None, d, NOW) for d in sources.parse("arxiv", "s", (SAMPLES / "arxiv_cs.rss").read_bytes())
    ]
    index = match.Index(entries)
    profiles = [
        replace(profile(("quantization", "FP8 training"), exclude=("vision",)), id="a"),
        replace(profile(("mixture of experts",), authors=("Ana Li",), categories=("cs.CL",)), id="b"),
        replace(profile(papers=(entries[0].arxiv_id or "",)), id="c"),
        replace(profile(("zzzz qqqq",)), id="d"),
        replace(profile(papers=("2301.00001", entries[1].arxiv_id or "")), id="e"),  # an older paper and today's
    ]
    older = entry("arxiv:2301.00001", "Mixture of experts routing", "Sparse experts and a router for language models.")
    excluded = {"a": {entries[5].id}}
    batch = index.rank_many(profiles, NOW, excluded, {"b": None}, seeds={older.id: older})
    assert set(batch) == {"a", "b", "c", "d", "e"} and batch["d"] == []
    assert any("2301.00001" in m.reason_line for m in batch["e"])
    for p in profiles:
        one = index.rank(p, NOW, exclude_ids=excluded.get(p.id, frozenset()), seeds={older.id: older})
        assert [(m.entry.id, m.score) for m in one] == [(m.entry.id, m.score) for m in batch[p.id]]
        assert all(m.reasons for m in one)


def test_rank_many_gives_the_same_across_batch_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        sources.merge(None, d, NOW) for d in sources.parse("arxiv", "s", (SAMPLES / "arxiv_cs.rss").read_bytes())
    ]
    index = match.Index(entries)
    profiles = [
        replace(profile(("quantization",), max_items=3), id="a"),
        replace(profile(papers=(entries[2].arxiv_id or "",), max_items=30), id="b"),
        replace(profile(("mixture of experts", "routing")), id="c"),
        replace(profile(categories=("cs.LG",), max_items=5), id="d"),
        replace(profile(("scaling laws",), authors=("Ana Li",)), id="e"),
    ]
    whole = index.rank_many(profiles, NOW)
    monkeypatch.setattr(match, "BATCH", 2)  # three batches, the last one of a single profile
    split = index.rank_many(profiles, NOW)
    assert all(whole[p.id] for p in profiles)
    assert {k: [(m.entry.id, m.score, m.reasons) for m in v] for k, v in split.items()} == {
        k: [(m.entry.id, m.score, m.reasons) for m in v] for k, v in whole.items()
    }


def test_a_delivery_history_longer_than_the_day_still_excludes() -> None:
    es = corpus(entry(1, "Quantization one"), entry(2, "Quantization two"))
    history = {f"arxiv:2301.{i:05d}" for i in range(50)} | {"arxiv:2401.00001"}  # more ids than entries
    got = match.rank(es, profile(("quantization",)), NOW, exclude_ids=history)
    assert ids(got) == ["arxiv:2401.00002"]


def test_ties_at_the_cut_are_broken_by_entry_id() -> None:
    # Identical texts score identically: the lowest ids win, whatever the row order.
    same = [entry(i, "Quantization of weights", "Low-bit quantization.") for i in (7, 3, 9, 1, 5)]
    for order in (same, same[::-1]):
        got = match.rank(corpus(*order), profile(("quantization",), max_items=2), NOW)
        assert ids(got) == ["arxiv:2401.00001", "arxiv:2401.00003"]
    index = match.Index(corpus(*same))
    many = index.rank_many([replace(profile(("quantization",), max_items=k), id=str(k)) for k in (1, 3, 9)], NOW)
    assert [len(many[k]) for k in ("1", "3", "9")] == [1, 3, 5]
    assert ids(many["3"]) == ["arxiv:2401.00001", "arxiv:2401.00003", "arxiv:2401.00005"]


@pytest.mark.slow
def test_delivery_ranks_readers_in_blocks_like_one_by_one(
    settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "_RANK_BLOCK", 2)  # three readers: a block of two, then one
    with make_app(settings, clock=clock) as app:
        app.fetch()
        readers = app.load_profiles().profiles
        now = clock()
        index = app.index(app.store.entries_since(now - timedelta(days=30)), readers)  # as delivery builds it
        expected = {
            p.id: tuple(m.entry.id for m in app.digest(p, forced_period(p, now), index, now).matches) for p in readers
        }
        results = app.deliver(force=True, readers=readers)
        sent = {r.reader: r.entry_ids for r in app.ledger.rows(status=DeliveryStatus.SENT)}
    assert [r.reader for r in results] == [p.id for p in readers]
    assert all(r.status is DeliveryStatus.SENT for r in results), results
    assert sent == expected and all(expected.values())


# -- commands ---------------------------------------------------------------------


def write_profile(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ada.toml"
    path.write_text(f'email = "ada@example.org"\n[interests]\n{body}\n')
    return path


@pytest.mark.slow
def test_rank_command_json_on_each_feed_kind(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, 'keywords = ["mixture of experts"]')
    runner = CliRunner()
    results = {}
    for name in ("arxiv_cs.rss", "hf_daily_papers.json"):
        out = runner.invoke(cli, ["rank", "--profile", str(prof), "--entries", str(SAMPLES / name), "--json"])
        assert out.exit_code == 0, out.output
        rows = json.loads(out.output)
        assert rows and set(rows[0]) == {"id", "title", "score", "reasons"}
        assert rows[0]["id"].startswith("arxiv:") and rows[0]["reasons"]
        results[name] = [r["id"] for r in rows]
    assert set(results["arxiv_cs.rss"]) & set(results["hf_daily_papers.json"])
    atom = tmp_path / "blog.atom"
    atom.write_text(
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>b</title><id>urn:b</id>'
        "<updated>2026-01-01T00:00:00Z</updated><entry><title>Mixture of experts, explained</title>"
        '<id>urn:1</id><link href="https://blog.example.org/moe"/><updated>2026-01-01T00:00:00Z</updated>'
        "<summary>Routing.</summary></entry></feed>"
    )
    out = runner.invoke(cli, ["rank", "--profile", str(prof), "--entries", str(atom)])
    assert out.exit_code == 0 and "Mixture of experts, explained" in out.output and "why:" in out.output


def test_rank_command_reports_a_broken_profile_in_one_line(tmp_path: Path) -> None:
    prof = write_profile(tmp_path, 'keywords = ["x"]\nauthor = ["Tri Dao"]')
    out = CliRunner().invoke(cli, ["rank", "--profile", str(prof), "--entries", str(SAMPLES / "arxiv_cs.rss")])
    assert out.exit_code == 1 and "line 4" in out.output and "did you mean `authors`" in out.output
    assert "Traceback" not in out.output


def test_preview_shows_reasons_and_records_nothing(settings: Settings, clock: Clock, tmp_path: Path) -> None:
    with make_app(settings, clock=clock) as app:
        app.fetch()
    (settings.paths.profiles_dir / "ada.toml").write_text(
        (settings.paths.profiles_dir / "ada.toml")
        .read_text()
        .replace('categories = ["cs.LG"]', 'papers = ["2999.00001"]')
    )
    with make_app(settings, clock=clock) as app:
        digest = app.preview("ada", 2)
        assert digest.matches and all(m.reasons for m in digest.matches)
        assert any("2999.00001" in n for n in digest.notes)  # unknown seed reported, not ignored
        assert app.ledger.feed_items("ada", 50) == []
    ledger = Ledger(settings.paths.data_dir)
    try:
        assert ledger.rows(reader="ada") == []
    finally:
        ledger.close()
    config = tmp_path / "n.toml"
    assert not config.exists()


def test_preview_command_unknown_reader_is_one_line(settings: Settings) -> None:
    from newsletter.errors import NewsletterError

    with make_app(settings) as app:
        try:
            app.preview("nobody", 1)
        except NewsletterError as e:
            assert "ada" in str(e) and "without .toml" in str(e)
        else:
            raise AssertionError("expected an error for an unknown reader")


# -- fusion with the shipped sentence model (real ONNX model, small corpora) -------------------------------------


@pytest.fixture(scope="module")
def embedder() -> embed.TextEmbedder:
    model = embed.load_embedder()
    assert model is not None, "the shipped model must load"
    return model


class CountingEmbedder:
    """The real model, counting the texts it is asked to embed (to check the phrase cache)."""

    def __init__(self, inner: embed.TextEmbedder) -> None:
        self.inner = inner
        self.texts: list[str] = []
        self.name = inner.name + "/counted"
        self.dim = inner.dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return self.inner.embed(texts)


SATELLITE = entry(
    7,
    "Crop type mapping from Sentinel-2 tiles",
    "Farmland parcels are classified from multispectral images taken from orbit. "
    "We label wheat, maize and rice fields across three countries with a temporal transformer.",
)


def semantic_index(es: list[Entry], model: embed.TextEmbedder) -> match.Index:
    vectors = model.embed([embed.paper_text(e.title, e.summary) for e in es])
    return match.Index(es, embeddings=vectors, embedder=model)


def test_fusion_finds_a_paraphrase_and_says_why(embedder: embed.TextEmbedder) -> None:
    es = corpus(SATELLITE, entry(8, "Image segmentation for medicine", "Masks of organs in CT scans."))
    reader = profile(("remote sensing", "satellite imagery"))
    assert SATELLITE.id not in ids(match.Index(es).rank(reader, NOW))  # no word of either phrase appears
    got = semantic_index(es, embedder).rank(reader, NOW)
    assert ids(got)[0] == SATELLITE.id
    reason = got[0].reasons[0]
    assert reason.kind is ReasonKind.SIMILAR and reason.term in ("remote sensing", "satellite imagery")
    assert reason.text.startswith(f'close in meaning to "{reason.term}": "')
    quoted = reason.text.split(': "', 1)[1].rstrip('"').rstrip("…")
    assert quoted in SATELLITE.summary  # a sentence of the abstract, to check against
    # A topic absent today gets nothing on meaning alone (skip_empty still means something).
    assert semantic_index(es, embedder).rank(profile(("medieval poetry",)), NOW) == []


def test_exclusions_still_veto_semantic_matches(embedder: embed.TextEmbedder) -> None:
    es = corpus(SATELLITE)
    got = semantic_index(es, embedder).rank(profile(("remote sensing",), exclude=("crop type",)), NOW)
    assert SATELLITE.id not in ids(got)


def test_seed_outside_the_day_is_embedded_and_named(embedder: embed.TextEmbedder) -> None:
    seed = entry(
        "arxiv:2301.00009",
        "Land cover segmentation of aerial photographs",
        "Buildings, roads and forests are segmented in high-resolution aerial and satellite photographs.",
    )
    es = corpus(SATELLITE, entry(8, "Speech synthesis", "A vocoder for many voices."))
    got = semantic_index(es, embedder).rank(profile(papers=("2301.00009",)), NOW, seeds={seed.id: seed})
    assert ids(got)[0] == SATELLITE.id
    similar = [r for r in got[0].reasons if r.kind is ReasonKind.SIMILAR]
    assert similar and similar[0].term == "2301.00009"
    assert similar[0].text.startswith('close in meaning to your paper 2301.00009: "')


def test_without_embeddings_the_ranking_is_the_lexical_one(embedder: embed.TextEmbedder) -> None:
    es = corpus(
        entry(1, "Mixture of experts routing", "A mixture of experts layer routes tokens.", authors=("Tri Dao",)),
        entry(2, "Expert routing", "Experts and routers.", categories=("cs.LG",)),
    )
    readers = [
        replace(profile(("mixture of experts",)), id="kw"),
        replace(profile(authors=("T. Dao",)), id="author"),
        replace(profile(categories=("cs.LG",)), id="category"),
    ]
    plain = match.Index(es).rank_many(readers, NOW)
    assert all(plain.values())
    # An embedder without stored embeddings changes nothing.
    assert match.Index(es, embedder=embedder).rank_many(readers, NOW) == plain
    # With embeddings, readers with neither phrases nor seed papers keep their lexical ranking and scores.
    fused = semantic_index(es, embedder).rank_many(readers, NOW)
    assert fused["author"] == plain["author"] and fused["category"] == plain["category"]
    assert fused["kw"] != plain["kw"]  # the keyword reader's scores are fused (0..1)


def test_entries_without_an_embedding_are_ranked_on_their_words(embedder: embed.TextEmbedder) -> None:
    plain = entry(9, "Remote sensing of glaciers", "Ice extent measured over decades.")
    es = corpus(SATELLITE, plain)
    rows = embedder.embed([embed.paper_text(e.title, e.summary) for e in es])
    vectors = {e.id: v for e, v in zip(es, rows, strict=True)}
    del vectors[plain.id]
    got = match.Index(es, embeddings=vectors, embedder=embedder).rank(profile(("remote sensing",)), NOW)
    assert set(ids(got)[:2]) == {plain.id, SATELLITE.id}
    assert next(m for m in got if m.entry.id == plain.id).reasons[0].kind is ReasonKind.KEYWORD


def test_readers_sharing_phrases_embed_each_phrase_once(embedder: embed.TextEmbedder) -> None:
    counted = CountingEmbedder(embedder)
    es = corpus(SATELLITE)
    vectors = embedder.embed([embed.paper_text(e.title, e.summary) for e in es])
    index = match.Index(es, embeddings=vectors, embedder=counted)
    readers = [replace(profile(("remote sensing", "crop yield")), id=f"r{i}") for i in range(30)]
    index.rank_many(readers, NOW)
    phrases = [t for t in counted.texts if t in ("remote sensing", "crop yield", "remote sensing, crop yield")]
    expected = ["crop yield", "remote sensing"] + (["remote sensing, crop yield"] if match.SEMANTIC_JOINED else [])
    assert sorted(phrases) == expected
    match.Index(es, embeddings=vectors, embedder=counted).rank_many(readers, NOW)  # another run of the process
    assert len([t for t in counted.texts if t == "remote sensing"]) == 1


def test_reasons_carry_where_words_and_detail_for_the_email() -> None:
    """The renderer groups reasons from these fields, never by parsing the text."""
    es = corpus(
        entry(1, "Post-training quantization of LLMs", "Low-bit weights.", authors=("T. Dao",)),
        entry(2, "Parallelism for big models", "We study parallelism."),
    )
    prof = profile(("post-training quantization", "pipeline parallelism"), authors=("Tri Dao",))
    got = {m.entry.id: m.reasons for m in match.rank(es, prof, NOW)}
    kw, author = got["arxiv:2401.00001"]
    assert (kw.term, kw.where, kw.words) == ("post-training quantization", "title", ())
    assert (author.kind, author.term, author.detail) == (ReasonKind.AUTHOR, "Tri Dao", "T. Dao")
    (partial,) = got["arxiv:2401.00002"]
    assert (partial.term, partial.words) == ("pipeline parallelism", ("parallelism",))
    assert partial.where == "title"


def test_trending_is_the_most_upvoted_not_picked_nor_sent() -> None:
    es = [entry(i, f"Paper {i}", upvotes=u) for i, u in enumerate([5, 90, None, 40, 90, 0, 12], 1)]
    picked = {"arxiv:2401.00002"}
    got = match.trending(es, picked, 3, exclude_ids={"arxiv:2401.00004"})
    assert [m.entry.id for m in got] == ["arxiv:2401.00005", "arxiv:2401.00007", "arxiv:2401.00001"]
    assert all(r.kind is ReasonKind.POPULAR for m in got for r in m.reasons)
    assert match.trending(es, picked, 0) == ()
    assert len(match.trending(es, set(), 50)) == 5  # only papers with upvotes


def test_sentence_tokens_are_the_words_of_tokens_a_sentence_at_a_time() -> None:
    # The index keeps an abstract's words per sentence, to quote the closest one without a second pass.
    summaries = [d.summary for d in sources.parse("arxiv", "t", (SAMPLES / "arxiv_cs.rss").read_bytes())]
    summaries += ["Large Language Models (LLMs) lead. We study GPUs! 3 results: naïve café.", "", "A\x00B. C\x00"]
    for text in summaries:
        per_sentence = match.sentence_tokens(text)
        assert len(per_sentence) == len(match.sentences(text))
        assert [t for part in per_sentence for t in part] == match.tokens(text)
    assert match.sentence_tokens("LLMs lead. We study GPUs!") == [["llm", "lead"], ["studi", "gpu"]]
