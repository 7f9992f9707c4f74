"""The command line, driven through click's runner and, once, as a real process."""

from __future__ import annotations

import email
import re
import subprocess
import sys
from email import policy
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def all_commands(group: click.Group = cli, prefix: str = "") -> list[tuple[str, click.Command]]:
    out = []
    for name, command in group.commands.items():
        full = f"{prefix}{name}"
        out.append((full, command))
        if isinstance(command, click.Group):
            out += all_commands(command, f"{full} ")
    return out


@pytest.mark.parametrize("name", [n for n, _ in all_commands()])
def test_every_command_has_an_example_and_is_in_the_readme(name: str) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    example = result.output.split("Example:", 1)[1].strip().splitlines()[0]
    assert example.startswith("newsletter "), example
    assert f"`newsletter {name}" in README.read_text(), f"README does not document `newsletter {name}`"


def read_eml(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


@pytest.mark.slow
def test_demo_delivers_once_per_reader_and_then_nothing(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert first.exit_code == 0, first.output
    emls = sorted(tmp_path.glob("outbox/*/*.eml"))
    assert sorted(p.stem for p in emls) == ["ada", "alan", "grace"]
    for path in emls:
        msg = read_eml(path)
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert text.count("Why: ") >= 1 and '<p class="w">' in html
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sorted(p.name for p in (tmp_path / "feeds").iterdir()) == [
        "ada.atom",
        "ada.xml",
        "alan.atom",
        "alan.xml",
        "grace.atom",
        "grace.xml",
    ]
    assert str(tmp_path / "outbox") in first.output

    before = {p: p.read_bytes() for p in emls}
    second = runner.invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert "Nothing new to send" in second.output
    assert {p: p.read_bytes() for p in sorted(tmp_path.glob("outbox/*/*.eml"))} == before


@pytest.mark.slow
def test_demo_reports_a_broken_profile_and_serves_the_others(tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "profiles").mkdir()
    runner.invoke(cli, ["init", str(tmp_path / "x")])  # any valid profile to start from
    (tmp_path / "profiles" / "ok.toml").write_text((tmp_path / "x" / "profiles" / "example.toml").read_text())
    (tmp_path / "profiles" / "broken.toml").write_text(
        'email = "b@example.org"\nsend_at = "25:00"\n[interests]\nkeywords = ["x"]\n'
    )
    result = runner.invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert re.search(r"broken\.toml line 2: `send_at`: '25:00' is not a time: use HH:MM", result.output)
    assert len(list(tmp_path.glob("outbox/*/ok.eml"))) == 1


def test_profiles_check_exits_1_on_a_broken_file(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init", str(tmp_path)]).exit_code == 0
    config = str(tmp_path / "newsletter.toml")
    ok = runner.invoke(cli, ["--config", config, "profiles", "check"])
    assert ok.exit_code == 0 and "1 valid, 0 broken" in ok.output
    (tmp_path / "profiles" / "bad.toml").write_text('email = "not-an-address"\n[interests]\nkeywords = ["x"]\n')
    bad = runner.invoke(cli, ["--config", config, "profiles", "check"])
    assert bad.exit_code == 1
    assert "bad.toml line 1: `email`: 'not-an-address' is not a valid email address" in bad.output


def test_init_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path)])
    (tmp_path / "newsletter.toml").write_text("# mine\n")
    result = runner.invoke(cli, ["init", str(tmp_path)])
    assert "kept" in result.output and (tmp_path / "newsletter.toml").read_text() == "# mine\n"


@pytest.mark.slow
def test_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "newsletter", "--config", str(tmp_path / "missing.toml"), "fetch"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "missing.toml: no such config file" in proc.stderr and "Traceback" not in proc.stderr


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and re.search(r"newsletter, version \d+\.\d+", result.output)


def test_schema_is_json_schema_of_the_profile() -> None:
    import json

    schema = json.loads(CliRunner().invoke(cli, ["schema"]).output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"email", "interests"} <= set(schema["required"])


def test_a_bad_path_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "file" / "sub")])
    assert result.exit_code == 1
    assert "Error: cannot use" in result.output and "check the path" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_exits_1_when_every_source_failed_so_cron_notices(tmp_path: Path) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["init", str(tmp_path)])
    config = tmp_path / "newsletter.toml"
    text = config.read_text()
    start = text.index("[[sources]]")
    config.write_text(
        text[:start]
        + '[[sources]]\nname = "gone"\nkind = "arxiv"\npath = "missing.rss"\n\n'
        + text[text.index("[delivery]") :]
    )
    result = runner.invoke(cli, ["--config", str(config), "run", "--now"])
    assert result.exit_code == 1
    assert "every source failed" in result.output


@pytest.mark.slow
def test_a_send_left_in_flight_by_a_killed_run_is_reported_once(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from newsletter.ledger import Ledger

    Ledger(tmp_path / "newsletter-data").claim("ada", "2026-11-22", ["arxiv:1"], "sendgrid", datetime.now(UTC))
    runner = CliRunner()
    first = runner.invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert "uncertain ada 2026-11-22: an earlier run stopped during this send; it is not resent" in first.output
    second = runner.invoke(cli, ["demo", "--dir", str(tmp_path)])
    assert "an earlier run stopped" not in second.output


# -- the command line as a person meets it (issue 13) ---------------------------------------------------


def newsletter(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "args",
    [["rank", "--profile"], ["rank"], ["no-such-command"], ["preview"], ["run", "--later"]],
)
def test_usage_errors_exit_1_with_one_line(args: list[str]) -> None:
    proc = newsletter(*args)
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: "), proc.stderr
    assert "--help`)" in proc.stderr and "Usage:" not in proc.stderr


def test_a_closed_pipe_is_silent(tmp_path: Path) -> None:
    CliRunner().invoke(cli, ["init", str(tmp_path)])
    many = tmp_path / "profiles" / "example.toml"
    many.write_text(many.read_text().replace("max_items = 10", "max_items = 100"))
    cmd = f"{sys.executable} -m newsletter rank --profile {many} --entries {tmp_path / 'sample.rss'} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, check=False)
    assert proc.stdout.count("\n") == 1 and proc.stdout.strip().startswith("1.")
    assert proc.stderr == "", proc.stderr


def test_rank_names_the_seed_papers_it_could_not_find(tmp_path: Path) -> None:
    CliRunner().invoke(cli, ["init", str(tmp_path)])
    profile = tmp_path / "profiles" / "example.toml"
    profile.write_text(profile.read_text().replace('categories = ["cs.LG"]', 'papers = ["2510.19702", "2101.00001"]'))
    proc = newsletter("rank", "--profile", str(profile), "--entries", str(tmp_path / "sample.rss"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "note     seed paper 2101.00001 is not in sample.rss, so it was not used\n"
    assert "like your paper 2510.19702" in proc.stdout


def test_the_cli_module_loads_nothing_heavy() -> None:
    code = (
        "import sys, newsletter.cli; heavy = {'pydantic', 'numpy', 'scipy', 'httpx', 'jinja2', 'tinydb', "
        "'newsletter.pipeline', 'newsletter.config'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
