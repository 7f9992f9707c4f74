"""The command line: a thin layer over :func:`newsletter.make_app`.

Every command's help ends with an ``Example:``; user errors print one line
(no traceback) and exit 1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from . import profiles as profile_files
from .config import DEFAULT_CONFIG, Settings, default_settings, load_settings
from .errors import NewsletterError
from .pipeline import App, make_app
from .types import DeliveryStatus, RunReport

F = TypeVar("F", bound=Callable[..., Any])


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("config"))
    settings: Settings = obj["settings"]
    return settings


class _Group(click.Group):
    """Turns our errors into click's one-line ``Error: ...`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="newsletter")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ./{DEFAULT_CONFIG}; embedded defaults if absent).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """One short, personal digest of new papers per reader.

    \b
    Example:
        newsletter demo
    """
    ctx.ensure_object(dict)["config"] = config


# -- init / demo ----------------------------------------------------------------


def _sample(name: str) -> str:
    return (resources.files("newsletter") / "samples" / name).read_text(encoding="utf-8")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
def init(directory: Path) -> None:
    """Write a commented newsletter.toml and a profiles/ folder with an example.

    Existing files are never overwritten.

    \b
    Example:
        newsletter init my-digest && cd my-digest && newsletter profiles check
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for target, sample in (
        (directory / DEFAULT_CONFIG, "newsletter.toml"),
        (directory / "profiles" / "example.toml", "profiles/ada.toml"),
    ):
        if target.exists():
            click.echo(f"kept     {target} (already exists)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_sample(sample), encoding="utf-8")
        written.append(target)
        click.echo(f"wrote    {target}")
    click.echo("Next: edit the profile, then `newsletter profiles check` and `newsletter run --now`.")


DEMO_READERS = ("ada.toml", "grace.toml", "alan.toml")


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("newsletter-demo"),
    show_default=True,
    help="Where the demo keeps its profiles, data, outbox and feeds.",
)
def demo(directory: Path) -> None:
    """Run the whole pipeline offline on the bundled sample feeds.

    Writes three example readers' profiles (if missing), fetches the bundled
    arXiv and Hugging Face samples, ranks, renders, and delivers into an
    outbox folder of .eml files plus one RSS and one Atom feed per reader.
    Run it again: nothing is sent twice.

    \b
    Example:
        newsletter demo --dir /tmp/newsletter-demo
    """
    settings = default_settings(directory.resolve())
    profiles_dir = settings.paths.profiles_dir
    if not profiles_dir.exists():
        profiles_dir.mkdir(parents=True)
        for name in DEMO_READERS:
            (profiles_dir / name).write_text(_sample(f"profiles/{name}"), encoding="utf-8")
    with make_app(settings) as app:
        report = app.run(force=True)
    _print_report(report, settings)


def _print_report(report: RunReport, settings: Settings) -> None:
    for s in report.sources:
        if s.error:
            click.echo(f"source   {s.source}: FAILED: {s.error}")
        elif s.not_modified:
            click.echo(f"source   {s.source}: unchanged (304)")
        else:
            click.echo(f"source   {s.source}: {s.new} new, {s.updated} updated, {s.unchanged} unchanged")
    for err in report.profile_errors:
        click.echo(f"profile  {err}", err=True)
    sent = 0
    for d in report.deliveries:
        if d.already:
            click.echo(f"{'already':<8} {d.reader}: {d.status.value} for {d.period}")
        elif d.status is DeliveryStatus.SENT:
            sent += 1
            where = f" -> {d.path}" if d.path else ""
            click.echo(f"sent     {d.reader}: {d.items} papers{where}")
        else:
            click.echo(f"{d.status.value:<8} {d.reader}: {d.detail or ''}".rstrip())
    if report.deliveries and not sent:
        click.echo("Nothing new to send: every reader already has this period's digest (or nothing matched).")
    if report.feeds:
        click.echo(f"feeds    {len(report.feeds)} files in {settings.paths.feeds_dir}")
    if settings.delivery.backend == "outbox":
        click.echo(f"outbox   {settings.paths.outbox_dir}")


