"""Fetching against a real HTTP server on loopback: fixtures, conditional GET, hostile endpoints, SSRF.

The servers are operator sources (``allow_private = true``); the SSRF tests
show what a source without it, or a redirect away from the allowed host,
cannot reach.  Retries and politeness pauses go through a recording
``sleep`` that does not sleep, so nothing here waits for real except the
deadlines (1.5 s) of the hostile endpoints, fetched all at once.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from feedserver import FeedServer, arxiv_feed, arxiv_item
from servekit import Clock

from newsletter.addresses import address_problem
from newsletter.cli import cli
from newsletter.config import FetchSettings, Settings, SourceSettings, default_settings
from newsletter.errors import FetchError
from newsletter.fetch import Fetcher, user_agent
from newsletter.pipeline import App, make_app
from newsletter.politeness import HostLimiter
from newsletter.retry import retry_after_seconds
from newsletter.types import SourceState

NOW = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)
FAST = {"deadline": 1.5, "timeout": 1.0, "connect_timeout": 1.0, "backoff": 0.01, "retries": 2, "concurrency": 16}


class Sleeps(list[float]):
    """A ``sleep`` that records and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def source(name: str, url: str, kind: str = "arxiv", **kw: Any) -> SourceSettings:
    return SourceSettings(name=name, kind=kind, url=url, allow_private=kw.pop("allow_private", True), **kw)  # type: ignore[arg-type]


def settings_for(tmp_path: Path, *sources: SourceSettings, **fetch: Any) -> Settings:
    base = default_settings(tmp_path)
    return base.model_copy(update={"sources": sources, "fetch": FetchSettings(**{**FAST, **fetch})})


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def app_for(settings: Settings, sleeps: Sleeps, now: datetime = NOW) -> App:
    app = make_app(settings, clock=Clock(now))
    app.fetcher.sleep = sleeps
    return app


def two_sources(server: FeedServer) -> tuple[SourceSettings, SourceSettings]:
    return source("arxiv", server.url("/arxiv.rss")), source("hf", server.url("/hf.json"), "hf")


# -- done when --------------------------------------------------------------------


def test_two_fixture_feeds_give_334_merged_entries_then_304s_that_transfer_nothing(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps
) -> None:
    settings = settings_for(tmp_path, *two_sources(server))
    with app_for(settings, sleeps) as app:
        first = app.fetch()
        entries = app.store.get_entries()
        assert [(r.source, r.error, r.new) for r in first] == [("arxiv", None, 334), ("hf", None, 0)]
        assert first[1].updated == 334  # same papers: HF adds its upvotes to the arXiv entries
        assert len(entries) == 334
        paper = entries["arxiv:2409.33625"]
        assert paper.upvotes is not None and paper.categories == ("cs.DC",) and paper.sources == ("arxiv", "hf")
        assert all(e.upvotes is not None and e.categories for e in entries.values())

        second = app.fetch()
        assert [(r.source, r.not_modified, r.new, r.updated, r.error) for r in second] == [
            ("arxiv", True, 0, 0, None),
            ("hf", True, 0, 0, None),
        ]
        assert app.store.get_entries() == entries
        states = app.store.source_states()
    for path in ("/arxiv.rss", "/hf.json"):
        hit_one, hit_two = server.hits(path)
        assert hit_one.status == 200 and hit_one.body_bytes > 10_000
        assert hit_one.headers["Accept-Encoding"] == "gzip, deflate"  # served gzipped: decoded on our side
        assert hit_two.status == 304 and hit_two.body_bytes == 0
        assert hit_two.headers["If-None-Match"] and hit_two.headers["If-Modified-Since"]
        assert hit_one.headers["User-Agent"] == user_agent(settings.site.contact)
    assert "newsletter/" in user_agent("ops@example.org") and "ops@example.org" in user_agent("ops@example.org")
    assert states["arxiv"].etag and states["arxiv"].failures == 0 and states["arxiv"].last_success == NOW


def bumped_to_v2(feed: bytes) -> bytes:
    text = feed.decode()
    text = text.replace("v1 Announce Type: new", "v2 Announce Type: replace").replace("v1</guid>", "v2</guid>")
    return text.replace(">new</arxiv:announce_type>", ">replace</arxiv:announce_type>").encode()


