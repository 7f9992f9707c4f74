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
TARGETS = {"last_fetch_s": 3.0, "status_s": 0.5, "folder_mb": 150.0}
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


def write_config(
    folder: Path, feed_url: str, sendgrid_host: str | None = None, concurrency: int = 64, semantic: bool | None = None
) -> Path:
    """The site's config; *semantic* None writes no ``[ranking]`` table (the release has none)."""
    config = folder / "newsletter.toml"
    ranking = "" if semantic is None else f"\n[ranking]\nsemantic = {'true' if semantic else 'false'}\n"
    delivery = (
        f"""
[delivery]
backend = "sendgrid"
sendgrid_host = "{sendgrid_host}"
concurrency = {concurrency}
from_address = "digest@example.org"
from_name = "Steady digest"
"""
        if sendgrid_host
        else ""
    )
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
{ranking}{delivery}""",
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
    per_day: list[float] = []
    per_day_cpu: list[float] = []
    with FeedServer() as server:
        # The fetches do not run the embedding model (2,000 papers take ~40 s of it on 2 cores:
        # benchmarks/bench_embed.py measures that); random vectors of the stored size stand in.
        config = write_config(folder, server.url(FEED_PATH), semantic=False if embed else None)
        with make_app(load_settings(config), clock=lambda: now[0]) as app:
            for day in range(1, days):
                server.add(FEED_PATH, workload.arxiv_rss(day_items(day, entries)))
                t0, c0 = time.perf_counter(), time.process_time()
                [result] = app.fetch()
                per_day.append(time.perf_counter() - t0)
                per_day_cpu.append(time.process_time() - c0)
                if result.error or result.new != entries:
                    raise RuntimeError(f"day {day}: {result}")
                now[0] += timedelta(days=1)
            stored = len(app.store.entries_since(None))
            if embed:  # what the embedding model would have written: 768 bytes per entry
                import numpy as np

                rng = np.random.default_rng(0)
                while ids := app.store.ids_without_embedding(5000):
                    app.store.put_embeddings(ids, rng.standard_normal((len(ids), EMBED_DIM)).astype(np.float16))
    return {"fetch_s_per_day": per_day, "fetch_cpu_s_per_day": per_day_cpu, "stored": stored}


def fill_embeddings(data_dir: Path) -> int:
    """Random unit-size vectors, of the stored size, for every entry without one (this checkout's store)."""
    import numpy as np

    from newsletter.store import Store

    rng = np.random.default_rng(1)
    filled = 0
    store = Store(data_dir)
    try:
        while ids := store.ids_without_embedding(5000):
            filled += store.put_embeddings(ids, rng.standard_normal((len(ids), EMBED_DIM)).astype(np.float16))
    finally:
        store.close()
    return filled


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


def child(code: Path | None, *args: str, cwd: Path) -> tuple[float, float, str]:
    """Run a Python child with *code* first on its path (None: this checkout).

    Returns (wall seconds, CPU seconds, stdout).  CPU time (user + system,
    ``os.wait4``) is printed beside the wall time because the machine is
    shared: under load a child waits for a core for longer than it computes.
    """
    env = dict(os.environ)
    paths = [str(code)] if code else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["NEWSLETTER_SECRET"] = "bench-secret-not-for-production"
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        tail = (stderr or stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(args[:3])} exited {status}: {' | '.join(tail)}")
    return seconds, usage.ru_utime + usage.ru_stime, stdout


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def measure(name: str, code: Path | None, folder: Path, days: int, entries: int, embed: bool) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from feedserver import FeedServer

    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    _, _, out = child(code, __file__, "generate", str(folder), str(days), str(entries), str(int(embed)), cwd=folder)
    grown = json.loads(out.strip().splitlines()[-1])
    generate_s = time.perf_counter() - t0
    with FeedServer() as server:
        config = write_config(folder, server.url(FEED_PATH), semantic=False if embed else None)
        server.add(FEED_PATH, workload.arxiv_rss(day_items(days, entries)))
        fetch_s, fetch_cpu, fetch_out = child(code, "-m", "newsletter", "--config", str(config), "fetch", cwd=folder)
    status = [child(code, "-m", "newsletter", "--config", str(config), "status", cwd=folder) for _ in range(3)]
    startup_s, startup_cpu, _ = child(code, "-c", "import newsletter.cli", cwd=folder)
    size = folder_mb(folder / "data")
    row = {
        "name": name,
        "stored_before_last_day": grown["stored"],
        "generate_s": generate_s,
        "fetch_first_day_s": grown["fetch_s_per_day"][0],
        "fetch_day_before_last_s": grown["fetch_s_per_day"][-1],
        "fetch_first_day_cpu_s": grown["fetch_cpu_s_per_day"][0],
        "fetch_day_before_last_cpu_s": grown["fetch_cpu_s_per_day"][-1],
        "last_fetch_s": fetch_s,
        "last_fetch_cpu_s": fetch_cpu,
        "status_s": min(s[0] for s in status),
        "status_cpu_s": min(s[1] for s in status),
        "import_s": startup_s,
        "import_cpu_s": startup_cpu,
        "folder_mb": size,
        "embeddings": embed,
        "fetch_output": fetch_out.strip().splitlines()[-1:],
    }
    print(
        f"{name:<8} {grown['stored']:>6,} stored | last fetch {fetch_s:5.2f} s (CPU {fetch_cpu:4.2f} s) | "
        f"status {row['status_s']:4.2f} s (CPU {row['status_cpu_s']:4.2f} s; import alone {startup_cpu:4.2f} s) | "
        f"folder {size:5.1f} MB | in-process fetch CPU day 1 {row['fetch_first_day_cpu_s']:.2f} s, "
        f"day {days - 1} {row['fetch_day_before_last_cpu_s']:.2f} s",
        flush=True,
    )
    return row


def daily(name: str, code: Path | None, folder: Path, readers: int, latency: float) -> dict[str, Any]:
    """``newsletter run --now --no-fetch`` for *readers* on the grown folder: wall time, peak RSS, messages."""
    from bench_send import start_server
    from sendgrid_server import API_KEY, accepted

    if code is None:  # the last day's papers were fetched without the model: give them stand-in vectors too
        fill_embeddings(folder / "data")
    profiles = folder / "profiles"
    shutil.rmtree(profiles, ignore_errors=True)
    profiles.mkdir()
    for p in workload.make_profiles(readers, workload.make_items(200)):
        (profiles / f"{p.id}.toml").write_text(workload.profile_toml(p), encoding="utf-8")
    for stale in (folder / "data").glob("ledger.sqlite3*"):
        stale.unlink()  # a rerun on a kept folder sends again
    db = folder / "accepted.sqlite3"
    db.unlink(missing_ok=True)
    server, host = start_server(db, latency)
    try:
        # The daily run ranks as a site does by default: lexical + semantic (the readers' phrases embedded).
        config = write_config(folder, "http://127.0.0.1:9/unused", host, semantic=True if code is None else None)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*([str(code)] if code else []), str(HERE)])
        env["NEWSLETTER_SECRET"] = "bench-secret-not-for-production"
        env["SENDGRID_API_KEY"] = API_KEY
        env["NEWSLETTER_ACCEPT_NEW_LEDGER"] = "1"  # the ledger was removed on purpose: every reader is new
        with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe: 10,000 log lines would fill a pipe
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "--config", str(config), "run", "--now", "--no-fetch"],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
            )
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
            log.seek(0)
            err = log.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{name}: newsletter run exited {status}: {err.strip().splitlines()[-3:]}")
        messages = len(accepted(db))
    finally:
        server.terminate()
        server.wait()
    row = {
        "readers": readers,
        "run_s": seconds,
        "run_cpu_s": usage.ru_utime + usage.ru_stime,
        "run_rss_mb": usage.ru_maxrss / 1024,
        "messages": messages,
        "folder_after_run_mb": folder_mb(folder / "data"),
    }
    print(
        f"{name:<10} run --now --no-fetch, {readers} readers: {seconds:6.1f} s, CPU {row['run_cpu_s']:.1f} s, "
        f"peak RSS {row['run_rss_mb']:.0f} MB, {messages} messages",
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
    ap.add_argument("--reuse", action="store_true", help="with --keep: use the folders grown by an earlier run")
    ap.add_argument(
        "--readers", type=int, nargs="*", default=[], help="then the daily run for each of these reader counts (ours)"
    )
    ap.add_argument("--baseline-readers", type=int, default=1000, help="readers of the release's daily run")
    ap.add_argument("--latency", type=float, default=0.1, help="SendGrid test server latency, seconds")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-steady-"))
    base = args.keep or tmp
    sys.path.insert(0, str(ROOT / "tests"))

    def one(name: str, code: Path | None, embed: bool, readers: list[int]) -> dict[str, Any]:
        folder = base / name
        row: dict[str, Any] = {"name": name}
        if not (args.reuse and folder.exists()):
            row = measure(name, code, folder, args.days, args.entries, embed=embed)
        row["daily"] = [daily(name, code, folder, n, args.latency) for n in readers]
        return row

    try:
        ours = one("ours", None, True, args.readers)
        release = None
        if not args.no_baseline:
            ref = args.baseline_ref or default_ref()
            code = export(ref, tmp / "release-code")
            release = one("release", code, False, [args.baseline_readers] if args.readers else [])
            release["ref"] = ref
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures = {
        "days": args.days,
        "entries_per_day": args.entries,
        "ours": ours,
        "release": release,
        "met": {k: ours[k] <= v for k, v in TARGETS.items() if k in ours},
    }
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["generate"]:
        folder, days, entries, embed = sys.argv[2:6]
        print(json.dumps(generate(Path(folder), int(days), int(entries), embed == "1")))
    else:
        main()