# -- fetch / run ------------------------------------------------------------------------


@cli.command()
@click.pass_context
def fetch(ctx: click.Context) -> None:
    """Fetch every source now and store new entries.

    \b
    Example:
        newsletter --config newsletter.toml fetch
    """
    settings = _settings(ctx)
    with make_app(settings) as app:
        results = app.fetch()
    _print_report(RunReport(sources=tuple(results)), settings)
    if results and all(not r.ok for r in results):
        raise NewsletterError("every source failed; see the lines above")


@cli.command()
@click.option("--now", "force", is_flag=True, help="Send today's digest to every reader now, whatever their send time.")
@click.option("--no-fetch", is_flag=True, help="Deliver from what is stored, without fetching.")
@click.pass_context
def run(ctx: click.Context, force: bool, no_fetch: bool) -> None:
    """Fetch, then deliver every digest that is due (what cron calls).

    Readers whose profile file is broken are reported and skipped; the
    others still get their digest.  Exits 1 if any profile was broken.

    \b
    Example:
        newsletter run --now
    """
    settings = _settings(ctx)
    with make_app(settings) as app:
        report = app.run(force=force, fetch=not no_fetch)
    _print_report(report, settings)
    if report.profile_errors:
        sys.exit(1)


# -- profiles ----------------------------------------------------------------------------


@cli.group()
def profiles() -> None:
    """Check, list and sync the reader profile files.

    \b
    Example:
        newsletter profiles check
    """


@profiles.command("check")
@click.pass_context
def profiles_check(ctx: click.Context) -> None:
    """Validate every profile file; exit 1 if any is broken.

    \b
    Example:
        newsletter profiles check
    """
    settings = _settings(ctx)
    loaded = profile_files.load_profiles(settings.paths.profiles_dir)
    for p in loaded.profiles:
        click.echo(f"ok       {p.path}")
    for e in loaded.errors:
        click.echo(f"error    {e}", err=True)
    click.echo(f"{len(loaded.profiles)} valid, {len(loaded.errors)} broken")
    if loaded.errors:
        sys.exit(1)


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def profiles_list(ctx: click.Context, as_json: bool) -> None:
    """Show every valid reader: id, email, schedule, interests.

    \b
    Example:
        newsletter profiles list --json
    """
    settings = _settings(ctx)
    loaded = profile_files.load_profiles(settings.paths.profiles_dir)
    rows = [
        {
            "id": p.id,
            "email": p.email,
            "schedule": f"{p.frequency} {p.send_at:%H:%M} {p.timezone}",
            "paused": p.paused,
            "interests": [k.text for k in p.interests.keywords] + list(p.interests.authors),
        }
        for p in loaded.profiles
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            state = " (paused)" if r["paused"] else ""
            click.echo(f"{r['id']:<16} {r['email']:<28} {r['schedule']}{state}")
    for e in loaded.errors:
        click.echo(f"error    {e}", err=True)


@profiles.command("sync")
@click.pass_context
def profiles_sync(ctx: click.Context) -> None:
    """Load every valid profile file into the database.

    \b
    Example:
        newsletter profiles sync
    """
    with make_app(_settings(ctx)) as app:
        loaded = app.load_profiles()
    click.echo(f"synced   {len(loaded.profiles)} readers")
    for e in loaded.errors:
        click.echo(f"error    {e}", err=True)
    if loaded.errors:
        sys.exit(1)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a profile file (for editor autocompletion).

    \b
    Example:
        newsletter schema > profile.schema.json
    """
    click.echo(json.dumps(profile_files.schema(), indent=2))


def main() -> None:
    """Entry point of the ``newsletter`` console script."""
    cli(prog_name="newsletter")


__all__ = ["App", "cli", "main"]