@pytest.mark.slow
def test_every_item_bumped_to_v2_as_replace_adds_no_entry(tmp_path: Path, server: FeedServer, sleeps: Sleeps) -> None:
    original = (Path(__file__).parent.parent / "newsletter" / "samples" / "arxiv_cs.rss").read_bytes()
    v2 = bumped_to_v2(original)
    assert v2.count(b"v2</guid>") == 334 and v2.count(b">replace</arxiv:announce_type>") == 334
    settings = settings_for(tmp_path, source("arxiv", server.url("/arxiv.rss")))
    with app_for(settings, sleeps) as app:
        assert app.fetch()[0].new == 334
        first_seen = {k: e.first_seen for k, e in app.store.get_entries().items()}
        server.add("/arxiv.rss", v2)
        app.clock = Clock(NOW + timedelta(days=1))
        again = app.fetch()[0]
        entries = app.store.get_entries()
    assert (again.new, again.updated, again.error) == (0, 334, None)
    assert len(entries) == 334 and all(e.version == 2 for e in entries.values())
    assert {k: e.first_seen for k, e in entries.items()} == first_seen  # still "old news"

    fresh = settings_for(tmp_path / "fresh", source("arxiv", server.url("/arxiv.rss")))
    with app_for(fresh, sleeps) as app:
        result = app.fetch()[0]
        assert (result.new, result.unchanged, len(app.store.get_entries())) == (0, 334, 0)


# -- hostile endpoints ------------------------------------------------------------

HOSTILE = {
    "drip": ("/drip", "took longer than the 1.5 s deadline"),
    "drip-headers": ("/drip-headers", "took longer than the 1.5 s deadline"),
    "endless": ("/endless", "too large"),
    "gzip-bomb": ("/gzip-bomb", "after decompression"),
    "always-503": ("/status/503", "HTTP 503 Service Unavailable from"),
    "long-wait-429": ("/ratelimit/3600/arxiv.rss", "longer than fetch.max_retry_after"),
    "malformed": ("/malformed.xml", "malformed XML"),
    "laughs": ("/laughs.xml", "declares XML entities"),
    "html": ("/html", "wrong content type: expected an RSS/Atom feed, got text/html"),
    "png": ("/png", "wrong content type"),
    "missing": ("/nothing-here", "HTTP 404 Not Found"),
}


@pytest.mark.timeout(30)
def test_hostile_endpoints_fail_alone_with_a_clear_reason_within_the_deadline(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps
) -> None:
    hostile = [source(name, server.url(path)) for name, (path, _) in HOSTILE.items()]
    metadata = "http://169.254.169.254/latest/meta-data/"
    recovering = [
        source("500-then-200", server.url("/flaky/1/arxiv.rss")),
        source("429-then-200", server.url("/ratelimit/1/hf.json"), "hf"),
        source("redirect-private", server.url(f"/redirect?to={metadata}")),
        source("long-author", server.url("/long-author.xml")),
    ]
    settings = settings_for(tmp_path, *hostile, *recovering, max_bytes=2_000_000)
    with app_for(settings, sleeps) as app:
        results = {r.source: r for r in app.fetch()}
        states = app.store.source_states()
    for name, (_, reason) in HOSTILE.items():
        assert results[name].error is not None and reason in str(results[name].error), (name, results[name].error)
        assert states[name].failures == 1 and states[name].last_error == str(results[name].error)
    assert "gave up after 3 attempts" in str(results["always-503"].error)
    assert results["500-then-200"].error is None and results["500-then-200"].new == 334
    assert results["429-then-200"].error is None and results["429-then-200"].updated == 334
    assert 1.0 in sleeps  # Retry-After: 1 was honoured (through the recording sleep)
    assert 0.01 in sleeps  # the first backoff after the 500
    redirect = str(results["redirect-private"].error or "")
    assert redirect.startswith("refused: redirect from http://127.0.0.1")
    assert "169.254.169.254 is a link-local" in redirect
    assert results["long-author"].error is None and results["long-author"].new == 1
    assert [h.status for h in server.hits("/flaky/1/arxiv.rss")] == [500, 200]


