"""Papers embedded per second by the shipped int8 ONNX model, next to a naive same-run baseline.

    python benchmarks/bench_embed.py [--size 2000] [--tokens 256] [--compare 334] [--baseline 100]

Builds a *size*-paper day from the bundled arXiv fixture (parsed with
:func:`newsletter.sources.parse_arxiv`, cycled, each copy's abstract
sentences rotated and its title numbered, so no two texts are the same), then
measures in one run:

* load: :class:`newsletter.embed.OnnxEmbedder` construction (sha256 check,
  tokenizer, onnxruntime session);
* the day: all *size* papers through ``embed`` (sorted by length, batched)
  at *tokens*; papers/s, wall time; target: 2,000 papers in 60 s on 2 cores;
* baseline: the first *baseline* papers one call each (batch size 1,
  unsorted), the naive way;
* truncation: the fixture's first *compare* unique papers at 128, 192 and
  256 tokens: papers/s and the mean cosine of each to the 256-token
  embedding (how much a shorter limit changes the vectors);
* CPU seconds of the day's run (all threads): on a busy machine wall time
  says more about the neighbours than about us;
* peak RSS of the process (``ru_maxrss``) right after the day, before the
  comparison loads more sessions, and its growth over the RSS before the
  model was loaded.

The machine is shared: compare the ratios of one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import re
import resource
import time
from importlib import resources
from pathlib import Path

import numpy as np

from newsletter.embed import DEFAULT_BATCH, OnnxEmbedder, paper_text
from newsletter.sources import parse_arxiv

TOKENS = (128, 192, 256)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def fixture_texts() -> list[str]:
    """The bundled fixture's papers as the product embeds them."""
    return [paper_text(p.title, p.summary) for p in parse_arxiv("bench", _fixture_bytes())]


def build_day(size: int) -> list[str]:
    """*size* paper texts: the fixture cycled, copy *k* with its sentences rotated by *k* and numbered."""
    papers = [(p.title, p.summary) for p in parse_arxiv("bench", _fixture_bytes())]
    out = []
    for n in range(size):
        title, abstract = papers[n % len(papers)]
        k = n // len(papers)
        if k:
            sentences = _SENTENCE.split(abstract)
            shift = k % len(sentences)
            abstract = " ".join(sentences[shift:] + sentences[:shift])
            title = f"{title} (part {k + 1})"
        out.append(paper_text(title, abstract))
    return out


def _fixture_bytes() -> bytes:
    return Path(str(resources.files("newsletter") / "samples" / "arxiv_cs.rss")).read_bytes()


def _rss_mb() -> float:
    """The current resident set, from /proc (Linux); 0 elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * resource.getpagesize() / 2**20


def main(
    size: int = 2000, tokens: int = 256, compare: int = 334, baseline: int = 100, batch: int = DEFAULT_BATCH
) -> dict[str, float]:
    """Run the benchmark, print a small table, return the figures."""
    day = build_day(size)
    if len(set(day)) != size:
        raise SystemExit(f"expected {size} distinct texts, got {len(set(day))}")
    rss_before = _rss_mb()
    start = time.perf_counter()
    model = OnnxEmbedder(max_tokens=tokens, batch_size=batch)
    load_s = time.perf_counter() - start

    start, cpu = time.perf_counter(), time.process_time()
    vectors = model.embed(day)
    day_s, day_cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before other sessions are loaded
    if vectors.shape != (size, model.dim) or not np.isfinite(vectors).all():
        raise SystemExit(f"bad embeddings: shape {vectors.shape}")

    subset = day[:baseline]
    start = time.perf_counter()
    for text in subset:
        model.embed([text])
    naive_s = time.perf_counter() - start

    sample = fixture_texts()[:compare]
    by_tokens: dict[int, tuple[float, np.ndarray]] = {}
    for limit in TOKENS:
        embedder = model if limit == tokens else OnnxEmbedder(max_tokens=limit, batch_size=batch)
        start = time.perf_counter()
        vecs = embedder.embed(sample)
        by_tokens[limit] = (len(sample) / (time.perf_counter() - start), vecs)

    figures = {
        "papers": float(size),
        "load_s": load_s,
        "day_s": day_s,
        "ours_per_s": size / day_s,
        "day_cpu_s": day_cpu,
        "baseline_papers": float(len(subset)),
        "baseline_per_s": len(subset) / naive_s,
        "peak_rss_mb": peak_mb,
        "rss_growth_mb": peak_mb - rss_before,
    }
    reference = by_tokens[256][1]
    for limit, (rate, vecs) in by_tokens.items():
        figures[f"per_s_{limit}"] = rate
        figures[f"cosine_to_256_{limit}"] = float(np.mean(np.sum(vecs * reference, axis=1)))

    verdict = "met" if day_s * 2000 / size <= 60 else "NOT met"
    print(f"{size} papers at {tokens} tokens, batch {batch}, {model.name}")
    print(f"  load (sha256 check + session)         {load_s:8.2f} s")
    print(f"  batch 1, unsorted (baseline, {len(subset):>4} papers) {figures['baseline_per_s']:8.1f} papers/s")
    print(
        f"  sorted by length, batched             {figures['ours_per_s']:8.1f} papers/s  ({day_s:.1f} s;"
        f" 2,000 papers in {day_s * 2000 / size:.0f} s, target 60 s: {verdict})"
    )
    print(f"  CPU time of the day (all threads)     {day_cpu:8.1f} s  ({size / day_cpu:.1f} papers per CPU-second)")
    print(f"  peak RSS after the day               {peak_mb:8.0f} MB  (+{figures['rss_growth_mb']:.0f} MB over start)")
    print(f"truncation, {len(sample)} fixture papers: papers/s and mean cosine to the 256-token embedding")
    for limit in TOKENS:
        rate, cosine = figures[f"per_s_{limit}"], figures[f"cosine_to_256_{limit}"]
        print(f"  {limit:3d} tokens  {rate:8.1f} papers/s  cosine {cosine:.4f}")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000, help="papers in the day")
    parser.add_argument("--tokens", type=int, default=256, choices=TOKENS, help="token limit of the day's run")
    parser.add_argument("--compare", type=int, default=334, help="fixture papers for the truncation comparison")
    parser.add_argument("--baseline", type=int, default=100, help="papers embedded one at a time")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--tiny", action="store_true", help="a few papers only: checks that it runs")
    args = parser.parse_args()
    if args.tiny:
        main(size=40, tokens=args.tokens, compare=8, baseline=4, batch=args.batch)
    else:
        main(args.size, args.tokens, args.compare, args.baseline, args.batch)
