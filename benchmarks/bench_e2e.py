"""The daily run end to end: N readers, an M-entry arXiv feed, SendGrid with injected latency.

    python benchmarks/bench_e2e.py                     # 10,000 readers, 2,000 entries, 100 ms
    python benchmarks/bench_e2e.py --readers 1000 --profile

Everything is real and on loopback: N profile files in a folder, the feed on
the test feed server (tests/feedserver.py, ETag and all), the SendGrid v3
test server (tests/sendgrid_server.py, its own process, recording every
accepted message), and ``newsletter`` itself run as a subprocess from a
``newsletter.toml``, the way cron runs it.  The run is timed in two phases,
``newsletter fetch`` and then ``newsletter run --now --no-fetch`` (the sum is
the daily run, plus one extra interpreter start-up); peak RSS is the largest
of the two children's (``os.wait4``).  Afterwards every reader must have
exactly one message accepted by the server.

The naive baseline, measured in the same run: the same two commands at
``delivery.concurrency = 1`` for a subsample of readers, the run phase
extrapolated linearly to N.  With ``--profile`` the run phase is repeated twice
on a copy of the fetched data folder under py-spy: once sampling all
threads, idle ones too (the main thread's samples split the wall time into
phases; the delivery jobs' samples show where a send job waits), once
sampling only the thread holding the GIL (where the one core that Python
code can use goes).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import workload
from bench_send import start_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from feedserver import FeedServer  # noqa: E402
from sendgrid_server import API_KEY, accepted  # noqa: E402

FEED_PATH = "/bench/arxiv.rss"
TARGET_S = 120.0
TARGET_RSS_MB = 1024.0


@dataclass(frozen=True)
class Phase:
    """One child process: its wall time, peak RSS, exit code and output."""

    seconds: float
    cpu_s: float
    """User plus system CPU time of the child: near ``seconds`` means one busy core (the GIL)."""
    max_rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def write_site(folder: Path, readers: int, feed_url: str, sendgrid_host: str, concurrency: int) -> Path:
    """Profiles and a ``newsletter.toml`` under *folder*; returns the config path."""
    items = workload.make_items(200)
    profiles_dir = folder / "profiles"
    profiles_dir.mkdir(parents=True)
    for p in workload.make_profiles(readers, items):
        (profiles_dir / f"{p.id}.toml").write_text(workload.profile_toml(p), encoding="utf-8")
    config = folder / "newsletter.toml"
    config.write_text(
        f"""[paths]
data_dir = "data"
profiles_dir = "profiles"
outbox_dir = "outbox"
feeds_dir = "feeds"

[[sources]]
name = "arxiv-bench"
kind = "arxiv"
url = "{feed_url}"
allow_private = true

[delivery]
backend = "sendgrid"
sendgrid_host = "{sendgrid_host}"
concurrency = {concurrency}
from_address = "digest@example.org"
from_name = "Bench digest"

