"""Logging: readable lines by default, JSON lines with a run id on request."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLES

from newsletter import logs
from newsletter.errors import FetchError
from newsletter.types import DeliveryResult, DeliveryStatus, RunReport, SourceResult

REPORT = RunReport(
    sources=(SourceResult("arxiv", new=3), SourceResult("blog", error=FetchError("HTTP 503: try later"))),
    deliveries=(
        DeliveryResult("ada", DeliveryStatus.SENT, "2026-11-23", items=3),
        DeliveryResult("grace", DeliveryStatus.SKIPPED, "2026-11-23", detail="nothing new matched"),
        DeliveryResult("alan", DeliveryStatus.UNCERTAIN, "2026-W48", detail="connection lost"),
    ),
)


def log_as_a_run_does(report: RunReport) -> None:
    """Sources and deliveries are logged as they happen (by the app); the report adds the totals."""
    logs.log_sources(report.sources)
    logs.log_deliveries(report.deliveries)
    logs.log_report(report)


def test_human_lines_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    out = io.StringIO()
    logs.setup(stream=out)
    log_as_a_run_does(REPORT)
    text = out.getvalue()
    assert "source arxiv: 3 new" in text
    assert "WARNING source blog failed: HTTP 503" in text
    assert "reader grace: skipped for 2026-11-23 (nothing new matched)" in text
    assert "WARNING reader alan: uncertain" in text
    assert not text.lstrip().startswith("{")


def test_json_lines_with_one_run_id_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for flag, env in ((True, ""), (None, "json")):
        monkeypatch.setenv(logs.ENV_FORMAT, env)
        out = io.StringIO()
        run_id = logs.setup(flag, stream=out)
        log_as_a_run_does(REPORT)
        records = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(records) == 6
        assert {r["run_id"] for r in records} == {run_id}
        sent = next(r for r in records if r.get("reader") == "ada")
        assert sent["status"] == "sent" and sent["level"] == "info" and sent["period"] == "2026-11-23"
        assert records[-1]["msg"].startswith("run done: 2 sources, 3 readers, 1 sent")


def test_setup_twice_does_not_double_lines() -> None:
    first, second = io.StringIO(), io.StringIO()
    a = logs.setup(stream=first)
    b = logs.setup(stream=second)
    logs.get("x").info("hello")
    assert a != b
    assert first.getvalue() == "" and second.getvalue().count("hello") == 1


@pytest.mark.slow
def test_newsletter_run_logs_its_steps_as_json(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "ada.toml").write_text((SAMPLES / "profiles" / "ada.toml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "run", "--now", "--log-json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {r["source"] for r in records if r.get("event") == "fetch"} == {"arxiv-sample", "hf-sample"}
    assert [r["reader"] for r in records if r.get("event") == "deliver"] == ["ada"]
    assert records[-1]["event"] == "run"
    assert len({r["run_id"] for r in records}) == 1
    assert "outbox" in result.stdout  # the report still goes to stdout
