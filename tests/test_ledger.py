from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsletter.ledger import Ledger
from newsletter.types import DeliveryStatus, FeedItem

NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


def test_claim_then_sent_is_final(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    assert ledger.claim("ada", "2026-11-23", ["arxiv:1", "arxiv:2"], "outbox", NOW)
    assert not ledger.claim("ada", "2026-11-23", ["arxiv:3"], "outbox", NOW), "a second claim must lose"
    ledger.mark_sent("ada", "2026-11-23", "<id@example.org>", NOW)
    row = ledger.get("ada", "2026-11-23")
    assert row is not None and row.status is DeliveryStatus.SENT and row.message_id == "<id@example.org>"
    assert ledger.delivered_ids("ada") == {"arxiv:1", "arxiv:2"}
    assert not ledger.claim("ada", "2026-11-23", ["arxiv:3"], "outbox", NOW)


def test_transient_failure_frees_the_period_and_its_entries(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW)
    ledger.mark_failed("ada", "p", "429", NOW, retry=True)
    assert ledger.delivered_ids("ada") == set()
    assert ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW + timedelta(minutes=1))


def test_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW)
    ledger.mark_failed("ada", "p", "400 bad address", NOW, retry=False)
    assert not ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW)
    assert ledger.get("ada", "p").status is DeliveryStatus.FAILED  # type: ignore[union-attr]


def test_a_send_interrupted_by_a_crash_becomes_uncertain_not_resent(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW)
    ledger.close()  # the process dies here, mid-send

    after = Ledger(tmp_path)
    recovered = after.recover(NOW + timedelta(hours=1))
    assert [(d.reader, d.status) for d in recovered] == [("ada", DeliveryStatus.SENDING)]
    assert after.get("ada", "p").status is DeliveryStatus.UNCERTAIN  # type: ignore[union-attr]
    assert not after.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW)
    assert after.delivered_ids("ada") == {"arxiv:1"}, "uncertain entries must not be repeated"


def test_a_skipped_period_is_one_row_that_stays_open(tmp_path: Path) -> None:
    from datetime import timedelta

    ledger = Ledger(tmp_path)
    assert ledger.mark_skipped("ada", "p", "nothing matched", NOW)
    later = NOW + timedelta(hours=1)
    assert ledger.mark_skipped("ada", "p", "nothing matched", later), "looked again: the time moves"
    (row,) = ledger.rows(status=DeliveryStatus.SKIPPED)
    assert row.error == "nothing matched" and row.updated_at == later
    assert ledger.claim("ada", "p", ["arxiv:1"], "outbox", later), "a skip is not a send"
    ledger.mark_sent("ada", "p", "id", later)
    assert not ledger.mark_skipped("ada", "p", "nothing matched", later), "a settled period is never changed"
    assert ledger.get("ada", "p").status is DeliveryStatus.SENT  # type: ignore[union-attr]


def test_concurrent_claims_let_exactly_one_thread_send(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(lambda _: ledger.claim("ada", "p", ["arxiv:1"], "sendgrid", NOW), range(32)))
    assert wins.count(True) == 1
    assert ledger.get("ada", "p").status is DeliveryStatus.SENDING  # type: ignore[union-attr]


