"""Sending N digests to a local SendGrid endpoint: concurrent vs one at a time.

The endpoint (tests/sendgrid_server.py, in its own process) answers after an
injected latency, as the real API does (100-300 ms).  Each send does what the
pipeline does per reader: build the outgoing message, claim the ledger row
durably (group commit), build the v3 payload with the ``sendgrid`` helpers and
post it over the backend's pooled keep-alive client, mark it sent.  Besides
wall time it prints the sender process's CPU per send (the figure that moves
least on a shared machine) and the sends/s as a share of what the latency
allows (concurrency / latency).
Ranking and rendering are not measured here (one email is rendered up front).
The one-at-a-time baseline is measured on a subsample in the same run and
extrapolated.

    python benchmarks/bench_send.py                  # 10,000 digests, 100 ms latency
    python benchmarks/bench_send.py --readers 1000 --concurrency 32
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from newsletter.delivery import Pacer, SendGridSender, build_message
from newsletter.ledger import Ledger
from newsletter.types import RenderedEmail

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "SG.test-key"
NOW = datetime(2026, 11, 23, 7, 30, tzinfo=UTC)
CPU: dict[int, float] = {}
"""Process CPU seconds of each :func:`send_all` call, by its *start*."""


def start_server(db: Path, latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "sendgrid_server.py"), "--db", str(db), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the SendGrid test server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def email_for(i: int, html: str) -> RenderedEmail:
    return RenderedEmail(
        to=f"r{i:05d}@example.org",
        to_name=f"Reader {i}",
        subject="Your papers",
        preheader="",
        html=html,
        text=html[:8000],
    )


def send_all(host: str, data_dir: Path, start: int, count: int, concurrency: int, html: str) -> float:
    """Send *count* digests with *concurrency* in flight; returns seconds."""
    ledger = Ledger(data_dir)
    sender = SendGridSender(API_KEY, host=host, timeout=30, sandbox=False, pacer=Pacer(3, 0.2, 60))
    slots = threading.BoundedSemaphore(concurrency * 2)
    failures: list[str] = []

    def job(i: int) -> None:
        try:
            reader = f"r{i:05d}"
            msg = build_message(
                email_for(i, html),
                reader=reader,
                period="2026-11-23",
                from_address="digest@example.org",
                from_name="Digest",
                unsubscribe_url=f"https://news.example.org/unsubscribe/{reader}",
                list_id="digest",
                now=NOW,
            )
            if ledger.claim(reader, "2026-11-23", [f"arxiv:{i}"], sender.name, NOW):
                ledger.mark_sent(reader, "2026-11-23", sender.send(msg).message_id, NOW)
        except Exception as e:  # counted and reported, the benchmark goes on
            failures.append(repr(e))
        finally:
            slots.release()

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i in range(start, start + count):
            slots.acquire()
            pool.submit(job, i)
    elapsed = time.perf_counter() - t0
    CPU[start] = time.process_time() - cpu0
    ledger.close()
    sender.close()
    if failures:
        raise RuntimeError(f"{len(failures)} sends failed, e.g. {failures[0]}")
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100, help="one-at-a-time sends measured, then extrapolated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--html-kb", type=int, default=60)
    args = parser.parse_args(argv)
    html = ("<p>" + "A paper about post-training quantization. " * 24 + "</p>\n") * max(1, args.html_kb * 1024 // 1060)

    with tempfile.TemporaryDirectory() as tmp:
        server, host = start_server(Path(tmp) / "accepted.sqlite3", args.latency)
        try:
            base = send_all(host, Path(tmp) / "base", 10**6, args.baseline, 1, html)
            conc = send_all(host, Path(tmp) / "conc", 0, args.readers, args.concurrency, html)
        finally:
            server.terminate()
            server.wait()
    per_send = base / args.baseline
    extrapolated = per_send * args.readers
    figures = {
        "readers": args.readers,
        "concurrent_s": conc,
        "baseline_per_send_s": per_send,
        "baseline_extrapolated_s": extrapolated,
        "speedup": extrapolated / conc,
        "cpu_ms_per_send": CPU[0] / args.readers * 1000,
        "share_of_limit": args.readers / conc / (args.concurrency / args.latency),
    }
    print(f"{args.readers} digests, {args.latency * 1000:.0f} ms latency, ~{len(html) // 1024} KB HTML each")
    print(f"  one at a time : {per_send * 1000:7.1f} ms/send (measured on {args.baseline}) -> {extrapolated:8.1f} s")
    print(
        f"  concurrency {args.concurrency:<3}: {conc:8.1f} s  ({args.readers / conc:.0f} sends/s, "
        f"{figures['share_of_limit']:.0%} of the {args.concurrency / args.latency:.0f}/s the latency allows; "
        f"target >= 60%)"
    )
    print(f"  sender CPU    : {figures['cpu_ms_per_send']:.2f} ms per send (all threads)")
    print(f"  speed-up      : {figures['speedup']:.1f}x  (targets: <= 60 s and >= 15x)")
    return figures


if __name__ == "__main__":
    main()