[site]
base_url = "https://news.example.org"
title = "bench"
contact = "operator@example.org"
""",
        encoding="utf-8",
    )
    return config


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SENDGRID_API_KEY"] = API_KEY
    env["NEWSLETTER_SECRET"] = "bench-secret-not-for-production"
    env.pop("NEWSLETTER_LOG_FORMAT", None)
    return env


def run_child(cmd: list[str], cwd: Path) -> Phase:
    """Run *cmd*, timing it and reading its own peak RSS (``os.wait4``, not all children's)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Phase(seconds, cpu, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read())


def newsletter(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "newsletter", "--config", str(config), *args]


def check(phase: Phase, what: str) -> None:
    if phase.returncode != 0:
        tail = (phase.stderr or phase.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{what}` exited {phase.returncode}: {' | '.join(tail)}")


def daily_run(folder: Path, config: Path) -> tuple[Phase, Phase]:
    fetch = run_child(newsletter(config, "fetch"), folder)
    check(fetch, "newsletter fetch")
    run = run_child(newsletter(config, "run", "--now", "--no-fetch"), folder)
    check(run, "newsletter run --now --no-fetch")
    return fetch, run


def per_recipient(db: Path, recipients: set[str]) -> tuple[int, int, int]:
    """(readers with exactly one message, readers with none, readers with several)."""
    counts = collections.Counter(r for _, r, _ in accepted(db) if r in recipients)
    once = sum(1 for r in recipients if counts[r] == 1)
    none = sum(1 for r in recipients if counts[r] == 0)
    return once, none, len(recipients) - once - none


def profile_run(folder: Path, config: Path, top: int, mode: str = "wall") -> str:
    """py-spy over ``run --now --no-fetch`` (on a copy of the fetched data); where the time went, as text.

    ``wall`` samples every thread, idle or not; ``cpu`` only the thread
    holding the GIL, i.e. where the one core Python code can use goes.
    """
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return "(no profile: pip install py-spy)"
    raw = folder / "profile.txt"
    which = "--idle" if mode == "wall" else "--gil"
    spy_args = ["record", which, "--format", "raw", "--rate", str(RATE), "--output", str(raw), "--"]
    cmd = [spy, *spy_args, *newsletter(config, "run", "--now", "--no-fetch")]
    done = subprocess.run(cmd, cwd=folder, env=child_env(), capture_output=True, text=True, check=False)
    if not raw.exists():
        return f"(py-spy failed: {done.stderr.strip()[-300:]})"
    text = raw.read_text(encoding="utf-8")
    return summarise_profile(text, top) if mode == "wall" else summarise_gil(text, top)


RATE = 50
"""py-spy samples per second per thread."""
PHASES = ("App.fetch", "App.load_profiles", "App.deliver", "App.write_feeds")
JOB = "App.deliver.<locals>.job"


def summarise_profile(raw: str, top: int) -> str:
    """Collapsed stacks (``a;b;c N``, idle samples included) as a text report.

    The main thread's samples are wall time: they split the run into phases.
    The send jobs' samples (stacks under one delivery job, whether running,
    waiting for a lock or for the network) show where a job spends its time;
    idle pool threads are left out.
    """
    phases: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    main_total = jobs_total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        names = [f.split(" (")[0] for f in frames]
        if any(f.startswith("<module> (newsletter/__main__.py") for f in frames):
            main_total += n
            phases[next((p for p in names if p in PHASES), "start-up, report and other")] += n
        if JOB in names:
            jobs_total += n
            own[frames[-1]] += n
            for f in set(frames[names.index(JOB) :]):
                incl[f] += n
    if not main_total:
        return "(no samples)"
    lines = [f"main thread, wall time by phase ({main_total / RATE:.1f} s sampled at {RATE} Hz):"]
    lines += [f"  {n / main_total:6.1%}  {n / RATE:7.1f} s  {p}" for p, n in phases.most_common()]
    if jobs_total:
        lines += ["", f"delivery jobs: {jobs_total / RATE:.0f} thread-seconds; where a job is (running or waiting):"]
        lines += [f"  {n / jobs_total:6.1%}  {f}" for f, n in own.most_common(top)]
        lines += ["", "delivery jobs, inclusive (the function or anything it called):"]
        lines += [f"  {n / jobs_total:6.1%}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(lines)


def summarise_gil(raw: str, top: int) -> str:
    """Collapsed stacks sampled with ``--gil``: where the GIL (one core of Python) was spent."""
    roles: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        names = [f.split(" (")[0] for f in frames]
        if JOB in names:
            roles["delivery jobs (render, build message, send, ledger)"] += n
        elif any(f.startswith("<module> (newsletter/__main__.py") for f in frames):
            roles["main thread: " + next((p for p in names if p in PHASES), "start-up, report and other")] += n
        else:
            roles["other threads"] += n
        own[frames[-1]] += n
        for f in set(frames):
            if "newsletter/" in f:
                incl[f] += n
    if not total:
        return "(no samples holding the GIL)"
    lines = [f"holding the GIL: {total / RATE:.1f} s sampled at {RATE} Hz, by thread:"]
    lines += [f"  {n / total:6.1%}  {n / RATE:7.1f} s  {r}" for r, n in roles.most_common()]
    lines += ["", "holding the GIL, self:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "holding the GIL, inclusive (newsletter functions):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/newsletter/" in path:
        path = "newsletter/" + path.rsplit("/newsletter/", 1)[1]
    else:
        path = re.sub(r"^.*/python3\.\d+/", "", path)
    return f"{name} ({path})"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=10_000)
    ap.add_argument("--entries", type=int, default=2_000)
    ap.add_argument("--latency", type=float, default=0.1, help="seconds the SendGrid server waits per request")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--baseline", type=int, default=100, help="readers of the concurrency-1 run, extrapolated")
    ap.add_argument("--profile", action="store_true", help="profile the run phase twice under py-spy")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)

    items = workload.make_items(args.entries)
    feed = workload.arxiv_rss(items)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp, FeedServer() as feeds:
        work = Path(tmp)
        feed_url = feeds.add(FEED_PATH, feed)
        server, host = start_server(work / "accepted.sqlite3", args.latency)
        try:
            t0 = time.perf_counter()
            full = work / "full"
            config = write_site(full, args.readers, feed_url, host, args.concurrency)
            setup_s = time.perf_counter() - t0
            fetch, run = daily_run(full, config)
            emails = {f"reader{i:05d}@example.org" for i in range(args.readers)}
            once, none, several = per_recipient(work / "accepted.sqlite3", emails)
            sent_lines = sum(1 for line in run.stdout.splitlines() if line.startswith("sent "))

            n_base = min(args.baseline, args.readers)
            base = work / "baseline"
            base_config = write_site(base, n_base, feed_url, host, 1)
            b_fetch, b_run = daily_run(base, base_config)

            profiles = []
            for mode in ("wall", "cpu") if args.profile else ():
                spied = work / f"profiled-{mode}"
                shutil.copytree(full, spied, ignore=shutil.ignore_patterns("*.lock"))
                _reset_ledger(spied / "data")
                profiles.append(profile_run(spied, spied / "newsletter.toml", args.top, mode))
            profile = "\n\n".join(profiles)
        finally:
            server.terminate()
            server.wait()

    total = fetch.seconds + run.seconds
    base_total = b_fetch.seconds + b_run.seconds * args.readers / n_base
    figures: dict[str, Any] = {
        "readers": args.readers,
        "entries": args.entries,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "setup_s": setup_s,
        "fetch_s": fetch.seconds,
        "run_s": run.seconds,
        "fetch_cpu_s": fetch.cpu_s,
        "run_cpu_s": run.cpu_s,
        "total_s": total,
        "peak_rss_mb": max(fetch.max_rss_mb, run.max_rss_mb),
        "fetch_rss_mb": fetch.max_rss_mb,
        "run_rss_mb": run.max_rss_mb,
        "readers_one_message": once,
        "readers_no_message": none,
        "readers_several_messages": several,
        "sent_lines": sent_lines,
        "feed_megabytes": len(feed) / 1e6,
        "baseline_readers": n_base,
        "baseline_fetch_s": b_fetch.seconds,
        "baseline_run_s": b_run.seconds,
        "baseline_extrapolated_s": base_total,
        "speedup": base_total / total,
        "profile": profile,
    }
    print(
        f"daily run: {args.readers} readers, {args.entries}-entry feed ({figures['feed_megabytes']:.1f} MB), "
        f"SendGrid latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}"
    )
    for name, p in (("newsletter fetch", fetch), ("newsletter run --no-fetch", run)):
        print(f"  {name:<27}{p.seconds:8.1f} s   CPU {p.cpu_s:6.1f} s   peak RSS {p.max_rss_mb:6.0f} MB")
    print(f"  total                        {total:8.1f} s   (target <= {TARGET_S:.0f} s, <= {TARGET_RSS_MB:.0f} MB)")
    print(f"  readers with exactly one message: {once} of {args.readers} (none: {none}, several: {several})")
    print(
        f"  baseline, concurrency 1: {n_base} readers in {b_fetch.seconds:.1f} + {b_run.seconds:.1f} s "
        f"-> {base_total:.0f} s for {args.readers} (extrapolated); speed-up {figures['speedup']:.1f}x"
    )
    if profile:
        print("\nwhere the run phase spends its time (py-spy, on a repeat of the run):\n" + profile)
    return figures


def _reset_ledger(data: Path) -> None:
    """Forget what the measured run sent, so the profiled run sends it all again."""
    for name in os.listdir(data):
        if name.startswith("ledger"):
            (data / name).unlink()


if __name__ == "__main__":
    main()
