"""`newsletter serve` and `newsletter status`: scheduler wiring, the lock, signals, HTTP.

The process tests start the real command (uvicorn on 127.0.0.1, a free port)
and talk to it over HTTP and SMTP; they wait on events, never on the clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from servekit import Clock, SMTPServer, free_port, make_settings, write_config, write_feed, write_reader

from newsletter.cli import cli
from newsletter.config import load_settings
from newsletter.delivery import Tokens, load_secret
from newsletter.ledger import Ledger
from newsletter.pipeline import make_app
from newsletter.serve import FETCH_JOB, TICK_JOB, Service, build_scheduler
from newsletter.store import Store
from newsletter.types import DeliveryStatus


def test_scheduler_has_a_utc_fetch_cron_and_a_minute_tick_with_fixed_ids(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings = settings.model_copy(update={"schedule": settings.schedule.model_copy(update={"fetch_at": "02:15"})})
    with make_app(settings) as app:
        scheduler = build_scheduler(Service(app), settings)
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {FETCH_JOB, TICK_JOB}
        after = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
        assert jobs[FETCH_JOB].trigger.get_next_fire_time(None, after) == datetime(2026, 3, 30, 2, 15, tzinfo=UTC)
        assert jobs[TICK_JOB].trigger.interval == timedelta(minutes=1)
        # a restart re-adds the same ids: replaced, never duplicated
        scheduler.start(paused=True)
        try:
            scheduler.add_job(print, jobs[TICK_JOB].trigger, id=TICK_JOB, replace_existing=True)
            assert sorted(job.id for job in scheduler.get_jobs()) == [FETCH_JOB, TICK_JOB]
        finally:
            scheduler.shutdown(wait=False)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config folder with one good and one missing source and two readers."""
    write_config(tmp_path)
    config = tmp_path / "newsletter.toml"
    config.write_text(config.read_text() + '\n[[sources]]\nname = "gone"\nkind = "feed"\npath = "gone.xml"\n')
    write_reader(tmp_path / "profiles", "ada", "Europe/Berlin", "07:30")
    ada = (tmp_path / "profiles" / "ada.toml").read_text()
    bob = ada.replace("quantization", "basket weaving").replace("ada@", "bob@")
    (tmp_path / "profiles" / "bob.toml").write_text(bob)
    write_feed(tmp_path / "lab.xml", [date(2026, 11, 22)])
    return config


def test_status_shows_sources_skipped_readers_and_works_while_locked(site: Path) -> None:
    settings = load_settings(site)
    clock = Clock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    with make_app(settings, clock=clock) as app:
        app.fetch()
        app.fetch()
        Service(app).tick()
        # `serve` holds the lock right now; status must still answer
        result = CliRunner().invoke(cli, ["--config", str(site), "status"], obj={"clock": clock})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "source     lab: ok, last fetch 2026-11-23 09:00 UTC" in out
    assert "source     gone: FAILING 2 times in a row (last success never)" in out
    assert "skipped    bob 2026-11-23: nothing new matched" in out
    assert "last send  2026-11-23 09:00 UTC" in out

    data = json.loads(CliRunner().invoke(cli, ["--config", str(site), "status", "--json"], obj={"clock": clock}).output)
    assert data["healthy"] is True
    assert [s["name"] for s in data["sources"] if s["failures"]] == ["gone"]


def test_status_exits_1_when_every_source_fails(site: Path) -> None:
    (site.parent / "lab.xml").unlink()
    with make_app(load_settings(site)) as app:
        app.fetch()
        app.fetch()  # failing = two in a row
    result = CliRunner().invoke(cli, ["--config", str(site), "status"])
    assert result.exit_code == 1
    assert "Error: every source is failing" in result.output


def test_serve_refuses_a_data_folder_in_use(site: Path) -> None:
    settings = load_settings(site)
    with Store(settings.paths.data_dir):  # another process's lock, as far as serve can tell
        result = CliRunner().invoke(cli, ["--config", str(site), "serve", "--port", str(free_port())])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: another newsletter process is using")


# -- the real process -----------------------------------------------------------------------


