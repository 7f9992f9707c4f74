"""How fast the command line starts: ``newsletter --version`` and ``--help`` next to a bare interpreter.

    python benchmarks/bench_startup.py [--repeat 15]

Each command runs as its own process, *repeat* times; the table shows the
median wall time of each, next to the same-run baselines:

* ``python -c pass``: the interpreter alone, the floor no CLI can beat;
* ``python -c "import newsletter.pipeline"``: what every command paid before
  the CLI imported its heavy modules lazily (pydantic, numpy, scipy, httpx,
  jinja2, the whole pipeline).

Target (issue 13): ``--version`` and ``--help`` under 0.3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.3


def _timed(cmd: list[str], repeat: int) -> float:
    """Median wall time of *cmd* run *repeat* times (after one warm-up run for the page cache)."""
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def newsletter_command() -> list[str]:
    """The installed console script, or the module through this interpreter."""
    script = Path(sys.executable).parent / "newsletter"
    found = str(script) if script.exists() else shutil.which("newsletter")
    return [found] if found else [sys.executable, "-c", "from newsletter.cli import main; main()"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    cli = newsletter_command()
    figures = {
        "python -c pass": _timed([sys.executable, "-c", "pass"], args.repeat),
        "import newsletter.pipeline (eager baseline)": _timed(
            [sys.executable, "-c", "import newsletter.pipeline"], args.repeat
        ),
        "newsletter --version": _timed([*cli, "--version"], args.repeat),
        "newsletter --help": _timed([*cli, "--help"], args.repeat),
    }
    width = max(map(len, figures))
    print(f"{'command':<{width}}  median wall time ({args.repeat} runs)")
    for name, seconds in figures.items():
        print(f"{name:<{width}}  {seconds:.3f} s")
    worst = max(figures["newsletter --version"], figures["newsletter --help"])
    print(f"target: --version and --help under {TARGET} s: {'met' if worst < TARGET else 'missed'} ({worst:.3f} s)")
    return figures


if __name__ == "__main__":
    main()
