"""Every benchmark in one go: one table of figures, baselines, ratios and targets, and a JSON file.

    python benchmarks/run.py                   # full size (several minutes; run by hand, not in CI)
    python benchmarks/run.py --size tiny       # seconds; what the test suite runs
    python benchmarks/run.py --json out.json --stages parse send

Each stage is one of the scripts next to this file, called through its
``main(argv)``; each measures a naive baseline in the same process and prints
its own details first.  Then comes the summary table: stage, figure, baseline
figure, ratio, target, met or missed.  The JSON file (default
``benchmarks/results/latest.json``, git-ignored) holds every figure of every
stage plus the machine: CPU model, cores, RAM, Python version and the load
average before and after (other work on the machine slows every figure).
A stage that fails is reported in the table as an error; the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_JSON = HERE / "results" / "latest.json"

SIZES: dict[str, dict[str, list[str]]] = {
    "full": {
        "parse": ["--size", "2000", "--repeat", "3"],
        "rank": ["--profiles", "10000", "--entries", "2000"],
        "quality": ["--draws", "8"],
        "render": ["--readers", "2000", "--items", "25"],
        "mjml": ["--runs", "7", "--no-screenshots"],
        "send": ["--readers", "10000", "--latency", "0.1", "--concurrency", "64"],
        "ledger": ["--readers", "1000", "10000", "--sample", "1000"],
        "store": ["--sizes", "1000", "10000", "--sample", "300"],
        "e2e": ["--readers", "10000", "--entries", "2000", "--latency", "0.1", "--profile"],
        "steady": ["--days", "30", "--entries", "2000", "--readers", "10000", "100000"],
    },
    "tiny": {
        "parse": ["--size", "40", "--repeat", "1"],
        "rank": ["--profiles", "20", "--entries", "60", "--naive-sample", "5"],
        "quality": ["--draws", "1", "--no-semantic"],
        "render": ["--readers", "10", "--items", "5", "--baseline", "1"],
        "mjml": ["--runs", "1", "--no-screenshots"],
        "send": ["--readers", "20", "--baseline", "3", "--concurrency", "4", "--latency", "0.01", "--html-kb", "4"],
        "ledger": ["--readers", "20", "40", "--sample", "10"],
        "store": ["--sizes", "20", "200", "--sample", "10"],
        "e2e": ["--readers", "20", "--entries", "50", "--latency", "0.01", "--baseline", "5"],
        "steady": ["--days", "3", "--entries", "50", "--readers", "20", "--baseline-readers", "10"],
    },
}
STAGES = list(SIZES["full"])


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    stage: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: str = "-"
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """How many times better than the baseline (the unit decides which way is better)."""
        if self.value is None or self.baseline is None or not self.value or not self.baseline:
            return None
        lower_is_better = self.unit in ("s", "MB", "KB", "ms", "x")
        return self.baseline / self.value if lower_is_better else self.value / self.baseline


# -- the machine -------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python and OS: what the figures depend on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gb": ram_gb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one core for a single-core figure (render), then restore."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# -- the stages: each returns its raw figures and its table rows -------------------------------


def _plain(value: Any) -> Any:
    """Figures as JSON-friendly values (dataclasses and objects become dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = dataclasses.asdict(value)
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name, None), property):
                with contextlib.suppress(Exception):
                    out[name] = getattr(value, name)
        return out
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def stage_parse(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_parse

    size = int(argv[argv.index("--size") + 1])
    repeat = int(argv[argv.index("--repeat") + 1])
    f = bench_parse.main(size, repeat)
    return f, [
        Row("parse", f"arXiv feed, {size} items", f["ours_per_s"], "entries/s", f["baseline_per_s"],
            note="baseline: feedparser.parse alone (ours adds ids, authors, nh3)"),
    ]  # fmt: skip


def stage_rank(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_rank

    r = bench_rank.main(argv)
    total = float(r.build_s + r.rank_s)
    return r, [
        Row("rank", f"{r.profiles} readers x {r.entries} entries", total, "s", float(r.naive_extrapolated_s),
            "<= 5 s", total <= 5.0, f"baseline: per-pair regex loop on {r.naive_sample} readers, extrapolated"),
    ]  # fmt: skip


def stage_quality(argv: list[str]) -> tuple[Any, list[Row]]:
    import eval_ranking

    tables = eval_ranking.main(argv)
    kw, seeds = tables["specific keywords"], tables["specific seeds"]

    def ours(t: Any) -> float:
        fused = [m for m in t.rows if m.startswith("newsletter fused")]
        return float(t.mean(fused[0] if fused else next(m for m in t.rows if m.startswith("newsletter lexical"))))

    (kw_name, best_kw), (seed_name, best_seed) = eval_ranking.best_baseline(kw), eval_ranking.best_baseline(seeds)
    figures = {name: {m: t.mean(m) for m in t.rows} for name, t in tables.items()}
    return figures, [
        Row("rank quality", "specific interests, keywords, P@min(20,R)", ours(kw), "P@", best_kw,
            ">= best baseline + 0.10", ours(kw) - best_kw >= 0.10, f"baseline: {kw_name}"),
        Row("rank quality", "specific interests, 5 seeds, P@min(20,R)", ours(seeds), "P@", best_seed,
            ">= best baseline + 0.10", ours(seeds) - best_seed >= 0.10, f"baseline: {seed_name}"),
    ]  # fmt: skip


def stage_render(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_render

    with one_core():
        f = bench_render.main(argv)
    kb = f["html_bytes_mean"] / 1000
    return f, [
        Row("render", "personalised emails, one core", f["emails_per_s"], "emails/s", f["baseline_emails_per_s"],
            ">= 1000/s and >= 100x", f["emails_per_s"] >= 1000 and f["speedup"] >= 100,
            "baseline: compile MJML per email"),
        Row("render", "HTML per 25-item email (max)", f["html_bytes_max"] / 1000, "KB", None, "< 102 KB (Gmail)",
            f["html_bytes_max"] < 102_000, f"mean {kb:.1f} KB"),
    ]  # fmt: skip


def stage_mjml(argv: list[str]) -> tuple[Any, list[Row]]:
    import compare_mjml

    rows = compare_mjml.main(argv)
    out = []
    for r in rows:
        if r.get("template_ms") is not None:
            out.append(
                Row("mjml", f"{r['compiler']} {r['version']}: compile the template", r["template_ms"], "ms",
                    r.get("filled_ms"), note="baseline: compiling a filled 25-card email (per-email compile)")
            )  # fmt: skip
    return rows, out


def stage_send(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_send

    f = bench_send.main(argv)
    n = int(f["readers"])
    return f, [
        Row("send", f"{n} digests to loopback SendGrid", f["concurrent_s"], "s", f["baseline_extrapolated_s"],
            "<= 60 s and >= 15x", f["concurrent_s"] <= 60 and f["speedup"] >= 15,
            "baseline: one at a time, extrapolated"),
    ]  # fmt: skip


def stage_ledger(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_ledger

    rows = bench_ledger.main(argv)
    last = rows[-1]
    return rows, [
        Row("ledger", f"claim + mark sent, {int(last['readers'])} readers", last["sqlite_s"], "s", last["tinydb_s"],
            note="baseline: TinyDB document per reader, fsync per write (extrapolated)"),
    ]  # fmt: skip


def stage_store(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_store

    f = bench_store.main(argv)
    small, large = f["sizes"][0], f["sizes"][-1]
    return f, [
        Row("store", f"per-item cost growth {small} -> {large}", f["worst_growth"], "x", f["naive_growth"],
            "<= 2 (linear)", f["linear"], "worst of entries/profiles/ledger; baseline: TinyDB insert()"),
        Row("store", f"all writes for {large}", f["ours_total_s"], "s", f["naive_total_s"],
            note=f"baseline: TinyDB insert() per entry, {large} entries (extrapolated)"),
    ]  # fmt: skip


def stage_e2e(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_e2e

    f = bench_e2e.main(argv)
    n = int(f["readers"])
    exact = f["readers_one_message"] == n
    return f, [
        Row("end to end", f"daily run, {n} readers", f["total_s"], "s", f["baseline_extrapolated_s"], "<= 120 s",
            f["total_s"] <= 120, f"fetch {f['fetch_s']:.1f} s + run {f['run_s']:.1f} s; baseline: concurrency 1, "
            f"{f['baseline_readers']} readers, extrapolated"),
        Row("end to end", "peak RSS", f["peak_rss_mb"], "MB", None, "<= 1024 MB", f["peak_rss_mb"] <= 1024),
        Row("end to end", "readers with exactly one message", f["readers_one_message"], "readers", None, f"= {n}",
            exact),
    ]  # fmt: skip


def stage_steady(argv: list[str]) -> tuple[Any, list[Row]]:
    import bench_steady

    f = bench_steady.main(argv)
    ours, base = f["ours"], f["release"] or {}
    n = ours["stored_before_last_day"]
    t = bench_steady.TARGETS
    return f, [
        Row("steady state", f"last day's fetch at {n} stored entries", ours["last_fetch_s"], "s",
            base.get("last_fetch_s"), f"<= {t['last_fetch_s']:g} s", ours["last_fetch_s"] <= t["last_fetch_s"],
            f"`newsletter fetch` wall time (CPU {ours['last_fetch_cpu_s']:.1f} s vs "
            f"{base.get('last_fetch_cpu_s') or float('nan'):.1f} s); baseline: the release's TinyDB store, same run"),
        Row("steady state", "`newsletter status`", ours["status_s"], "s", base.get("status_s"),
            f"<= {t['status_s']:g} s", ours["status_s"] <= t["status_s"],
            f"CPU {ours['status_cpu_s']:.2f} s vs {base.get('status_cpu_s') or float('nan'):.2f} s; "
            f"interpreter + imports alone: CPU {ours['import_cpu_s']:.2f} s"),
        Row("steady state", "data folder", ours["folder_mb"], "MB", base.get("folder_mb"),
            f"<= {t['folder_mb']:g} MB", ours["folder_mb"] <= t["folder_mb"],
            "ours with a 768-byte embedding per entry; the release stores none"),
        *[row for d in ours["daily"] for row in _daily_rows(d, base.get("daily") or [])],
    ]  # fmt: skip


def _daily_rows(d: dict[str, Any], release: list[dict[str, Any]]) -> list[Row]:
    """The daily run on the month-old folder: wall time against the target, per-reader cost, RSS."""
    n = int(d["readers"])
    target_s, target_mb = (120.0, 800.0) if n <= 10_000 else (900.0, 2048.0)
    b = release[0] if release else {}
    per = f"{d['run_s'] / n * 1000:.1f} ms per reader"
    if b:
        per += f"; the release: {b['run_s'] / b['readers'] * 1000:.1f} ms per reader at {b['readers']} readers"
    return [
        Row("steady state", f"daily run, {n} readers, month-old store", d["run_s"], "s", None, f"<= {target_s:g} s",
            d["run_s"] <= target_s, f"CPU {d['run_cpu_s']:.0f} s, {d['messages']} messages; {per}"),
        Row("steady state", f"peak RSS, {n} readers", d["run_rss_mb"], "MB", b.get("run_rss_mb"),
            f"<= {target_mb:g} MB", d["run_rss_mb"] <= target_mb,
            f"data folder after the run {d['folder_after_run_mb']:.0f} MB"),
    ]  # fmt: skip


RUNNERS: dict[str, Callable[[list[str]], tuple[Any, list[Row]]]] = {
    "parse": stage_parse,
    "rank": stage_rank,
    "quality": stage_quality,
    "render": stage_render,
    "mjml": stage_mjml,
    "send": stage_send,
    "ledger": stage_ledger,
    "store": stage_store,
    "e2e": stage_e2e,
    "steady": stage_steady,
}


# -- the table -------------------------------------------------------------------------------


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if float(v).is_integer() and abs(v) >= 10:
        return f"{v:,.0f}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def table(rows: list[Row]) -> list[str]:
    """The summary as aligned text lines (also valid as a Markdown table)."""
    head = ["stage", "figure", "value", "baseline", "ratio", "target", "met"]
    body = []
    for r in rows:
        met = {True: "met", False: "MISSED", None: "-"}[r.met]
        ratio = f"{r.ratio:.1f}x" if r.ratio is not None else "-"
        body.append([r.stage, r.figure, f"{_num(r.value)} {r.unit}".strip(), _num(r.baseline), ratio, r.target, met])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    right = {2, 3, 4}

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i in right else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return [line(head), rule, *(line(b) for b in body)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"default {DEFAULT_JSON.relative_to(HERE.parent)}")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=STAGES, help="run only these")
    args = ap.parse_args(argv)

    started = datetime.now(UTC)
    load_before = load_average()
    results: dict[str, Any] = {}
    rows: list[Row] = []
    for name in args.stages:
        stage_argv = SIZES[args.size][name]
        print(f"\n=== {name}: {' '.join(stage_argv)}", flush=True)
        t0 = time.perf_counter()
        try:
            figures, stage_rows = RUNNERS[name](list(stage_argv))
        except (Exception, SystemExit) as e:  # one broken stage must not hide the others' figures
            buf = io.StringIO()
            traceback.print_exc(file=buf)
            print(buf.getvalue(), file=sys.stderr)
            results[name] = {"error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
            rows.append(Row(name, "ERROR", None, "", note=f"{type(e).__name__}: {e}"[:200], met=False))
            continue
        results[name] = {"figures": _plain(figures), "argv": stage_argv, "seconds": time.perf_counter() - t0}
        if args.size != "full":  # the targets are set for the full size only
            stage_rows = [dataclasses.replace(r, met=None) for r in stage_rows]
        rows.extend(stage_rows)

    report = {
        "size": args.size,
        "started": started.isoformat(timespec="seconds"),
        "seconds": (datetime.now(UTC) - started).total_seconds(),
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "stages": results,
        "table": [{**_plain(r), "ratio": r.ratio} for r in rows],
    }
    m = report["machine"]
    print(f"\n=== summary ({args.size}), {m['cpu']}, {m['usable_cores']} cores, {m['ram_gb']} GB RAM, "
          f"Python {m['python']}; load average {load_before} before, {report['load_average_after']} after")  # fmt: skip
    for line in table(rows):
        print(line)
    notes = [f"  {r.stage} / {r.figure}: {r.note}" for r in rows if r.note]
    if args.size != "full":
        notes.insert(0, "  targets apply to the full size only: nothing is judged at this size")
    if notes:
        print("notes:\n" + "\n".join(notes))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"figures written to {args.json}")
    return report


if __name__ == "__main__":
    main()
