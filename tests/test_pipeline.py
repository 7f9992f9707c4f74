"""The whole pipeline through make_app, on real files, with a controlled clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from servekit import Clock

from newsletter.config import Settings
from newsletter.ledger import Ledger
from newsletter.pipeline import make_app
from newsletter.store import Store
from newsletter.types import DeliveryStatus


def sent(results: list, status: DeliveryStatus = DeliveryStatus.SENT) -> dict[str, int]:
    return {r.reader: r.items for r in results if r.status is status and not r.already}


@pytest.mark.slow
def test_run_sends_each_reader_one_digest_per_period(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        first = app.run(force=True)
        assert set(sent(list(first.deliveries))) == {"ada", "alan", "grace"}
        again = app.run(force=True)
        assert sent(list(again.deliveries)) == {}
        assert all(r.already for r in again.deliveries)
    assert len(list(settings.paths.outbox_dir.glob("*/*.eml"))) == 3


@pytest.mark.slow
def test_no_paper_is_sent_twice_across_days(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        day1 = app.run(force=True)
        clock.now += timedelta(days=1)
        day2 = app.run(force=True)  # same feeds again: nothing is new
        assert sent(list(day1.deliveries))["ada"] > 0
        assert "ada" not in sent(list(day2.deliveries))
        delivered = [set(r.entry_ids) for r in app.ledger.rows(reader="ada") if r.entry_ids]
        assert len(delivered) == 1
        skipped = [r for r in day2.deliveries if r.reader == "ada"]
        assert skipped[0].status is DeliveryStatus.SKIPPED and skipped[0].detail == "nothing new matched"


@pytest.mark.slow
def test_a_broken_profile_is_reported_and_the_others_still_get_theirs(settings: Settings, clock: Clock) -> None:
    (settings.paths.profiles_dir / "zoe.toml").write_text(
        'email = "zoe@example.org"\ntimezone = "Mars/Olympus"\n[interests]\nkeywords = ["x"]\n'
    )
    with make_app(settings, clock=clock) as app:
        report = app.run(force=True)
    assert len(report.profile_errors) == 1
    assert "zoe.toml line 2: `timezone`: unknown time zone 'Mars/Olympus'" in report.profile_errors[0]
    assert set(sent(list(report.deliveries))) == {"ada", "alan", "grace"}


@pytest.mark.slow
def test_a_paused_reader_gets_nothing(settings: Settings, clock: Clock) -> None:
    path = settings.paths.profiles_dir / "grace.toml"
    path.write_text(path.read_text().replace('frequency = "daily"', 'frequency = "daily"\npaused = true'))
    with make_app(settings, clock=clock) as app:
        report = app.run(force=True)
    grace = next(r for r in report.deliveries if r.reader == "grace")
    assert grace.status is DeliveryStatus.SKIPPED and "paused" in (grace.detail or "")
    assert not list(settings.paths.outbox_dir.glob("*/grace.eml"))


@pytest.mark.slow
def test_each_reader_gets_a_feed_of_what_they_were_sent(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        report = app.run(force=True)
        ada_ids = {f"urn:newsletter:{i}" for i in app.ledger.rows(reader="ada")[0].entry_ids}
    feed = feedparser.parse((settings.paths.feeds_dir / "ada.xml").read_bytes())
    assert feed.bozo == 0
    assert {e.id for e in feed.entries} == ada_ids
    assert all("Why:" in e.summary for e in feed.entries)
    assert len(report.feeds) == 6


def test_fetch_merges_both_sample_sources_into_one_entry_per_paper(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        results = app.fetch()
    assert [r.error for r in results] == [None, None]
    with Store(settings.paths.data_dir, read_only=True) as store:
        entries = store.get_entries()
    assert len(entries) == 334
    assert all(e.upvotes is not None and e.categories for e in entries.values())


@pytest.mark.slow
def test_the_store_is_single_writer_but_a_run_leaves_it_readable(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        app.run(force=True)
    with Store(settings.paths.data_dir, read_only=True) as store:
        assert set(store.profile_docs()) == {"ada", "alan", "grace"}
    assert Path(settings.paths.data_dir / "ledger.sqlite3").exists()


@pytest.mark.slow
def test_a_failing_source_is_named_in_the_email_footer_and_the_feed(settings: Settings, clock: Clock) -> None:
    broken = settings.sources[0].model_copy(update={"name": "gone", "path": settings.paths.data_dir / "missing.rss"})
    settings = settings.model_copy(update={"sources": (*settings.sources, broken)})
    with make_app(settings, clock=clock) as app:
        app.fetch()
        report = app.run(force=True)  # the second failure in a row
    assert [r.error is not None for r in report.sources] == [False, False, True]
    note = "Source gone has failed 2 times in a row"
    eml = next(settings.paths.outbox_dir.glob("*/ada.eml")).read_bytes().decode()
    assert note in eml.replace("=\r\n", "").replace("=\n", "")
    feed = feedparser.parse((settings.paths.feeds_dir / "ada.xml").read_bytes())
    assert note in feed.feed.description


def test_a_read_only_app_leaves_sends_in_flight_alone(settings: Settings, clock: Clock) -> None:
    """`preview`/`status` while another process is mid-send must not mark its sends uncertain."""
    with Store(settings.paths.data_dir) as writer:  # another process holds the data folder
        Ledger(settings.paths.data_dir).claim("ada", "2026-11-23", ["arxiv:1"], "sendgrid", clock())
        with make_app(settings, store=Store(settings.paths.data_dir, read_only=True), clock=clock) as app:
            assert app.recovered == []
            row = app.ledger.get("ada", "2026-11-23")
            assert row is not None and row.status is DeliveryStatus.SENDING
        assert writer.read_only is False


@pytest.mark.slow
def test_feed_items_are_recorded_with_the_send_not_at_the_end_of_the_run(settings: Settings, clock: Clock) -> None:
    """A crash after the sends but before the run ends must not empty anyone's feed."""
    with make_app(settings, clock=clock) as app:
        app.fetch()
        results = app.deliver(force=True)  # no write_feeds, as if the run died here
    sent_ids = {r.reader: r.items for r in results if r.status is DeliveryStatus.SENT}
    with make_app(settings, clock=clock) as app:
        for reader, n in sent_ids.items():
            assert len(app.ledger.feed_items(reader, 100)) == n
        assert len(app.write_feeds(app.load_profiles().profiles)) == 6
        assert app.write_feeds(app.load_profiles().profiles) == [], "unchanged feeds are not rewritten"


