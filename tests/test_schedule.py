"""When readers are due: pure period maths, and the service's tick driven by a controlled clock.

Nothing here sleeps: the clock is a value the test moves, the tick is called
directly (it is what APScheduler calls every minute), and every digest is a
real .eml file in a real outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from servekit import Clock, SMTPServer, make_settings, outbox, write_feed, write_reader

from newsletter.config import ScheduleSettings, Settings
from newsletter.pipeline import make_app
from newsletter.schedule import (
    current_period,
    digest_since,
    fetch_overdue,
    health,
    is_open,
    last_fetch_slot,
    plan,
    quiet_days,
)
from newsletter.serve import Service
from newsletter.types import Delivery, DeliveryResult, DeliveryStatus, Due, Interests, Profile, SourceState


def profile(tz: str, at: str, frequency: str = "daily") -> Profile:
    h, m = (int(x) for x in at.split(":"))
    return Profile("r", "r@example.org", "R", tz, time(h, m), frequency, Interests())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- pure decisions ---------------------------------------------------------------------


def test_a_digest_window_is_one_period_for_a_new_reader_and_at_most_a_period_and_a_day() -> None:
    now = utc(2026, 11, 23, 6, 30)
    daily, weekly = profile("UTC", "06:30"), profile("UTC", "06:30", "weekly:mon")
    assert digest_since(daily, None, now) == now - timedelta(days=1)
    assert digest_since(weekly, None, now) == now - timedelta(days=7)
    yesterday = now - timedelta(days=1)
    assert digest_since(daily, yesterday, now) == yesterday  # the usual case: since the last digest
    back_from_a_month_away = now - timedelta(days=31)
    assert digest_since(daily, back_from_a_month_away, now) == now - timedelta(days=2)
    assert digest_since(weekly, back_from_a_month_away, now) == now - timedelta(days=8)


@pytest.mark.parametrize(
    ("tz", "at", "now", "key", "due_at"),
    [
        ("Europe/Berlin", "07:30", utc(2026, 11, 23, 6, 29), "2026-11-22", utc(2026, 11, 22, 6, 30)),
        ("Europe/Berlin", "07:30", utc(2026, 11, 23, 6, 30), "2026-11-23", utc(2026, 11, 23, 6, 30)),
        ("America/New_York", "08:00", utc(2026, 11, 23, 12, 59), "2026-11-22", utc(2026, 11, 22, 13, 0)),
        ("Asia/Tokyo", "09:00", utc(2026, 11, 23, 0, 0), "2026-11-23", utc(2026, 11, 23, 0, 0)),
        # spring forward: 02:30 does not exist in Berlin on 29 March 2026; it is due at 03:30 CEST
        ("Europe/Berlin", "02:30", utc(2026, 3, 29, 1, 29), "2026-03-28", utc(2026, 3, 28, 1, 30)),
        ("Europe/Berlin", "02:30", utc(2026, 3, 29, 1, 30), "2026-03-29", utc(2026, 3, 29, 1, 30)),
        # fall back: 01:30 happens twice in New York on 1 November 2026; the first one counts
        ("America/New_York", "01:30", utc(2026, 11, 1, 5, 30), "2026-11-01", utc(2026, 11, 1, 5, 30)),
        ("America/New_York", "01:30", utc(2026, 11, 1, 6, 30), "2026-11-01", utc(2026, 11, 1, 5, 30)),
    ],
)
def test_current_period_is_the_last_send_time_passed(
    tz: str, at: str, now: datetime, key: str, due_at: datetime
) -> None:
    period = current_period(profile(tz, at), now)
    assert (period.key, period.due_at) == (key, due_at)


def test_weekly_period_is_the_iso_week_of_the_last_send_day() -> None:
    p = profile("Asia/Tokyo", "09:00", "weekly:mon")
    assert current_period(p, utc(2026, 11, 22, 23, 59)).key == "2026-W47"  # Monday 08:59 Tokyo
    assert current_period(p, utc(2026, 11, 23, 0, 0)).key == "2026-W48"
    assert current_period(p, utc(2026, 11, 29, 12, 0)).key == "2026-W48"


def due(decisions: list[object]) -> list[str]:
    return [d.profile.id for d in decisions if isinstance(d, Due)]


def test_plan_asks_the_ledger_snapshot_and_skips_paused() -> None:
    a = profile("UTC", "07:00")
    b = Profile("b", "b@example.org", "B", "UTC", time(7), "daily", Interests(), paused=True)
    rows = {("r", "2026-11-22"): Delivery("r", "2026-11-22", DeliveryStatus.SENT, updated_at=utc(2026, 11, 22, 7))}
    now = utc(2026, 11, 23, 6, 0)
    assert due(plan([a, b], rows, {}, None, now)) == []
    assert due(plan([a, b], rows, {}, None, now + timedelta(hours=1))) == ["r"]
    decisions = plan([a, b], rows, {}, None, now)
    assert [(d.status, d.already) for d in decisions if isinstance(d, DeliveryResult)] == [
        (DeliveryStatus.SENT, True),
        (DeliveryStatus.SKIPPED, False),
    ]


def test_a_reader_unsubscribed_only_in_the_ledger_is_not_due() -> None:
    edited = utc(2026, 11, 20, 9)
    a = replace(profile("UTC", "07:00"), mtime=edited)
    now = utc(2026, 11, 23, 8, 0)
    assert due(plan([a], {}, {"r": edited + timedelta(hours=1)}, None, now)) == []
    assert due(plan([a], {}, {"r": edited - timedelta(hours=1)}, None, now)) == ["r"], "edited since: resumed"


def test_a_skip_is_not_a_send_the_period_reopens_when_entries_arrive() -> None:
    skipped_at = utc(2026, 11, 23, 7, 0)
    row = Delivery("r", "2026-11-23", DeliveryStatus.SKIPPED, error="nothing new matched", updated_at=skipped_at)
    assert not is_open(row, None)
    assert not is_open(row, skipped_at - timedelta(minutes=1)), "nothing new since the skip"
    assert is_open(row, skipped_at + timedelta(hours=3))
    assert not is_open(row, skipped_at + timedelta(hours=3), late=True), "long after the send time: wait"
    assert is_open(None, None) and is_open(replace(row, status=DeliveryStatus.PLANNED), None)
    for settled in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN, DeliveryStatus.COVERED):
        assert not is_open(replace(row, status=settled), skipped_at + timedelta(days=1))
    late_papers = utc(2026, 11, 23, 9, 0)  # the source was down at 07:00
    assert due(plan([profile("UTC", "07:00")], {("r", "2026-11-23"): row}, {}, late_papers, late_papers)) == ["r"]
    evening = utc(2026, 11, 23, 20, 0)  # tomorrow's listing: it waits for tomorrow's 07:00
    assert due(plan([profile("UTC", "07:00")], {("r", "2026-11-23"): row}, {}, evening, evening)) == []
    assert due(plan([profile("UTC", "07:00")], {("r", "2026-11-23"): row}, {}, evening, evening, force=True)) == ["r"]


def test_a_forced_send_covers_the_scheduled_period_only_through_the_send() -> None:
    now = utc(2026, 11, 23, 5, 0)  # before the 07:00 send time: the scheduler's period is still the 22nd
    (d,) = plan([profile("UTC", "07:00")], {}, {}, None, now, force=True)
    assert isinstance(d, Due) and d.period.key == "2026-11-23" and d.covers is not None
    assert d.covers.key == "2026-11-22"
    sent = {("r", "2026-11-22"): Delivery("r", "2026-11-22", DeliveryStatus.SENT, updated_at=now)}
    (d,) = plan([profile("UTC", "07:00")], sent, {}, None, now, force=True)
    assert isinstance(d, Due) and d.covers is None, "already settled: nothing to cover"


def test_fetch_is_overdue_when_the_daily_slot_passed_without_one() -> None:
    now = utc(2026, 11, 23, 1, 29)
    assert last_fetch_slot("01:30", now) == utc(2026, 11, 22, 1, 30)
    assert not fetch_overdue(utc(2026, 11, 22, 1, 30), "01:30", now)
    assert fetch_overdue(utc(2026, 11, 22, 1, 30), "01:30", now + timedelta(minutes=1))
    assert fetch_overdue(None, "01:30", now)


def test_health_reports_quiet_days_failing_sources_and_uncertain_sends() -> None:
    now = utc(2026, 11, 23, 12, 0)
    seen = [utc(2026, 11, 18, 2), utc(2026, 11, 20, 2), utc(2026, 11, 23, 2)]
    assert quiet_days(seen, now) == (date(2026, 11, 19), date(2026, 11, 21), date(2026, 11, 22))
    assert quiet_days([], now) == ()
    rows = [
        Delivery("ada", "2026-11-22", DeliveryStatus.SKIPPED, error="nothing new matched", updated_at=now),
        Delivery("grace", "2026-11-21", DeliveryStatus.UNCERTAIN, error="connection lost", updated_at=now),
        Delivery("alan", "2026-W47", DeliveryStatus.SENT, updated_at=utc(2026, 11, 16)),
    ]
    states = [SourceState("a", failures=3, last_error="HTTP 503"), SourceState("b", last_success=now)]
    status = health(now, states, seen, rows)
    assert [s.name for s in status.failing] == ["a"]
    assert status.healthy
    assert [r.reader for r in status.skipped] == ["ada"]
    assert [r.reader for r in status.uncertain] == ["grace"]
    assert status.last_send == utc(2026, 11, 16)
    assert not health(now, states[:1], seen, rows).healthy


# -- the tick, with a controlled clock -------------------------------------------------
#
# Mail goes to a real SMTP server that records every message, so "once" is
# counted at the receiving end (the outbox's deterministic file names would
# hide a second send).


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def world(tmp_path: Path, smtp: SMTPServer) -> tuple[Settings, Clock]:
    """Three readers in three zones, one local feed, a 01:30 UTC fetch, the clock on Sunday 22 Nov 23:00 UTC."""
    settings = make_settings(tmp_path, smtp.port)
    # The tests below count on a 01:30 UTC fetch (the default is 05:30).
    settings = settings.model_copy(update={"schedule": ScheduleSettings(fetch_at="01:30")})
    write_reader(settings.paths.profiles_dir, "ada", "Europe/Berlin", "07:30")
    write_reader(settings.paths.profiles_dir, "grace", "America/New_York", "08:00")
    write_reader(settings.paths.profiles_dir, "alan", "Asia/Tokyo", "11:00", "weekly:mon")
    return settings, Clock(utc(2026, 11, 22, 23, 0))


def arrive(settings: Settings, start: date, end: date) -> None:
    """New papers for every day from *start* to *end* in the local feed."""
    days = [start + timedelta(n) for n in range((end - start).days + 1)]
    write_feed(settings.paths.profiles_dir.parent / "lab.xml", days)


def step(service: Service, clock: Clock, until: datetime, every: timedelta = timedelta(minutes=15)) -> None:
    """Tick like the scheduler would, every *every*, up to and including *until*."""
    while clock.now < until:
        clock.now = min(clock.now + every, until)
        service.tick()


@pytest.mark.slow
def test_each_reader_gets_one_digest_at_their_local_send_time(world: tuple[Settings, Clock], smtp: SMTPServer) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 20), date(2026, 11, 22))
    with make_app(settings, clock=clock) as app:
        service = Service(app)
        service.tick()  # first start: each reader's most recent period is due at once
        assert sorted(smtp.digests()) == ["ada/2026-11-22", "alan/2026-W47", "grace/2026-11-22"]

        arrive(settings, date(2026, 11, 20), date(2026, 11, 23))  # fetched at 01:30 UTC
        step(service, clock, utc(2026, 11, 23, 6, 29), timedelta(minutes=1))  # Berlin 07:29: not yet
        assert smtp.digests()[3:] == ["alan/2026-W48"]  # Tokyo Monday 11:00 = 02:00 UTC
        clock.now = utc(2026, 11, 23, 6, 30)
        service.tick()
        assert smtp.digests()[4:] == ["ada/2026-11-23"]
        step(service, clock, utc(2026, 11, 23, 12, 59))  # New York 07:59
        assert smtp.digests()[5:] == []
        step(service, clock, utc(2026, 11, 24, 0, 0))
    assert smtp.digests()[5:] == ["grace/2026-11-23"]
    assert outbox(settings) == []  # the SMTP backend, not the outbox, was used


def test_restart_after_downtime_sends_the_missed_digest_once(world: tuple[Settings, Clock], smtp: SMTPServer) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 20), date(2026, 11, 22))
    with make_app(settings, clock=clock) as app:
        Service(app).tick()
    arrive(settings, date(2026, 11, 20), date(2026, 11, 23))
    before = len(smtp.digests())
    clock.now = utc(2026, 11, 23, 9, 0)  # down from 23:00 to 09:00: ada's 07:30 passed meanwhile
    for _ in range(3):  # three restarts, each ticking twice
        with make_app(settings, clock=clock) as app:
            Service(app).tick()
            Service(app).tick()
    assert sorted(smtp.digests()[before:]) == ["ada/2026-11-23", "alan/2026-W48"]


def test_three_days_down_sends_one_digest_covering_the_gap(world: tuple[Settings, Clock], smtp: SMTPServer) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 19), date(2026, 11, 19))
    clock.now = utc(2026, 11, 20, 7, 0)
    with make_app(settings, clock=clock) as app:
        Service(app).tick()
    arrive(settings, date(2026, 11, 19), date(2026, 11, 23))  # papers kept coming while we were down
    clock.now = utc(2026, 11, 23, 7, 0)
    with make_app(settings, clock=clock) as app:
        Service(app).tick()
        Service(app).tick()
    assert [d for d in smtp.digests() if d.startswith("ada/")] == ["ada/2026-11-20", "ada/2026-11-23"]
    first, gap = smtp.text("ada/2026-11-20"), smtp.text("ada/2026-11-23")
    for day in ("2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"):
        assert f"paper {day}" in gap
    assert "paper 2026-11-19" in first and "paper 2026-11-19" not in gap  # no repeats


@pytest.mark.parametrize(
    ("tz", "at", "day", "expected_at"),
    [
        ("Europe/Berlin", "02:30", date(2026, 3, 29), utc(2026, 3, 29, 1, 30)),  # 02:30 skipped: sent 03:30 CEST
        ("America/New_York", "01:30", date(2026, 11, 1), utc(2026, 11, 1, 5, 30)),  # first of two 01:30s
    ],
)
def test_dst_transition_days_give_exactly_one_digest(
    tmp_path: Path, smtp: SMTPServer, tz: str, at: str, day: date, expected_at: datetime
) -> None:
    settings = make_settings(tmp_path, smtp.port)
    settings = settings.model_copy(update={"schedule": ScheduleSettings(fetch_at="00:05")})
    write_reader(settings.paths.profiles_dir, "dst", tz, at)
    first = day - timedelta(days=1)
    clock = Clock(datetime.combine(first, time(0), tzinfo=UTC))
    with make_app(settings, clock=clock) as app:
        service = Service(app)
        for d in (first, day, day + timedelta(days=1)):  # each day's papers, fetched at 00:05 UTC
            arrive(settings, first, d)
            step(service, clock, datetime.combine(d + timedelta(days=1), time(0), tzinfo=UTC), timedelta(minutes=10))
        rows = {r.period: r for r in app.ledger.rows(reader="dst")}
    assert smtp.digests().count(f"dst/{day.isoformat()}") == 1
    assert rows[day.isoformat()].status is DeliveryStatus.SENT
    assert rows[day.isoformat()].created_at == expected_at
    assert f"dst/{(day + timedelta(days=1)).isoformat()}" in smtp.digests()


def test_a_missed_fetch_is_caught_up_before_delivering(world: tuple[Settings, Clock]) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 22), date(2026, 11, 22))
    with make_app(settings, clock=clock) as app:
        service = Service(app)
        assert service.fetch_if_overdue()  # never fetched
        assert service.fetch_if_overdue() == []  # this UTC day's slot is served
        clock.now = utc(2026, 11, 23, 1, 31)
        assert [r.new for r in service.fetch_if_overdue()] == [0]


def test_failing_sources_reach_the_digest_footer(world: tuple[Settings, Clock], smtp: SMTPServer) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 22), date(2026, 11, 22))
    gone = settings.sources[0].model_copy(update={"name": "gone", "path": settings.paths.data_dir / "gone.xml"})
    broken = settings.model_copy(update={"sources": (*settings.sources, gone)})
    with make_app(broken, clock=clock) as app:
        app.fetch()
        app.fetch()
        Service(app).tick()
        assert [s.name for s in app.status().failing] == ["gone"]
    assert "gone has failed 2 times in a row" in smtp.text("ada/2026-11-22")


def test_nothing_due_means_no_store_rewrite(world: tuple[Settings, Clock]) -> None:
    settings, clock = world
    arrive(settings, date(2026, 11, 22), date(2026, 11, 22))
    with make_app(settings, clock=clock) as app:
        service = Service(app)
        assert service.tick()
        files = [settings.paths.data_dir / n for n in ("profiles.json", "entries.sqlite3", "entries.sqlite3-wal")]
        before = [f.stat().st_mtime_ns for f in files]
        clock.now += timedelta(minutes=1)
        assert service.tick() == []
        assert [f.stat().st_mtime_ns for f in files] == before


def test_a_forced_send_before_the_send_time_stands_in_for_the_due_period() -> None:
    from newsletter.schedule import forced_period, superseded_period

    ada = profile("Europe/Berlin", "07:30")  # 06:30 UTC in November
    early = utc(2026, 11, 23, 5, 0)
    assert forced_period(ada, early).key == "2026-11-23"
    superseded = superseded_period(ada, early)
    assert superseded is not None and superseded.key == "2026-11-22"
    assert superseded_period(ada, utc(2026, 11, 23, 7, 0)) is None  # after 06:30 UTC both are today
