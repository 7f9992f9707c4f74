"""Steady state: a data folder holding a month of papers, ours next to the release's TinyDB store.

    python benchmarks/bench_steady.py [--days 30] [--entries 2000] [--baseline-ref REF | --no-baseline]

A site keeps ``retention_days = 30``, so the store holds ~60,000 entries, not
the day-one 2,000.  For each implementation a data folder is generated the
way a site grows: ``days - 1`` daily fetches of *entries* new arXiv papers
each, through the real fetch path (``App.fetch``: httpx against the loopback
feed server of tests/feedserver.py, feedparser, merge, store), one UTC day
apart, ending yesterday.  Then, as cron would, in child processes with the
real clock:

* ``newsletter fetch`` of the last day's listing: wall time (target <= 3 s);
* ``newsletter status``: wall time (target <= 0.5 s);
* the data folder's size (target <= 150 MB, with a 768-byte float16
  embedding stored for every entry: ours only, the release cannot store them).

The baseline is the release's code (``--baseline-ref``, default: the commit
before the store moved to SQLite), exported with ``git archive`` and run the
same way from its own directory, in the same run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import workload

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FEED_PATH = "/steady/arxiv.rss"
TARGETS = {"fetch_s": 3.0, "status_s": 0.5, "folder_mb": 150.0}
EMBED_DIM = 384


def day_items(day: int, m: int) -> list[Any]:
    """*m* papers new on *day*: distinct arXiv ids and titles from every other day's."""
    return [
        replace(
            it,
            arxiv_id=(aid := f"{2500 + day}.{i:05d}"),
            guid=f"oai:arXiv.org:{aid}v1",
            link=f"https://arxiv.org/abs/{aid}",
            title=f"{it.title} [day {day}]",
        )
        for i, it in enumerate(workload.make_items(m))
    ]


def write_config(folder: Path, feed_url: str) -> Path:
    config = folder / "newsletter.toml"
    config.write_text(
        f"""[paths]
data_dir = "data"
profiles_dir = "profiles"
outbox_dir = "outbox"
feeds_dir = "feeds"

[[sources]]
name = "arxiv-steady"
kind = "arxiv"
url = "{feed_url}"
allow_private = true

[site]
base_url = "https://news.example.org"
title = "steady"
contact = "operator@example.org"
""",
        encoding="utf-8",
    )
    (folder / "profiles").mkdir(exist_ok=True)
    return config


# -- the child: grows a data folder with the code on its sys.path --------------------------------


def generate(folder: Path, days: int, entries: int, embed: bool) -> dict[str, Any]:
    """Run in a child whose ``newsletter`` is the implementation under test."""
    sys.path.insert(0, str(ROOT / "tests"))
    from datetime import UTC, datetime, timedelta

    from feedserver import FeedServer

    from newsletter.config import load_settings
    from newsletter.pipeline import make_app

    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    now = [today - timedelta(days=days - 1)]
    per_day = []
    with FeedServer() as server:
        config = write_config(folder, server.url(FEED_PATH))
        with make_app(load_settings(config), clock=lambda: now[0]) as app:
            for day in range(1, days):
                server.add(FEED_PATH, workload.arxiv_rss(day_items(day, entries)))
                t0 = time.perf_counter()
                [result] = app.fetch()
                per_day.append(time.perf_counter() - t0)
                if result.error or result.new != entries:
                    raise RuntimeError(f"day {day}: {result}")
                now[0] += timedelta(days=1)
            stored = len(app.store.entries_since(None))
            if embed:  # what the embedding model would have written: 768 bytes per entry
                import numpy as np

                rng = np.random.default_rng(0)
                while ids := app.store.ids_without_embedding(5000):
                    app.store.put_embeddings(ids, rng.standard_normal((len(ids), EMBED_DIM)).astype(np.float16))
    return {"fetch_s_per_day": per_day, "stored": stored}


# -- the parent ------------------------------------------------------------------------------------


def export(ref: str, into: Path) -> Path:
    """The package and templates of *ref*, as a directory to put first on PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "newsletter", "templates"], capture_output=True)
    if archive.returncode != 0:
        raise RuntimeError(f"git archive {ref}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def default_ref() -> str:
    """The commit before the store moved to SQLite (the last with the TinyDB entry store)."""
    needle = "class AtomicJSONStorage"
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%H", "-S", needle, "--", "newsletter/store.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return f"{out}^" if out else "HEAD"


def child(code: Path | None, *args: str, cwd: Path) -> tuple[float, str]:
    """Run a Python child with *code* first on its path (None: this checkout); (wall seconds, stdout)."""
    env = dict(os.environ)
    paths = [str(code)] if code else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NEWSLETTER_SECRET"] = "bench-secret-not-for-production"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(args[:3])} exited {proc.returncode}: {' | '.join(tail)}")
    return seconds, proc.stdout


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def measure(name: str, code: Path | None, folder: Path, days: int, entries: int, embed: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from feedserver import FeedServer

    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    _, out = child(code, __file__, "generate", str(folder), str(days), str(entries), str(int(embed)), cwd=folder)
    grown = json.loads(out.strip().splitlines()[-1])
    generate_s = time.perf_counter() - t0
    with FeedServer() as server:
        config = write_config(folder, server.url(FEED_PATH))
        server.add(FEED_PATH, workload.arxiv_rss(day_items(days, entries)))
        fetch_s, fetch_out = child(code, "-m", "newsletter", "--config", str(config), "fetch", cwd=folder)
    status_s, _ = child(code, "-m", "newsletter", "--config", str(config), "status", cwd=folder)
    status_again_s, _ = child(code, "-m", "newsletter", "--config", str(config), "status", cwd=folder)
    startup_s, _ = child(code, "-c", "import newsletter.cli", cwd=folder)
    size = folder_mb(folder / "data")
    row = {
        "name": name,
        "stored_before_last_day": grown["stored"],
        "generate_s": generate_s,
        "fetch_first_day_s": grown["fetch_s_per_day"][0],
        "fetch_day_before_last_s": grown["fetch_s_per_day"][-1],
        "last_fetch_s": fetch_s,
        "status_s": min(status_s, status_again_s),
        "import_s": startup_s,
        "folder_mb": size,
        "embeddings": embed,
        "fetch_output": fetch_out.strip().splitlines()[-1:],
    }
    print(
        f"{name:<10} {grown['stored']:>7,} stored  last fetch {fetch_s:6.2f} s  status {row['status_s']:5.2f} s  "
        f"folder {size:6.1f} MB  (in-process fetch day 1 {row['fetch_first_day_s']:.2f} s, "
        f"day {days - 1} {row['fetch_day_before_last_s']:.2f} s; interpreter+import {startup_s:.2f} s)",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--entries", type=int, default=2000, help="new papers per day")
    ap.add_argument("--baseline-ref", default=None, help="git ref of the release to compare with")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="keep the data folders here")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    base = args.keep or tmp
    try:
        ours = measure("ours", None, base / "ours", args.days, args.entries, embed=True)
        release = None
        if not args.no_baseline:
            ref = args.baseline_ref or default_ref()
            code = export(ref, tmp / "release-code")
            release = measure("release", code, base / "release", args.days, args.entries, embed=False)
            release["ref"] = ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "days": args.days,
        "entries_per_day": args.entries,
        "ours": ours,
        "release": release,
        "met": {k: ours[k if k != "fetch_s" else "last_fetch_s"] <= v for k, v in TARGETS.items()},
    }
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        folder, days, entries, embed = sys.argv[2:6]
        print(json.dumps(generate(Path(folder), int(days), int(entries), embed == "1")))
    else:
        main()
