"""When is a reader due?  Pure decisions that take the clock as an argument.

The scheduler (APScheduler in ``newsletter serve``, or cron calling
``newsletter run``) only triggers; these functions and the ledger decide.  A
reader's *period* is the local date (daily) or ISO week (weekly) of their most
recent send time that has passed; the ledger holds at most one digest per
period, so a server that was down across several send times sends one digest
when it comes back, not one per missed day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .types import Delivery, DeliveryResult, DeliveryStatus, Due, Period, Profile, SourceState, Status

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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
    # PEP 495: fold=0 reads a wall time with the offset in force *before* a
    # transition, which puts a time in the gap after the gap (02:30 -> 03:30
    # CEST) and picks the first of two ambiguous times: both what we want.
    local = datetime.combine(day, profile.send_at).replace(tzinfo=ZoneInfo(profile.timezone), fold=0)
    return local.astimezone(UTC)


def local_day(profile: Profile, now: datetime) -> date:
    """The reader's local date at *now*."""
    return now.astimezone(ZoneInfo(profile.timezone)).date()


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


def period_of_key(profile: Profile, key: str) -> Period:
    """The period a ledger key names, for *profile* (``newsletter resend --period``).

    Raises ValueError for a key that is not a period of this reader's frequency.
    """
    if profile.frequency == "daily":
        day = date.fromisoformat(key)
    else:
        year, _, week = key.partition("-W")
        weekday = _DAYS.index(profile.frequency.split(":", 1)[1])
        day = date.fromisocalendar(int(year), int(week), weekday + 1)
    if _key(profile, day) != key:
        raise ValueError(key)
    return Period(key, day, _send_time(profile, day))


def forced_period(profile: Profile, now: datetime) -> Period:
    """The period containing *now*, whether or not its send time has come (demo, --now)."""
    today = now.astimezone(ZoneInfo(profile.timezone)).date()
    return Period(_key(profile, today), today, now)


def superseded_period(profile: Profile, now: datetime) -> Period | None:
    """The scheduled period a forced send at *now* stands in for, if it is another one.

    Before today's send time the scheduler's current period is yesterday's
    (or last week's); a forced send covers it, so it must be settled too, or
    a later scheduled run would send a second digest for it.
    """
    current = current_period(profile, now)
    return current if current.key != forced_period(profile, now).key else None


def lookback(profile: Profile) -> timedelta:
    """How far back a reader's first digest looks for entries: one period."""
    return timedelta(days=1 if profile.frequency == "daily" else 7)


CATCH_UP_GRACE = timedelta(days=1)
"""How much more than one period a digest may reach back after a gap."""


def digest_since(profile: Profile, last_sent: datetime | None, now: datetime) -> datetime:
    """Where 'new' starts for a digest at *now*: the window it ranks. Pure.

    A first digest covers one period back (a day, or a week for weekly
    readers).  After that, 'new' is everything since the last digest, but
    never more than one period and a day back: a reader returning after a
    month (paused, or their sends failing) gets a digest of the latest papers,
    not of the month, and a digest never ranks more entries than that window
    holds.  Nothing is lost when the *server* was down: entries are first seen
    when they are fetched, so a fetch after an outage lands inside the window.
    """
    if last_sent is None:
        return now - lookback(profile)
    return max(last_sent, now - lookback(profile) - CATCH_UP_GRACE)


