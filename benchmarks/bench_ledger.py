"""Durable ledger writes per second: the SQLite ledger vs a naive TinyDB-per-write ledger.

Each reader's send is two durable state changes (claim before the send,
mark sent after).  The SQLite ledger commits each as one small WAL record;
the naive baseline keeps one TinyDB document per reader and writes the file
on every change, as TinyDB does (fsync added, since durability is the point),
so each write costs more as the table grows: quadratic in total.  At sizes
where the naive run would take too long, it is measured on the last
``--sample`` writes (with the table already full) and extrapolated.

    python benchmarks/bench_ledger.py --readers 1000 10000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from newsletter.ledger import Ledger

NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)


class FsyncJSONStorage(JSONStorage):
    """TinyDB's JSON storage plus an fsync, so a write is durable like the ledger's."""

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        super().write(data)
        os.fsync(self._handle.fileno())


def sqlite_ledger(folder: Path, readers: int) -> float:
    """Seconds for claim + mark_sent of *readers* rows."""
    ledger = Ledger(folder)
    t0 = time.perf_counter()
    for i in range(readers):
        ledger.claim(f"r{i:05d}", "2026-11-23", [f"arxiv:{i}.1", f"arxiv:{i}.2"], "sendgrid", NOW)
        ledger.mark_sent(f"r{i:05d}", "2026-11-23", f"msg{i}", NOW)
    elapsed = time.perf_counter() - t0
    ledger.close()
    return elapsed


def tinydb_ledger(folder: Path, readers: int, sample: int) -> tuple[float, int]:
    """Seconds for the last *sample* readers' two writes each, the table pre-filled."""
    db = TinyDB(folder / "ledger.json", storage=FsyncJSONStorage)
    table = db.table("deliveries", cache_size=0)
    first = max(0, readers - sample)
    table.insert_multiple(
        {
            "reader": f"r{i:05d}",
            "period": "2026-11-23",
            "status": "sent",
            "entry_ids": [f"arxiv:{i}.1"],
            "message_id": f"m{i}",
        }
        for i in range(first)
    )
    t0 = time.perf_counter()
    for i in range(first, readers):
        doc_id = table.insert(
            {"reader": f"r{i:05d}", "period": "2026-11-23", "status": "sending", "entry_ids": [f"arxiv:{i}.1"]}
        )
        table.update({"status": "sent", "message_id": f"m{i}"}, doc_ids=[doc_id])
    elapsed = time.perf_counter() - t0
    db.close()
    return elapsed, readers - first


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--sample", type=int, default=1000, help="naive writes measured per size (readers)")
    args = parser.parse_args(argv)
    out = []
    print(f"{'readers':>8} {'sqlite ch/s':>12} {'sqlite total':>13} {'tinydb ch/s':>12} {'tinydb total (extrap.)':>23}")
    for n in args.readers:
        with tempfile.TemporaryDirectory() as tmp:
            s = sqlite_ledger(Path(tmp) / "sqlite", n)
            (Path(tmp) / "tiny").mkdir()
            t, measured = tinydb_ledger(Path(tmp) / "tiny", n, args.sample)
        sqlite_rate = 2 * n / s
        tiny_rate = 2 * measured / t
        # Each naive write costs about in proportion to the table size: the
        # total over all n readers is ~ n/2 times the cost at size n, per write.
        tiny_total = t if measured == n else (t / measured) * n / 2
        row = {
            "readers": n,
            "sqlite_changes_per_s": sqlite_rate,
            "sqlite_s": s,
            "tinydb_changes_per_s": tiny_rate,
            "tinydb_s": tiny_total,
        }
        out.append(row)
        print(f"{n:>8} {sqlite_rate:>12.0f} {s:>12.2f}s {tiny_rate:>12.0f} {tiny_total:>22.1f}s")
    print("(ch/s: durable state changes per second; a send is two: claim, then mark sent)")
    return out


if __name__ == "__main__":
    main()