@pytest.mark.slow
def test_run_now_before_the_send_time_then_the_scheduled_run_sends_one_digest(settings: Settings) -> None:
    from datetime import UTC, datetime

    early = Clock(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))  # Ada (Berlin 07:30) is due at 06:30 UTC
    with make_app(settings, clock=early) as app:
        forced = app.run(force=True)
        early.now = datetime(2026, 11, 23, 5, 15, tzinfo=UTC)
        scheduled = app.run()
        early.now = datetime(2026, 11, 23, 6, 31, tzinfo=UTC)
        at_send_time = app.run()
    assert sent(list(forced.deliveries))["ada"] > 0
    assert "ada" not in sent(list(scheduled.deliveries)) and "ada" not in sent(list(at_send_time.deliveries))
    assert len(list(settings.paths.outbox_dir.glob("*/ada.eml"))) == 1


@pytest.mark.slow
def test_an_unsubscribe_holds_even_if_a_run_overwrote_the_store_from_a_stale_file(
    settings: Settings, clock: Clock
) -> None:
    from datetime import UTC, datetime

    with make_app(settings, clock=clock) as app:
        app.fetch()
        app.ledger.record_unsubscribe("ada", datetime.now(UTC))  # one-click POST; the file edit failed
        report = app.deliver(force=True)  # the run syncs the store from ada.toml (paused = false)
        ada = next(r for r in report if r.reader == "ada")
        assert ada.status is DeliveryStatus.SKIPPED and "paused" in (ada.detail or "")

        path = settings.paths.profiles_dir / "ada.toml"
        path.write_text(path.read_text() + "\n# resumed\n")  # editing the file later resumes the reader
        clock.now += timedelta(days=1)
        again = app.deliver(force=True)
        ada_again = next(r for r in again if r.reader == "ada")
        assert "paused" not in (ada_again.detail or ""), ada_again


