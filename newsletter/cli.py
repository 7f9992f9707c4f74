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
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__, logs
from . import profiles as profile_files
from .config import DEFAULT_CONFIG, Settings, default_settings, load_settings
from .errors import NewsletterError
from .store import Store
from .types import DeliveryStatus, RunReport, SourceResult, SourceState

if TYPE_CHECKING:
    from .pipeline import App

F = TypeVar("F", bound=Callable[..., Any])


def make_app(settings: Settings, **parts: Any) -> App:
    """:func:`pipeline.make_app`, imported on first use: ``status`` never loads the ranking and mail stack."""
    from .pipeline import make_app as make

    return make(settings, **parts)


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
        except OSError as e:  # a path the user gave: say which and why, without a traceback
            where = f" {e.filename}" if e.filename else ""
            raise click.ClickException(
                f"cannot use{where}: {e.strerror or e}; check the path and its permissions"
            ) from e


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
    for r in report.recovered:
        click.echo(
            f"uncertain {r.reader} {r.period}: an earlier run stopped during this send; it is not resent, "
            "check the mail provider's log to see whether it went out",
            err=True,
        )
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
        if len(settings.sources) >= PROGRESS_FROM and sys.stderr.isatty():
            with click.progressbar(length=len(settings.sources), label="fetching", file=sys.stderr) as bar:
                app.fetcher.progress = lambda *_: bar.update(1)
                results = app.fetch()
        else:
            results = app.fetch()
        after = app.store.source_states()
    for line in fetch_table(results, after):
        click.echo(line.rstrip())
    if results and all(not r.ok for r in results):
        raise NewsletterError("every source failed; see the table above")


PROGRESS_FROM = 5
"""Sources from which `newsletter fetch` shows a progress bar (on a terminal)."""


def fetch_table(results: list[SourceResult], states: dict[str, SourceState]) -> list[str]:
    """One row per source: status, counts, and why it failed or what is missing."""
    rows = [["source", "status", "new", "updated", "unchanged", "detail"]]
    for r in results:
        state = states.get(r.source) or SourceState(r.source)
        notes = []
        if r.error:
            status = "FAILED"
            notes.append(r.error)
            if state.failures > 1:
                notes.append(f"{state.failures} failures in a row")
        elif r.not_modified:
            status = "unchanged"
            notes.append("304 Not Modified")
        else:
            status = "ok"
        if r.missed:
            notes.append(f"missed the listings of {', '.join(r.missed)} (no longer in the feed)")
        counted = not r.not_modified and (r.ok or r.new or r.updated or r.unchanged)
        counts = [str(r.new), str(r.updated), str(r.unchanged)] if counted else ["-", "-", "-"]
        rows.append([r.source, status, *counts, "; ".join(notes)])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        numbers = [c.rjust(w) for c, w in zip(row[2:5], widths[2:5], strict=True)]
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *numbers, row[5]]))
    return lines


@cli.command()
@click.option("--now", "force", is_flag=True, help="Send today's digest to every reader now, whatever their send time.")
@click.option("--no-fetch", is_flag=True, help="Deliver from what is stored, without fetching.")
@click.option("--log-json", is_flag=True, help="Log JSON lines with a run id (or NEWSLETTER_LOG_FORMAT=json).")
@click.pass_context
def run(ctx: click.Context, force: bool, no_fetch: bool, log_json: bool = False) -> None:
    """Fetch, then deliver every digest that is due (what cron calls).

    Readers whose profile file is broken are reported and skipped; the
    others still get their digest.  Exits 1 if a profile was broken, every
    source failed, or a digest failed or is uncertain.

    \b
    Example:
        newsletter run --now
    """
    settings = _settings(ctx)
    logs.setup(log_json)
    with make_app(settings) as app:
        report = app.run(force=force, fetch=not no_fetch)
    logs.log_report(report)
    _print_report(report, settings)
    problems = run_problems(report)
    if problems:
        raise NewsletterError("; ".join(problems))


def run_problems(report: RunReport) -> list[str]:
    """Why a run should exit non-zero, so cron and systemd can tell a bad run from a good one."""
    problems = []
    if report.profile_errors:
        problems.append(f"{len(report.profile_errors)} profile file(s) are broken")
    if report.sources and all(not s.ok for s in report.sources):
        problems.append("every source failed")
    bad = [
        d for d in report.deliveries if not d.already and d.status in (DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)
    ]
    if bad:
        problems.append(f"{len(bad)} digest(s) failed or are uncertain")
    return [p + " (see above)" for p in problems]


# -- rank / preview ----------------------------------------------------------------------