def test_a_failing_source_counts_failures_in_a_row_and_a_success_resets_them(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps
) -> None:
    settings = settings_for(tmp_path, source("a", server.url("/feed.xml")), retries=0)
    with app_for(settings, sleeps) as app:
        app.fetch()
        app.fetch()
        assert app.store.source_state("a").failures == 2
        assert "HTTP 404" in (app.store.source_state("a").last_error or "")
        server.add("/feed.xml", arxiv_feed([arxiv_item("2401.00003")]))
        assert app.fetch()[0].new == 1
        state = app.store.source_state("a")
    assert (state.failures, state.last_error, state.last_success) == (0, None, NOW)


def test_a_deadline_ends_a_drip_even_with_a_long_read_timeout(tmp_path: Path, server: FeedServer) -> None:
    fetcher = Fetcher(FetchSettings(deadline=0.5, timeout=30, retries=0), contact="ops@example.org")
    with pytest.raises(Exception, match="deadline"):
        fetcher.get(server.url("/drip-headers"), allow_private=True)
    fetcher.close()
    assert server.state.counts["/drip-headers"] == 1  # it was reached, and cut off


# -- SSRF guard ---------------------------------------------------------------------

BLOCKED = [
    "127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.127.255.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::",
    "2002:a9fe:a9fe::1", "::127.0.0.1", "ff02::1", "fec0::1",
]  # fmt: skip
ALLOWED = ["93.184.216.34", "151.101.1.69", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:5db8:d822::1"]


@pytest.mark.parametrize("address", BLOCKED)
def test_private_loopback_link_local_cgnat_and_tunnelled_forms_are_blocked(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "0x7f.1", "127.1", "017700000001", "[::ffff:127.0.0.1]"]
)
def test_a_source_without_allow_private_cannot_reach_the_loopback_server(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps, host: str
) -> None:
    url = f"http://{host}:{server.port}/arxiv.rss"
    settings = settings_for(tmp_path, source("guarded", url, allow_private=False))
    with app_for(settings, sleeps) as app:
        result = app.fetch()[0]
    assert result.error is not None and str(result.error).startswith("refused:"), result.error
    assert isinstance(result.error, FetchError)  # the error is a value of our tree, not a string
    assert server.hits() == []  # refused in the connect path: not one request went out


@pytest.fixture
def internal() -> Iterator[FeedServer]:
    try:
        s = FeedServer("127.0.0.2")
    except OSError:  # pragma: no cover - only Linux routes all of 127/8 to loopback
        pytest.skip("cannot bind 127.0.0.2 here")
    with s:
        yield s


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.2:{internal}/arxiv.rss",
        "http://localhost:{port}/arxiv.rss",
        "http://2130706433:{port}/arxiv.rss",
        "http://[::ffff:127.0.0.2]:{internal}/arxiv.rss",
        "file:///etc/passwd",
    ],
)
def test_a_redirect_away_from_the_allowed_host_is_refused_before_connecting(
    tmp_path: Path, server: FeedServer, internal: FeedServer, sleeps: Sleeps, target: str
) -> None:
    to = target.format(internal=internal.port, port=server.port)
    settings = settings_for(tmp_path, source("intranet", server.url(f"/redirect?to={to}")))
    with app_for(settings, sleeps) as app:
        result = app.fetch()[0]
    assert result.error is not None and str(result.error).startswith("refused: redirect from"), result.error
    assert internal.hits() == []
    assert [h.path for h in server.hits()] == [f"/redirect?to={to}"]  # the redirect itself, nothing after


def test_a_redirect_within_the_allowed_host_is_followed(tmp_path: Path, server: FeedServer, sleeps: Sleeps) -> None:
    settings = settings_for(tmp_path, source("intranet", server.url(f"/redirect?to={server.url('/arxiv.rss')}")))
    with app_for(settings, sleeps) as app:
        assert app.fetch()[0].new == 334


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.000.000.001", "１２７.０.０.１", "127.0.0.１"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_octal_zero_padded_and_full_width_addresses_are_refused_as_invalid_urls_naming_them(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps, host: str, allow_private: bool
) -> None:
    url = f"http://{host}:{server.port}/arxiv.rss"
    settings = settings_for(tmp_path, source("odd", url, allow_private=allow_private))
    with app_for(settings, sleeps) as app:
        result = app.fetch()[0]
    assert result.error is not None and str(result.error).startswith(f"refused: {url} is not a valid URL"), result.error
    assert "internal error" not in str(result.error)
    assert server.hits() == []


