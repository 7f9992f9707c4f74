"""Exactly once under SIGKILL: real `newsletter run` processes, a real local SendGrid.

1,000 readers; the run is killed with SIGKILL at random moments several times
and restarted until it completes.  Then every reader has exactly one send
accepted by the server, or is reported uncertain in the ledger (at most the
sends in flight at each kill), and the store and the ledger are readable.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sendgrid_server import API_KEY, SendGridServer, accepted

from newsletter.config import sample_sources
from newsletter.ledger import Ledger
from newsletter.store import Store
from newsletter.types import DeliveryStatus

READERS = 1000
CONCURRENCY = 8
KILLS = 4

PROFILE = """# reader {i}
email = "r{i:04d}@example.org"
name = "Reader {i}"
timezone = "UTC"
send_at = "07:30"
frequency = "daily"
max_items = 5
skip_empty = false  # everyone gets a digest, so everyone must get exactly one

[interests]
keywords = ["quantization"]
categories = ["cs.LG"]
"""


def write_setup(root: Path, host: str) -> Path:
    profiles = root / "profiles"
    profiles.mkdir()
    for i in range(READERS):
        (profiles / f"r{i:04d}.toml").write_text(PROFILE.format(i=i))
    sources = "\n".join(
        f'[[sources]]\nname = "{s.name}"\nkind = "{s.kind}"\npath = "{s.path}"\n' for s in sample_sources()
    )
    config = root / "newsletter.toml"
    config.write_text(
        f"""[paths]
data_dir = "data"
profiles_dir = "profiles"

[delivery]
backend = "sendgrid"
sendgrid_host = "{host}"
concurrency = {CONCURRENCY}
timeout = 10
backoff = 0.05

[site]
base_url = "https://news.example.org"

{sources}"""
    )
    return config


@pytest.mark.slow
def test_sigkill_at_random_points_never_sends_twice(tmp_path: Path) -> None:
    rng = random.Random(os.environ.get("EXACTLY_ONCE_SEED"))
    with SendGridServer(tmp_path / "accepted.sqlite3", latency=0.01) as server:
        config = write_setup(tmp_path, server.host)
        env = {**os.environ, "SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SECRET": "a test signing key, long enough"}
        cmd = [sys.executable, "-m", "newsletter", "--config", str(config), "run", "--now"]
        kills = 0
        for attempt in range(KILLS + 5):
            log = tmp_path / f"run{attempt}.log"
            with log.open("wb") as err:
                proc = subprocess.Popen(cmd, env=env, stdout=err, stderr=subprocess.STDOUT)
                if kills < KILLS:
                    # Kill once sending is under way: between 1 and 30 more accepted sends.
                    target = len(accepted(server.db_path)) + rng.randint(1, 30)
                    while proc.poll() is None and len(accepted(server.db_path)) < target:
                        time.sleep(0.02)
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                        kills += 1
                    proc.wait()
                    continue
                proc.wait(timeout=240)
            if proc.returncode == 0:
                break
            raise AssertionError(f"run {attempt} failed (exit {proc.returncode}): {log.read_text()[-3000:]}")
        else:
            raise AssertionError(f"the run never completed; last output: {log.read_text()[-3000:]}")
        sends = Counter(digest.partition("/")[0] for digest, _, _ in accepted(server.db_path))

    assert kills == KILLS, [p.read_text()[-500:] for p in sorted(tmp_path.glob("run*.log"))]
    ledger = Ledger(tmp_path / "data")
    rows = {r.reader: r for r in ledger.rows()}
    assert sorted(rows) == [f"r{i:04d}" for i in range(READERS)], "every reader has a ledger row"
    Store(tmp_path / "data", read_only=True).get_entries()  # readable after the kills

    readers = [f"r{i:04d}" for i in range(READERS)]
    twice = [r for r in readers if sends[r] > 1]
    assert twice == [], f"sent twice: {twice[:10]}"
    uncertain = [r for r in readers if rows[r].status is DeliveryStatus.UNCERTAIN]
    for r in readers:
        if rows[r].status is DeliveryStatus.SENT:
            assert sends[r] == 1, r
            assert rows[r].message_id
        else:
            assert rows[r].status is DeliveryStatus.UNCERTAIN, (r, rows[r], sends[r])
    assert len(uncertain) <= KILLS * CONCURRENCY, "at most the sends in flight at each kill"
    assert sum(sends.values()) >= READERS - len(uncertain)
