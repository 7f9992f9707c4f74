"""Seeds that resolve (issue 16): an id no source lists is looked up through the arXiv API; a .bib library seeds.

Both change the ranking: a reader whose only interest is a seed paper gets
papers like it, with the reason naming it.  The arXiv API is a real server on
127.0.0.1 (tests/arxiv_api_server.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from arxiv_api_server import ArxivApiServer, Paper
from servekit import Clock

from newsletter.config import Settings
from newsletter.pipeline import make_app
from newsletter.store import NOT_LISTED

OLD_PAPER = Paper(
    arxiv_id="2301.07777",
    title="Outlier-aware post-training quantization of large language models to four bits",
    summary="We study post-training quantization of the weights of large language models to 4 bits. Outlier "
    "channels are kept in higher precision; the rest are rounded with a small calibration set, "
    "keeping accuracy within one point of the full-precision model.",
)
SEED_ONLY = 'email = "sam@example.org"\n[interests]\npapers = ["{id}"]\n'


@pytest.fixture
def api() -> Iterator[ArxivApiServer]:
    server = ArxivApiServer()
    server.add_paper(OLD_PAPER)
    with server:
        yield server


def with_api(settings: Settings, api: ArxivApiServer) -> Settings:
    fetch = settings.fetch.model_copy(update={"arxiv_api": api.base, "arxiv_api_allow_private": True})
    return settings.model_copy(update={"fetch": fetch})


def test_a_seed_no_source_lists_is_looked_up_once_and_seeds_the_ranking(
    settings: Settings, clock: Clock, api: ArxivApiServer
) -> None:
    (settings.paths.profiles_dir / "sam.toml").write_text(SEED_ONLY.format(id=OLD_PAPER.arxiv_id))
    settings = with_api(settings, api)
    with make_app(settings, clock=clock) as app:
        app.fetch()
        stored = app.store.get_entries([f"arxiv:{OLD_PAPER.arxiv_id}"])[f"arxiv:{OLD_PAPER.arxiv_id}"]
        assert stored.first_seen == NOT_LISTED, "looked up, not listed: never news"
        digest = app.preview("sam", days=7)
        assert digest.matches, "a reader with only a seed paper gets papers like it"
        reasons = [r.text for m in digest.matches for r in m.reasons]
        assert any(OLD_PAPER.arxiv_id in r and "Outlier-aware" in r for r in reasons), reasons
        assert f"arxiv:{OLD_PAPER.arxiv_id}" not in {m.entry.id for m in digest.matches}
        app.fetch()
    asked = [r for r in api.requests if OLD_PAPER.arxiv_id in r.ids]
    assert len(asked) == 1, "looked up once ever"


def test_a_library_file_seeds_the_ranking(settings: Settings, clock: Clock) -> None:
    folder = settings.paths.profiles_dir
    (folder / "library.bib").write_text(
        "@article{outliers2023,\n  title = {Outlier-aware post-training quantization of large language models},\n"
        "  abstract = {We quantize the weights of large language models after training to four bits, keeping "
        "outlier channels in higher precision.},\n  author = {Lovelace, Ada},\n  year = {2023}\n}\n"
    )
    (folder / "sam.toml").write_text('email = "sam@example.org"\n[interests]\npapers_from = "library.bib"\n')
    with make_app(settings, clock=clock) as app:
        app.fetch()
        digest = app.preview("sam", days=7)
    assert digest.matches, "the library's paper seeds the ranking"
    titles = " ".join(m.entry.title.lower() for m in digest.matches[:5])
    assert "quantiz" in titles, titles
    reasons = [r.text for m in digest.matches for r in m.reasons]
    assert any("Outlier-aware" in r for r in reasons), reasons
