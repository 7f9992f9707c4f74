"""When is a reader due?  Pure decisions that take the clock as an argument.

The scheduler (APScheduler in ``newsletter serve``, or cron calling
``newsletter run``) only triggers; these functions and the ledger decide.  A
reader's *period* is the local date (daily) or ISO week (weekly) of their most
recent send time that has passed; the ledger holds at most one digest per
period, so a server that was down across several send times sends one digest
when it comes back, not one per missed day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .types import Profile

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    """``2026-11-23`` (daily) or ``2026-W48`` (weekly): the ledger's key."""
    day: date
    """The reader's local date of the send."""
    due_at: datetime
    """The send time (aware, UTC) this period became due."""


def _key(profile: Profile, day: date) -> str:
    if profile.frequency == "daily":
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def _send_time(profile: Profile, day: date) -> datetime:
    """The aware instant of *profile*'s send time on local *day*.

    A send time inside a DST gap (02:30 on spring-forward day) resolves to
    the instant after the gap; an ambiguous one (fall-back) to the first.
    """
    tz = ZoneInfo(profile.timezone)
    naive = datetime.combine(day, profile.send_at)
    local = naive.replace(tzinfo=tz, fold=0)
    roundtrip = local.astimezone(ZoneInfo("UTC")).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != naive:  # in a gap: fold=1 gives the later offset
        local = naive.replace(tzinfo=tz, fold=1)
    return local.astimezone(ZoneInfo("UTC"))


def current_period(profile: Profile, now: datetime) -> Period:
    """The most recent period whose send time is at or before *now* (aware)."""
    today = now.astimezone(ZoneInfo(profile.timezone)).date()
    if profile.frequency == "daily":
        candidates = [today, today - timedelta(days=1)]
    else:
        weekday = _DAYS.index(profile.frequency.split(":", 1)[1])
        back = (today.weekday() - weekday) % 7
        last = today - timedelta(days=back)
        candidates = [last, last - timedelta(days=7)]
    for day in candidates:
        at = _send_time(profile, day)
        if at <= now:
            return Period(_key(profile, day), day, at)
    raise AssertionError("unreachable: the previous period's send time has always passed")


def forced_period(profile: Profile, now: datetime) -> Period:
    """The period containing *now*, whether or not its send time has come (demo, --now)."""
    today = now.astimezone(ZoneInfo(profile.timezone)).date()
    return Period(_key(profile, today), today, now)


def lookback(profile: Profile) -> timedelta:
    """How far back a reader's first digest looks for entries."""
    return timedelta(days=1 if profile.frequency == "daily" else 7)