class Serve:
    """`newsletter serve` in a subprocess, its stderr collected line by line."""

    def __init__(self, config: Path, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self._seen = threading.Condition()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(port)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        with self._seen:
            ok = self._seen.wait_for(
                lambda: any(text in line for line in self.lines) or self.proc.poll() is not None, timeout
            )
        assert ok and any(text in line for line in self.lines), "".join(self.lines)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def smtp_held() -> Iterator[SMTPServer]:
    with SMTPServer(hold=True) as server:
        yield server


@pytest.mark.slow
def test_sigterm_during_a_send_finishes_and_records_it(tmp_path: Path, smtp_held: SMTPServer) -> None:
    config = write_config(tmp_path, smtp_held.port, concurrency=1)
    write_feed(tmp_path / "lab.xml", [date.today()])
    for reader in ("ada", "grace"):
        write_reader(tmp_path / "profiles", reader, "UTC", "00:00")
    server = Serve(config, free_port())
    try:
        assert smtp_held.arrived.wait(60), "".join(server.lines)  # one digest is in flight, held by the server
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for("stopping")  # the HTTP side is down; the send is still in flight
        smtp_held.release.set()
        assert server.proc.wait(timeout=60) == 0, "".join(server.lines)
    finally:
        server.kill()
    ledger = Ledger(load_settings(config).paths.data_dir)
    try:
        rows = ledger.rows()
    finally:
        ledger.close()
    assert [r.status for r in rows] == [DeliveryStatus.SENT]  # finished and recorded; nothing new started
    assert len(smtp_held.messages) == 1
    assert rows[0].reader in smtp_held.digests()[0]


@pytest.mark.slow
def test_serve_end_to_end_feeds_healthz_and_a_second_serve(tmp_path: Path) -> None:
    pytest.importorskip("newsletter.web")
    config = write_config(tmp_path)
    write_feed(tmp_path / "lab.xml", [date.today()])
    write_reader(tmp_path / "profiles", "ada", "UTC", "00:00")
    port = free_port()
    server = Serve(config, port)
    try:
        server.wait_for("serving on")
        settings = load_settings(config)
        base = f"http://127.0.0.1:{port}"
        outbox = settings.paths.outbox_dir
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(600):  # the first tick runs at start; wait for its digest to land
                if list(outbox.glob("*/ada.eml")):
                    break
                threading.Event().wait(0.1)
            assert list(outbox.glob("*/ada.eml")), "".join(server.lines)
            token = Tokens(load_secret(settings.paths.data_dir)).feed("ada")
            feed = http.get(f"/feeds/{token}.xml")
            assert feed.status_code == 200 and "quantization" in feed.text
            again = http.get(f"/feeds/{token}.xml", headers={"If-None-Match": feed.headers["ETag"]})
            assert again.status_code == 304
            health = http.get("/healthz")
            assert health.status_code == 200
            assert "lab" in health.text

        second = subprocess.run(
            [sys.executable, "-m", "newsletter", "--config", str(config), "serve", "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"Error: another newsletter process is using {settings.paths.data_dir}; wait for it to finish "
            "or stop it (only one process may write the data folder)"
        ]
        assert server.stop() == 0, "".join(server.lines)
    finally:
        server.kill()


def test_sigterm_during_run_finishes_the_send_in_flight_and_records_it(tmp_path: Path, smtp_held: SMTPServer) -> None:
    """systemd stops `newsletter run` with SIGTERM: like SIGINT, the send in flight finishes and is recorded."""
    config = write_config(tmp_path, smtp_held.port, concurrency=1)
    write_feed(tmp_path / "lab.xml", [date.today()])
    for reader in ("ada", "grace"):
        write_reader(tmp_path / "profiles", reader, "UTC", "00:00")
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "run", "--now"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert smtp_held.arrived.wait(60), "one digest is in flight, held by the server"
        proc.send_signal(signal.SIGTERM)
        threading.Timer(1.0, smtp_held.release.set).start()  # the server answers after the signal landed
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    ledger = Ledger(load_settings(config).paths.data_dir)
    try:
        rows = ledger.rows()
    finally:
        ledger.close()
    assert [r.status for r in rows] == [DeliveryStatus.SENT], out  # recorded as sent, not left "sending"
    assert len(smtp_held.messages) == 1, "no new send started after the signal"
    assert "not sent: the run was stopped; the next run sends it" in out