@pytest.mark.parametrize(
    "to", ["javascript:alert(1)", "javascript://x/%0aalert(1)", "http://0177.0.0.1:{port}/", "http://[::1"]
)
def test_a_redirect_to_a_bad_target_is_refused_naming_the_target(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps, to: str
) -> None:
    target = to.format(port=server.port)
    origin = server.url("/redirect?to=" + quote(target, safe=":/[]"))
    settings = settings_for(tmp_path, source("bounce", origin))
    with app_for(settings, sleeps) as app:
        result = app.fetch()[0]
    assert result.error is not None and str(result.error).startswith(
        f"refused: redirect from {origin} to {target} is not"
    )
    assert [h.status for h in server.hits()] == [302]  # one request, no retry


def test_a_public_name_that_resolves_to_metadata_is_refused(server: FeedServer) -> None:
    def resolve(host: str, port: int, **kw: Any) -> list[Any]:
        assert host == "feeds.example.com"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    fetcher = Fetcher(FetchSettings(**FAST), contact="ops@example.org", resolve=resolve)
    with pytest.raises(Exception, match=r"feeds\.example\.com \(169\.254\.169\.254\) is a link-local"):
        fetcher.get("http://feeds.example.com/feed.xml")
    fetcher.close()


# -- politeness ---------------------------------------------------------------------


def test_arxiv_hosts_share_one_three_second_gate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = HostLimiter({"arxiv.org": 3.0}, clock=lambda: now[0], sleep=sleep)
    assert limiter.rule("export.arxiv.org") == ("arxiv.org", 3.0)
    assert limiter.rule("rss.arxiv.org.") == ("arxiv.org", 3.0)
    assert limiter.rule("notarxiv.org")[1] == 0.0
    for host in ("rss.arxiv.org", "export.arxiv.org", "rss.arxiv.org"):
        with limiter.slot(host):
            now[0] += 0.5  # the request itself
    assert slept == [3.0, 3.0]  # 3 s from the end of the previous request
    with limiter.slot("example.org"):
        pass
    assert slept == [3.0, 3.0]  # other hosts are not held up


def test_default_fetcher_applies_arxiv_interval_and_config_adds_hosts() -> None:
    fetcher = Fetcher(FetchSettings(host_intervals={"Example.ORG": 1.5}), contact="ops@example.org")
    assert fetcher.limiter.rule("rss.arxiv.org") == ("arxiv.org", 3.0)
    assert fetcher.limiter.rule("feeds.example.org") == ("example.org", 1.5)


def test_sources_on_one_host_with_an_interval_are_spaced_out(tmp_path: Path, server: FeedServer) -> None:
    feeds = [source(f"s{i}", server.add(f"/s{i}.xml", arxiv_feed([arxiv_item(f"2401.1000{i}")]))) for i in range(3)]
    settings = settings_for(tmp_path, *feeds, host_intervals={"127.0.0.1": 0.15})
    with make_app(settings, clock=Clock(NOW)) as app:  # real sleep: 2 x 0.15 s
        assert [r.new for r in app.fetch()] == [1, 1, 1]
    starts = sorted(h.at for h in server.hits())
    assert len(starts) == 3 and all(b - a >= 0.15 for a, b in itertools.pairwise(starts))


