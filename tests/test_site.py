"""Lost state, interrupted sends and leftovers (issue 14, findings 5, 7 and 8), on real files and processes.

* A deleted ledger or key of a site that ran before is refused with one line
  saying what was lost and how to go on, never silently recreated; read-only
  commands create no file.
* The outbox knows whether its file landed: a kill between the file and the
  ledger's "sent" is settled from the file, not reported uncertain; rows a
  dead process left ``sending`` show in ``status`` at once.
* A damaged or full ledger names the file and the fix; temp files of killed
  writes are cleaned at start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from servekit import SMTPServer, write_config, write_feed, write_reader

from newsletter.cli import cli
from newsletter.config import Settings, load_settings
from newsletter.delivery import OutboxSender
from newsletter.errors import StateLostError, StoreCorruptError, StoreError
from newsletter.ledger import LEDGER_FILE, Ledger
from newsletter.pipeline import make_app
from newsletter.site import ACCEPT_NEW_KEY, ACCEPT_NEW_LEDGER, SITE_FILE, fingerprint, writer_alive
from newsletter.store import Store
from newsletter.types import DeliveryStatus, Outgoing

DAY = date(2026, 11, 23)


@pytest.fixture
def site(tmp_path: Path, no_secret_env: None) -> Path:
    """A config folder (outbox backend, one local feed, two readers due at midnight UTC)."""
    config = write_config(tmp_path)
    write_feed(tmp_path / "lab.xml", [DAY])
    for reader in ("ada", "grace"):
        write_reader(tmp_path / "profiles", reader, "UTC", "00:00")
    return config


def cli_run(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args], env=env or {})


def one_line_error(result: Result) -> str:
    """The whole output of a refused command: exactly one line, no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    return lines[0]


def mails(settings: Settings) -> list[Path]:
    return sorted(settings.paths.outbox_dir.glob("*/*.eml"))


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# -- finding 5: lost state ---------------------------------------------------------------


def test_a_deleted_ledger_is_refused_not_recreated_and_nothing_is_resent(site: Path) -> None:
    settings = load_settings(site)
    assert cli_run(site, "run", "--now").exit_code == 0
    sent = mails(settings)
    assert len(sent) == 2
    marker = json.loads((settings.paths.data_dir / SITE_FILE).read_text())
    assert marker["created"] and len(marker["key_fingerprint"]) == 16

    (settings.paths.data_dir / LEDGER_FILE).unlink()
    line = one_line_error(cli_run(site, "run", "--now"))
    assert str(settings.paths.data_dir / LEDGER_FILE) in line and "missing" in line
    assert f"{ACCEPT_NEW_LEDGER}=1" in line and "Restore it from a backup" in line
    assert not (settings.paths.data_dir / LEDGER_FILE).exists(), "the ledger must not be recreated"
    assert mails(settings) == sent

    # The operator chooses to start afresh: the run goes on with a new ledger.
    assert cli_run(site, "run", "--now", "--no-fetch", env={ACCEPT_NEW_LEDGER: "1"}).exit_code == 0
    assert (settings.paths.data_dir / LEDGER_FILE).exists()
    assert cli_run(site, "run", "--now", "--no-fetch").exit_code == 0  # and the next run needs no flag


def test_a_site_from_before_the_marker_is_recognised_by_its_data(site: Path) -> None:
    settings = load_settings(site)
    assert cli_run(site, "run", "--now").exit_code == 0
    (settings.paths.data_dir / SITE_FILE).unlink()  # as an install older than the marker
    (settings.paths.data_dir / LEDGER_FILE).unlink()
    line = one_line_error(cli_run(site, "run", "--now"))
    assert "ran before" in line and "stored data" in line and f"feeds in {settings.paths.feeds_dir}" in line


def test_a_deleted_key_is_refused_and_a_new_one_only_on_request(site: Path) -> None:
    settings = load_settings(site)
    assert cli_run(site, "run", "--now").exit_code == 0
    key_file = settings.paths.data_dir / "secret.key"
    old = key_file.read_text().strip()
    key_file.unlink()
    line = one_line_error(cli_run(site, "run", "--now", "--no-fetch"))
    assert str(key_file) in line and "breaks every feed and unsubscribe link" in line and ACCEPT_NEW_KEY in line
    assert not key_file.exists(), "no new key may be minted silently"

    assert cli_run(site, "run", "--now", "--no-fetch", env={ACCEPT_NEW_KEY: "1"}).exit_code == 0
    new = key_file.read_text().strip()
    assert new != old
    marker = json.loads((settings.paths.data_dir / SITE_FILE).read_text())
    assert marker["key_fingerprint"] == fingerprint(new) and marker["key_changed"]
    assert cli_run(site, "run", "--now", "--no-fetch").exit_code == 0


def test_a_changed_signing_key_in_the_environment_is_refused(site: Path) -> None:
    first, second = "a" * 40, "b" * 40
    assert cli_run(site, "run", "--now", env={"NEWSLETTER_SECRET": first}).exit_code == 0
    line = one_line_error(cli_run(site, "run", "--now", "--no-fetch", env={"NEWSLETTER_SECRET": second}))
    assert "not the one this site was made with" in line and fingerprint(first) in line
    assert cli_run(site, "run", "--now", "--no-fetch", env={"NEWSLETTER_SECRET": first}).exit_code == 0


def test_read_only_commands_create_no_files(site: Path) -> None:
    root = site.parent
    before = files(root)
    cli_run(site, "status")
    cli_run(site, "preview", "ada")
    assert files(root) == before, "status/preview on a fresh site created files"

    assert cli_run(site, "run", "--now").exit_code == 0
    key_file = load_settings(site).paths.data_dir / "secret.key"
    key_file.unlink()
    before = files(root)
    assert cli_run(site, "status").exit_code == 0
    cli_run(site, "preview", "ada")
    assert files(root) == before and not key_file.exists()