def test_an_unsubscribe_is_recorded_durably(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    assert ledger.unsubscribed_at("ada") is None
    ledger.record_unsubscribe("ada", NOW)
    ledger.close()
    assert Ledger(tmp_path).unsubscribed_at("ada") == NOW


def test_an_older_ledgers_covered_rows_become_covered(tmp_path: Path) -> None:
    import sqlite3

    Ledger(tmp_path).close()
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    db.execute(
        "INSERT INTO deliveries (reader, period, status, error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("ada", "2026-11-22", "skipped", "covered by the forced send for 2026-11-23", NOW.isoformat(), NOW.isoformat()),
    )
    db.commit()
    db.close()
    assert Ledger(tmp_path).get("ada", "2026-11-22").status is DeliveryStatus.COVERED  # type: ignore[union-attr]


def test_health_rows_are_what_status_reports_the_last_week_and_every_uncertain_send(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    long_ago = NOW - timedelta(days=40)
    for reader, at in (("old", long_ago), ("lost", long_ago), ("new", NOW), ("bounced", NOW), ("gone", long_ago)):
        ledger.claim(reader, "p", ["e"], "sendgrid", at)
    ledger.mark_sent("old", "p", "m1", long_ago)
    ledger.mark_uncertain("lost", "p", "timeout", long_ago)
    ledger.mark_sent("new", "p", "m2", NOW)  # a send: status counts it through last_send, not as a row
    ledger.mark_failed("bounced", "p", "550", NOW, retry=False)
    ledger.mark_failed("gone", "p", "550", long_ago, retry=False)  # failed, but over a week ago
    ledger.mark_skipped("quiet", "p", "nothing new matched", NOW)
    rows = ledger.health_rows(NOW - timedelta(days=7))
    assert {(r.reader, r.status) for r in rows} == {
        ("lost", DeliveryStatus.UNCERTAIN),
        ("bounced", DeliveryStatus.FAILED),
        ("quiet", DeliveryStatus.SKIPPED),
    }
    assert ledger.last_send() == NOW
    ledger.close()


def test_the_feed_keeps_each_digest_in_pick_order_with_every_reason_field(tmp_path: Path) -> None:
    """Rank, not score, orders a digest's items (a later stage may reorder); reasons come back whole."""
    from newsletter.types import FeedItem, Reason, ReasonKind

    why = (Reason(ReasonKind.KEYWORD, "log", "pipeline parallelism", "abstract", ("parallelism",)),)
    ledger = Ledger(tmp_path)
    for day, ids in ((NOW - timedelta(days=1), ["arxiv:a", "arxiv:b"]), (NOW, ["arxiv:c", "arxiv:d", "arxiv:e"])):
        period = day.date().isoformat()
        assert ledger.claim("ada", period, ids, "outbox", day)
        # scores rising with rank: only the stored rank can give the digest's order back
        items = [FeedItem(i, float(rank), why, rank=rank) for rank, i in enumerate(ids, 1)]
        ledger.mark_sent("ada", period, None, day, items)
    got = ledger.feed_items("ada", 10)
    assert [i.entry_id for i in got] == ["arxiv:c", "arxiv:d", "arxiv:e", "arxiv:a", "arxiv:b"]
    assert [i.rank for i in got] == [1, 2, 3, 1, 2]
    assert got[0].reasons == why
    assert [i.entry_id for i in ledger.feed_items("ada", 2)] == ["arxiv:c", "arxiv:d"]


def test_a_ledger_from_before_ranks_gains_the_column_and_reads_old_reasons(tmp_path: Path) -> None:
    import json
    import sqlite3

    from newsletter.types import Reason, ReasonKind

    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    db.execute(
        "CREATE TABLE feed_items (reader TEXT NOT NULL, entry_id TEXT NOT NULL, score REAL NOT NULL, "
        "reasons TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (reader, entry_id)) WITHOUT ROWID"
    )
    old = json.dumps([["keyword", '"x" in title']])
    db.execute("INSERT INTO feed_items VALUES (?, ?, ?, ?, ?)", ("ada", "arxiv:1", 2.0, old, NOW.isoformat()))
    db.execute("INSERT INTO feed_items VALUES (?, ?, ?, ?, ?)", ("ada", "arxiv:2", 3.0, old, NOW.isoformat()))
    db.commit()
    db.close()
    got = Ledger(tmp_path).feed_items("ada", 10)
    assert [i.entry_id for i in got] == ["arxiv:2", "arxiv:1"]  # no rank yet: score order, as before
    assert got[0].reasons == (Reason(ReasonKind.KEYWORD, '"x" in title'),) and got[0].rank == 0


def test_concurrent_writes_share_commits_and_a_failing_one_undoes_only_itself(tmp_path: Path) -> None:
    """64 threads at once (as the send threads): every reader claimed exactly once, every claim durable,
    and a write that raises (reopening a row that does not exist) loses nobody else's write."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger(tmp_path)
    now = datetime(2026, 11, 23, 7, tzinfo=UTC)
    won: list[str] = []
    lock = threading.Lock()

    def claim(i: int) -> None:
        reader = f"r{i % 400}"  # every reader asked for twice
        if ledger.claim(reader, "2026-11-23", [f"e{i % 400}-a", f"e{i % 400}-b"], "outbox", now):
            with lock:
                won.append(reader)
            ledger.mark_sent(reader, "2026-11-23", f"<{reader}>", now, [FeedItem(f"e{i % 400}-a", 1.0, (), rank=1)])

    def reopen_missing(i: int) -> None:
        with pytest.raises(LookupError):
            ledger.reopen(f"nobody-{i}", "2026-11-23", now)

    with ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(claim if i % 5 else reopen_missing, i) for i in range(1000)]
        for f in futures:
            f.result()
    ledger.close()
    again = Ledger(tmp_path)  # what is on disk
    try:
        asked = {f"r{i % 400}" for i in range(1000) if i % 5}
        assert sorted(won) == sorted(asked), "each reader claimed exactly once"
        rows = again.rows(status=DeliveryStatus.SENT)
        assert len(rows) == len(asked) and all(r.message_id == f"<{r.reader}>" for r in rows)
        assert again.delivered_ids("r7") == {"e7-a", "e7-b"}
        assert [i.entry_id for i in again.feed_items("r7", 10)] == ["e7-a"]
    finally:
        again.close()
