"""Run health (``newsletter status``, ``/healthz``) from indexed queries only.

The read path of ``status`` imports and opens nothing heavy: no ranking,
rendering or mail stack, no template compile, no full table load; it takes
no lock, so it works while ``serve`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from .config import Settings, SourceSettings
from .ledger import Ledger
from .schedule import HEALTH_WINDOW, health
from .store import Store
from .types import SourceState, Status


def compute(
    store: Store, ledger: Ledger, sources: Sequence[SourceSettings], now: datetime, *, writer_alive: bool = True
) -> Status:
    """Sources, quiet days, skipped readers, uncertain, failed and interrupted sends: a few indexed queries.

    With ``writer_alive=False`` (nobody holds the data folder's lock), rows
    still "sending" were cut off by a dead process: they show as interrupted.
    """
    states = store.source_states()
    configured = [states.get(s.name, SourceState(s.name)) for s in sources]
    days = store.first_seen_days(now - HEALTH_WINDOW - timedelta(days=1))
    first_seen = [datetime.combine(d, time(12), UTC) for d in days]  # one per day is all quiet_days needs
    rows = ledger.health_rows(now - HEALTH_WINDOW)
    return health(
        now,
        configured,
        first_seen,
        rows,
        entries=store.count_entries(),
        last_send=ledger.last_send(),
        writer_alive=writer_alive,
    )


def read_status(settings: Settings, now: datetime | None = None) -> Status:
    """Run health read without the write lock, so it works while ``serve`` runs; creates no file."""
    from .site import writer_alive

    with Store(settings.paths.data_dir, read_only=True) as store:
        ledger = Ledger(settings.paths.data_dir, read_only=True)
        try:
            alive = writer_alive(settings.paths.data_dir)
            return compute(store, ledger, settings.sources, now or datetime.now(UTC), writer_alive=alive)
        finally:
            ledger.close()


def status_lines(status: Status) -> list[str]:
    """``newsletter status`` as text: one fact per line, problems spelled out."""

    def at(t: datetime | None) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "never"

    lines = [f"{'last fetch':<11}{at(status.last_fetch)}", f"{'last send':<11}{at(status.last_send)}"]
    for s in status.sources:
        if s.failures:
            lines.append(
                f"{'source':<11}{s.name}: FAILING {s.failures} time{'s' if s.failures != 1 else ''} in a row "
                f"(last success {at(s.last_success)}): {s.last_error}"
            )
        else:
            lines.append(f"{'source':<11}{s.name}: ok, last fetch {at(s.last_success)}")
    if status.entries == 0:
        lines.append(f"{'entries':<11}none stored yet: run `newsletter fetch`")
    if status.quiet_days:
        days = ", ".join(d.isoformat() for d in status.quiet_days)
        lines.append(f"{'quiet days':<11}{days} (no new entries; normal on weekends and holidays)")
    for r in status.skipped:
        lines.append(f"{'skipped':<11}{r.reader} {r.period}: {r.error or 'nothing new matched'}")
    for r in status.uncertain:
        why = r.error or "outcome unknown"
        lines.append(f"{'uncertain':<11}{r.reader} {r.period}: {why}; check the mail provider's log")
    for r in status.failed:
        lines.append(f"{'failed':<11}{r.reader} {r.period}: {r.error}")
    for r in status.interrupted:
        lines.append(
            f"{'interrupted':<11} {r.reader} {r.period}: the process sending it stopped mid-send; the next run "
            "settles it (outbox: from the file; otherwise marked uncertain, not resent)"
        )
    return lines