# -- finding 7: the outbox knows; interrupted rows show at once --------------------------


def _digest_message(reader: str, period: str) -> Outgoing:
    return Outgoing(
        reader=reader,
        period=period,
        message_id=f"<{reader}.{period}@example.org>",
        date=datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
        sender="digest@example.org",
        sender_name="Digest",
        to=f"{reader}@example.org",
        to_name="",
        subject="papers",
        text="papers",
        html="<p>papers</p>",
    )


def test_an_outbox_send_killed_after_its_file_landed_is_sent_and_one_killed_before_is_retried(
    site: Path,
) -> None:
    settings = load_settings(site)
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    with make_app(settings) as app:
        for reader in ("ada", "grace"):
            assert app.ledger.claim(reader, "2026-11-23", [f"e-{reader}"], "outbox", now)
        # ada's file landed, then the process died before the ledger said "sent"; grace's never got written
        OutboxSender(settings.paths.outbox_dir).send(_digest_message("ada", "2026-11-23"))
    with make_app(settings) as app:
        assert app.recovered == []  # nothing uncertain: the outbox knows
        ada = app.ledger.get("ada", "2026-11-23")
        grace = app.ledger.get("grace", "2026-11-23")
    assert ada is not None and ada.status is DeliveryStatus.SENT
    assert ada.message_id == "<ada.2026-11-23@example.org>"
    assert grace is not None and grace.status is DeliveryStatus.PLANNED  # never delivered: open again


def test_rows_left_sending_by_a_killed_run_show_as_interrupted_in_status_at_once(tmp_path: Path) -> None:
    with SMTPServer(hold=True) as smtp:
        config = write_config(tmp_path, smtp.port, concurrency=1)
        write_feed(tmp_path / "lab.xml", [DAY])
        write_reader(tmp_path / "profiles", "ada", "UTC", "00:00")
        env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_SECRET"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "--config", str(config), "run", "--now"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            assert smtp.arrived.wait(60), "the digest never reached the SMTP server"
            settings = load_settings(config)
            assert writer_alive(settings.paths.data_dir)
            live = CliRunner().invoke(cli, ["--config", str(config), "status"])
            assert "interrupted" not in live.output  # its writer is alive: the send is in flight
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not writer_alive(settings.paths.data_dir)
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and "ada" in lines[0] and "stopped mid-send" in lines[0], result.output
    as_json = json.loads(CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output)
    assert [r["reader"] for r in as_json["interrupted"]] == ["ada"]


def test_a_live_writer_is_seen_through_its_lock(tmp_path: Path) -> None:
    assert not writer_alive(tmp_path)  # no lock file: nobody, and nothing created
    assert list(tmp_path.iterdir()) == []
    with Store(tmp_path):
        assert writer_alive(tmp_path)
    assert not writer_alive(tmp_path)


# -- finding 8: a damaged or full ledger, stale temp files -------------------------------


def test_a_ledger_with_garbage_pages_names_the_file_and_the_fix(site: Path) -> None:
    settings = load_settings(site)
    assert cli_run(site, "run", "--now").exit_code == 0
    path = settings.paths.data_dir / LEDGER_FILE
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    page = 4096
    raw = bytearray(path.read_bytes())
    assert len(raw) > page
    raw[page:] = bytes((i * 151 + 7) % 256 for i in range(len(raw) - page))  # page 1 (the schema) intact
    path.write_bytes(bytes(raw))
    for args in (("status",), ("run", "--now", "--no-fetch")):
        line = one_line_error(cli_run(site, *args))
        assert str(path) in line and "damaged" in line and "restore it from a backup" in line, line
    with pytest.raises(StoreCorruptError, match="never reset automatically"):
        Ledger(settings.paths.data_dir).rows()


def test_a_full_disk_in_the_ledger_names_the_path(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    try:
        now = datetime(2026, 11, 23, tzinfo=UTC)
        pages = ledger._db.execute("PRAGMA page_count").fetchone()[0]
        ledger._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL, as on a full disk
        with pytest.raises(StoreError) as caught:
            for i in range(2_000):
                ledger.claim(f"reader-{i}", "2026-11-23", [f"entry-{i}-{j}" for j in range(20)], "outbox", now)
        message = str(caught.value)
        assert str(tmp_path / LEDGER_FILE) in message and "is full" in message and "free some space" in message
        assert not isinstance(caught.value, StoreCorruptError)
    finally:
        ledger.close()


def test_stale_temp_files_of_killed_writes_are_cleaned_at_start(site: Path) -> None:
    settings = load_settings(site)
    assert cli_run(site, "run", "--now").exit_code == 0
    p = settings.paths
    hour_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    stale = [
        p.data_dir / ".newsletter.json.k2j4x_9a.tmp",
        p.feeds_dir / ".ada.xml.ab12cd34.tmp",
        p.outbox_dir / "2026-11-23" / ".ada.eml.zz99yy88.tmp",
        p.profiles_dir / ".ada.toml.q1w2e3r4.tmp",
    ]
    young = p.data_dir / ".newsletter.json.young123.tmp"  # may be a write in progress
    unrelated = p.data_dir / ".keep.tmp"  # not a name atomic_write makes
    for path in [*stale, young, unrelated]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    for path in [*stale, unrelated]:
        os.utime(path, (hour_ago, hour_ago))
    assert cli_run(site, "run", "--now", "--no-fetch").exit_code == 0
    assert [path for path in stale if path.exists()] == []
    assert young.exists() and unrelated.exists()
    with pytest.raises(StateLostError):  # and the refusal of lost state is not fooled by temp files
        (p.data_dir / LEDGER_FILE).unlink()
        make_app(settings)