def test_retry_after_as_seconds_or_http_date() -> None:
    now = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds("Fri, 14 Nov 2025 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("soon", now) is None and retry_after_seconds(None, now) is None


# -- catch-up and gaps ------------------------------------------------------------------


@pytest.mark.slow
def test_hf_catches_up_missed_days_by_date_and_records_older_ones(
    tmp_path: Path, server: FeedServer, sleeps: Sleeps
) -> None:
    # the four fetches and parses share one budget: 1.5 s is not enough on a busy machine
    settings = settings_for(tmp_path, source("hf", server.url("/hf.json"), "hf"), catchup_days=3, deadline=30)
    with app_for(settings, sleeps) as app:
        app.store.put_source_states([SourceState("hf", last_date="2025-11-09")])
        result = app.fetch()[0]
        state = app.store.source_state("hf")
    asked = [h.path for h in server.hits()]
    assert asked == ["/hf.json", "/hf.json?date=2025-11-11", "/hf.json?date=2025-11-12", "/hf.json?date=2025-11-13"]
    assert result.error is None and result.new == 334
    assert state.last_date == "2025-11-14"
    assert state.missed_dates == ("2025-11-09", "2025-11-10")  # beyond catchup_days: recorded


def test_a_failed_catch_up_day_is_retried_next_run(tmp_path: Path, server: FeedServer, sleeps: Sleeps) -> None:
    server.fail("/hf.json?date=2025-11-13", 404)
    settings = settings_for(tmp_path, source("hf", server.url("/hf.json"), "hf"), deadline=30)
    with app_for(settings, sleeps) as app:
        app.store.put_source_states([SourceState("hf", last_date="2025-11-12")])
        result = app.fetch()[0]
        state = app.store.source_state("hf")
    assert result.error is not None and str(result.error).startswith("catch-up of 2025-11-13 failed: HTTP 404")
    assert result.new == 334  # what came before the failure is kept
    assert state.last_date == "2025-11-12" and state.failures == 1


def test_arxiv_records_the_weekday_listings_it_never_saw(tmp_path: Path, server: FeedServer, sleeps: Sleeps) -> None:
    url = server.add("/list.rss", arxiv_feed([arxiv_item("2401.00010", day="Mon, 10 Nov 2025")]))
    settings = settings_for(tmp_path, source("arxiv", url))
    with app_for(settings, sleeps) as app:
        app.fetch()
        assert app.store.source_state("arxiv").last_date == "2025-11-10"
        server.add("/list.rss", arxiv_feed([arxiv_item("2401.00011", day="Mon, 17 Nov 2025")]))
        result = app.fetch()[0]
        state = app.store.source_state("arxiv")
        again = app.fetch()[0]  # the same listing: nothing newly missed
    assert result.missed == ("2025-11-11", "2025-11-12", "2025-11-13", "2025-11-14")  # what `fetch` prints
    assert again.missed == ()
    assert state.last_date == "2025-11-17"
    assert state.missed_dates == ("2025-11-11", "2025-11-12", "2025-11-13", "2025-11-14")  # not the weekend


# -- the command ------------------------------------------------------------------------


@pytest.mark.slow
def test_fetch_command_prints_a_table_with_the_reason_of_each_failure(tmp_path: Path, server: FeedServer) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f"""
[[sources]]
name = "arxiv"
kind = "arxiv"
url = "{server.url("/arxiv.rss")}"
allow_private = true

[[sources]]
name = "broken"
url = "{server.url("/html")}"
allow_private = true

[[sources]]
name = "outside"
url = "{server.url("/arxiv.rss")}"

[fetch]
retries = 0
deadline = 2
"""
    )
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(config), "fetch"])
    assert first.exit_code == 0, first.output
    lines = {line.split()[0]: line for line in first.output.splitlines() if line.strip()}
    assert lines["source"].split()[:6] == ["source", "status", "new", "updated", "unchanged", "detail"]
    assert lines["arxiv"].split()[:5] == ["arxiv", "ok", "334", "0", "0"]
    assert "FAILED" in lines["broken"] and "wrong content type" in lines["broken"]
    assert "FAILED" in lines["outside"] and "loopback" in lines["outside"]
    second = runner.invoke(cli, ["--config", str(config), "fetch"])
    lines = {line.split()[0]: line for line in second.output.splitlines() if line.strip()}
    assert lines["arxiv"].split()[:2] == ["arxiv", "unchanged"]
    assert "2 failures in a row" in lines["broken"]


def test_fetch_command_fails_when_every_source_fails(tmp_path: Path, server: FeedServer) -> None:
    config = tmp_path / "newsletter.toml"
    config.write_text(f'[[sources]]\nname = "x"\nurl = "{server.url("/png")}"\nallow_private = true\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "fetch"])
    assert result.exit_code == 1 and "every source failed" in result.output