@pytest.mark.slow
def test_a_read_only_app_needs_no_mail_keys(settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    sendgrid = settings.model_copy(update={"delivery": settings.delivery.model_copy(update={"backend": "sendgrid"})})
    with make_app(settings, clock=clock) as app:
        app.fetch()
    with make_app(sendgrid, store=Store(settings.paths.data_dir, read_only=True), clock=clock) as app:
        assert app.preview("ada").matches


@pytest.mark.slow
def test_a_day_with_nothing_new_is_said_in_the_feed(settings: Settings, clock: Clock) -> None:
    with make_app(settings, clock=clock) as app:
        app.run(force=True)
        clock.now += timedelta(days=1)
        app.run(force=True)  # the same feeds: nothing new for anyone
    feed = feedparser.parse((settings.paths.feeds_dir / "ada.xml").read_bytes())
    assert "Nothing new matched your interests for 2026-11-24." in feed.feed.description
    assert feed.entries, "the papers of the day before stay in the feed"


# -- a skip is not a send; a failure can be sent again (issue 13) -------------------------------------------


def test_a_day_skipped_while_offline_is_sent_once_when_papers_arrive(settings: Settings, clock: Clock) -> None:
    online = settings.sources
    offline = settings.model_copy(update={"sources": ()})
    with make_app(offline, clock=clock) as app:
        first = app.run(force=True)  # no source yet: nothing can match
    assert {r.reader: r.status for r in first.deliveries} == dict.fromkeys(
        ("ada", "alan", "grace"), DeliveryStatus.SKIPPED
    )
    clock.now += timedelta(minutes=20)
    with make_app(settings.model_copy(update={"sources": online}), clock=clock) as app:
        later = app.run(force=True)  # the same day, now with 334 new entries
        assert set(sent(list(later.deliveries))) == {"ada", "alan", "grace"}
        clock.now += timedelta(minutes=20)
        again = app.run(force=True)
    assert sent(list(again.deliveries)) == {}
    assert all(r.already and r.status is DeliveryStatus.SENT for r in again.deliveries)
    assert len(list(settings.paths.outbox_dir.glob("*/ada.eml"))) == 1


def test_a_failed_digest_is_sent_again_by_resend_and_status_tells_the_truth(settings: Settings, clock: Clock) -> None:
    from click.testing import CliRunner

    from newsletter.cli import cli

    settings.paths.outbox_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.paths.outbox_dir.write_text("not a folder")  # every send fails for good: the outbox is unusable
    with make_app(settings, clock=clock) as app:
        report = app.run(force=True)
        assert {r.status for r in report.deliveries} == {DeliveryStatus.FAILED}
        status = app.status()
        assert {r.reader for r in status.failed} == {"ada", "alan", "grace"}
        forced = report.deliveries[0].period
        scheduled = {r.period for r in app.ledger.rows(reader="ada")}
        assert scheduled == {forced}, "a failed forced send covers no other period"
    settings.paths.outbox_dir.unlink()  # the operator fixes it
    config = settings.paths.profiles_dir.parent / "newsletter.toml"
    config.write_text(f'[paths]\ndata_dir = "{settings.paths.data_dir.name}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "resend", "ada"], obj={"clock": clock})
    assert result.exit_code == 0, result.output
    assert f"sent     ada: 10 papers for {forced}" in result.output
    assert len(list(settings.paths.outbox_dir.glob("*/ada.eml"))) == 1
    again = CliRunner().invoke(
        cli, ["--config", str(config), "resend", "ada", "--period", forced], obj={"clock": clock}
    )
    assert again.exit_code == 1
    assert f"the digest of ada for {forced} is sent: a digest is never sent twice" in again.output
    with make_app(settings, clock=clock) as app:
        assert {r.reader for r in app.status().failed} == {"alan", "grace"}


def test_a_renamed_profile_file_keeps_its_history_and_its_links(settings: Settings, clock: Clock) -> None:
    """A reader is their address, not their file name (issue 14): a rename sends no second digest."""
    from starlette.testclient import TestClient

    from newsletter.web import create_web_app

    with make_app(settings, clock=clock) as app:
        first = app.run(force=True)
        assert "ada" in sent(list(first.deliveries))
        old_link = f"/unsubscribe/{app.tokens.unsubscribe('ada')}"
    profiles_dir = settings.paths.profiles_dir
    (profiles_dir / "ada.toml").rename(profiles_dir / "ada-lovelace.toml")
    clock.now += timedelta(minutes=30)
    with make_app(settings, clock=clock) as app:
        again = app.run(force=True)
        lovelace = next(r for r in again.deliveries if r.reader == "ada-lovelace")
        assert lovelace.already and lovelace.status is DeliveryStatus.SENT, lovelace
        assert app.ledger.rows(reader="ada") == []
        assert len(app.ledger.rows(reader="ada-lovelace")) == 1
        assert TestClient(create_web_app(app)).post(old_link).status_code == 200, "old links still work"
    assert "paused = true" in (profiles_dir / "ada-lovelace.toml").read_text()
    assert len(list(settings.paths.outbox_dir.glob("*/ada*.eml"))) == 1


def test_a_reader_back_after_a_month_gets_the_latest_papers_not_the_month(settings: Settings, clock: Clock) -> None:
    from dataclasses import replace

    with make_app(settings, clock=clock) as app:
        app.fetch()
        stored = sorted(app.store.entries_since(None), key=lambda e: e.id)
        old = {e.id for e in stored[::2]}  # every other paper arrived 20 days ago
        app.store.put_entries(replace(e, first_seen=clock.now - timedelta(days=20)) for e in stored if e.id in old)
        month_ago = clock.now - timedelta(days=25)
        app.ledger.claim("ada", "2026-10-29", [], "outbox", month_ago)
        app.ledger.mark_sent("ada", "2026-10-29", None, month_ago)
        ada = next(p for p in app.load_profiles().profiles if p.id == "ada")
        # Ranked over the whole month, ada's digest would carry old papers ...
        assert {m.entry.id for m in app.preview("ada", days=25).matches} & old
        [result] = app.deliver(force=True, readers=[ada])
        assert result.status is DeliveryStatus.SENT and result.items
        # ... but her window is one period and a day: only what arrived since then.
        sent_ids = set(app.ledger.rows(reader="ada", status=DeliveryStatus.SENT)[-1].entry_ids)
        assert sent_ids and not sent_ids & old
