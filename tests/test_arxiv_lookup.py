"""Seed lookups through the arXiv API, against a real loopback API server.

The fetcher gets a clock that only moves when it sleeps, so the 3 s spacing
between requests is checked exactly and nothing here waits for real.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from arxiv_api_server import ArxivApiServer, Paper, fixture_papers
from servekit import Clock, FakeTime

from newsletter.arxiv_lookup import SOURCE, ArxivLookup, MemoryCache, arxiv_id
from newsletter.config import FetchSettings
from newsletter.errors import FetchError, MalformedIdError, UnknownPaperError
from newsletter.fetch import Fetcher
from newsletter.types import EntryData

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FIXTURE_IDS = sorted(fixture_papers())


@pytest.fixture
def api() -> Iterator[ArxivApiServer]:
    with ArxivApiServer() as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime(1000.0)


@pytest.fixture
def fetcher(fake_time: FakeTime) -> Iterator[Fetcher]:
    f = Fetcher(
        FetchSettings(deadline=10, timeout=5, connect_timeout=5, retries=1, backoff=0.5),
        contact="ops@example.org",
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    yield f
    f.close()


def lookup_for(api: ArxivApiServer, fetcher: Fetcher, **kw: object) -> ArxivLookup:
    return ArxivLookup(fetcher, base=api.base, allow_private=True, now=kw.pop("now", Clock(NOW)), **kw)  # type: ignore[arg-type]


def test_150_ids_take_two_requests_three_seconds_apart(
    api: ArxivApiServer, fetcher: Fetcher, fake_time: FakeTime
) -> None:
    ids = FIXTURE_IDS[:150]
    results = lookup_for(api, fetcher).lookup(ids)
    assert [len(r.ids) for r in api.requests] == [100, 50]
    assert [r.max_results for r in api.requests] == [100, 50]  # arXiv's default of 10 would drop 90 of them
    assert fake_time.slept == [3.0]  # one pause, between the two requests
    assert list(results) == ids and all(r.ok and not r.cached for r in results.values())
    paper = results[ids[0]].paper
    assert isinstance(paper, EntryData) and paper.source == SOURCE and paper.announce_type is None
    expected = fixture_papers()[ids[0]]
    assert paper.title == expected.title and paper.authors == expected.authors
    assert paper.summary.startswith(expected.summary[:40])


def test_the_interval_holds_across_calls_and_for_a_third_batch(
    api: ArxivApiServer, fetcher: Fetcher, fake_time: FakeTime
) -> None:
    lookup = lookup_for(api, fetcher, batch_size=50)
    lookup.lookup(FIXTURE_IDS[:120])
    lookup.lookup(FIXTURE_IDS[120:130])
    assert [len(r.ids) for r in api.requests] == [50, 50, 20, 10]
    assert fake_time.slept == [3.0, 3.0, 3.0]
    assert lookup.requests == 4


def test_each_id_is_asked_once_ever(api: ArxivApiServer, fetcher: Fetcher) -> None:
    cache = MemoryCache()
    first = lookup_for(api, fetcher, cache=cache).lookup(FIXTURE_IDS[:5])
    again = lookup_for(api, fetcher, cache=cache).lookup([*FIXTURE_IDS[:5], f"arXiv:{FIXTURE_IDS[0]}v1"])
    assert len(api.requests) == 1
    assert all(r.cached and r.ok for r in again.values())
    assert again[f"arXiv:{FIXTURE_IDS[0]}v1"].paper == first[FIXTURE_IDS[0]].paper  # one paper, however written


def test_an_unknown_id_is_reported_and_remembered_for_a_week(api: ArxivApiServer, fetcher: Fetcher) -> None:
    cache, wall = MemoryCache(), Clock(NOW)
    lookup = lookup_for(api, fetcher, cache=cache, now=wall)
    results = lookup.lookup([FIXTURE_IDS[0], "2402.99999"])
    assert results[FIXTURE_IDS[0]].ok
    error = results["2402.99999"].error
    assert isinstance(error, UnknownPaperError)
    assert "arXiv has no paper 2402.99999" in str(error) and "asked again after 2026-11-30" in str(error)
    assert cache.unknown["2402.99999"].checked_at == NOW

    wall.now = NOW + timedelta(days=3)
    assert isinstance(lookup.lookup(["2402.99999"])["2402.99999"].error, UnknownPaperError)
    assert len(api.requests) == 1  # the negative cache answered

    api.add_paper(Paper("2402.99999", "Announced since", "An abstract."))
    wall.now = NOW + timedelta(days=8)
    late = lookup.lookup(["2402.99999"])["2402.99999"]
    assert late.ok and late.paper is not None and late.paper.title == "Announced since"
    assert len(api.requests) == 2 and "2402.99999" not in cache.unknown


def test_a_malformed_id_costs_no_request(api: ArxivApiServer, fetcher: Fetcher) -> None:
    results = lookup_for(api, fetcher).lookup(["2402.1562", "not-an-id", FIXTURE_IDS[0]])
    for bad in ("2402.1562", "not-an-id"):
        error = results[bad].error
        assert isinstance(error, MalformedIdError) and "is not an arXiv id" in str(error)
        assert results[bad].arxiv_id is None
    assert [r.ids for r in api.requests] == [(FIXTURE_IDS[0],)]


def test_a_failing_api_is_an_error_per_id_and_is_asked_again_next_time(
    api: ArxivApiServer, fetcher: Fetcher, fake_time: FakeTime
) -> None:
    cache = MemoryCache()
    api.fail(503, 503)  # the fetcher's one retry also fails
    results = lookup_for(api, fetcher, cache=cache).lookup(FIXTURE_IDS[:3])
    assert all(isinstance(r.error, FetchError) and "asked again next run" in str(r.error) for r in results.values())
    assert not cache.unknown and not cache.entries  # a failure is not "arXiv does not know it"
    assert all(lookup_for(api, fetcher, cache=cache).lookup(FIXTURE_IDS[:3])[i].ok for i in FIXTURE_IDS[:3])
    assert len(api.requests) == 3


def test_a_loopback_base_is_refused_without_allow_private(api: ArxivApiServer, fetcher: Fetcher) -> None:
    result = ArxivLookup(fetcher, base=api.base).lookup([FIXTURE_IDS[0]])[FIXTURE_IDS[0]]
    assert isinstance(result.error, FetchError) and "loopback" in str(result.error)
    assert api.requests == []


def test_old_style_ids_and_doi_come_through(api: ArxivApiServer, fetcher: Fetcher) -> None:
    api.add_paper(Paper("hep-th/9901001", "Old paper", "Strings.", ("A. Einstein", "B. Podolsky"), ("hep-th",)))
    api.add_paper(Paper("2402.15627", "With DOI", "Text.", doi="10.1000/xyz", version=3))
    results = lookup_for(api, fetcher).lookup(["hep-th/9901001", "2402.15627"])
    old, new = results["hep-th/9901001"].paper, results["2402.15627"].paper
    assert old is not None and old.arxiv_id == "hep-th/9901001" and old.authors == ("A. Einstein", "B. Podolsky")
    assert new is not None and new.doi == "10.1000/xyz" and new.version == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2402.15627", "2402.15627"),
        ("arXiv:2402.15627v2", "2402.15627"),
        ("https://arxiv.org/pdf/2402.15627v1.pdf", "2402.15627"),
        ("math.gt/0309136", "math.GT/0309136"),
        ("1412.1234", "1412.1234"),
        ("2402.1562", None),  # four digits after 2014: a typo
        ("1412.12345", None),
        ("2413.12345", None),  # month 13
        ("", None),
    ],
)
def test_arxiv_id_forms(text: str, expected: str | None) -> None:
    assert arxiv_id(text) == expected
