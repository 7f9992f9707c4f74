"""Personalised emails per second, compiled-once MJML vs compile-per-email.

    python benchmarks/bench_render.py [--readers 2000] [--items 25] [--baseline 5]

Each reader gets a different 25-paper digest (drawn from the bundled sample
papers, with their own name, reasons and links), rendered to HTML + text on
one core.  The baseline, measured in the same run, is what a naive renderer
does: run MJML on a template for every email.  Also prints the HTML bytes of a
25-item email (Gmail clips above 102 KB; the target is 80 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from importlib import resources
from pathlib import Path

import mjml

from newsletter.render import ReaderLinks, Renderer
from newsletter.types import Digest, Entry, Interests, Keyword, Match, Profile, Reason, ReasonKind

NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)


def sample_entries() -> list[Entry]:
    path = Path(str(resources.files("newsletter") / "samples" / "hf_daily_papers.json"))
    out = []
    for i, item in enumerate(json.loads(path.read_text())):
        p = item["paper"]
        out.append(
            Entry(
                id=f"arxiv:{p['id']}",
                title=p["title"],
                summary=p["summary"],
                link=f"https://arxiv.org/abs/{p['id']}",
                first_seen=NOW - timedelta(minutes=i),
                authors=tuple(a["name"] for a in p["authors"]),
                categories=("cs.LG", "cs.CL"),
                arxiv_id=p["id"],
                code_url=f"https://github.com/example/r{i}" if i % 3 == 0 else None,
            )
        )
    return out


def digests(n_readers: int, items: int, seed: int = 1) -> list[tuple[Digest, ReaderLinks]]:
    rng = random.Random(seed)
    pool = sample_entries()
    out = []
    for r in range(n_readers):
        prof = Profile(
            id=f"reader{r}",
            email=f"reader{r}@example.org",
            name=f"Reader {r}",
            timezone="UTC",
            send_at=dtime(7, 0),
            frequency="daily",
            interests=Interests(keywords=(Keyword("quantization"), Keyword(f"topic {r % 17}"))),
        )
        matches = tuple(
            Match(e, 1.0, (Reason(ReasonKind.KEYWORD, f'"topic {r % 17}" in abstract', f"topic {r % 17}"),))
            for e in rng.sample(pool, items)
        )
        d = Digest(profile=prof, period="2026-11-23", day=date(2026, 11, 23), matches=matches, generated_at=NOW)
        base = f"https://news.example.org/r/{r}"
        out.append((d, ReaderLinks(base + "/feed.xml", base + "/feed.atom", base + "/unsub", base + "/pause")))
    return out


def compile_per_email(renderer: Renderer, digest: Digest, links: ReaderLinks) -> str:
    """The naive baseline: fill the MJML with Jinja, then run MJML, for every email.

    (Also unsafe: feed text would reach the MJML compiler.  Here only to time it.)
    """
    context = renderer.email_context(digest, links)
    filled = renderer.env.from_string(renderer.source("digest.mjml")).render(context)
    html: str = mjml.mjml_to_html(filled).html
    renderer._template("digest.txt").render(context)
    return html


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=2000)
    ap.add_argument("--items", type=int, default=25)
    ap.add_argument("--baseline", type=int, default=5, help="emails for the compile-per-email baseline")
    args = ap.parse_args(argv)
    work = digests(args.readers, args.items)
    renderer = Renderer()
    t0 = time.perf_counter()
    renderer.compiled("digest.mjml")
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    sizes = [len(renderer.email(d, links).html.encode()) for d, links in work]
    fast_s = time.perf_counter() - t0
    fast_rate = len(work) / fast_s

    t0 = time.perf_counter()
    for d, links in work[: args.baseline]:
        compile_per_email(renderer, d, links)
    base_s = time.perf_counter() - t0
    base_rate = min(args.baseline, len(work)) / base_s

    figures = {
        "emails_per_s": fast_rate,
        "baseline_emails_per_s": base_rate,
        "speedup": fast_rate / base_rate,
        "compile_ms": compile_s * 1000,
        "html_bytes_mean": statistics.mean(sizes),
        "html_bytes_max": max(sizes),
    }
    print(f"{args.items}-item digests, {len(work)} readers, one core, HTML + text part each")
    print(f"  MJML compile (once):            {figures['compile_ms']:8.1f} ms")
    print(f"  compiled once, Jinja per email: {fast_rate:8.0f} emails/s")
    print(f"  compile per email (baseline):   {base_rate:8.1f} emails/s  ({args.baseline} emails)")
    print(f"  speed-up:                       {figures['speedup']:8.0f}x")
    print(f"  HTML per email:                 {figures['html_bytes_mean'] / 1000:8.1f} KB mean, "
          f"{figures['html_bytes_max'] / 1000:.1f} KB max (limit 80 KB, Gmail clips at 102 KB)")  # fmt: skip
    return figures


if __name__ == "__main__":
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    main()
