"""Store and ledger writes at 1,000 vs 10,000 readers/entries: linear, not quadratic.

    python benchmarks/bench_store.py [--sizes 1000 10000] [--sample 300]

A daily run writes, per size n (n readers and n entries):

* ``entries``: ``Store.put_entries`` of n entries in one batch (the fetch stage);
* ``profiles``: ``Store.sync_profiles`` of n profiles (every run);
* ``ledger``: ``Ledger.claim`` then ``Ledger.mark_sent`` per reader (two durable
  commits each; the second also records the reader's 10 feed items).

For each we print the cost per item and the ratio of the per-item cost at the
largest size to the smallest: about 1 means linear growth, about the size
ratio (10) means quadratic.  The naive baseline, measured in the same run, is
TinyDB's own ``insert()`` once per document on its default JSON storage (each
call rewrites the whole file): the last ``--sample`` inserts into a table that
already holds n - sample documents are timed, and the total for n documents
extrapolated as (cost per insert at size n) x n / 2.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import workload
from pydantic import TypeAdapter
from tinydb import TinyDB

from newsletter.ledger import Ledger
from newsletter.store import Store
from newsletter.types import Entry, FeedItem, Reason, ReasonKind

NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
LINEAR_TARGET = 2.0
"""Largest-size over smallest-size cost per item: at most this counts as linear."""


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ours(folder: Path, n: int) -> dict[str, float]:
    """Seconds for each kind of write at size *n*, in a fresh data folder."""
    entries = workload.make_entries(n, NOW)
    profiles = workload.make_profiles(n, workload.make_items(200))
    why = (Reason(ReasonKind.KEYWORD, '"quantization" in title', "quantization", "title"),)
    feed = [FeedItem(e.id, 1.0, why, rank=rank) for rank, e in enumerate(entries[:10], 1)]
    out: dict[str, float] = {}
    store = Store(folder)
    try:

        def put_entries() -> None:
            with store.batch():
                store.put_entries(entries)

        out["entries"] = _timed(put_entries)
        out["profiles"] = _timed(lambda: store.sync_profiles(profiles))
        stored = len(store.get_entries())
    finally:
        store.close()
    if stored != n:
        raise RuntimeError(f"expected {n} stored entries, found {stored}")

    ledger = Ledger(folder)
    try:

        def deliveries() -> None:
            for i, p in enumerate(profiles):
                ledger.claim(p.id, "2026-11-23", [entries[i].id], "sendgrid", NOW)
                ledger.mark_sent(p.id, "2026-11-23", f"msg{i}", NOW, feed)

        out["ledger"] = _timed(deliveries)
        sent = len(ledger.rows())
        shown = len(ledger.feed_items(profiles[-1].id, 50))
    finally:
        ledger.close()
    if sent != n or shown != len(feed):
        raise RuntimeError(f"expected {n} ledger rows and {len(feed)} feed items, found {sent} and {shown}")
    return out


def naive(folder: Path, n: int, sample: int) -> tuple[float, int]:
    """Seconds per TinyDB ``insert()`` at size *n* (table pre-filled), and how many were timed."""
    adapter = TypeAdapter(Entry)
    docs = [adapter.dump_python(e, mode="json") for e in workload.make_entries(n, NOW)]
    db = TinyDB(folder / "naive.json")
    table = db.table("entries", cache_size=0)
    first = max(0, n - sample)
    table.insert_multiple(docs[:first])
    t0 = time.perf_counter()
    for doc in docs[first:]:
        table.insert(doc)
    elapsed = time.perf_counter() - t0
    count = len(table)
    db.close()
    if count != n:
        raise RuntimeError(f"expected {n} documents, found {count}")
    return elapsed / (n - first), n - first


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    ap.add_argument("--sample", type=int, default=300, help="naive inserts timed per size")
    args = ap.parse_args(argv)
    sizes = sorted(args.sizes)
    rows: dict[int, dict[str, float]] = {}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            rows[n] = ours(Path(tmp) / "ours", n)
            per_insert, timed = naive(Path(tmp), n, args.sample)
        rows[n]["naive per insert"] = per_insert
        rows[n]["naive total (extrapolated)"] = per_insert * timed if timed == n else per_insert * n / 2

    small, large = sizes[0], sizes[-1]
    kinds = ["entries", "profiles", "ledger"]
    per_item = {k: {n: rows[n][k] / n for n in sizes} for k in kinds}
    per_item["naive insert"] = {n: rows[n]["naive total (extrapolated)"] / n for n in sizes}
    growth = {k: v[large] / v[small] for k, v in per_item.items()}
    figures: dict[str, Any] = {
        "sizes": sizes,
        "seconds": {str(n): rows[n] for n in sizes},
        "per_item_us": {k: {str(n): v[n] * 1e6 for n in sizes} for k, v in per_item.items()},
        "growth": growth,
        "worst_growth": max(growth[k] for k in kinds),
        "naive_growth": growth["naive insert"],
        "ours_total_s": sum(rows[large][k] for k in kinds),
        "naive_total_s": rows[large]["naive total (extrapolated)"],
        "linear": all(growth[k] <= LINEAR_TARGET for k in kinds),
    }
    head = "".join(f"{f'{n} (us/item)':>16}" for n in sizes)
    print(f"{'write':<28}{head}{f'growth {large}/{small}':>18}")
    for k, v in per_item.items():
        label = k if k != "naive insert" else "naive TinyDB insert()"
        print(f"{label:<28}{''.join(f'{v[n] * 1e6:16.1f}' for n in sizes)}{growth[k]:18.2f}")
    print(
        f"growth: cost per item at {large} over cost per item at {small}; ~1 = linear, "
        f"~{large / small:.0f} = quadratic (target <= {LINEAR_TARGET})"
    )
    print(
        f"all three writes for {large}: {figures['ours_total_s']:.2f} s; naive TinyDB insert() of "
        f"{large} entries: {figures['naive_total_s']:.1f} s (extrapolated from {args.sample} inserts)"
    )
    return figures


if __name__ == "__main__":
    main()