@cli.command("rank")
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="A reader's profile file (TOML).",
)
@click.option(
    "--entries",
    "entries_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="An RSS/Atom feed or a Hugging Face daily-papers JSON file; the kind is detected.",
)
@click.option("--json", "as_json", is_flag=True, help='Print [{"id", "title", "score", "reasons"}] as JSON.')
def rank_command(profile_path: Path, entries_path: Path, as_json: bool) -> None:
    """Rank a feed file for one profile file, without any database.

    Seed papers are used when the file lists them.

    \b
    Example:
        newsletter rank --profile profiles/ada.toml --entries arxiv_cs.rss --json
    """
    from datetime import UTC, datetime

    from . import match, sources

    try:
        text = profile_path.read_text(encoding="utf-8")
        data = entries_path.read_bytes()
    except (OSError, UnicodeDecodeError) as e:
        raise NewsletterError(f"cannot read the input files ({e}); check the paths and save them as UTF-8") from e
    profile = profile_files.parse_profile(text, profile_path)
    now = datetime.now(UTC)
    items = sources.parse(sources.detect_kind(data), entries_path.name, data)
    merged = sources.merge_all({}, items, now).changed
    matches = match.rank(list(merged.values()), profile, now)
    if as_json:
        rows = [
            {"id": m.entry.id, "title": m.entry.title, "score": m.score, "reasons": [r.text for r in m.reasons]}
            for m in matches
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not matches:
        click.echo(f"Nothing in {entries_path.name} matched {profile_path.name} ({len(merged)} entries).")
    for n, m in enumerate(matches, 1):
        click.echo(f"{n:>3}. {m.score:7.2f}  {m.entry.title}")
        click.echo(f"      {m.entry.link}")
        click.echo(f"      why: {m.reason_line}")


@cli.command()
@click.argument("reader")
@click.option("--days", type=click.IntRange(1, 365), default=1, show_default=True, help="Look this many days back.")
@click.option("--open", "open_html", is_flag=True, help="Write the email as HTML and open it in a browser.")
@click.pass_context
def preview(ctx: click.Context, reader: str, days: int, open_html: bool) -> None:
    """Show the digest READER would get now, with reasons; sends and records nothing.

    READER is the profile file's name without .toml.

    \b
    Example:
        newsletter preview ada --days 3 --open
    """
    settings = _settings(ctx)
    # Read-only: works while `serve` holds the data folder, and records nothing.
    with make_app(settings, store=Store(settings.paths.data_dir, read_only=True)) as app:
        digest = app.preview(reader, days)
        html_path = None
        if open_html:
            email = app.renderer.email(digest, app.links(reader))
            html_path = settings.paths.data_dir / f"preview-{reader}.html"
            html_path.parent.mkdir(parents=True, exist_ok=True)
            html_path.write_text(email.html, encoding="utf-8")
    who = f"{digest.profile.name} <{digest.profile.email}>"
    click.echo(f"{who}: {len(digest.matches)} papers from the last {days} day(s)")
    for n, m in enumerate(digest.matches, 1):
        click.echo(f"{n:>3}. {m.score:7.2f}  {m.entry.title}")
        click.echo(f"      why: {m.reason_line}")
    for note in digest.notes:
        click.echo(f"note     {note}")
    if html_path is not None:
        click.echo(f"html     {html_path}")
        click.launch(str(html_path))


# -- serve / status ----------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--log-json", is_flag=True, help="Log JSON lines with a run id (or NEWSLETTER_LOG_FORMAT=json).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, log_json: bool) -> None:
    """Run the scheduler and the HTTP app (feeds, unsubscribe, /healthz).

    Fetches daily at schedule.fetch_at (UTC) and checks every minute which
    readers are due at their own local send time; after downtime it sends
    each missed digest once.  Stop it with SIGTERM or Ctrl-C: sends in
    flight finish and are recorded.  Put HTTPS in front (deploy/nginx).

    \b
    Example:
        newsletter serve --host 127.0.0.1 --port 8080
    """
    from . import serve as service  # APScheduler and uvicorn load only here

    settings = _settings(ctx)
    logs.setup(log_json, also=("uvicorn.error", "apscheduler"))
    service.serve(settings, host=host, port=port)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show run health: sources, quiet days, skipped readers, uncertain sends.

    Last fetch per source, sources failing several times in a row, days
    with no new entries, readers skipped because nothing matched, and sends
    that may or may not have gone out.  Works while `serve` runs.  Exits 1
    when every source is failing.

    \b
    Example:
        newsletter status --json
    """
    from .health import read_status, status_lines

    current = read_status(_settings(ctx))
    if as_json:
        click.echo(json.dumps(current.as_json(), indent=2))
    else:
        for line in status_lines(current):
            click.echo(line)
    if not current.healthy:
        raise NewsletterError("every source is failing: no new papers can arrive; see the source lines above")


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


__all__ = ["cli", "main"]
