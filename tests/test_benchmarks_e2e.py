"""The end-to-end and store benchmarks and the one entry point, at tiny sizes.

These check that the benchmarks work and count right, never how fast anything
is: the full size is run by hand (``python benchmarks/run.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import bench_e2e
import bench_store
import pytest
import run as bench_run
from sendgrid_server import SendGridServer


@pytest.mark.slow
def test_e2e_tiny_every_reader_gets_exactly_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    f = bench_e2e.main(["--readers", "12", "--entries", "30", "--latency", "0.01", "--baseline", "3"])
    assert (f["readers_one_message"], f["readers_no_message"], f["readers_several_messages"]) == (12, 0, 0)
    assert f["sent_lines"] == 12
    assert f["baseline_readers"] == 3
    assert 0 < f["fetch_s"] < f["total_s"]
    assert f["peak_rss_mb"] >= max(f["fetch_rss_mb"], f["run_rss_mb"]) > 20  # a Python child, not the parent's 0
    assert "12 of 12" in capsys.readouterr().out


def test_per_recipient_tells_missing_and_repeated_messages_apart(tmp_path: Path) -> None:
    db = tmp_path / "accepted.sqlite3"
    with SendGridServer(db) as server:
        for to in ["a@example.org", "b@example.org", "b@example.org", "stranger@example.org"]:
            server.record({"personalizations": [{"to": [{"email": to}]}]}, answered=True)
    wanted = {"a@example.org", "b@example.org", "c@example.org"}
    assert bench_e2e.per_recipient(db, wanted) == (1, 1, 1)


def test_profile_summary_splits_main_thread_phases_and_job_time() -> None:
    main = "<module> (/x/newsletter/__main__.py:1);App.run (/x/newsletter/pipeline.py:5)"
    job = "_bootstrap (/usr/lib/python3.12/threading.py:1);App.deliver.<locals>.job (/x/newsletter/pipeline.py:9)"
    raw = "\n".join(
        [
            f"{main};App.deliver (/x/newsletter/pipeline.py:8);acquire (/usr/lib/python3.12/threading.py:2) 75",
            f"{main};App.write_feeds (/x/newsletter/pipeline.py:20) 25",
            f"{job};Ledger.claim (/x/newsletter/ledger.py:3);Ledger._tx (/x/newsletter/ledger.py:4) 60",
            f"{job};send (/v/site-packages/sendgrid/c.py:7) 40",
            "_bootstrap (/usr/lib/python3.12/threading.py:1);get (/usr/lib/python3.12/queue.py:3) 500",
        ]
    )
    text = bench_e2e.summarise_profile(raw, top=5)
    assert "(2.0 s sampled at 50 Hz)" in text
    assert " 75.0%      1.5 s  App.deliver" in text
    assert " 25.0%      0.5 s  App.write_feeds" in text
    assert "delivery jobs: 2 thread-seconds" in text  # the idle pool thread is not counted
    assert " 60.0%  Ledger._tx (newsletter/ledger.py)" in text
    assert " 40.0%  send (sendgrid/c.py)" in text
    assert "100.0%  App.deliver.<locals>.job (newsletter/pipeline.py)" in text


def test_gil_summary_attributes_samples_to_threads_and_functions() -> None:
    main = "<module> (/x/newsletter/__main__.py:1);App.run (/x/newsletter/pipeline.py:5)"
    job = "_bootstrap (/usr/lib/python3.12/threading.py:1);App.deliver.<locals>.job (/x/newsletter/pipeline.py:9)"
    raw = "\n".join(
        [
            f"{main};App.deliver (/x/newsletter/pipeline.py:8);Index.rank_many (/x/newsletter/match.py:2) 30",
            f"{job};build_message (/x/newsletter/delivery.py:4);body_encode (/usr/lib/python3.12/email/q.py:1) 50",
            "_bootstrap (/usr/lib/python3.12/threading.py:1);serve (/v/site-packages/other/s.py:3) 20",
        ]
    )
    text = bench_e2e.summarise_gil(raw, top=5)
    assert "holding the GIL: 2.0 s" in text
    assert " 50.0%      1.0 s  delivery jobs" in text
    assert " 30.0%      0.6 s  main thread: App.deliver" in text
    assert " 20.0%      0.4 s  other threads" in text
    assert " 50.0%  body_encode (email/q.py)" in text
    assert " 50.0%  build_message (newsletter/delivery.py)" in text


@pytest.mark.slow
def test_store_tiny_counts_and_reports_growth(capsys: pytest.CaptureFixture[str]) -> None:
    f = bench_store.main(["--sizes", "100", "20", "--sample", "10"])
    assert f["sizes"] == [20, 100]
    assert set(f["growth"]) == {"entries", "profiles", "ledger", "naive insert"}
    assert all(g > 0 for g in f["growth"].values())
    assert f["worst_growth"] == max(f["growth"][k] for k in ("entries", "profiles", "ledger"))
    assert all(f["seconds"]["100"][k] > 0 for k in ("entries", "profiles", "ledger"))
    assert "naive TinyDB insert()" in capsys.readouterr().out


def test_store_checks_what_it_wrote(tmp_path: Path) -> None:
    seconds = bench_store.ours(tmp_path / "data", 30)
    assert set(seconds) == {"entries", "profiles", "ledger"}
    per_insert, timed = bench_store.naive(tmp_path, 30, 10)
    assert timed == 10 and per_insert > 0


@pytest.mark.slow
def test_run_tiny_writes_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "latest.json"
    report = bench_run.main(["--size", "tiny", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["size"] == "tiny" and saved == json.loads(json.dumps(report, default=str))
    assert set(saved["stages"]) == set(bench_run.STAGES)
    errors = {k: v["error"] for k, v in saved["stages"].items() if "error" in v}
    assert not errors
    assert {"cpu", "cores", "ram_gb", "python"} <= set(saved["machine"])
    stages = {row["stage"] for row in saved["table"]}
    assert {"parse", "rank", "render", "send", "store", "end to end", "steady state"} <= stages
    assert all(row["met"] is None for row in saved["table"])  # targets judge the full size only
    e2e = saved["stages"]["e2e"]["figures"]
    assert e2e["readers_one_message"] == e2e["readers"] == 20
    steady = saved["stages"]["steady"]["figures"]
    # two days grown through the fetch path, by this checkout and by the release, then the third fetched
    assert steady["ours"]["stored_before_last_day"] == steady["release"]["stored_before_last_day"] == 100
    assert steady["ours"]["fetch_output"][0].split()[:3] == ["arxiv-steady", "ok", "50"]  # 50 new on the last day
    # then the daily run on the grown folder: every reader one message, ours and the release's
    assert [(d["readers"], d["messages"]) for d in steady["ours"]["daily"]] == [(20, 20)]
    assert [(d["readers"], d["messages"]) for d in steady["release"]["daily"]] == [(10, 10)]
    printed = capsys.readouterr().out
    assert "| stage" in printed and "end to end" in printed


def test_ratio_points_the_better_way() -> None:
    assert bench_run.Row("s", "time", 2.0, "s", 10.0).ratio == 5.0
    assert bench_run.Row("s", "rate", 10.0, "emails/s", 2.0).ratio == 5.0
    assert bench_run.Row("s", "no baseline", 1.0, "MB").ratio is None
    lines = bench_run.table([bench_run.Row("send", "10000 digests", 31.5, "s", 1200.0, "<= 60 s", True)])
    assert lines[2].startswith("| send ") and "38.1x" in lines[2] and "met" in lines[2]