def is_paused(profile: Profile, unsubscribed_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether *profile* gets nothing now: the one place that decides it.

    ``paused_until`` (a local date, "pause for a week") holds until that day
    begins for the reader, then mail resumes by itself.

    The file is the source of truth (``paused = true``), but a one-click
    unsubscribe must hold even when writing the file failed, or a run read the
    file just before it changed: an unsubscribe counts until the reader edits
    the file after it (to resume, they set ``paused = false``, which makes the
    file newer).
    """
    if profile.paused:
        return True
    if profile.paused_until is not None and now is not None and local_day(profile, now) < profile.paused_until:
        return True
    if unsubscribed_at is None:
        return False
    return profile.mtime is None or unsubscribed_at >= profile.mtime


_OPEN = (DeliveryStatus.PLANNED, DeliveryStatus.SKIPPED)


REOPEN_WINDOW = timedelta(hours=6)
"""How long after a reader's send time papers that arrive late (a source that was down, a late listing) still
make that period's digest, when nothing had matched at the send time.  Later ones wait for the next send time."""


def is_open(row: Delivery | None, newest_entry: datetime | None, *, late: bool = False) -> bool:
    """Whether a period may still get a digest.

    Open: no row yet, or a retryable failure (``planned``).  A period where
    nothing matched (``skipped``) is open again once an entry arrived at or
    after that look, unless it is *late* (past :data:`REOPEN_WINDOW` in a
    scheduled run): a skip is not a send.  Everything else (sent, sending,
    uncertain, failed, covered) is settled.
    """
    if row is None or row.status is DeliveryStatus.PLANNED:
        return True
    if row.status is DeliveryStatus.SKIPPED:
        fresh = newest_entry is not None and (row.updated_at is None or newest_entry >= row.updated_at)
        return fresh and not late
    return False


def period_keys(profile: Profile, now: datetime, force: bool) -> tuple[str, ...]:
    """The ledger keys :func:`plan` looks at for *profile*: what to fetch for its snapshot."""
    if not force:
        return (current_period(profile, now).key,)
    covered = superseded_period(profile, now)
    return (forced_period(profile, now).key, *((covered.key,) if covered else ()))


def plan(
    readers: Sequence[Profile],
    rows: Mapping[tuple[str, str], Delivery],
    unsubscribed: Mapping[str, datetime],
    newest_entry: datetime | None,
    now: datetime,
    *,
    force: bool = False,
) -> list[Due | DeliveryResult]:
    """Who gets a digest now, and why not for the others: one decision per reader, in reader order. Pure.

    *rows* is the ledger's snapshot of the periods :func:`period_keys` names,
    *unsubscribed* every reader's last one-click unsubscribe, *newest_entry*
    the first-seen time of the newest stored entry.  With *force* each
    reader's period is the one containing *now*, whatever their send time
    (``newsletter demo``, ``run --now``), and a period where nothing matched
    is always open again to new entries.  Nothing is written here: the ledger's
    claim, right before each send, is what makes a digest go out once.
    """
    out: list[Due | DeliveryResult] = []
    for p in readers:
        period = forced_period(p, now) if force else current_period(p, now)
        if is_paused(p, unsubscribed.get(p.id), now):
            out.append(DeliveryResult(p.id, DeliveryStatus.SKIPPED, period.key, detail="paused (unsubscribed)"))
            continue
        row = rows.get((p.id, period.key))
        late = not force and now > period.due_at + REOPEN_WINDOW
        if row is not None and not is_open(row, newest_entry, late=late):
            out.append(
                DeliveryResult(
                    p.id,
                    row.status,
                    period.key,
                    len(row.entry_ids),
                    detail=f"already {row.status.value} for {period.key}",
                    already=True,
                )
            )
            continue
        covered = superseded_period(p, now) if force else None
        if covered is not None:
            before = rows.get((p.id, covered.key))
            if before is not None and before.status not in _OPEN:
                covered = None
        out.append(Due(p, period, covered))
    return out


def last_fetch_slot(fetch_at: str, now: datetime) -> datetime:
    """The most recent daily fetch time (``HH:MM`` UTC) at or before *now*."""
    hour, minute = (int(x) for x in fetch_at.split(":"))
    today = datetime.combine(now.astimezone(UTC).date(), time(hour, minute), tzinfo=UTC)
    return today if today <= now else today - timedelta(days=1)


def fetch_overdue(last_attempt: datetime | None, fetch_at: str, now: datetime) -> bool:
    """True when the daily fetch slot passed without a fetch (the server was down)."""
    return last_attempt is None or last_attempt < last_fetch_slot(fetch_at, now)


# -- run health: did the schedule do its job? ---------------------------------------

HEALTH_WINDOW = timedelta(days=7)


def quiet_days(first_seen: Iterable[datetime], now: datetime, window: timedelta = HEALTH_WINDOW) -> tuple[date, ...]:
    """Whole UTC days in *window* before today with no new entry, since the first one.

    Days before the first entry ever stored are not counted, so a new
    install does not report a week of silence.
    """
    days = {t.astimezone(UTC).date() for t in first_seen}
    if not days:
        return ()
    today = now.astimezone(UTC).date()
    start = max(min(days), (now - window).astimezone(UTC).date())
    out = []
    day = start
    while day < today:
        if day not in days:
            out.append(day)
        day += timedelta(days=1)
    return tuple(out)


def health(
    now: datetime,
    sources: Iterable[SourceState],
    first_seen: Iterable[datetime],
    deliveries: Iterable[Delivery],
    window: timedelta = HEALTH_WINDOW,
    *,
    writer_alive: bool = True,
    entries: int | None = None,
    last_send: datetime | None = None,
) -> Status:
    """Summarise source states and ledger rows into a :class:`Status`.

    Without a live writer (*writer_alive* False), ``sending`` rows are interrupted sends.
    *first_seen* needs one time per day with new entries, not every entry
    (the store answers by day); *entries* is the stored count (default: how
    many times were given); *last_send* the newest send when *deliveries*
    holds only the recent rows (default: the newest sent row among them).
    """
    rows = list(deliveries)
    recent = [r for r in rows if r.updated_at is None or r.updated_at >= now - window]
    seen = list(first_seen)
    return Status(
        now=now,
        sources=tuple(sorted(sources, key=lambda s: s.name)),
        quiet_days=quiet_days(seen, now, window),
        skipped=tuple(r for r in recent if r.status is DeliveryStatus.SKIPPED),
        uncertain=tuple(r for r in rows if r.status is DeliveryStatus.UNCERTAIN),
        failed=tuple(r for r in recent if r.status is DeliveryStatus.FAILED),
        last_send=last_send
        or max((r.updated_at for r in rows if r.status is DeliveryStatus.SENT and r.updated_at), default=None),
        entries=len(seen) if entries is None else entries,
        interrupted=() if writer_alive else tuple(r for r in rows if r.status is DeliveryStatus.SENDING),
    )
